"""Micro-batch mode (the default): Spark's Kafka source -> parse -> replays dropped -> per-batch handler
-> sinks (MongoDB, Kafka) -> MarketState.

``MarketJob`` owns the query, and the SparkSession unless one is handed in. It starts in a background
thread under the supervisor (a SparkSession takes ~10 s to start; the app must not freeze meanwhile),
and ``stop()`` is idempotent.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pymongo import MongoClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from pipeline.domain.candles import CANDLE_HISTORY_S
from pipeline.domain.metrics import SCHEMA_FINGERPRINT
from pipeline.domain.reasons import DEFAULT_MAX_CLOCK_SKEW_S
from pipeline.domain.snapshot import Persisted
from pipeline.domain.state import MarketState
from pipeline.settings import Settings
from pipeline.sinks import mongo, topics
from pipeline.sinks.activity import ActivityStore, since_kept
from pipeline.sinks.ledger import dead_letters, late_ledger
from pipeline.sinks.publish import AggregatePublisher
from pipeline.sinks.store import AggregateStore, CandleStore, ReplayClockStore, checkpoint_lineage
from pipeline.spark.batch import BatchHandler, BatchSinks
from pipeline.spark.parse import deduplicate, parse_change_events
from pipeline.spark.session import spark_session, trades_source
from pipeline.spark.supervisor import SupervisedQuery

log = logging.getLogger("stockdash.job")

QUERY_NAME = "stockdash_market"
# Bumped whenever the query's stateful plan changes: Spark cannot resume a changed plan from an old
# checkpoint, so a new version starts a new checkpoint (and lineage) and rebuilds from the topic. A
# changed metric registry does the same through its fingerprint.
PLAN_VERSION = 2
# A batch takes at most this many messages: it bounds the driver's memory (a flood of junk is collected as set-aside
# records) while a catch-up still moves ~20,000 messages a batch.
MAX_OFFSETS_PER_TRIGGER = 20_000


def market_stream(messages: DataFrame, dedupe_horizon_s: int, max_skew_s: int = DEFAULT_MAX_CLOCK_SKEW_S) -> DataFrame:
    """The stream the batch handler consumes: parsed change events, replays dropped."""
    return deduplicate(parse_change_events(messages, max_skew_s=max_skew_s), dedupe_horizon_s)


def checkpoint_dir(settings: Settings, name: str = QUERY_NAME) -> Path:
    return settings.effective_checkpoint_dir / f"{name}-v{PLAN_VERSION}-{SCHEMA_FINGERPRINT}"


class MarketJob(SupervisedQuery):
    """The micro-batch query feeding a MarketState (and, with ``persist``, MongoDB and Kafka); one per process."""

    mode = "microbatch"

    def __init__(self, settings: Settings, state: MarketState | None = None, *, persist: bool = True,
                 spark: SparkSession | None = None, name: str = QUERY_NAME) -> None:
        state = state or MarketState()
        super().__init__(settings, state)
        self.state: MarketState = state
        self.name = name  # unique per SparkSession: a second query (a replay, say) needs its own
        self.persist = persist
        self.spark: SparkSession | None = spark
        self._owns_spark = spark is None  # a session handed in (tests, a host app) is left running
        self._mongo: MongoClient | None = None
        self.sinks = BatchSinks()
        self.listed = mongo.ListedSymbols(settings)  # what the listed-symbol check of each batch uses
        self._handler: BatchHandler | None = None

    def _start_query(self) -> StreamingQuery:
        checkpoint = checkpoint_dir(self.settings, self.name)
        topics.ensure_topics(self.settings)
        if self.persist:
            self.sinks = self._open_sinks(checkpoint)
        if self.spark is None:
            self.spark = spark_session(self.settings)
        self._handler = handler = BatchHandler(self.state, self.listed, self.sinks, self.settings.candle_lateness_s,
                                               self.settings.dedupe_horizon_s)
        writer = (
            market_stream(trades_source(self.spark, self.settings, maxOffsetsPerTrigger=MAX_OFFSETS_PER_TRIGGER),
                          self.settings.dedupe_horizon_s, self.settings.max_clock_skew_s)
            .writeStream.queryName(self.name)
            .foreachBatch(handler)
            .option("checkpointLocation", str(checkpoint))
        )
        if self.settings.trigger_interval_ms:
            writer = writer.trigger(processingTime=f"{self.settings.trigger_interval_ms} milliseconds")
        query = writer.start()
        log.info("streaming query started: %s -> MarketState (checkpoint %s)", self.settings.trades_topic, checkpoint)
        return query

    def _open_sinks(self, checkpoint: Path) -> BatchSinks:
        """The sinks of this checkpoint's lineage, and the state loaded from them."""
        self._mongo = mongo.client(self.settings)
        mongo.check_reachable(self.settings, self._mongo)
        db = self._mongo[self.settings.database]
        lineage = checkpoint_lineage(checkpoint)
        aggregates, candles = AggregateStore(db, lineage), CandleStore(db, lineage)
        rejected, late = dead_letters(self.settings, db), late_ledger(self.settings, db)
        stored, offsets = aggregates.load()
        day_candles, closes = candles.load_session(CANDLE_HISTORY_S)
        activity = ActivityStore(db, lineage)
        self.state.load(Persisted(
            aggregates=stored, candles=tuple(day_candles), closes=tuple(closes), activity=activity.load(since_kept()),
            rejected_by_reason=rejected.counts(), rejected_by_symbol=rejected.counts(by="symbol"),
            late_by_symbol=late.counts(), offsets=offsets))
        return BatchSinks(aggregates, candles, rejected, late, AggregatePublisher(self.settings), activity,
                          ReplayClockStore(db, lineage))

    def _stop_query(self) -> None:
        if self._handler is not None:
            self._handler.stopping.set()  # a batch stopped halfway says so in the words Spark takes for a stop
        super()._stop_query()

    def _release(self) -> None:
        self.sinks.close()
        self.sinks = BatchSinks()
        if self._mongo is not None:
            self._mongo.close()
            self._mongo = None

    def _close(self) -> None:
        if self.spark is not None and self._owns_spark:
            self.spark.stop()
        self.spark = None
