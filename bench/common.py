"""What both benchmarks share: the settings of a bench's own local stack, and the machine's description."""

from __future__ import annotations

import os
import platform
import signal
import sys
from pathlib import Path

import psutil
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from pipeline.settings import Settings
from pipeline.sinks.topics import topic_specs
from stack.process import free_port, free_port_pair


def bench_settings(data_dir: Path) -> Settings:
    env = {**os.environ, "STOCKDASH_DATA_DIR": str(data_dir), "LOCAL_MONGO_PORT": str(free_port()),
           "LOCAL_KAFKA_PORT": str(free_port_pair()), "TRADES_TOPIC": "bench.transaction",
           # The default stack's storage, on disk (~12,000 inserts/s, every write acknowledged once in the file);
           # LOCAL_MONGO_STORAGE=memory measures the stand-in without it (~25,000/s).
           "LOCAL_MONGO_STORAGE": os.environ.get("LOCAL_MONGO_STORAGE", "disk"),
           "LOCAL_MONGO_HEAP_MB": os.environ.get("LOCAL_MONGO_HEAP_MB", "4096"),
           "LOCAL_MONGO_OPLOG_ENTRIES": os.environ.get("LOCAL_MONGO_OPLOG_ENTRIES", "200000")}
    return Settings.from_env(env)


def stamp_append_time(settings: Settings, *topics: str) -> None:
    """Messages of ``topics`` carry the broker's append time from now on (stages of a delay are then told
    apart by the broker's clock, the machine's). Kafka's AlterConfigs replaces a topic's whole config: the
    pipeline's own configs of the topic are sent along."""
    specs = topic_specs(settings)
    admin = KafkaAdminClient(bootstrap_servers=settings.effective_kafka_bootstrap)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={
            **specs.get(topic, {}), "message.timestamp.type": "LogAppendTime"}) for topic in topics])
    finally:
        admin.close()


def machine() -> dict:
    return {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "cpu_model": next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                               if line.startswith("model name")), platform.processor()),
            "python": platform.python_version(), "platform": platform.platform()}


def stop_on_sigterm() -> None:
    """SIGTERM ends the run as Ctrl-C does: the ``finally`` blocks stop the stack, the app and the browser it
    started (by default SIGTERM would end the process there and leave them running)."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
