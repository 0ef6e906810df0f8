"""Per-symbol analytics of one micro-batch, as pure DataFrame transformations, and their merge rule.

Every metric is *mergeable*: the aggregate of a batch combined with the aggregate of everything
before gives the aggregate of the union, whatever the order of ticks or the batch boundaries:
count and volume add up, low/high are min/max, NAV is the price of the tick with the greatest
(trade time, event id) and open the one with the least, turnover (price x quantity, exact decimals)
adds up so VWAP = turnover / volume is exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from pyspark.sql import DataFrame

RECENT_TICKS_PER_BATCH = 50
TURNOVER_TYPE = "DECIMAL(38,4)"


def metrics_sql(is_tick: str) -> str:
    """SQL of the mergeable metrics over the rows where ``is_tick`` holds (others are left out)."""
    def tick(expression: str) -> str:
        return f"CASE WHEN {is_tick} THEN {expression} END"

    by_time = "struct(trade_time, event_id, price)"
    return f"""
    count({tick("1")}) AS trades,
    min({tick("price")}) AS low,
    max({tick("price")}) AS high,
    max({tick(by_time)}) AS last,
    min({tick(by_time)}) AS first,
    sum({tick("quantity")}) AS volume,
    sum({tick(f"CAST(price * quantity AS {TURNOVER_TYPE})")}) AS turnover"""


def flat_sql(time: str = "{}") -> str:
    """The metrics' columns, NAV and open taken out of their (time, id, price) structs."""
    return f"""trades, low, high,
    last.price AS nav, {time.format("last.trade_time")} AS nav_time, last.event_id AS nav_event_id,
    first.price AS open, {time.format("first.trade_time")} AS open_time, first.event_id AS open_event_id,
    volume, turnover"""


AGGREGATE_SQL = f"""
SELECT symbol, {flat_sql()}
FROM (SELECT symbol, {metrics_sql("true")} FROM {{ticks}} GROUP BY symbol)
"""

CANDLE_INTERVALS_S = (60, 300)  # 1-minute and 5-minute candles; the second is a multiple of the first

SUMMARY_SQL = f"""
WITH classified AS (
  SELECT *,
    CASE WHEN reject_reason IS NOT NULL THEN concat('rejected:', reject_reason)
         WHEN op = 'delete' THEN 'delete'
         WHEN unix_micros(trade_time) < CAST(try_element_at(str_to_map(:watermarks, ',', '='), symbol) AS BIGINT)
           THEN 'late'
         ELSE 'tick' END AS outcome
  FROM {{parsed}}
), grouped AS (
SELECT outcome,
  CASE WHEN outcome IN ('tick', 'late') THEN symbol END AS symbol,
  CAST(CASE WHEN outcome = 'tick' THEN floor(unix_seconds(trade_time) / 60) * 60 END AS BIGINT) AS window_start_s,
  count(1) AS messages,
  {metrics_sql("outcome IN ('tick', 'late')")},
  slice(sort_array(collect_list(CASE WHEN outcome IN ('tick', 'late') THEN struct(
    unix_micros(trade_time) AS trade_time_us, event_id, trade_id, price, quantity, side,
    unix_micros(ingest_time) AS ingest_time_us) END), false), 1, :recent) AS recent,
  collect_list(CASE WHEN outcome LIKE 'rejected:%' OR outcome = 'late' THEN struct(
    event_id, symbol, reject_reason, raw, topic, partition, offset, unix_micros(trade_time) AS trade_time_us,
    unix_micros(ingest_time) AS ingest_time_us) END) AS set_aside
FROM classified
GROUP BY 1, 2, 3
)
SELECT outcome, symbol, window_start_s, messages, {flat_sql("unix_micros({})")}, recent, set_aside FROM grouped
"""

def aggregate_ticks(ticks: DataFrame) -> DataFrame:
    """One row per symbol: the mergeable summary of the given (valid) ticks."""
    return ticks.sparkSession.sql(AGGREGATE_SQL, ticks=ticks)


def summarize_batch(
    parsed: DataFrame, watermarks_us: Mapping[str, int] | None = None, recent_per_symbol: int = RECENT_TICKS_PER_BATCH
) -> DataFrame:
    """Everything a micro-batch yields, in one Spark job (each job costs tens of ms of scheduling).

    One row per (outcome, symbol, minute). Outcomes: ``tick`` (one row per symbol and 1-minute window
    ``window_start_s``: a 1-minute candle), ``late`` (a valid tick older than its symbol's watermark,
    epoch microseconds in ``watermarks_us``; each symbol's candles close on its own clock; no window),
    ``delete`` and ``rejected:<reason>`` (no symbol). Each row has the metrics of ``aggregate_ticks``
    over its ticks, its latest ticks for charts, and late or rejected messages (``set_aside``).
    Per-symbol figures and 5-minute candles are merges of these rows (see :func:`merge`): one
    grouping instead of three keeps the batch cheap. Times leave as epoch microseconds (UTC):
    pyspark would turn timestamps into naive local times.
    """
    return parsed.sparkSession.sql(
        SUMMARY_SQL,
        args={"recent": recent_per_symbol,
              "watermarks": ",".join(f"{symbol}={value}" for symbol, value in (watermarks_us or {}).items())},
        parsed=parsed,
    )


@dataclass(frozen=True)
class StockAggregate:
    """Everything known about one symbol since the start; immutable, so snapshots can share it."""

    symbol: str
    trades: int
    low: Decimal
    high: Decimal
    nav: Decimal
    nav_time: datetime
    nav_event_id: str
    open: Decimal
    open_time: datetime
    open_event_id: str
    volume: int
    turnover: Decimal

    @property
    def vwap(self) -> Decimal | None:
        return (
            (self.turnover / self.volume).quantize(Decimal("0.0001"))
            if self.volume
            else None
        )

    @property
    def change_pct(self) -> float | None:
        return float((self.nav - self.open) / self.open * 100) if self.open else None

    @property
    def last_trade_time(self) -> datetime:
        return self.nav_time

    @classmethod
    def from_row(cls, row: dict) -> StockAggregate:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


def merge(old: StockAggregate | None, new: StockAggregate) -> StockAggregate:
    """The aggregate of both sets of ticks. Associative and commutative."""
    if old is None:
        return new
    latest = max(
        (old.nav_time, old.nav_event_id, old.nav),
        (new.nav_time, new.nav_event_id, new.nav),
    )
    earliest = min(
        (old.open_time, old.open_event_id, old.open),
        (new.open_time, new.open_event_id, new.open),
    )
    return replace(
        old,
        trades=old.trades + new.trades,
        low=min(old.low, new.low),
        high=max(old.high, new.high),
        nav_time=latest[0],
        nav_event_id=latest[1],
        nav=latest[2],
        open_time=earliest[0],
        open_event_id=earliest[1],
        open=earliest[2],
        volume=old.volume + new.volume,
        turnover=old.turnover + new.turnover,
    )


@dataclass(frozen=True)
class Candle:
    """One OHLC candle of one symbol: the mergeable metrics of its window's on-time ticks.

    ``revised`` is set when a tick changes the candle after its window had ended in event time
    (a late but accepted tick): whoever read it before saw other numbers.
    """

    symbol: str
    interval_s: int
    start_s: int
    metrics: StockAggregate
    revised: bool = False

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.symbol, self.interval_s, self.start_s)

    @property
    def end_s(self) -> int:
        return self.start_s + self.interval_s


def merge_candle(old: Candle | None, new: Candle, latest_before_us: int | None) -> Candle:
    if old is None:
        return new
    window_had_ended = latest_before_us is not None and new.end_s * 1_000_000 <= latest_before_us
    return replace(old, metrics=merge(old.metrics, new.metrics), revised=old.revised or window_had_ended)
