"""Freshness as the app sees it: from an insert returning to its trade being counted in a MarketState.

The load inserts each symbol's trades in order, and the pipeline counts each symbol's ticks in that
order (one Kafka partition per symbol), so the k-th trade of a symbol is visible from the first state
version whose count for that symbol reaches k. Every trade is measured, none sampled.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from pipeline.domain.state import MarketState

LOOK_EVERY_S = 0.01


@dataclass(frozen=True)
class Percentiles:
    trades: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    max_s: float | None


class FreshnessProbe:
    def __init__(self, state: MarketState) -> None:
        self.state = state
        snapshot = state.snapshot()
        self._base = {symbol: agg.trades for symbol, agg in snapshot.stocks.items()}
        self._version = snapshot.version
        self._lock = threading.Lock()
        self._pending: dict[str, deque[tuple[int, float, int]]] = {}
        self._samples: list[tuple[float, float, int]] = []  # (inserted at, freshness s, trades)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="freshness-probe", daemon=True)
        self._thread.start()

    def expect(self, returned_at: float, inserted: list[tuple[str, int, int]]) -> None:
        """An insert returned at ``returned_at`` with, per symbol, ``n`` trades, ``count`` so far: ``(symbol,
        count, n)`` (``bench.load``'s report)."""
        with self._lock:
            for symbol, count, n in inserted:
                self._pending.setdefault(symbol, deque()).append((count, returned_at, n))

    def _watch(self) -> None:
        looked_at = 0.0
        while not self._stop.is_set():
            self._version = self.state.wait_for_change(self._version, timeout=0.2)
            # At most one look (a whole snapshot) per LOOK_EVERY_S: at 10,000 trades/s the state moves hundreds
            # of times a second, and a look at each took the CPU the feed needed. A sample may be late by as much.
            if (rest := looked_at + LOOK_EVERY_S - time.monotonic()) > 0:
                self._stop.wait(rest)
            looked_at = time.monotonic()
            seen_at = time.time()
            stocks = self.state.snapshot().stocks
            with self._lock:
                for symbol, pending in self._pending.items():
                    agg = stocks.get(symbol)
                    visible = (agg.trades if agg else 0) - self._base.get(symbol, 0)
                    while pending and pending[0][0] <= visible:
                        _, returned_at, n = pending.popleft()
                        self._samples.append((returned_at, seen_at - returned_at, n))

    def outstanding(self) -> int:
        with self._lock:
            return sum(n for pending in self._pending.values() for _, _, n in pending)

    def samples(self, since: float = 0.0, until: float = float("inf")) -> list[tuple[float, float, int]]:
        with self._lock:
            return [s for s in self._samples if since <= s[0] < until]

    def percentiles(self, since: float = 0.0, until: float = float("inf")) -> Percentiles:
        samples = self.samples(since, until)
        if not samples:
            return Percentiles(0, None, None, None, None)
        delays = np.repeat([s[1] for s in samples], [s[2] for s in samples])
        p50, p95, p99 = np.percentile(delays, [50, 95, 99])
        return Percentiles(int(delays.size), float(p50), float(p95), float(p99), float(delays.max()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
