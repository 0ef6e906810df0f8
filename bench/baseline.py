"""The original design's path, for comparison: CDC -> Kafka -> a Python consumer writing each message to
its own JSON file -> Spark's file source (one-minute trigger in the design) -> the same batch handler.

``python -m bench.baseline <bootstrap> <topic> <folder>`` runs the consumer (its own process, as in
the design); :func:`start_file_query` runs the Spark side into a MarketState of its own.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from kafka import KafkaConsumer
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from pipeline.domain.state import MarketState
from pipeline.spark.batch import BatchHandler
from pipeline.spark.microbatch import market_stream

# The file source's rows, shaped like the Kafka source's so the same parsing applies.
AS_KAFKA_ROWS = """
SELECT CAST(value AS BINARY) AS value, 'files' AS topic, 0 AS partition, 0L AS offset,
       current_timestamp() AS timestamp
FROM {files}
"""


def consume(bootstrap: str, topic: str, folder: Path, ready_flag: Path) -> None:
    """Write every new message of ``topic`` to ``folder/<partition>-<offset>.json`` until SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    folder.mkdir(parents=True, exist_ok=True)
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"baseline-{os.getpid()}",
                             auto_offset_reset="latest", enable_auto_commit=True)
    while not consumer.assignment() and not stop.is_set():
        consumer.poll(timeout_ms=200)
    ready_flag.write_text("ready")
    while not stop.is_set():
        for records in consumer.poll(timeout_ms=200).values():
            for record in records:
                name = f"{record.partition}-{record.offset}.json"
                tmp = folder / f".{name}.tmp"  # the file source must never see a half-written file
                tmp.write_bytes(record.value)
                tmp.replace(folder / name)
    consumer.close()


def start_file_query(spark: SparkSession, folder: Path, checkpoint: Path, state: MarketState,
                     symbols: frozenset[str], trigger_s: float | None, dedupe_horizon_s: int = 600) -> StreamingQuery:
    files = spark.readStream.format("text").option("wholetext", "true").load(str(folder))
    messages = spark.sql(AS_KAFKA_ROWS, files=files)
    writer = (market_stream(messages, dedupe_horizon_s).writeStream.queryName(f"baseline_{checkpoint.name}")
              .foreachBatch(BatchHandler(state, lambda: symbols))
              .option("checkpointLocation", str(checkpoint)))
    if trigger_s:
        writer = writer.trigger(processingTime=f"{trigger_s} seconds")
    return writer.start()


if __name__ == "__main__":
    consume(sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
