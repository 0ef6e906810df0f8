"""What both benchmarks share: the settings of a bench's own local stack, and the machine's description."""

from __future__ import annotations

import os
import platform
import signal
import sys
import time
from pathlib import Path

import psutil
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from pipeline.settings import Settings
from pipeline.sinks.topics import topic_specs
from stack.process import free_port, free_port_pair

# The Spark JVM compiles Catalyst's and the queries' code for minutes after a start (hundreds of methods a
# second at first, still ~20 a second after 8 minutes at 1,000 trades/s), so the figures of those minutes are
# not the settled dashboard's: a first loaded phase named with this shows the start, the phases after it the rest.
WARMING = "the first"


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


AUTOGROUP = Path("/proc/sys/kernel/sched_autogroup_enabled")


def machine() -> dict:
    """What the figures were measured on. On a shared VM the same code runs 2x slower on some evenings:
    ``loop_s`` (a fixed loop in a function, timed when the run is over and its processes stopped; the notes'
    earlier figures timed it at module level, about twice as long) says how fast the machine was;
    ``autogroup`` how Linux shares a busy CPU (if on, between sessions first: each service, the app and
    Chromium run in sessions of their own, so it decides which stage waits; docs/benchmarks.md)."""
    return {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "cpu_model": next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                               if line.startswith("model name")), platform.processor()),
            "python": platform.python_version(), "platform": platform.platform(), "loop_s": round(_loop_s(), 2),
            "autogroup": AUTOGROUP.read_text().strip() == "1" if AUTOGROUP.exists() else None}


def _loop_s(additions: int = 10_000_000) -> float:
    started, total = time.perf_counter(), 0
    for i in range(additions):
        total += i
    return time.perf_counter() - started


def machine_line(m: dict) -> str:
    """The machine as the printed tables name it."""
    speed = f"; the 10-million-addition loop {m['loop_s']:.2f} s" if "loop_s" in m else ""
    autogroup = "" if m.get("autogroup") is None else f"; autogroup {'on' if m['autogroup'] else 'off'}"
    return f"machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Python {m['python']}{speed}{autogroup}"


def stop_on_sigterm() -> None:
    """SIGTERM ends the run as Ctrl-C does: the ``finally`` blocks stop the stack, the app and the browser it
    started (by default SIGTERM would end the process there and leave them running)."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
