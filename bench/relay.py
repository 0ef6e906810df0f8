"""``python -m bench.relay``: where the CDC relay's time goes, per record, before and after its tuning, in one
run on a stack of its own (the MongoDB stand-in and Kafka; no relay or archive of the stack's own).

1. Stages: change events of real inserts, read from a change stream, then each stage of the relay timed alone
   over all of them (CPU µs a record, best of ``--repeats``): the relay as it was (json_util, the producer's
   key partitioner, kafka-python's pure-Python CRC-32C) against the relay as it is.
2. Catch-up: ``--catch-up`` trades inserted while no relay runs, then the relay process (``python -m
   pipeline.services.relay``) started and timed until the last is in Kafka: its CPU per record, and so the
   records a second it relays on one core. "Before" is the relay of ``--before`` (a git ref) with the
   pure-Python CRC-32C, in the same run.
3. Insert -> Kafka: a paced load (``bench.load``, a process of its own) at each of ``--rates``, before and
   after; per trade, the broker's append time (a topic with LogAppendTime) less the time the load read just
   before its ``insert_many`` (the trade's ``trade_time``, in ms). The stand-in's oplog fills as the run goes
   on (200,000 entries in the bench's settings), so the later rates run with a full one.

Prints tables; nothing is asserted (numbers on a shared 2-core machine are noisy: compare the ratios).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psutil
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from bench.common import bench_settings
from bench.relay_stages import insert_trades, print_stages, stages
from pipeline.services.paths import relay_paths
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.sinks.topics import TRADES_MAX_MESSAGE_BYTES
from pipeline.waits import wait_until
from stack.local import LocalStack


def source_tree(ref: str, into: Path) -> Path:
    """The project's Python packages as of git ``ref``, in ``into``."""
    archive = subprocess.run(["git", "archive", ref, "pipeline", "bench", "simulator", "stack"], cwd=PROJECT_ROOT,
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


RUN_RELAY = """
import runpy, sys
if sys.argv[1] == "pure":
    from kafka.record import default_records, util
    default_records.calc_crc32c = util.crc32c_py
runpy.run_module("pipeline.services.relay", run_name="__main__")
"""


def own_topic(settings: Settings, name: str, partitions: int) -> Settings:
    """A topic of this measurement's own, stamped with the broker's append time, and a database of its own."""
    admin = KafkaAdminClient(bootstrap_servers=settings.effective_kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1, topic_configs={
            "max.message.bytes": str(TRADES_MAX_MESSAGE_BYTES), "message.timestamp.type": "LogAppendTime"})])
    finally:
        admin.close()
    return settings.with_changes(trades_topic=name, database=name.replace(".", "_"))


def topic_count(settings: Settings) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.effective_kafka_bootstrap)
    try:
        parts = [TopicPartition(settings.trades_topic, p) for p in consumer.partitions_for_topic(settings.trades_topic)]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


@contextlib.contextmanager
def relay_process(settings: Settings, tree: Path, crc_kind: str, log: Path) -> Iterator[psutil.Process]:
    env = {**os.environ, **settings.service_env(), "PYTHONPATH": str(tree)}
    with open(log, "ab") as out:
        child = subprocess.Popen([sys.executable, "-c", RUN_RELAY, crc_kind], cwd=tree, env=env, stdout=out,
                                 stderr=subprocess.STDOUT)
    try:
        yield psutil.Process(child.pid)
    finally:
        child.terminate()
        child.wait(timeout=30)


def catch_up(settings: Settings, tree: Path, crc_kind: str, count: int, log: Path) -> dict:
    """Insert ``count`` trades with no relay running, then start one and time it until all are in Kafka."""
    own = own_topic(settings, f"bench.catchup.{uuid.uuid4().hex[:6]}", settings.topic_partitions)
    own = own.with_changes(data_dir=settings.data_dir / own.database)
    with relay_process(own, tree, crc_kind, log) as relay:  # first start: stores its start position, then idles
        wait_until(relay_paths(own)[0].exists, timeout=60, what="the relay's first start (its start position stored)")
        time.sleep(2.5)  # the stand-in's "now" is the wall clock less 2 s: the inserts must come after it
    insert_trades(own, count, seed=7)
    with relay_process(own, tree, crc_kind, log) as relay:
        # From its first record in Kafka on: its start (imports, connections) is not what is measured.
        wait_until(lambda: topic_count(own) > 0, timeout=120, interval=0.02, what="the relay's first record in Kafka")
        first, started, cpu0 = topic_count(own), time.perf_counter(), relay.cpu_times()
        wait_until(lambda: topic_count(own) >= count, timeout=600, interval=0.1, what=f"{count:,} events in Kafka",
                   describe=lambda: f"{topic_count(own):,}")
        wall, cpu1 = time.perf_counter() - started, relay.cpu_times()
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    records = count - first
    return {"records": records, "wall_s": wall, "cpu_s": cpu, "cpu_us": cpu / records * 1e6,
            "per_core_per_s": records / cpu, "per_s": records / wall}


# -- 3. insert -> Kafka ------------------------------------------------------------------------------------------
def latency(settings: Settings, tree: Path, crc_kind: str, rate: int, duration_s: float, log: Path) -> dict:
    own = own_topic(settings, f"bench.latency.{uuid.uuid4().hex[:6]}", settings.topic_partitions)
    own = own.with_changes(data_dir=settings.data_dir / own.database)
    with relay_process(own, tree, crc_kind, log) as relay:
        wait_until(relay_paths(own)[0].exists, timeout=60, what="the relay's first start (its start position stored)")
        time.sleep(2.5)
        cpu0 = relay.cpu_times()
        load = subprocess.run([sys.executable, "-m", "bench.load", own.effective_mongo_uri, own.database, str(rate),
                               str(duration_s)], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
        run = json.loads(load.stdout.strip().splitlines()[-1])
        wait_until(lambda: topic_count(own) >= run["inserted"], timeout=120, interval=0.2,
                   what=f"{run['inserted']:,} events in Kafka", describe=lambda: f"{topic_count(own):,}")
        cpu1 = relay.cpu_times()
    delays = sorted(_delays(own))
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    pick = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))]  # noqa: E731
    return {"rate": rate, "achieved": run["achieved_per_s"], "load_cpu_pct": run["cpu_pct"], "records": len(delays),
            "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": delays[-1], "relay_cpu_pct": cpu / run["wall_s"] * 100}


def _delays(settings: Settings) -> list[float]:
    """Broker append time less trade_time (set by the load just before each insert), ms."""
    consumer = KafkaConsumer(settings.trades_topic, bootstrap_servers=settings.effective_kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    delays = []
    try:
        for message in consumer:
            inserted = datetime.fromisoformat(json.loads(message.value)["fullDocument"]["trade_time"]["$date"])
            delays.append(message.timestamp - inserted.timestamp() * 1000)
    finally:
        consumer.close()
    return delays


def print_catch_up(settings: Settings, args: argparse.Namespace, before_tree: Path, log: Path) -> None:
    print(f"\n{'catch-up: ' + format(args.catch_up, ',') + ' events':<44} {'CPU µs/rec':>10} "
          f"{'rec/s/core':>10} {'wall rec/s':>10}")
    for label, tree, kind in ((f"before ({args.before}, pure-Python CRC)", before_tree, "pure"),
                              ("after", PROJECT_ROOT, "c")):
        result = catch_up(settings, tree, kind, args.catch_up, log)
        print(f"{label:<44} {result['cpu_us']:>10.1f} {result['per_core_per_s']:>10,.0f} "
              f"{result['per_s']:>10,.0f}", flush=True)


def print_latency(settings: Settings, args: argparse.Namespace, before_tree: Path, log: Path) -> None:
    print(f"\n{'insert -> Kafka':<24} {'achieved':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
          f"{'relay CPU':>9} {'load CPU':>9}")
    for rate in args.rates:
        for label, tree, kind in (("before", before_tree, "pure"), ("after", PROJECT_ROOT, "c")):
            r = latency(settings, tree, kind, rate, args.duration, log)
            print(f"{format(rate, ',') + '/s ' + label:<24} {r['achieved']:>9,.0f} {r['p50_ms']:>7.0f} "
                  f"{r['p99_ms']:>7.0f} {r['max_ms']:>7.0f} {r['relay_cpu_pct']:>8.0f}% "
                  f"{r['load_cpu_pct']:>8.0f}%", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=5000, help="change events of the stage measurements")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--catch-up", type=int, default=30000, help="trades of the catch-up measurement (0: skip)")
    parser.add_argument("--before", default="600dddf", help="git ref of the relay to compare with (catch-up)")
    parser.add_argument("--rates", type=lambda text: [int(v) for v in text.split(",") if v], default=[1000, 5000, 10000])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per rate")
    args = parser.parse_args(argv)
    data_dir = PROJECT_ROOT / ".local" / "bench-relay"
    shutil.rmtree(data_dir, ignore_errors=True)
    local = LocalStack(bench_settings(data_dir).with_changes(trades_topic="benchrelay.transaction"))
    # Only the stand-in and Kafka: the relay is what is measured, and the archive would compete for the CPU.
    for name in ("cdc-relay", "archive"):
        local.services.pop(name, None)
    settings = local.start()
    try:
        print_stages(stages(settings, args.records, args.repeats))
        with tempfile.TemporaryDirectory() as tmp:
            before_tree = source_tree(args.before, Path(tmp))
            if args.catch_up:
                print_catch_up(settings, args, before_tree, data_dir / "relay.log")
            if args.rates:
                print_latency(settings, args, before_tree, data_dir / "relay.log")
    finally:
        local.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
