"""A random-walk trade generator running in the background at a set rate, with start/stop and progress.

One ``TradeGenerator`` per app process (every browser session sees the same run). It owns its lock
and its thread; pages read :meth:`TradeGenerator.progress`, a frozen copy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from simulator.trades import RandomWalk, insert_many

log = logging.getLogger("stockdash.generator")

TICK_S = 0.05  # inserts are grouped per 50 ms: one insert_many each, paced against a deadline
MAX_INSERT = 5_000  # trades in one insert_many: bounds memory and keeps catching up in steps


@dataclass(frozen=True)
class GeneratorPlan:
    rate_per_s: int
    symbols: tuple[str, ...]
    volatility_pct: float
    duration_s: float

    @property
    def total(self) -> int:
        return int(round(self.rate_per_s * self.duration_s))


@dataclass(frozen=True)
class GeneratorProgress:
    state: str  # idle / running / finished / stopped / failed
    plan: GeneratorPlan | None = None
    inserted: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.inserted / self.plan.total) if self.plan and self.plan.total else 0.0

    @property
    def achieved_rate(self) -> float | None:
        if self.started_at is None:
            return None
        elapsed = (self.ended_at or time.time()) - self.started_at
        return self.inserted / elapsed if elapsed > 0 else None


class TradeGenerator:
    def __init__(self, transactions: Collection) -> None:
        self.transactions = transactions
        self.walk = RandomWalk({})
        self._lock = threading.Lock()
        self._progress = GeneratorProgress("idle")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def progress(self) -> GeneratorProgress:
        with self._lock:
            return self._progress

    def start(self, rate_per_s: int, symbols: Sequence[str], volatility_pct: float, duration_s: float,
              start_prices: Mapping[str, float] | None = None) -> GeneratorPlan:
        """Start a run; raises ValueError (in words) for a plan that cannot run or if one is running.
        Symbols new to the walk start at ``start_prices`` (default 100)."""
        if not symbols:
            raise ValueError("Choose at least one symbol.")
        if not 1 <= rate_per_s <= 20_000:
            raise ValueError("Trades per second must be between 1 and 20,000.")
        if not 0 < duration_s <= 3600:
            raise ValueError("Duration must be between 1 second and 1 hour.")
        plan = GeneratorPlan(int(rate_per_s), tuple(symbols), float(volatility_pct), float(duration_s))
        with self._lock:
            if self._progress.state == "running":
                raise ValueError("The generator is already running; stop it first.")
            for symbol in plan.symbols:
                self.walk.prices.setdefault(symbol, float((start_prices or {}).get(symbol, 100.0)))
            self._stop.clear()
            self._progress = GeneratorProgress("running", plan, started_at=time.time())
            self._thread = threading.Thread(target=self._run, args=(plan,), name="trade-generator", daemon=True)
            self._thread.start()
        return plan

    def stop(self, timeout: float = 5.0) -> GeneratorProgress:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        return self.progress()

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._progress = replace(self._progress, **changes)

    def _run(self, plan: GeneratorPlan) -> None:
        self.walk.volatility = plan.volatility_pct / 100
        started = time.monotonic()
        inserted = 0
        try:
            while inserted < plan.total and not self._stop.is_set():
                # How many trades should exist by now: catching up after a slow insert keeps the rate.
                due = min(plan.total, int((time.monotonic() - started) * plan.rate_per_s) + 1)
                if due > inserted:
                    # At most one insert's worth at a time: after a stall, catching up must not build millions at once.
                    count = min(due - inserted, MAX_INSERT)
                    trades = [self.walk.next_trade(self.walk.random.choice(plan.symbols)) for _ in range(count)]
                    inserted += insert_many(self.transactions, trades)
                    self._update(inserted=inserted)
                self._stop.wait(TICK_S)
        except PyMongoError as exc:
            log.error("generator stopped: MongoDB is unavailable (%s)", type(exc).__name__)
            self._update(state="failed", ended_at=time.time(),
                         error=f"MongoDB is unavailable ({type(exc).__name__}); {inserted:,} trades were inserted")
            return
        self._update(state="stopped" if inserted < plan.total else "finished", ended_at=time.time())
