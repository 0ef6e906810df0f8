"""``python -m bench`` (``make bench``): freshness and throughput of the whole path, against the
original design's pipeline, in one run on a local stack of its own.

Phases, each followed by a drain (every trade visible):
1. ours at the comparison rate, then at 1,000 trades/s (the freshness target);
2. ours at rising rates until freshness p99 passes 5 s or the load cannot keep the rate;
3. exactness: our aggregates against MongoDB's own aggregation over `transaction`; phases 1-3 run with the
   micro-batch query alone in this process (``STREAM_MODE=microbatch``), then again in the default mode
   with the job in a process of its own (record and live-ticks query) read as an app in reading mode does;
4. the original design (consumer -> one JSON file per message -> Spark file source) at the
   comparison rate, with its one-minute trigger, then with our trigger;
5. insert → pixel: the app served as ``make run`` serves it, on a stack of its own, watched in Chromium,
   idle and at 1,000 trades/s, with the CPU of every process (``bench/pixel.py``);
6. the CDC paths, our relay and Debezium's connector, each on a default stack of its own: insert → Kafka,
   insert → state, CPU and memory up to 10,000 trades/s held 60 s, exactness (``bench/cdc.py``).
Prints tables; writes ``bench/results/latest.json`` and ``latest.png`` (1-4), ``pixel.json`` (5), ``cdc.json`` (6).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from decimal import Decimal

import psutil

from bench import cdc, pixel
from bench.baseline import start_file_query
from bench.common import bench_settings, machine, stop_on_sigterm
from bench.load import LoadProcess, PacedLoad
from bench.probe import FreshnessProbe
from bench.report import plot, print_tables
from bench.resources import ResourceSampler
from pipeline.domain.state import MarketState
from pipeline.domain.stocks import NSE_STOCKS
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.sinks import mongo
from pipeline.sinks.live_feed import ReaderWithLiveTicks
from pipeline.sinks.reader import AggregateReader
from pipeline.spark.microbatch import MarketJob
from pipeline.spark.session import spark_session
from pipeline.waits import wait_until
from stack.local import LocalStack

RESULTS = PROJECT_ROOT / "bench" / "results"
SUSTAIN_P99_S = 5.0


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data_dir = PROJECT_ROOT / ".local" / "bench"
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.settings = bench_settings(self.data_dir)
        self.stack = LocalStack(self.settings)
        self.phases: list[dict] = []
        self.t0 = time.time()

    # -- helpers --------------------------------------------------------------------------------
    def _phase(self, name: str, pipeline: str, probe: FreshnessProbe, load: PacedLoad | LoadProcess, rate: int,
               duration_s: float, drain_s: float = 120.0) -> dict:
        print(f"[bench] {name}: {rate:,} trades/s for {duration_s:.0f} s", flush=True)
        self.resources.phase = name
        run = load.run(rate, duration_s)
        try:
            wait_until(lambda: probe.outstanding() == 0, timeout=drain_s, interval=0.1, what=f"{name}: all trades visible",
                       describe=lambda: f"{probe.outstanding():,} not yet visible")
            drained = True
        except TimeoutError:
            drained = False
        self.resources.phase = "idle"
        stats = probe.percentiles(run.started_at, run.ended_at + 1e-6)
        samples = probe.samples(run.started_at, run.ended_at + 1e-6)
        step = max(1, len(samples) // 600)  # the plot needs the shape, not every insert
        timeline = [[round(at - self.t0, 3), round(delay, 4)] for at, delay, _ in samples[::step]]
        phase = {"phase": name, "pipeline": pipeline, "rate_per_s": rate, "duration_s": duration_s,
                 "inserted": run.inserted, "achieved_per_s": round(run.achieved_per_s, 1),
                 "all_visible": drained, "freshness": asdict(stats), "resources": self.resources.summary(name),
                 "started_s": round(run.started_at - self.t0, 2), "ended_s": round(run.ended_at - self.t0, 2),
                 "timeline": timeline}
        self.phases.append(phase)
        p50, p99 = (f"{value:.3f}" if value is not None else "–" for value in (stats.p50_s, stats.p99_s))
        print(f"[bench]   p50 {p50} s, p99 {p99} s, achieved {run.achieved_per_s:,.0f}/s", flush=True)
        return phase

    # -- the run -----------------------------------------------------------------------------------
    def run(self) -> dict:
        args = self.args
        settings = self.stack.start()
        client = mongo.client(settings)
        transactions = client[settings.database]["transaction"]
        prices = {s.symbol: s.reference_price for s in NSE_STOCKS}
        spark = spark_session(settings)
        self.resources = ResourceSampler({
            "MongoDB stand-in": self.stack.services["mongo"].pid(), "Kafka": self.stack.services["kafka"].pid(),
            "CDC relay": self.stack.services["cdc-relay"].pid(), "bench + Spark driver (Python)": os.getpid()})
        for child in psutil.Process().children(recursive=True):  # the stack's JVMs are children too
            if "java" in child.name() and "org.apache.spark" in " ".join(child.cmdline()):
                self.resources.add("Spark (JVM)", child.pid)

        # 1-3: ours
        state = MarketState()
        job = MarketJob(settings, state, spark=spark).start()
        sustained = self._micro_batch_phases(settings, state, prices)
        exact = self._exact(client[settings.database], state)
        job.stop()

        # 3b: the same in the default mode (record + live ticks), the job in a process of its own
        realtime = self._realtime(settings, client, prices)

        # 4: the original design's pipeline at the comparison rate
        for label, trigger_s in (("original design, 1-minute trigger", 60.0), ("original design, our trigger", None)):
            if not args.skip_baseline:
                self._baseline(spark, settings, transactions, prices, label, trigger_s)

        spark.stop()
        self.resources.close()
        client.close()
        return {"sustained_per_s": sustained, "exact": exact, "phases": self.phases, **realtime}

    def _micro_batch_phases(self, settings: Settings, state: MarketState, prices: dict[str, float]) -> int | None:
        """Warm-up, the comparison rate, the 1,000/s target, then rate steps; returns the highest sustained.
        The query runs in this process, so the load runs in one of its own (up to 10,000 trades/s)."""
        probe = FreshnessProbe(state)
        load = LoadProcess(settings.effective_mongo_uri, settings.database, prices, probe.expect)
        self.resources.add("bench: load", load.pid)
        try:
            return self._micro_batch_steps(probe, load)
        finally:
            load.close()
            probe.close()

    def _micro_batch_steps(self, probe: FreshnessProbe, load: LoadProcess) -> int | None:
        args = self.args
        self._phase("warm-up", "ours", probe, load, 200, 5)
        self._phase(f"ours @ {args.compare_rate:,}/s", "ours", probe, load, args.compare_rate, args.duration)
        self._phase("ours @ 1,000/s (target)", "ours", probe, load, 1000, args.duration)
        sustained = None
        for rate in args.steps:
            phase = self._phase(f"ours @ {rate:,}/s (step)", "ours", probe, load, rate, args.step_duration)
            if not _sustained(phase, rate):
                break
            sustained = rate
        return sustained

    def _realtime(self, settings: Settings, client, prices: dict[str, float]) -> dict:
        """The default mode: the job (child process: record and live-ticks query) -> MongoDB and Kafka -> a reader
        with the live ticks -> MarketState, same probe."""
        rt_settings = settings.with_changes(stream_mode="realtime")
        log = open(self.data_dir / "logs" / "realtime-job.log", "ab")  # noqa: SIM115 - the child owns it
        job = subprocess.Popen([sys.executable, "-m", "pipeline", "job"], cwd=PROJECT_ROOT, stdout=log,
                               stderr=subprocess.STDOUT, env={**os.environ, **rt_settings.service_env()})
        state = MarketState()
        feed = ReaderWithLiveTicks(AggregateReader(rt_settings, state), rt_settings, state).start_in_background()
        transactions = client[settings.database]["transaction"]
        try:
            total = transactions.count_documents({})
            print(f"[bench] default mode: catching up with the {total:,} trades so far", flush=True)
            wait_until(lambda: state.snapshot().total_trades == total, timeout=600, interval=0.5,
                       what="the default-mode job caught up", describe=lambda: f"{state.snapshot().total_trades:,} of {total:,}")
            self.resources.add("Spark default-mode job (Python)", job.pid)
            for child in psutil.Process(job.pid).children(recursive=True):
                if "java" in child.name():
                    self.resources.add("Spark default-mode job (JVM)", child.pid)
            probe = FreshnessProbe(state)
            load = PacedLoad(transactions, prices, probe.expect, seed=3)
            self._phase(f"default mode @ {self.args.compare_rate:,}/s", "default mode", probe, load,
                        self.args.compare_rate, self.args.duration)
            self._phase("default mode @ 1,000/s (target)", "default mode", probe, load, 1000, self.args.duration)
            sustained = None
            for rate in self.args.steps:
                phase = self._phase(f"default mode @ {rate:,}/s (step)", "default mode", probe, load, rate,
                                    self.args.step_duration)
                if not _sustained(phase, rate):
                    break
                sustained = rate
            exact = self._exact(client[settings.database], state)
            probe.close()
            return {"sustained_realtime_per_s": sustained, "exact_realtime": exact}
        finally:
            feed.stop()
            job.terminate()
            job.wait(timeout=60)
            log.close()

    def _baseline(self, spark, settings: Settings, transactions, prices, label: str, trigger_s: float | None) -> dict:
        slug = "1min" if trigger_s else "ours"
        folder, checkpoint = self.data_dir / f"baseline-{slug}" / "files", self.data_dir / f"baseline-{slug}" / "checkpoint"
        ready = self.data_dir / f"baseline-{slug}" / "consumer-ready"
        folder.mkdir(parents=True)
        consumer = subprocess.Popen([sys.executable, "-m", "bench.baseline", settings.effective_kafka_bootstrap,
                                     settings.trades_topic, str(folder), str(ready)], cwd=PROJECT_ROOT)
        try:
            wait_until(ready.exists, timeout=60, what="baseline consumer assigned")
            self.resources.add("baseline consumer", consumer.pid)
            state = MarketState()
            query = start_file_query(spark, folder, checkpoint, state, frozenset(prices), trigger_s)
            # The one-minute clock starts with the query's first (empty) trigger: load from then on.
            wait_until(lambda: query.lastProgress is not None, timeout=60, what="the baseline query's first trigger")
            probe = FreshnessProbe(state)
            load = PacedLoad(transactions, prices, probe.expect, seed=2)
            phase = self._phase(label, "original design", probe, load, self.args.compare_rate,
                                self.args.baseline_duration if trigger_s else self.args.duration,
                                drain_s=(trigger_s or 0) * 2 + 120)
            probe.close()
            query.stop()
            phase["files"] = sum(1 for _ in folder.iterdir())
            return phase
        finally:
            consumer.terminate()
            consumer.wait(timeout=30)

    def _exact(self, db, state: MarketState) -> dict:
        """Our per-symbol figures against MongoDB's own aggregation over every inserted trade."""
        pipeline = [{"$group": {"_id": "$symbol", "trades": {"$sum": 1}, "low": {"$min": "$price"},
                                "high": {"$max": "$price"}, "volume": {"$sum": "$quantity"}}}]
        truth = {d["_id"]: (d["trades"], Decimal(str(d["low"])), Decimal(str(d["high"])), d["volume"])
                 for d in db["transaction"].aggregate(pipeline)}
        ours = {s: (a.trades, a.low.normalize(), a.high.normalize(), a.volume) for s, a in state.snapshot().stocks.items()}
        truth = {s: (t, lo.normalize(), hi.normalize(), v) for s, (t, lo, hi, v) in truth.items()}
        differing = sorted(s for s in truth.keys() | ours.keys() if truth.get(s) != ours.get(s))
        result = {"symbols": len(truth), "trades": sum(t[0] for t in truth.values()), "equal": not differing,
                  "differing": differing[:10]}
        print(f"[bench] exactness: {result}", flush=True)
        return result

    def close(self) -> None:
        self.stack.stop()


def _sustained(phase: dict, rate: int) -> bool:
    """Freshness p99 under 5 s, the rate kept and every trade seen."""
    p99 = phase["freshness"]["p99_s"]
    return phase["all_visible"] and p99 is not None and p99 < SUSTAIN_P99_S and phase["achieved_per_s"] >= 0.95 * rate


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare-rate", type=int, default=200, help="trades/s of the ours-vs-original comparison")
    parser.add_argument("--duration", type=float, default=30, help="seconds of load per phase")
    parser.add_argument("--baseline-duration", type=float, default=55,
                        help="seconds of load for the one-minute-trigger baseline (one trigger's worth)")
    parser.add_argument("--step-duration", type=float, default=15, help="seconds of load per rate step")
    parser.add_argument("--steps", type=lambda text: [int(v) for v in text.split(",")],
                        default=[2000, 5000, 10000, 15000, 20000], help="rates of the throughput steps")
    parser.add_argument("--skip-baseline", action="store_true", help="only our pipeline (for tuning runs)")
    parser.add_argument("--skip-pixel", action="store_true", help="leave out phase 5, insert → pixel")
    parser.add_argument("--skip-cdc", action="store_true", help="leave out phase 6, the CDC paths")
    parser.add_argument("--pixel-only", action="store_true",
                        help="phase 5 alone (`python -m bench.pixel`, with its options, runs it too)")
    return parser


def main(argv: list[str] | None = None) -> int:
    stop_on_sigterm()
    args = _parser().parse_args(argv)
    if not args.pixel_only:
        _pipeline_bench(args)
    if not args.skip_pixel:
        pixel.run(pixel.parser().parse_args([]))
    if not (args.skip_cdc or args.pixel_only):
        cdc.main([])
    return 0


def _pipeline_bench(args: argparse.Namespace) -> None:
    """Phases 1-4: prints the tables; a full run (not --skip-baseline) writes latest.json and latest.png."""
    bench = Bench(args)
    started = datetime.now(timezone.utc)
    try:
        result = bench.run()
    finally:
        bench.close()
    result.update(started_at=started.isoformat(timespec="seconds"), machine=machine(), args=vars(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.skip_baseline:  # a tuning run: keep the full run's results
        print_tables(result)
        return
    (RESULTS / "latest.json").write_text(json.dumps(result, default=str))
    plot(result, RESULTS / "latest.png")
    print_tables(result)
    print(f"\n[bench] results: {RESULTS / 'latest.json'}, plot: {RESULTS / 'latest.png'}")


if __name__ == "__main__":
    sys.exit(main())
