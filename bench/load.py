"""A paced trade load: random-walk trades inserted at a set rate, each insert's return time recorded
per symbol so the freshness probe can tell when every trade became visible."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pymongo.collection import Collection

from simulator.trades import RandomWalk

TICK_S = 0.02  # one insert_many per 20 ms at most, sized to what is due
MAX_BATCH = 2000


@dataclass(frozen=True)
class LoadRun:
    rate_per_s: int
    duration_s: float
    inserted: int
    started_at: float
    ended_at: float

    @property
    def achieved_per_s(self) -> float:
        return self.inserted / max(1e-9, self.ended_at - self.started_at)


class PacedLoad:
    """``on_insert(symbol, inserted_so_far, returned_at, n)`` is called after each insert, per symbol."""

    def __init__(self, transactions: Collection, start_prices: dict[str, float],
                 on_insert: Callable[[str, int, float, int], None], seed: int = 1) -> None:
        self.transactions = transactions
        self.walk = RandomWalk(start_prices, volatility_pct=0.2, seed=seed)
        self.symbols: Sequence[str] = sorted(start_prices)
        self.on_insert = on_insert
        self.sent: dict[str, int] = dict.fromkeys(self.symbols, 0)

    def run(self, rate_per_s: int, duration_s: float, stop: threading.Event | None = None) -> LoadRun:
        """Insert for ``duration_s`` at ``rate_per_s`` (behind schedule: larger batches, not a slower clock)."""
        total = int(rate_per_s * duration_s)
        started = time.time()
        inserted = 0
        while inserted < total and not (stop and stop.is_set()):
            due = min(total, int((time.time() - started) * rate_per_s) + 1)
            if due <= inserted:
                time.sleep(TICK_S)
                continue
            trades = [self.walk.next_trade(self.walk.random.choice(self.symbols))
                      for _ in range(min(MAX_BATCH, due - inserted))]
            self.transactions.insert_many([trade.to_document() for trade in trades], ordered=True)
            returned = time.time()
            counts: dict[str, int] = {}
            for trade in trades:
                counts[trade.symbol] = counts.get(trade.symbol, 0) + 1
            for symbol, n in counts.items():
                self.sent[symbol] += n
                self.on_insert(symbol, self.sent[symbol], returned, n)
            inserted += len(trades)
        return LoadRun(rate_per_s, duration_s, inserted, started, time.time())
