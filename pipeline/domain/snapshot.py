"""What MarketState hands out and takes in: immutable values (a snapshot, a tick, a batch's report)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pipeline.domain.candles import Candle
from pipeline.domain.days import DayFigures
from pipeline.domain.metrics import StockAggregate


@dataclass(frozen=True)
class Tick:
    symbol: str
    trade_time: datetime
    event_id: str
    trade_id: str | None
    price: Decimal
    quantity: int
    side: str | None
    ingest_time: datetime | None


@dataclass(frozen=True)
class SetAside:
    """Messages one batch newly set aside: rejected per reason and per symbol, late ticks per symbol."""

    rejected_by_reason: Counter
    rejected_by_symbol: Counter
    late_by_symbol: Counter

    @classmethod
    def of(cls, rejected: Iterable[Mapping[str, Any]], late: Iterable[Mapping[str, Any]]) -> SetAside:
        """From set-aside records (``pipeline.sinks.ledger``)."""
        rejected = list(rejected)
        return cls(Counter(r["reason"] for r in rejected), Counter(r["symbol"] for r in rejected),
                   Counter(r["symbol"] for r in late))

    def __bool__(self) -> bool:
        return bool(self.rejected_by_reason or self.late_by_symbol)


@dataclass(frozen=True)
class BatchReport:
    """What one micro-batch did, for the Pipeline page."""

    batch_id: int
    finished_at: float
    duration_s: float
    messages: int
    ticks: int
    spark_s: float = 0.0  # of duration_s: running the batch's Spark job and collecting its result
    durable_s: float = 0.0  # of duration_s: MongoDB and Kafka writes before the state changes


@dataclass(frozen=True)
class Freshness:
    """Percentiles of the delay from a trade entering the pipeline to it being in the state."""

    samples: int
    p50_s: float | None
    p99_s: float | None
    max_s: float | None

    @classmethod
    def of(cls, sorted_delays: list[float]) -> Freshness:
        if not sorted_delays:
            return cls(0, None, None, None)
        n = len(sorted_delays)
        return cls(n, sorted_delays[(n - 1) // 2], sorted_delays[min(n - 1, int(n * 0.99))], sorted_delays[-1])


@dataclass(frozen=True)
class MarketSnapshot:
    stocks: Mapping[str, StockAggregate]
    recent_ticks: Mapping[str, tuple[Tick, ...]]
    rejected_by_reason: Mapping[str, int]
    late_by_symbol: Mapping[str, int]
    rejected_by_symbol: Mapping[str, int]
    candles: Mapping[tuple[str, int], tuple[Candle, ...]]
    deletes: int
    version: int
    updated_at: float | None
    last_batch: BatchReport | None
    query_error: str | None = None
    dropped_as_old: int = 0  # change events dropped as older than the replay horizon
    live_ticks: int = 0  # trades on screen through the live-ticks query that the record has not applied yet
    trading_day: date | None = None  # the newest NSE session (IST date) seen; see ``pipeline.domain.days``
    day_figures: Mapping[str, DayFigures] = field(default_factory=dict)  # per symbol, on the trading day

    @property
    def total_trades(self) -> int:
        return sum(stock.trades for stock in self.stocks.values())


@dataclass(frozen=True)
class BatchResult:
    """What one micro-batch changes, built by the batch handler and installed by ``MarketState.apply_batch``."""

    batch_id: int
    aggregates: tuple[StockAggregate, ...] = ()  # merged with what was known before (``MarketState.merged_with``)
    candles: tuple[Candle, ...] = ()
    ticks: tuple[Tick, ...] = ()
    deletes: int = 0
    set_aside: SetAside | None = None
    report: BatchReport | None = None
    offsets: Mapping[int, int] = field(default_factory=dict)  # per trades-topic partition, the greatest offset applied

    @property
    def changes_market(self) -> bool:
        return bool(self.aggregates or self.ticks or self.deletes or self.candles or self.set_aside)


@dataclass(frozen=True)
class Activity:
    """Latest trades and batch reports (each with its freshness samples), as persisted."""

    ticks: tuple[Tick, ...] = ()
    reports: tuple[tuple[BatchReport, tuple[float, ...]], ...] = ()
    newest: datetime | None = None  # when the newest of them was written


@dataclass(frozen=True)
class Persisted:
    """What was persisted, to start from (or, in reading mode, catch up with). Counts left None stay as they are."""

    aggregates: Mapping[str, tuple[StockAggregate, int]] = field(default_factory=dict)  # symbol -> (it, last batch)
    candles: tuple[tuple[Candle, int], ...] = ()  # with the last batch merged into each
    rejected_by_reason: Mapping[str, int] | None = None
    rejected_by_symbol: Mapping[str, int] | None = None
    late_by_symbol: Mapping[str, int] | None = None
    offsets: Mapping[str, Mapping[int, int]] = field(default_factory=dict)  # per symbol, what its aggregate holds
    activity: Activity | None = None  # latest trades and batch reports (``pipeline.sinks.activity``)
    closes: tuple[Candle, ...] = ()  # per symbol, its last 1-minute candle before the trading day (previous close)
