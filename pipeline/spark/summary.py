"""Per-symbol analytics as Spark SQL generated from the metric registry (``pipeline.domain.metrics``).

Each metric becomes one aggregate expression over the ticks of a group; by-time metrics (NAV, open)
aggregate a ``(trade_time, event_id, value)`` struct and are flattened into three columns. Times leave
as epoch microseconds: pyspark would turn timestamps into naive local times.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pyspark.sql import DataFrame

from pipeline.domain.metrics import METRICS, Kind, Metric

RECENT_TICKS_PER_BATCH = 50
# What a set-aside record keeps of its message: its start, enough to see what it was (the whole message
# stays on the trades topic and in the archive, at the record's topic/partition/offset). Bounded, so that
# a flood of huge junk cannot exhaust the driver, and a dead letter always fits a Kafka message.
SET_ASIDE_RAW_CHARS = 16_384
SET_ASIDE_SYMBOL_CHARS = 64
_SQL_FUNCTION = {Kind.SUM: "sum", Kind.MIN: "min", Kind.MAX: "max", Kind.LATEST: "max", Kind.EARLIEST: "min"}


def _by_time(metric: Metric) -> str:
    return f"{metric.name}__by_time"


def _aggregate(metric: Metric, is_tick: str) -> str:
    value = f"named_struct('trade_time', trade_time, 'event_id', event_id, 'value', {metric.sql})" \
        if metric.kind.by_time else metric.sql
    alias = _by_time(metric) if metric.kind.by_time else metric.name
    return f"{_SQL_FUNCTION[metric.kind]}(CASE WHEN {is_tick} THEN {value} END) AS {alias}"


def metrics_sql(is_tick: str) -> str:
    """Every metric's aggregate over the rows of a group where ``is_tick`` holds (others are left out)."""
    return ",\n  ".join(_aggregate(metric, is_tick) for metric in METRICS)


def flat_sql(time: Callable[[str], str] = lambda column: column) -> str:
    """The stored fields out of :func:`metrics_sql`'s columns; ``time`` wraps each time column."""
    columns = []
    for metric in METRICS:
        if metric.kind.by_time:
            struct = _by_time(metric)
            columns += [f"{struct}.value AS {metric.name}", f"{time(f'{struct}.trade_time')} AS {metric.name}_time",
                        f"{struct}.event_id AS {metric.name}_event_id"]
        else:
            columns.append(metric.name)
    return ", ".join(columns)


def _micros(column: str) -> str:
    return f"unix_micros({column})"


AGGREGATE_SQL = f"""
SELECT symbol, {flat_sql()}
FROM (SELECT symbol, {metrics_sql("true")} FROM {{ticks}} GROUP BY symbol)
"""

SUMMARY_SQL = f"""
WITH horizon AS (
  SELECT * EXCEPT (reject_reason),
    CASE WHEN reject_reason IS NULL AND op <> 'delete' AND unix_micros(db_time)
        < CAST(try_element_at(str_to_map(:replay_floors, ',', '='), CAST(partition AS STRING)) AS BIGINT)
      THEN 'behind_replay_horizon' ELSE reject_reason END AS reject_reason
  FROM {{parsed}}
), classified AS (
  SELECT *,
    CASE WHEN reject_reason IS NOT NULL THEN concat('rejected:', reject_reason)
         WHEN op = 'delete' THEN 'delete'
         WHEN unix_micros(trade_time) < CAST(try_element_at(str_to_map(:watermarks, ',', '='), symbol) AS BIGINT)
           OR unix_micros(trade_time) < :session_start_us THEN 'late'
         ELSE 'tick' END AS outcome
  FROM horizon
), grouped AS (
SELECT outcome,
  CASE WHEN outcome IN ('tick', 'late') THEN symbol END AS symbol,
  CAST(CASE WHEN outcome = 'tick' THEN floor(unix_seconds(trade_time) / 60) * 60 END AS BIGINT) AS window_start_s,
  partition,
  count(1) AS messages,
  max(offset) AS max_offset,
  max(unix_micros(db_time)) AS max_db_time_us,
  {metrics_sql("outcome IN ('tick', 'late')")},
  slice(sort_array(collect_list(CASE WHEN outcome IN ('tick', 'late') THEN struct(
    unix_micros(trade_time) AS trade_time_us, event_id, trade_id, price, quantity, side,
    unix_micros(ingest_time) AS ingest_time_us) END), false), 1, :recent) AS recent,
  collect_list(CASE WHEN outcome LIKE 'rejected:%' OR outcome = 'late' THEN struct(
    event_id, left(symbol, {SET_ASIDE_SYMBOL_CHARS}) AS symbol, reject_reason, left(raw, {SET_ASIDE_RAW_CHARS}) AS raw,
    octet_length(raw) AS raw_bytes, topic, partition, offset, unix_micros(trade_time) AS trade_time_us,
    unix_micros(ingest_time) AS ingest_time_us) END) AS set_aside
FROM classified
GROUP BY 1, 2, 3, 4
)
SELECT outcome, symbol, window_start_s, partition, messages, max_offset, max_db_time_us, {flat_sql(_micros)}, recent,
  set_aside
FROM grouped
"""

def aggregate_ticks(ticks: DataFrame) -> DataFrame:
    """One row per symbol: the mergeable summary of the given (valid) ticks."""
    return ticks.sparkSession.sql(AGGREGATE_SQL, ticks=ticks)


def summarize_batch(
    parsed: DataFrame, watermarks_us: Mapping[str, int] | None = None, recent_per_symbol: int = RECENT_TICKS_PER_BATCH,
    session_start_us: int | None = None, replay_floors_us: Mapping[int, int] | None = None,
) -> DataFrame:
    """Everything a micro-batch yields, in one Spark job (each job costs tens of ms of scheduling).

    One row per (outcome, symbol, minute, trades-topic partition), with the partition's greatest offset
    among the row's messages (what a live tick is checked against, ``pipeline.domain.live``).
    Outcomes: ``tick`` (one row per symbol and 1-minute window ``window_start_s``: a 1-minute candle),
    ``late`` (a valid tick older than its symbol's watermark, epoch microseconds in ``watermarks_us``, or
    than the trading day's start ``session_start_us``;
    each symbol's candles close on its own clock; no window), ``delete`` and ``rejected:<reason>`` (no
    symbol). A change event whose database time is behind its partition's floor in ``replay_floors_us`` is
    rejected as ``behind_replay_horizon`` (``pipeline.domain.replay``). Each row has the registry's metrics over its
    ticks, its latest ticks for charts, late or rejected messages (``set_aside``) and its greatest database
    time (``max_db_time_us``). Per-symbol figures and 5-minute candles are merges of these rows:
    one grouping instead of three keeps the batch cheap.
    """
    return parsed.sparkSession.sql(
        SUMMARY_SQL,
        args={"recent": recent_per_symbol, "session_start_us": session_start_us or 0,
              "replay_floors": ",".join(f"{partition}={value}" for partition, value in (replay_floors_us or {}).items()),
              "watermarks": ",".join(f"{symbol}={value}" for symbol, value in (watermarks_us or {}).items())},
        parsed=parsed,
    )
