"""The streaming job: Spark's Kafka source -> parse -> per-batch aggregates -> MarketState (+ MongoDB).

``MarketJob`` owns the SparkSession and the query. It starts in a background thread (a SparkSession
takes ~10 s to start; the app must not freeze meanwhile), and ``stop()`` is idempotent.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from pipeline import kafka_topics, mongo
from pipeline.aggregate import CANDLE_INTERVALS_S, Candle, StockAggregate, merge, merge_candle, summarize_batch
from pipeline.publish import AggregatePublisher
from pipeline.set_aside import Ledger, dead_letters, late_ledger, late_record, rejected_record, utc_from_micros
from pipeline.settings import Settings
from pipeline.state import BatchReport, MarketState, SetAside, Tick
from pipeline.store import AggregateStore, CandleStore, checkpoint_lineage
from pipeline.trades import check_symbols, deduplicate, parse_change_events

log = logging.getLogger("stockdash.job")

QUERY_NAME = "stockdash_market"
# Bumped whenever the query's stateful plan changes: Spark cannot resume a changed plan from an old
# checkpoint, so a new version starts a new checkpoint (and lineage) and rebuilds from the topic.
PLAN_VERSION = 2
SYMBOL_REFRESH_S = 10.0
# After the query fails (Kafka or MongoDB gone, say), it is restarted from its checkpoint after these
# pauses, the last one repeating: exactly once still holds (checkpoint + idempotent batch writes).
RESTART_BACKOFF_S = (2.0, 5.0, 10.0, 30.0)
CANDLE_HISTORY_S = 12 * 3600  # candles loaded at start


def spark_session(settings: Settings) -> SparkSession:
    """A SparkSession tuned for small, frequent micro-batches (see shared notes on 2 cores)."""
    from stack.jvm import spark_jars

    # Workers must run this interpreter (the venv's), and everything stays on loopback.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = (
        SparkSession.builder.master(settings.spark_master)
        .appName("stockdash")
        .config("spark.jars", spark_jars(settings.data_dir / "classpath"))
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "1g")
        .config("spark.driver.extraJavaOptions", "-XX:+UseG1GC -Duser.timezone=UTC")
        .config("spark.sql.streaming.minBatchesToRetain", "20")
        # No empty batches just because the dedupe watermark moved: they delay the next real one.
        .config("spark.sql.streaming.noDataMicroBatches.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    return spark


def trades_source(spark: SparkSession, settings: Settings, **options: object) -> DataFrame:
    """Spark's Kafka source on the trades topic from its start, plus ``options``."""
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.effective_kafka_bootstrap)
        .option("subscribe", settings.trades_topic)
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "false")
        # Spark's consumer reads past the end of a batch's range; with the default 500 ms the broker
        # holds that read open and every micro-batch pays it (measured: 0.67 s -> 0.16 s per batch).
        .option("kafka.fetch.max.wait.ms", "10")
    )
    for name, value in options.items():
        reader = reader.option(name, value)
    return reader.load()


def _to_aggregate(row: Any) -> StockAggregate:
    values = row.asDict()
    values["nav_time"] = utc_from_micros(values["nav_time"])
    values["open_time"] = utc_from_micros(values["open_time"])
    return StockAggregate.from_row(values)


def _to_tick(symbol: str, row: Any) -> Tick:
    return Tick(
        symbol=symbol,
        trade_time=utc_from_micros(row.trade_time_us),
        event_id=row.event_id,
        trade_id=row.trade_id,
        price=row.price,
        quantity=row.quantity,
        side=row.side,
        ingest_time=utc_from_micros(row.ingest_time_us),
    )


def _summary(error_text: str) -> str:
    """One line of a Spark/py4j error: the innermost exception message, not a trace."""
    lines = [line.strip() for line in error_text.splitlines() if line.strip() and not line.strip().startswith("at ")]
    for line in reversed(lines):
        if "Error" in line.split(":")[0] or "Exception" in line.split(":")[0]:
            return line[:500]
    return (lines[0] if lines else "unknown error")[:500]


def market_stream(messages: DataFrame, dedupe_horizon_s: int) -> DataFrame:
    """The stream the batch handler consumes: parsed change events, replays dropped."""
    return deduplicate(parse_change_events(messages), dedupe_horizon_s)


class ListedSymbols:
    """The symbols of ``stockmarket.stock``, re-read every few seconds (stocks can be listed while running)."""

    def __init__(self, settings: Settings, refresh_s: float = SYMBOL_REFRESH_S) -> None:
        self.settings = settings
        self.refresh_s = refresh_s
        self._symbols: frozenset[str] = frozenset()
        self._read_at = 0.0

    def __call__(self) -> frozenset[str]:
        if not self._symbols or time.monotonic() - self._read_at > self.refresh_s:
            client = mongo.client(self.settings)
            try:
                self._symbols = frozenset(doc["_id"] for doc in client[self.settings.database]["stock"].find({}, {"_id": 1}))
            finally:
                client.close()
            self._read_at = time.monotonic()
        return self._symbols


@dataclass
class Durable:
    """Where a batch's results are written before the in-memory state changes (all optional)."""

    aggregates: AggregateStore | None = None
    candles: CandleStore | None = None
    rejected: Ledger | None = None
    late: Ledger | None = None
    published: AggregatePublisher | None = None

    def close(self) -> None:
        for sink in (self.rejected, self.late, self.published):
            if sink is not None:
                sink.close()


class BatchHandler:
    """The ``foreachBatch`` function: collects one small result and hands it to state and sinks.

    Event-time watermark for candles, per symbol: the symbol's latest trade time seen before the batch
    minus the allowed lateness. Ticks older than that are *late*: counted in the since-start figures, left out of
    candles, written to the late ledger.
    """

    def __init__(
        self,
        state: MarketState,
        known_symbols: Callable[[], Iterable[str]],
        durable: Durable | None = None,
        lateness_s: int = 120,
    ) -> None:
        self.state = state
        self.known_symbols = known_symbols
        self.durable = durable or Durable()
        self.lateness_us = lateness_s * 1_000_000

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        latest_before = self.state.latest_trade_us()
        watermarks = {symbol: latest - self.lateness_us for symbol, latest in latest_before.items()}
        # One partition: a micro-batch is small, and one task without a shuffle beats two stages.
        rows = summarize_batch(check_symbols(batch.coalesce(1), self.known_symbols()), watermarks).collect()
        collected = time.monotonic()
        if not rows:
            return
        per_symbol: dict[str, StockAggregate] = {}
        candles: dict[tuple[str, int, int], Candle] = {}
        recent, rejected_rows, late_rows, deletes = [], [], [], 0
        for row in rows:
            if row.outcome in ("tick", "late"):
                aggregate = _to_aggregate(row)
                per_symbol[row.symbol] = merge(per_symbol.get(row.symbol), aggregate)
                recent.extend(_to_tick(row.symbol, tick) for tick in row.recent)
                late_rows.extend(row.set_aside)
                if row.outcome == "tick":
                    for interval in CANDLE_INTERVALS_S:
                        candle = Candle(row.symbol, interval, row.window_start_s // interval * interval, aggregate)
                        candles[candle.key] = merge_candle(candles.get(candle.key), candle, None)
            elif row.outcome == "delete":
                deletes += row.messages
            else:
                rejected_rows.extend(row.set_aside)
        merged = self.state.merged_with(batch_id, per_symbol.values())
        merged_candles = self.state.merged_candles(batch_id, candles.values(), latest_before)
        # Durable writes come before the state: a crash in between re-runs the batch, and every
        # write is idempotent per batch (per-key batch ids, or upserts by event id).
        d = self.durable
        writing = time.monotonic()
        # What to count: without a ledger, every set-aside row; with one, the records it had not stored
        # before (the counts loaded at start come from the ledger, so they stay exact after re-runs).
        rejected_new = [rejected_record(r, batch_id) for r in rejected_rows]
        late_new = [late_record(r, batch_id, watermarks[r.symbol], latest_before[r.symbol]) for r in late_rows]
        if d.rejected is not None:
            rejected_new = d.rejected.write(rejected_new)
        if d.late is not None:
            late_new = d.late.write(late_new)
        if d.candles is not None:
            d.candles.save(batch_id, merged_candles)
        if d.aggregates is not None:
            d.aggregates.save(batch_id, merged)
        if d.published is not None:
            d.published.publish(merged, merged_candles)
        now = time.monotonic()
        report = BatchReport(batch_id, time.time(), now - started, sum(row.messages for row in rows),
                             sum(a.trades for a in per_symbol.values()), collected - started, now - writing)
        self.state.apply_batch(batch_id, merged, recent, deletes=deletes, report=report, candles=merged_candles,
                               set_aside=SetAside.of(rejected_new, late_new),
                               ingest_times=[tick.ingest_time for tick in recent if tick.ingest_time is not None])


class MarketJob:
    """The Spark query feeding a MarketState; one per process."""

    def __init__(
        self,
        settings: Settings,
        state: MarketState | None = None,
        *,
        persist: bool = True,
        spark: SparkSession | None = None,
        name: str = QUERY_NAME,
    ) -> None:
        self.settings = settings
        self.name = name  # unique per SparkSession: a second query (a replay, say) needs its own
        self.state = state or MarketState()
        self.persist = persist
        self.spark: SparkSession | None = spark
        self._owns_spark = spark is None  # a session handed in (tests, a host app) is left running
        self.query: StreamingQuery | None = None
        self.error: str | None = None
        self._started = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._mongo = None
        self.durable = Durable()
        self.restarts = 0
        self._restart_error: str | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> MarketJob:
        """Start synchronously; raises on failure."""
        checkpoint = self.settings.effective_checkpoint_dir / f"{self.name}-v{PLAN_VERSION}"
        kafka_topics.ensure_topics(self.settings)
        if self.persist:
            self._mongo = mongo.client(self.settings)
            mongo.check_reachable(self.settings, self._mongo)
            db = self._mongo[self.settings.database]
            lineage = checkpoint_lineage(checkpoint)
            self.durable = Durable(AggregateStore(db, lineage), CandleStore(db, lineage), dead_letters(self.settings, db),
                                   late_ledger(self.settings, db), AggregatePublisher(self.settings))
            self.state.load(self.durable.aggregates.load(), self.durable.rejected.counts(), self.durable.late.counts(),
                            self.durable.candles.load(since_s=int(time.time()) - CANDLE_HISTORY_S),
                            self.durable.rejected.counts(by="symbol"))
        if self.spark is None:
            self.spark = spark_session(self.settings)
        writer = (
            market_stream(trades_source(self.spark, self.settings, maxOffsetsPerTrigger=500_000),
                          self.settings.dedupe_horizon_s)
            .writeStream.queryName(self.name)
            .foreachBatch(BatchHandler(self.state, ListedSymbols(self.settings), self.durable,
                                       self.settings.candle_lateness_s))
            .option("checkpointLocation", str(checkpoint))
        )
        if self.settings.trigger_interval_ms:
            writer = writer.trigger(processingTime=f"{self.settings.trigger_interval_ms} milliseconds")
        self.query = writer.start()
        self._started.set()
        log.info("streaming query started: %s -> MarketState (checkpoint %s)", self.settings.trades_topic, checkpoint)
        return self

    def start_in_background(self) -> MarketJob:
        """Start in a thread that then keeps the query running: a failed start or a failed query is
        retried with backoff until :meth:`stop`, each failure logged and shown in the state."""
        self._thread = threading.Thread(target=self._run_supervised, name="market-job", daemon=True)
        self._thread.start()
        return self

    def _run_supervised(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            problem = self._problem()
            if problem is None:
                attempt = 0
                self._stopping.wait(1.0)
                continue
            if self.query is not None or self.error is not None:  # a failure, not the first start
                delay = RESTART_BACKOFF_S[min(attempt, len(RESTART_BACKOFF_S) - 1)]
                self._restart_error = problem
                self.state.record_error(f"{problem} (restarting in {delay:.0f} s)")
                log.error("streaming query is down: %s; restarting in %.0f s (attempt %d)", problem, delay, attempt + 1)
                if self._stopping.wait(delay):
                    break
                attempt += 1
            try:
                self._replace_query()
            except Exception as exc:  # noqa: BLE001 - logged and retried, shown on the page, never a trace
                self.error = _summary(f"{type(exc).__name__}: {exc}")
                continue
            if self._restart_error is not None:
                self.restarts += 1
                log.info("streaming query restarted (attempt %d)", attempt)
            self.error = self._restart_error = None

    def _problem(self) -> str | None:
        """Why the query is not running, or None when it is."""
        if self.query is None:
            return self.error or "not started yet"
        exception = self.query.exception()
        if exception is not None:
            return _summary(str(exception))
        return None if self.query.isActive else "the query stopped"

    def _replace_query(self) -> None:
        if self.query is not None:
            try:
                self.query.stop()
            except Exception:  # noqa: BLE001 - it already failed; the restart is what matters
                log.debug("stopping the failed query", exc_info=True)
            self.query = None
        self.durable.close()
        if self._mongo is not None:
            self._mongo.close()
            self._mongo = None
        self.start()

    def status(self) -> dict[str, Any]:
        """Where the query is: starting / running / restarting / stopped, with its last progress."""
        if self._stopping.is_set():
            return {"state": "stopped"}
        if self._restart_error is not None or (self.query is None and self.error):
            return {"state": "restarting", "error": self._restart_error or self.error, "restarts": self.restarts}
        if self.query is None:
            return {"state": "starting"}
        exception = self.query.exception()
        if exception is not None:
            return {"state": "restarting" if self._thread else "failed", "error": _summary(str(exception))}
        return {"state": "running" if self.query.isActive else "stopped", "progress": self.query.lastProgress,
                "restarts": self.restarts}

    def wait_started(self, timeout: float) -> bool:
        return self._started.wait(timeout)

    def stop(self) -> None:
        """Stop the query and the SparkSession; harmless when called twice."""
        self._stopping.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=60)
        if self.query is not None:
            try:
                self.query.stop()
            except Exception:  # noqa: BLE001 - stopping a dead query must not hide the real problem
                log.warning("stopping the query failed", exc_info=True)
            self.query = None
        if self.spark is not None and self._owns_spark:
            self.spark.stop()
        self.spark = None
        self.durable.close()
        if self._mongo is not None:
            self._mongo.close()
            self._mongo = None

    def __enter__(self) -> MarketJob:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
