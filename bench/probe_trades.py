"""Probe trades for insert → pixel: one trade of the probe symbol at a time, each at a price no trade
ever had, so that the price on a screen names the trade (:mod:`bench.pixel`); and probes of the ledgers, a
rejected message or a late trade at a time, each named by the ledger's count once it is counted."""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timedelta, timezone
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


LATE_BY = timedelta(minutes=10)  # far behind the symbol's latest trade (CANDLE_LATENESS_S: 2 minutes)


class LedgerProbes:
    """Alternately a rejected message (a negative price) and a late trade of a symbol the load trades;
    each is the ledger's next count: (count as the page shows it, zero-padded like ``pixel.js``'s keys,
    when its insert returned)."""

    def __init__(self, transactions: Collection, late_symbol: str) -> None:
        self.transactions = transactions
        self.late_symbol = late_symbol
        self.counts = {"rejected": 0, "late": 0}  # the ledgers' counts before the first probe: set by its user
        self.inserted: dict[str, list[tuple[str, float]]] = {"rejected": [], "late": []}

    def insert(self, ledger: str) -> None:
        now = datetime.now(timezone.utc)
        if ledger == "rejected":
            document = {"symbol": PROBE_SYMBOL, "side": "buy", "price": -1.0, "quantity": 1, "trade_time": now}
        else:
            document = {"symbol": self.late_symbol, "side": "buy", "price": 100.0, "quantity": 1, "trade_time": now - LATE_BY}
        self.transactions.insert_one(document)
        self.counts[ledger] += 1
        self.inserted[ledger].append((f"{self.counts[ledger]:09d}", time.time()))

    def run(self, duration_s: float, interval_s: float, stop: threading.Event) -> None:
        rng = random.Random(7)
        ends, turn = time.monotonic() + duration_s, 0
        while time.monotonic() < ends and not stop.is_set():
            self.insert(("rejected", "late")[turn % 2])
            turn += 1
            stop.wait(interval_s * rng.uniform(0.6, 1.4))
