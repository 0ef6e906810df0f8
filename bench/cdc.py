"""``python -m bench.cdc`` (phase 6 of ``make bench``): the two CDC paths side by side, each on a default stack
of its own (the stand-in on disk, as ``make run`` starts it): our relay (``CDC_MODE=relay``, the default) and
Debezium's MongoDB connector on Kafka Connect (``CDC_MODE=debezium``).

Per path: a warm-up (200 trades/s for 10 s, not reported), then a paced load at each of ``--rates`` (the last
one held ``--hold`` s: the sustained-throughput test), the queries of ``--stream-mode`` in this process feeding a
MarketState as the app runs them (the default mode: the record and the live ticks, read back by the feed), and
per phase
- insert -> Kafka: the broker's append time (the trades topic is switched to LogAppendTime) less the trade's
  ``trade_time`` (read by the load just before its ``insert_many``), every 10th message;
- insert -> state: when the trade is counted in the MarketState (``bench.probe``), by whichever path first;
- CPU and peak RSS of the stand-in, Kafka and the CDC process (the relay, or the Connect worker's JVM);
then exactness of count, low, high, NAV and volume per symbol against MongoDB's own ``$group``.

Debezium keys a change by the document's ``_id`` (its envelope carries the document as text, which no
stock transform can key by), so one symbol's trades spread over the partitions: counts per symbol then grow
out of insertion order, and insert -> state is measured by count, a close approximation.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import asdict
from decimal import Decimal

import numpy as np
import psutil
from kafka import KafkaConsumer, TopicPartition

from bench.common import WARMING, bench_settings, stamp_append_time, stop_on_sigterm
from bench.load import LoadProcess
from bench.probe import FreshnessProbe
from bench.resources import ResourceSampler
from pipeline.domain.state import MarketState
from pipeline.domain.stocks import NSE_STOCKS
from pipeline.settings import PROJECT_ROOT, STREAM_MODES, Settings
from pipeline.sinks import mongo
from pipeline.spark.jobs import StreamingJobs
from pipeline.spark.session import spark_session
from pipeline.waits import wait_until
from stack.local import LocalStack

RESULTS = PROJECT_ROOT / "bench" / "results"
CDC_SERVICE = {"relay": "cdc-relay", "debezium": "kafka-connect"}
SAMPLE_EVERY = 10  # messages: the probe's JSON parsing must not be what loads the machine


class KafkaArrival:
    """Insert -> Kafka of every SAMPLE_EVERY-th message on the trades topic, by the broker's append time.

    Read once a phase is over (:meth:`read_new`), not while it runs: the append time is in the message, so
    reading later measures the same, and the reading (a sixth of this process's busy time at 10,000/s when it
    followed the topic live) no longer competes with the load and the queries for the two cores."""

    def __init__(self, settings: Settings) -> None:
        stamp_append_time(settings, settings.trades_topic)
        self.consumer = KafkaConsumer(bootstrap_servers=settings.effective_kafka_bootstrap, enable_auto_commit=False)
        self.partitions = [TopicPartition(settings.trades_topic, p)
                           for p in sorted(self.consumer.partitions_for_topic(settings.trades_topic) or ())]
        self.consumer.assign(self.partitions)
        self.consumer.seek_to_end(*self.partitions)
        for partition in self.partitions:  # resolve the end now: a lazy seek would resolve it at the first read
            self.consumer.position(partition)
        self.samples: list[tuple[float, float]] = []  # (appended at, delay s)
        self._seen = 0

    def read_new(self, timeout_s: float = 120) -> None:
        """Every message appended since the last read (the end offsets as of now)."""
        end = self.consumer.end_offsets(self.partitions)
        deadline = time.monotonic() + timeout_s
        while any(self.consumer.position(p) < end[p] for p in self.partitions) and time.monotonic() < deadline:
            for batch in self.consumer.poll(timeout_ms=500, max_records=10_000).values():
                for message in batch:
                    self._seen += 1
                    if self._seen % SAMPLE_EVERY == 0 and (trade_ms := _trade_time_ms(message.value)) is not None:
                        self.samples.append((message.timestamp / 1000, (message.timestamp - trade_ms) / 1000))

    def percentiles(self, since: float, until: float) -> dict[str, float | None]:
        delays = [delay for at, delay in self.samples if since <= at < until]
        if not delays:
            return {"p50_ms": None, "p99_ms": None}
        p50, p99 = np.percentile(delays, [50, 99])
        return {"p50_ms": round(float(p50) * 1000, 1), "p99_ms": round(float(p99) * 1000, 1)}

    def close(self) -> None:
        self.consumer.close()


def _trade_time_ms(value: bytes) -> int | None:
    """The trade time of a change event (relay: ``fullDocument``; Debezium: ``after``, the document as text)."""
    try:
        event = json.loads(value)
        document = event.get("fullDocument") or json.loads(event.get("after") or "null") or {}
        date = document["trade_time"]["$date"]
    except (ValueError, KeyError, TypeError):
        return None
    if isinstance(date, (int, float)):
        return int(date)
    if isinstance(date, dict):  # canonical {"$numberLong": "..."}
        return int(date.get("$numberLong", 0)) or None
    return int(np.datetime64(str(date).rstrip("Z"), "ms").astype("int64"))


def run_path(cdc_mode: str, args: argparse.Namespace) -> dict:
    data_dir = PROJECT_ROOT / ".local" / f"bench-cdc-{cdc_mode}"
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = bench_settings(data_dir).with_changes(cdc_mode=cdc_mode, local_mongo_storage="disk",
                                                     trades_topic=f"benchcdc.{cdc_mode}", stream_mode=args.stream_mode)
    local = LocalStack(settings)
    print(f"[bench.cdc] {cdc_mode}: starting its stack", flush=True)
    settings = local.start()
    spark = spark_session(settings)
    state = MarketState()
    job = StreamingJobs(settings, state, spark=spark).start()
    arrival = KafkaArrival(settings)
    resources = ResourceSampler({"MongoDB stand-in": local.services["mongo"].pid(),
                                 "Kafka": local.services["kafka"].pid(),
                                 f"CDC ({cdc_mode})": local.services[CDC_SERVICE[cdc_mode]].pid(),
                                 "bench: probes + the queries' Python side": os.getpid()})
    for child in psutil.Process().children(recursive=True):  # the stack's JVMs are children too: Spark's by name
        if "java" in child.name() and "org.apache.spark" in " ".join(child.cmdline()):
            resources.add("Spark (JVM)", child.pid)
    client = mongo.client(settings)
    probe = FreshnessProbe(state)
    load = LoadProcess(settings.effective_mongo_uri, settings.database, {s.symbol: s.reference_price for s in NSE_STOCKS},
                       probe.expect, distinct_times=True)
    resources.add("bench: load", load.pid)
    try:
        phases = _phases(cdc_mode, args, load, probe, arrival, resources)
        exact = exactness(client[settings.database], state)
        return {"cdc_mode": cdc_mode, "stream_mode": settings.stream_mode, "phases": phases, "exact": exact}
    finally:
        load.close()
        probe.close()
        client.close()
        resources.close()
        arrival.close()
        job.stop()
        spark.stop()
        local.stop()


def _phases(cdc_mode: str, args: argparse.Namespace, load: LoadProcess, probe: FreshnessProbe, arrival: KafkaArrival,
            resources: ResourceSampler) -> list[dict]:
    _phase(cdc_mode, 200, 10, load, probe, arrival, resources)  # warm-up: Spark's first batches, not reported
    # Then the JVMs' first minutes at the first rate, reported apart (see ``bench.common.WARMING``).
    warming = [_phase(cdc_mode, args.rates[0], args.warm, load, probe, arrival, resources,
                      f"{WARMING} {args.warm:.0f} s")] if args.warm else []
    return warming + [_phase(cdc_mode, rate, args.hold if rate == args.rates[-1] else args.duration, load, probe,
                             arrival, resources) for rate in args.rates]


STRETCH_S = 30


def _phase(cdc_mode: str, rate: int, duration: float, load: LoadProcess, probe: FreshnessProbe,
           arrival: KafkaArrival, resources: ResourceSampler, note: str = "") -> dict:
    name = f"{cdc_mode} @ {rate:,}/s" + (f", {note}" if note else "")
    print(f"[bench.cdc] {name} for {duration:.0f} s", flush=True)
    resources.phase = name
    run = load.run(rate, duration)
    try:
        wait_until(lambda: probe.outstanding() == 0, timeout=180, interval=0.2, what=f"{name}: every trade counted",
                   describe=lambda: f"{probe.outstanding():,} not yet counted")
        drained_after_s = round(time.time() - run.ended_at, 1)
    except TimeoutError:
        drained_after_s = None
    resources.phase = "idle"
    arrival.read_new()
    kafka = arrival.percentiles(run.started_at, run.ended_at + 5)
    state = asdict(probe.percentiles(run.started_at, run.ended_at + 1e-6))
    over_time = _by_stretch(probe, run.started_at, run.ended_at)
    phase = {"phase": name, "rate_per_s": rate, "duration_s": duration, "achieved_per_s": round(run.achieved_per_s),
             "kafka": kafka, "state": state, "state_by_stretch": over_time, "drained_after_s": drained_after_s,
             "resources": resources.summary(name)}
    print(f"[bench.cdc]   achieved {run.achieved_per_s:,.0f}/s; insert -> Kafka p50 {kafka['p50_ms']} ms, p99 "
          f"{kafka['p99_ms']} ms; insert -> state p50 {_s(state['p50_s'])}, p99 {_s(state['p99_s'])}", flush=True)
    if len(over_time) > 1:
        print("[bench.cdc]   insert -> state p50 / p99 per " f"{STRETCH_S} s: " + ", ".join(
            f"{_s(s['p50_s'])} / {_s(s['p99_s'])}" for s in over_time), flush=True)
    return phase


def _by_stretch(probe: FreshnessProbe, started_at: float, ended_at: float) -> list[dict]:
    """Insert -> state per STRETCH_S of a phase: a stall (a query's restart or rollover) shows where it was,
    instead of only as the whole phase's tail."""
    stretches, start = [], started_at
    while start < ended_at - STRETCH_S / 3:  # a last sliver (the load's end) is no stretch of its own
        stretches.append(asdict(probe.percentiles(start, min(start + STRETCH_S, ended_at + 1e-6))))
        start += STRETCH_S
    return stretches


def _s(value: float | None) -> str:
    return f"{value:.3f} s" if value is not None else "–"


def exactness(db, state: MarketState) -> dict:
    """Count, low, high, NAV (the latest trade's price: the load gives each symbol's trades distinct times)
    and volume per symbol, ours against MongoDB's own aggregation."""
    pipeline = [{"$sort": {"trade_time": 1}},
                {"$group": {"_id": "$symbol", "trades": {"$sum": 1}, "low": {"$min": "$price"},
                            "high": {"$max": "$price"}, "nav": {"$last": "$price"}, "volume": {"$sum": "$quantity"}}}]
    truth = {d["_id"]: (d["trades"], *(Decimal(str(d[k])).normalize() for k in ("low", "high", "nav")), d["volume"])
             for d in db["transaction"].aggregate(pipeline, allowDiskUse=True)}
    ours = {s: (a.trades, a.low.normalize(), a.high.normalize(), a.nav.normalize(), a.volume)
            for s, a in state.snapshot().stocks.items()}
    differing = sorted(s for s in truth.keys() | ours.keys() if truth.get(s) != ours.get(s))
    return {"symbols": len(truth), "trades": sum(t[0] for t in truth.values()), "equal": not differing,
            "differing": differing[:10]}


def print_table(results: list[dict]) -> None:
    print(f"\nSTREAM_MODE={results[0].get('stream_mode', 'microbatch') if results else '?'}")
    print(f"\n{'CDC path @ rate':<24} {'achieved':>9} {'->Kafka p50':>11} {'p99':>7} {'->state p50':>11} {'p99':>7} "
          f"{'CDC CPU':>8} {'CDC RSS':>8} {'stand-in':>8} {'Kafka':>6} {'Spark':>6} {'bench':>6}")
    for result in results:
        for phase in result["phases"]:
            cpu = phase["resources"]
            cdc: dict[str, float] = next((v for k, v in cpu.items() if k.startswith("CDC")), {})
            mongo_cpu = cpu.get("MongoDB stand-in", {}).get("cpu_pct", 0)
            kafka_cpu = cpu.get("Kafka", {}).get("cpu_pct", 0)
            spark_cpu = cpu.get("Spark (JVM)", {}).get("cpu_pct", 0)
            # The bench's process: the load, the probes and the queries' Python side (it shares the cores).
            bench_cpu = next((v.get("cpu_pct", 0) for k, v in cpu.items() if k.startswith("bench")), 0)
            kafka, state = phase["kafka"], phase["state"]
            print(f"{phase['phase']:<24} {phase['achieved_per_s']:>9,} {_ms(kafka['p50_ms']):>11} {_ms(kafka['p99_ms']):>7} "
                  f"{_s(state['p50_s']):>11} {_s(state['p99_s']):>7} {cdc.get('cpu_pct', 0):>7.0f}% "
                  f"{cdc.get('rss_mib', 0):>5.0f} MiB {mongo_cpu:>7.0f}% {kafka_cpu:>5.0f}% {spark_cpu:>5.0f}% {bench_cpu:>5.0f}%")
        print(f"{'  exact against $group':<24} {result['exact']}")


def _ms(value: float | None) -> str:
    return f"{value:.0f} ms" if value is not None else "–"


def main(argv: list[str] | None = None) -> int:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m bench.cdc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", type=lambda text: text.split(","), default=["relay", "debezium"])
    parser.add_argument("--rates", type=lambda text: [int(v) for v in text.split(",")], default=[1000, 5000, 10000])
    parser.add_argument("--duration", type=float, default=30, help="seconds of load per rate")
    parser.add_argument("--hold", type=float, default=60, help="seconds of load at the last (highest) rate")
    parser.add_argument("--warm", type=float, default=180,
                        help="seconds of load at the first rate before the measured ones, reported apart; 0: none")
    parser.add_argument("--stream-mode", choices=STREAM_MODES, default=STREAM_MODES[0],
                        help="the queries that feed the state (default: the app's default)")
    args = parser.parse_args(argv)
    results = [run_path(mode, args) for mode in args.paths]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cdc.json").write_text(json.dumps(results, indent=1, default=str))
    print_table(results)
    print(f"\n[bench.cdc] results: {RESULTS / 'cdc.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
