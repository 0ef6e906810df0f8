"""The SparkSession and the Kafka source, tuned for small, frequent batches on a 2-core machine
(see the shared notes on Spark on 2 cores)."""

from __future__ import annotations

import os
import re
import sys

from pyspark.sql import DataFrame, SparkSession

from pipeline.settings import Settings

CHECKPOINT_FILE_MANAGER = "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager"


def spark_session(settings: Settings) -> SparkSession:
    """A local (or ``SPARK_MASTER``) session with Spark's Kafka source on its classpath (``SPARK_JARS``;
    under spark-submit, ``--jars`` has put them there already)."""
    # Workers must run this interpreter (the venv's), and everything stays on loopback.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder
    if settings.spark_jars:
        builder = builder.config("spark.jars", settings.spark_jars)
    spark = (
        builder.master(spark_master(settings))
        .appName("stockdash")
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
        # Checkpoints are local folders. Spark's default manager renames through Hadoop's FileContext, which
        # forks `readlink` twice for each file it commits (offsets, commits, state deltas), each rename waiting
        # for its child; FileSystem's rename is rename(2), as atomic on a local disk. Measured at 1,000 trades/s:
        # the offsets and commit log writes 118 + 120 -> 28 + 26 ms a batch, 22 -> 12 processes a second.
        .config("spark.sql.streaming.checkpointFileManagerClass", CHECKPOINT_FILE_MANAGER)
        # No empty batches just because the dedupe watermark moved: they delay the next real one.
        .config("spark.sql.streaming.noDataMicroBatches.enabled", "false")
        # How often an idle micro-batch query asks Kafka for new offsets. Alone, it must notice a trade at
        # once (Spark's 10 ms); beside the live ticks, which put trades on screen, a quiet market then costs
        # Kafka and Spark next to nothing (measured idle: Kafka 14 % of a core at 10 ms).
        .config("spark.sql.streaming.pollingDelay", "10ms" if settings.stream_mode == "microbatch" else "250ms")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    _quiet_logger(spark, "org.apache.spark.sql.execution.streaming.runtime.ProcessingTimeExecutor")
    return spark


def _quiet_logger(spark: SparkSession, name: str) -> None:
    """Errors only from ``name``. A trigger (``TRIGGER_INTERVAL_MS``) is a floor, not a deadline:
    under load a batch takes longer and the next starts at once, which Spark reports as a warning every batch."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(name, jvm.org.apache.logging.log4j.Level.ERROR)


def spark_master(settings: Settings) -> str:
    """The real-time query runs every stage at once, each source partition holding a task slot for as long
    as it runs; the micro-batch query needs slots beside it. A local master gets them; a cluster must."""
    if settings.stream_mode != "realtime":
        return settings.spark_master
    needed = settings.topic_partitions + 2
    local = re.fullmatch(r"local\[(\d+)\]", settings.spark_master)
    return f"local[{needed}]" if local and int(local.group(1)) < needed else settings.spark_master


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
        reader = reader.option(name, str(value))
    return reader.load()
