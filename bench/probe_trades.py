"""Probe trades for insert → pixel: one trade of the probe symbol at a time, each at a price no trade
ever had, so that the price on a screen names the trade (:mod:`bench.pixel`)."""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal

from pymongo.collection import Collection

PROBE_SYMBOL = "ASIANPAINT"  # first in the Market table's order: its row is always on screen
# ₹10.00, ₹10.01, …: two decimals (what every element shows), two digits before the point (no thousands
# separator to format alike everywhere), rising (a later price on screen means the earlier ones were
# taken) and far below every listed stock's price (₹150 and up), which the background load walks around.
PROBE_BASE, PROBE_STEP, PROBE_END = Decimal("10.00"), Decimal("0.01"), Decimal("100.00")


class ProbeTrades:
    def __init__(self, transactions: Collection) -> None:
        self.transactions = transactions
        self.inserted: list[tuple[str, float]] = []  # (price text, when its insert returned)

    def insert(self) -> str:
        """Insert the next probe trade; returns its price as text ("10.37")."""
        price = PROBE_BASE + PROBE_STEP * len(self.inserted)
        if price >= PROBE_END:
            raise RuntimeError("out of probe prices (9,000 per run): shorten the phases")
        self.transactions.insert_one({"symbol": PROBE_SYMBOL, "side": "buy", "price": float(price), "quantity": 1,
                                      "trade_time": datetime.now(timezone.utc)})
        key = f"{price:.2f}"
        self.inserted.append((key, time.time()))
        return key

    def run(self, duration_s: float, interval_s: float, stop: threading.Event) -> list[tuple[str, float]]:
        """A probe every ~``interval_s`` for ``duration_s`` (or until ``stop``); returns those inserted."""
        first = len(self.inserted)
        rng = random.Random(first)
        ends = time.monotonic() + duration_s
        while time.monotonic() < ends and not stop.is_set():
            self.insert()
            # Pacing, with jitter: the probes must not lock onto a page's redraw timer.
            stop.wait(interval_s * rng.uniform(0.6, 1.4))
        return self.inserted[first:]
