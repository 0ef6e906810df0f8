"""Real-time mode (``STREAM_MODE=realtime``): the per-symbol figures with Spark's real-time trigger.

A micro-batch costs 0.5-1 s here whatever its size (offsets, planning, logs, one Spark job). Spark 4.3's
real-time mode runs one long batch per checkpoint interval whose tasks stream each record through, so a
trade reaches its symbol's aggregate in tens of milliseconds. It has no ``foreachBatch``: the query
writes every changed aggregate to a compacted Kafka topic (key: the symbol) and
``pipeline.sinks.realtime_feed.RealtimeFeed`` reads that topic into MarketState.

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

import logging
import re
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from pipeline.domain.metrics import SCHEMA_FINGERPRINT
from pipeline.domain.reasons import DEFAULT_MAX_CLOCK_SKEW_S
from pipeline.domain.state import MarketState
from pipeline.settings import Settings
from pipeline.sinks import topics
from pipeline.sinks.realtime_feed import RealtimeFeed
from pipeline.spark.parse import parse_change_events, valid_ticks
from pipeline.spark.session import spark_session, trades_source
from pipeline.spark.summary import REALTIME_SQL
from pipeline.spark.supervisor import SupervisedQuery

log = logging.getLogger("stockdash.realtime")

QUERY_NAME = "stockdash_realtime"
PLAN_VERSION = 1


def realtime_aggregates(messages: DataFrame, max_skew_s: int = DEFAULT_MAX_CLOCK_SKEW_S) -> DataFrame:
    """Kafka messages -> (key, value) rows of per-symbol aggregates as JSON (times in epoch microseconds)."""
    ticks = valid_ticks(parse_change_events(messages, max_skew_s=max_skew_s)).dropDuplicates(["event_id"])
    return messages.sparkSession.sql(REALTIME_SQL, ticks=ticks)


def checkpoint_dir(settings: Settings) -> Path:
    return settings.effective_checkpoint_dir / f"{QUERY_NAME}-v{PLAN_VERSION}-{SCHEMA_FINGERPRINT}"


def realtime_master(settings: Settings) -> str:
    """Real-time mode runs every stage at once: each source partition, the dedupe and the aggregate hold
    a task slot for the whole batch. A local master gets that many; a cluster must offer them."""
    needed = settings.topic_partitions + 2
    local = re.fullmatch(r"local\[(\d+)\]", settings.spark_master)
    return f"local[{needed}]" if local and int(local.group(1)) < needed else settings.spark_master


class RealtimeJob(SupervisedQuery):
    """The real-time query, and with a ``state`` the feed of its results into it (the app); without one,
    only the query (``STREAM_MODE=realtime python -m pipeline job``)."""

    mode = "realtime"

    def __init__(self, settings: Settings, state: MarketState | None = None) -> None:
        super().__init__(settings, state)
        self.feed = RealtimeFeed(settings, state) if state is not None else None
        self.spark: SparkSession | None = None

    def start_in_background(self) -> RealtimeJob:
        if self.feed is not None:
            self.feed.start_in_background()
        super().start_in_background()
        return self

    def _start_query(self) -> StreamingQuery:
        topics.ensure_topics(self.settings)
        if self.spark is None:
            self.spark = spark_session(self.settings.with_changes(spark_master=realtime_master(self.settings)))
        query = (
            realtime_aggregates(trades_source(self.spark, self.settings), self.settings.max_clock_skew_s)
            .writeStream.queryName(QUERY_NAME)
            .format("kafka")
            .option("kafka.bootstrap.servers", self.settings.effective_kafka_bootstrap)
            .option("topic", self.settings.realtime_topic)
            .option("checkpointLocation", str(checkpoint_dir(self.settings)))
            .outputMode("update")
            .trigger(realTime=f"{self.settings.realtime_checkpoint_s} seconds")  # type: ignore[call-overload]  # not in pyspark's stubs
            .start()
        )
        log.info("real-time query started: %s -> %s", self.settings.trades_topic, self.settings.realtime_topic)
        return query

    def _stop_query(self) -> None:
        if self.query is not None and self.spark is not None:
            # Stopping aborts the long-running batch on purpose (what it did is replayed from the last
            # checkpoint); Spark logs that abort as errors with traces, which would read as a failure.
            self.spark.sparkContext.setLogLevel("OFF")
        super()._stop_query()
        if self.spark is not None and not self._stopping.is_set():
            self.spark.sparkContext.setLogLevel("WARN")

    def _close(self) -> None:
        if self.spark is not None:
            self.spark.stop()
            self.spark = None
        if self.feed is not None:
            self.feed.stop()
