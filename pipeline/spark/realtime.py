"""The live-ticks query of the default mode: every valid trade and every reject, passed on with Spark's
real-time trigger.

A micro-batch costs 0.5-1 s here whatever its size (offsets, planning, logs, one Spark job). Spark 4.3's
real-time mode runs one long batch per checkpoint interval whose tasks stream each record through, so a
trade leaves this query tens of milliseconds after it reached Kafka:

    Kafka (trades) -> parse (the micro-batch query's rules) -> valid ticks, rejects -> Kafka (<topic>.live-ticks)

It keeps no state: the micro-batch query (``pipeline.spark.microbatch``) stays the record and does
everything else. The app's ``pipeline.sinks.live_feed.LiveFeed`` reads the live ticks into MarketState,
which shows them on top of the record until the record has applied them (``pipeline.domain.live``), and
counts the rejects in the ledger the same way (``pipeline.domain.live_rejects``). Deletes are the record's alone.
Each tick carries its trades-topic partition and offset for that. After a failure the supervisor restarts the
query from its last checkpoint, so a tick may come twice; the feed keeps one. A new process starts at the topic's
end: what came while none ran is the record's to catch up with.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql.streaming import StreamingQuery

from pipeline.domain.reasons import DEFAULT_MAX_CLOCK_SKEW_S
from pipeline.settings import Settings
from pipeline.sinks import topics
from pipeline.spark.parse import NO_CLOCK, parse_change_events
from pipeline.spark.session import spark_session, trades_source
from pipeline.spark.supervisor import SupervisedQuery

log = logging.getLogger("stockdash.realtime")

QUERY_NAME = "stockdash_live_ticks"
LIVE_FETCH_WAIT_MS = 500
PLAN_VERSION = 2

# Every field bounded, so that a message always fits the live topic (a hostile document with a 1 MB symbol or
# id must not fail the query on every restart): a listed symbol has at most 32 characters, so a longer one
# is no stock: a reject (``unknown_symbol``, as the record files it); ids are cut (the record keeps the whole
# message). A reject carries its reason, and its symbol as the ledger keeps it (SET_ASIDE_SYMBOL_CHARS).
LIVE_TICK_SQL = """
SELECT left(symbol, 64) AS key, CASE WHEN reject IS NULL THEN to_json(named_struct(
  'symbol', symbol, 'trade_time_us', unix_micros(trade_time), 'event_id', event_id, 'trade_id', left(trade_id, 128),
  'price', CAST(price AS STRING), 'quantity', quantity, 'side', side, 'ingest_us', unix_micros(ingest_time),
  'partition', partition, 'offset', offset))
  ELSE to_json(named_struct('reject', reject, 'symbol', left(symbol, 64), 'event_id', left(event_id, 512),
  'partition', partition, 'offset', offset)) END AS value
FROM (
  SELECT *, CASE WHEN reject_reason IS NULL AND length(symbol) > 64 THEN 'unknown_symbol' ELSE reject_reason END AS reject
  FROM {parsed}
  WHERE reject_reason IS NOT NULL OR op IN ('insert', 'update', 'replace')
)
"""


def live_ticks(messages: DataFrame, max_skew_s: int = DEFAULT_MAX_CLOCK_SKEW_S) -> DataFrame:
    """Kafka messages -> (key, value) rows: each valid trade or reject as JSON, keyed by its symbol."""
    # The trade-time bound against the clock is the feed's (``pipeline.sinks.live_feed``): see ``NO_CLOCK``.
    parsed = parse_change_events(messages, max_skew_s=max_skew_s, clock=NO_CLOCK)
    return messages.sparkSession.sql(LIVE_TICK_SQL, parsed=parsed)


def checkpoint_dir(settings: Settings) -> Path:
    return settings.effective_checkpoint_dir / f"{QUERY_NAME}-v{PLAN_VERSION}"


class LiveTicksJob(SupervisedQuery):
    """The live-ticks query, on the process's SparkSession (the micro-batch query's: one per process)."""

    mode = "realtime"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, None)
        self._resume = False  # a restart by the supervisor resumes; a new process starts at the topic's end

    def _start_query(self) -> StreamingQuery:
        topics.ensure_topics(self.settings)
        if not self._resume:
            # What came while no process ran is the record's to catch up with. Passed on as live ticks too, that
            # backlog costs a parse, a Kafka round trip and the feed's work per message, on the cores the record
            # catches up with: measured, the screen caught up later that way (docs/semantics.md). The query keeps
            # no state, so a new checkpoint loses nothing but that backlog.
            shutil.rmtree(checkpoint_dir(self.settings), ignore_errors=True)
            self._resume = True
        spark = spark_session(self.settings)
        slots, needed = spark.sparkContext.defaultParallelism, self.settings.topic_partitions + 1
        if slots < needed:  # it would hold every slot and starve the micro-batch query
            raise RuntimeError(f"the live-ticks query needs {needed} task slots beside the micro-batch query's and Spark "
                               f"has {slots}: set SPARK_MASTER=local[{needed + 1}] (or more cores), or STREAM_MODE=microbatch")
        # From the end of the topic when it starts without a checkpoint: the record covers what came before.
        # A real-time task reads on and on: a fetch the broker holds open returns the moment a trade is
        # appended, so a long wait costs no latency, while the micro-batch's 10 ms would poll an idle broker
        # a hundred times a second per partition (Kafka's and Spark's idle CPU).
        source = trades_source(spark, self.settings, startingOffsets="latest",
                               **{"kafka.fetch.max.wait.ms": LIVE_FETCH_WAIT_MS})
        query = (
            live_ticks(source, self.settings.max_clock_skew_s)
            .writeStream.queryName(QUERY_NAME)
            .format("kafka")
            .option("kafka.bootstrap.servers", self.settings.effective_kafka_bootstrap)
            .option("topic", self.settings.live_topic)
            # Each tick goes out at once: Kafka's producer would otherwise wait to fill a batch.
            .option("kafka.linger.ms", "0")
            .option("checkpointLocation", str(checkpoint_dir(self.settings)))
            .outputMode("update")
            .trigger(realTime=f"{self.settings.realtime_checkpoint_s} seconds")  # type: ignore[call-overload]  # not in pyspark's stubs
            .start()
        )
        log.info("live-ticks query started: %s -> %s", self.settings.trades_topic, self.settings.live_topic)
        return query

    def _stop_query(self) -> None:
        spark = spark_session(self.settings) if self.query is not None else None
        if spark is not None:
            # Stopping aborts the long-running batch on purpose (what it did is replayed from the last
            # checkpoint); Spark logs that abort as errors with traces, which would read as a failure.
            spark.sparkContext.setLogLevel("OFF")
        super()._stop_query()
        if spark is not None and not self._stopping.is_set():
            spark.sparkContext.setLogLevel("WARN")
