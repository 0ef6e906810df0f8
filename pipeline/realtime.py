"""Real-time mode (``STREAM_MODE=realtime``): the per-symbol figures with Spark's real-time trigger.

A micro-batch costs 0.5-1 s here whatever its size (offsets, planning, logs, one Spark job). Spark 4.3's
real-time mode runs one long batch per checkpoint interval whose tasks stream each record through, so a
trade reaches its symbol's aggregate in tens of milliseconds. It has no ``foreachBatch``: the query
writes every changed aggregate to a compacted Kafka topic (key: the symbol) and :class:`RealtimeFeed`
reads that topic into MarketState.

    Kafka (trades) -> parse -> valid ticks -> replays dropped by event id -> per-symbol metrics
    -> Kafka (<trades topic>.realtime-aggregates) -> RealtimeFeed -> MarketState

The parse, the metrics and the NAV rule are micro-batch mode's, so the numbers are the same. Left to
micro-batch mode: candles, the rejected and late ledgers, recent ticks. Replays are dropped by id with
no horizon (real-time mode has no ``dropDuplicatesWithinWatermark`` before Spark 5), so that state grows
with the number of trades.

Exactly once: after a crash Spark restores its state from the last checkpoint and replays what came
after, so the topic may carry an aggregate twice, or an older one after a newer one. A symbol's
aggregate only grows in trades, so the feed keeps the one with the most.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer
from kafka.errors import KafkaError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from pipeline import kafka_topics
from pipeline.aggregate import StockAggregate, flat_sql, metrics_sql
from pipeline.job import spark_session, trades_source
from pipeline.settings import Settings
from pipeline.state import MarketState
from pipeline.trades import parse_change_events, valid_ticks

log = logging.getLogger("stockdash.realtime")

QUERY_NAME = "stockdash_realtime"
PLAN_VERSION = 1
RESTART_BACKOFF_S = (2.0, 5.0, 10.0, 30.0)
_TIMES = ("nav_time", "open_time")

AGGREGATES_SQL = f"""
SELECT symbol AS key, to_json(named_struct('symbol', symbol, 'trades', trades, 'low', low, 'high', high, 'nav', nav,
  'nav_time', nav_time, 'nav_event_id', nav_event_id, 'open', open, 'open_time', open_time,
  'open_event_id', open_event_id, 'volume', volume, 'turnover', turnover, 'last_ingest_us', last_ingest_us)) AS value
FROM (SELECT symbol, {flat_sql("unix_micros({})")}, last_ingest_us
      FROM (SELECT symbol, {metrics_sql("true")}, max(unix_micros(ingest_time)) AS last_ingest_us
            FROM {{ticks}} GROUP BY symbol))
"""


def realtime_aggregates(messages: DataFrame) -> DataFrame:
    """Kafka messages -> (key, value) rows of per-symbol aggregates as JSON (times in epoch microseconds)."""
    ticks = valid_ticks(parse_change_events(messages)).dropDuplicates(["event_id"])
    return messages.sparkSession.sql(AGGREGATES_SQL, ticks=ticks)


def aggregate_from_json(value: bytes) -> tuple[StockAggregate, datetime]:
    """One message of the real-time topic: the aggregate, and when its latest tick entered Kafka."""
    fields = json.loads(value, parse_float=Decimal)  # exact decimals, as Spark wrote them
    for name in ("low", "high", "nav", "open", "turnover"):
        fields[name] = Decimal(fields[name])
    for name in _TIMES:
        fields[name] = datetime.fromtimestamp(fields[name] / 1_000_000, tz=timezone.utc)
    ingested = datetime.fromtimestamp(fields.pop("last_ingest_us") / 1_000_000, tz=timezone.utc)
    return StockAggregate.from_row(fields), ingested


def checkpoint_dir(settings: Settings) -> Path:
    return settings.effective_checkpoint_dir / f"{QUERY_NAME}-v{PLAN_VERSION}"


def realtime_master(settings: Settings) -> str:
    """Real-time mode runs every stage at once: each source partition, the dedupe and the aggregate hold
    a task slot for the whole batch. A local master gets that many; a cluster must offer them."""
    needed = settings.topic_partitions + 2
    local = re.fullmatch(r"local\[(\d+)\]", settings.spark_master)
    return f"local[{needed}]" if local and int(local.group(1)) < needed else settings.spark_master


class RealtimeFeed:
    """Reads the real-time aggregates topic, from its start (compacted: the latest per symbol), into MarketState."""

    def __init__(self, settings: Settings, state: MarketState) -> None:
        self.settings = settings
        self.state = state
        self.error: str | None = None
        self._since_ms = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="realtime-feed", daemon=True)

    def start(self) -> RealtimeFeed:
        self._since_ms = int(time.time() * 1000)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except KafkaError as exc:
                self.error = f"Kafka is unavailable ({type(exc).__name__}); reading again in 2 s"
                self.state.record_error(self.error)
                self._stop.wait(2.0)

    def _follow(self) -> None:
        consumer = KafkaConsumer(self.settings.realtime_topic, bootstrap_servers=self.settings.effective_kafka_bootstrap,
                                 client_id="stockdash-realtime-feed", group_id=None, auto_offset_reset="earliest",
                                 enable_auto_commit=False, fetch_max_wait_ms=10)
        try:
            while not self._stop.is_set():
                # Each message is a symbol's whole aggregate: of a poll's messages only the last per symbol
                # matters (at thousands of trades/s, decoding them all would make this thread the bottleneck).
                latest = {m.key: m for batch in consumer.poll(timeout_ms=200).values() for m in batch}
                if latest:
                    received = [(aggregate_from_json(m.value), m.timestamp) for m in latest.values()]
                    # Freshness samples only from what the query wrote since this feed started: the topic's
                    # older messages (read again at every start) would count downtime as latency.
                    self.state.install_aggregates([a for (a, _), _ in received],
                                                  [t for (_, t), written_ms in received if written_ms >= self._since_ms])
                    self.error = None
        finally:
            consumer.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


class RealtimeJob:
    """The real-time query and/or the feed of its results into MarketState; ``status()``/``stop()`` as MarketJob.

    ``query=False``: the query runs elsewhere (``STREAM_MODE=realtime python -m pipeline job``);
    ``state=None``: no feed (that job process).
    """

    def __init__(self, settings: Settings, state: MarketState | None = None, *, query: bool = True) -> None:
        self.settings = settings
        self.state = state
        self.feed = RealtimeFeed(settings, state) if state is not None else None
        self.run_query = query
        self.spark: SparkSession | None = None
        self.query: StreamingQuery | None = None
        self.error: str | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start_in_background(self) -> RealtimeJob:
        self._thread = threading.Thread(target=self._run_supervised, name="realtime-job", daemon=True)
        self._thread.start()
        return self

    def _start_query(self) -> None:
        kafka_topics.ensure_topics(self.settings)
        if self.spark is None:
            self.spark = spark_session(self.settings.with_changes(spark_master=realtime_master(self.settings)))
        self.query = (
            realtime_aggregates(trades_source(self.spark, self.settings)).writeStream.queryName(QUERY_NAME)
            .format("kafka")
            .option("kafka.bootstrap.servers", self.settings.effective_kafka_bootstrap)
            .option("topic", self.settings.realtime_topic)
            .option("checkpointLocation", str(checkpoint_dir(self.settings)))
            .outputMode("update")
            .trigger(realTime=f"{self.settings.realtime_checkpoint_s} seconds")
            .start()
        )
        log.info("real-time query started: %s -> %s", self.settings.trades_topic, self.settings.realtime_topic)

    def _run_supervised(self) -> None:
        if self.feed is not None:
            kafka_topics.ensure_topics(self.settings)
            self.feed.start()
        attempt = 0
        while self.run_query and not self._stopping.is_set():
            problem = self._problem()
            if problem is None:
                attempt = 0
                self._stopping.wait(1.0)
                continue
            if self.query is not None or self.error is not None:
                delay = RESTART_BACKOFF_S[min(attempt, len(RESTART_BACKOFF_S) - 1)]
                self.error = problem
                log.error("real-time query is down: %s; restarting in %.0f s", problem, delay)
                if self.state is not None:
                    self.state.record_error(f"{problem} (restarting in {delay:.0f} s)")
                if self._stopping.wait(delay):
                    break
                attempt += 1
                self.restarts += 1
            try:
                if self.query is not None:
                    self.query.stop()
                self._start_query()
                self.error = None
            except Exception as exc:  # noqa: BLE001 - logged, shown on the page and retried, never a trace
                self.query = None
                self.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"

    def _problem(self) -> str | None:
        if self.query is None:
            return self.error or "not started yet"
        exception = self.query.exception()
        if exception is not None:
            return str(exception).splitlines()[0][:300]
        return None if self.query.isActive else "the query stopped"

    def status(self) -> dict[str, Any]:
        if self._stopping.is_set():
            return {"state": "stopped"}
        if not self.run_query:
            feed_error = self.feed.error if self.feed is not None else None
            return {"state": "restarting", "error": feed_error} if feed_error else {"state": "external"}
        if self.error is not None:
            return {"state": "restarting", "error": self.error, "restarts": self.restarts}
        if self.query is None:
            return {"state": "starting"}
        return {"state": "running", "progress": self.query.lastProgress, "restarts": self.restarts, "mode": "realtime"}

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=60)
        if self.query is not None:
            # Stopping aborts the long-running batch on purpose (what it did is replayed from the last
            # checkpoint); Spark logs that abort as errors with traces, which would read as a failure.
            self.spark.sparkContext.setLogLevel("OFF")
            try:
                self.query.stop()
            except Exception:  # noqa: BLE001 - stopping a dead query must not hide the real problem
                log.warning("stopping the real-time query failed", exc_info=True)
            self.query = None
        if self.spark is not None:
            self.spark.stop()
            self.spark = None
        if self.feed is not None:
            self.feed.stop()
