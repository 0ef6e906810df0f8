"""``python -m bench.pixel`` (and the last part of ``make bench``): insert → pixel, as a person sees it.

A local stack of its own (``.local/bench-pixel``), the app served as ``make run`` serves it (default stream
mode, its Spark queries in its process), and viewers in Debian's Chromium. Beside a paced background load
on every other symbol, one probe trade of ASIANPAINT is inserted every ~0.25 s, each at a price no trade
ever had (₹10.00, ₹10.01, … far below any other symbol). ``bench/pixel.js``, in each page, notes when each
price first reached the screen: written into the pushed parts (Market table, Stock figures, latest trades and
the live strip's forming candle: ``ui/push.js``), or carried by the candle chart's data and then drawn by the
chart (the 1-minute candle). The app's own MarketState notes when it took each probe (``bench/app_probe.py``).

A probe counts as shown from the first moment its price, or a later probe's, is on screen: the screen
then shows a state that includes it (a page that redraws less often than probes come skips prices).

Phases: idle (no trades) with 0, 1 and 5 viewers, then 1,000 trades/s with one Market viewer, one Stock
viewer, five viewers (3 Market, 2 Stock) and one Pipeline viewer (its ledgers: ``bench.pixel_ledgers``); CPU
of every process throughout. Prints tables; writes
``bench/results/pixel.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from pymongo import MongoClient

from bench.appserver import AppServer
from bench.browser import ELEMENTS, Viewer, Viewers
from bench.common import WARMING, bench_settings, machine, stamp_append_time, stop_on_sigterm
from bench.load import LoadRun, PacedLoad
from bench.pixel_ledgers import ledger_phase
from bench.pixel_report import STACK, delays, print_tables, process_groups, stage_delays, stats
from bench.probe_trades import PROBE_SYMBOL, LedgerProbes, ProbeTrades
from bench.resources import ResourceSampler
from pipeline.domain.stocks import NSE_STOCKS
from pipeline.settings import PROJECT_ROOT
from pipeline.sinks import mongo
from pipeline.waits import wait_until
from stack.local import LocalStack

FIVE = ["market", "stock", "market", "stock", "market"]
LIVE_GRACE_S = 300  # from the start: Spark starting (~60-120 s here) and its first live ticks
SHOWN_S = 60  # deadline for a probe to be on every viewer's screen before a phase (pages opening, Spark warm)


class PixelBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data_dir = PROJECT_ROOT / ".local" / "bench-pixel"
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.stack = LocalStack(bench_settings(self.data_dir))
        self.phases: list[dict] = []
        self.app: AppServer | None = None
        self.viewers: Viewers | None = None
        self.resources: ResourceSampler | None = None
        self.client: MongoClient | None = None
        self.t0 = time.monotonic()

    def run(self) -> dict:
        settings = self.stack.start()
        stamp_append_time(settings, settings.trades_topic, settings.live_topic)  # the stages of insert → state
        self.stream_mode = settings.stream_mode
        self.client = client = mongo.client(settings)
        transactions = client[settings.database]["transaction"]
        self.probes = ProbeTrades(transactions)
        prices = {s.symbol: s.reference_price for s in NSE_STOCKS if s.symbol != PROBE_SYMBOL}
        self.load = PacedLoad(transactions, prices, lambda *_: None, seed=5)
        self.app = AppServer(settings, self.data_dir, PROBE_SYMBOL)
        self.app.wait_ready()
        self.resources = ResourceSampler({
            "app (Streamlit, Spark driver)": self.app.pid, "MongoDB stand-in": self.stack.services["mongo"].pid(),
            "Kafka": self.stack.services["kafka"].pid(), "CDC relay": self.stack.services["cdc-relay"].pid(),
            "archive": self.stack.services["archive"].pid(), "bench (load, probes, Playwright)": os.getpid()})
        self.viewers = Viewers(self.app.url, PROBE_SYMBOL)
        self._warm_up()
        rate = self.args.rate
        if self.args.warm_load:  # what a viewer sees in the first minutes, and a settled JVM for what follows
            self._load_phase(f"{rate:,}/s, Market, {WARMING} {self.args.warm_load:.0f} s", ["market"], rate,
                             self.args.warm_load)
        for name, kinds in (("idle, 0 viewers", []), ("idle, 1 viewer (Market)", ["market"]),
                            (f"idle, {len(FIVE)} viewers", FIVE)):
            self._idle_phase(name, kinds)
        for name, kinds in ((f"{rate:,}/s, 1 viewer (Market)", ["market"]),
                            (f"{rate:,}/s, 1 viewer (Stock)", ["stock"]),
                            (f"{rate:,}/s, {len(FIVE)} viewers", FIVE)):
            self._load_phase(name, kinds, rate)
        self.phases.append(ledger_phase(self, f"{rate:,}/s, 1 viewer (Pipeline)", rate,
                                        LedgerProbes(transactions, late_symbol=next(iter(prices)))))
        return {"probe_symbol": PROBE_SYMBOL, "stream_mode": self.stream_mode, "phases": self.phases}

    # -- phases -----------------------------------------------------------------------------------
    def _warm_up(self) -> None:
        """The first page view starts the app's queries; warm until a probe reaches the state by the live
        path and every element of a Market and a Stock viewer (Spark compiled, the symbol's live ticks shown)."""
        self.say("warming up: the app's Spark queries start with the first page view …")
        viewers = self.open_viewers(["market", "stock"])
        stop = threading.Event()
        with ThreadPoolExecutor(1, thread_name_prefix="warm-up-load") as pool:
            loading = pool.submit(self.load.run, 200, 3600, stop)
            try:
                wait_until(lambda: self._warm(viewers), timeout=self.args.warm_up_timeout, interval=0.5,
                           what="a probe on every viewer's screen (by the live ticks, in the default mode)")
                stop.wait(self.args.settle)  # a few more seconds of load: code paths warm
            finally:
                stop.set()
            loading.result()  # raises what the load raised
        self._add_processes()

    def _warm(self, viewers: list[Viewer]) -> bool:
        """Whether a new probe reaches every viewer's screen; in the default mode also by the live ticks,
        unless they have brought none for ``LIVE_GRACE_S`` (then the run goes on and reports it)."""
        key = self.probes.insert()
        if not self._shown(viewers, key, timeout_s=5):
            return False
        if self.stream_mode != "realtime" or any(source == "live" for _, source in self.app_state().values()):
            return True
        if time.monotonic() - self.t0 < LIVE_GRACE_S:
            return False
        self.say(f"no probe has come by the live ticks in {LIVE_GRACE_S} s: measuring what the app shows anyway")
        return True

    def _idle_phase(self, name: str, kinds: list[str]) -> None:
        self.say(name)
        resources = self.sampler()
        resources.phase = "settle"
        viewers = self.open_viewers(kinds)
        self._shown(viewers, self.probes.insert(), SHOWN_S, required=True)  # live pages; the phase's last trade
        settled_s = self._settle()  # the catch-up after the load, the trade and the pages opening is not idle
        resources.phase = name
        time.sleep(self.args.idle_duration)  # the measuring window itself
        resources.phase = "settle"
        self.phases.append({"phase": name, "viewers": kinds, "rate_per_s": 0, "duration_s": self.args.idle_duration,
                            "settled_after_s": settled_s, "resources": resources.summary(name)})

    def _settle(self) -> float | None:
        """Until the stack's CPU is steady (after a load the record's last batches and the JVMs' compiling go
        on for a while, and are not idle): seconds it took, None if not within ``--settle-timeout``."""
        window = max(2, round(self.args.settle))
        settled = self.sampler().wait_steady(STACK, window, self.args.settle_timeout)
        self.say(f"  the stack's CPU steady after {settled:.0f} s" if settled is not None else
                 f"  the stack's CPU not steady after {self.args.settle_timeout:.0f} s: measuring anyway")
        return settled

    def _load_phase(self, name: str, kinds: list[str], rate: int, duration: float | None = None) -> None:
        duration = duration or self.args.duration
        self.say(f"{name}: {duration:.0f} s, a probe every ~{self.args.probe_interval:g} s")
        resources = self.sampler()
        resources.phase = "settle"
        viewers = self.open_viewers(kinds)
        self._shown(viewers, self.probes.insert(), SHOWN_S, required=True)
        stop = threading.Event()
        resources.phase = name
        with ThreadPoolExecutor(1, thread_name_prefix="load") as pool:
            loading = pool.submit(self.load.run, rate, duration, stop)
            try:
                probes = self.probes.run(duration, self.args.probe_interval, stop)
            finally:
                stop.set()
            run = loading.result()
        resources.phase = "settle"
        if probes:
            self._shown(viewers, probes[-1][0], timeout_s=10)  # the last probes get their chance to show
        self.phases.append(self._summary(name, kinds, rate, run, probes, viewers) | {"duration_s": duration})

    def _summary(self, name: str, kinds: list[str], rate: int, run: LoadRun, probes: list[tuple[str, float]],
                 viewers: list[Viewer]) -> dict:
        state = self.app_state()
        elements: dict[str, dict] = {"app state (in the app)": stats(*delays(probes, {k: at for k, (at, _) in state.items()}))}
        pooled: dict[str, tuple[list[float], int]] = {}
        for viewer in viewers:
            for element, seen in viewer.seen().items():
                found, unseen = delays(probes, seen)
                before = pooled.get(element, ([], 0))
                pooled[element] = (before[0] + found, before[1] + unseen)
        elements.update({element: stats(*pooled[element]) for kind in ("market", "stock") for element in ELEMENTS[kind]
                         if element in pooled})
        live = sum(1 for key, _ in probes if state.get(key, (0.0, ""))[1] == "live")
        summary = {"phase": name, "viewers": kinds, "rate_per_s": rate, "duration_s": self.args.duration,
                   "achieved_per_s": round(run.achieved_per_s, 1), "probes": len(probes), "via_live_ticks": live,
                   "elements": elements, "state_stages": stage_delays(probes, self.app_stages()),
                   "resources": self.sampler().summary(name)}
        self.say(f"  {run.achieved_per_s:,.0f} trades/s inserted; {live} of {len(probes)} probes reached the app's "
                  "state by the live ticks first")
        for element, figures in elements.items():
            self.say(f"  {element}: p50 {figures['p50_s']} s, p99 {figures['p99_s']} s, not shown {figures['not_shown']}")
        return summary

    # -- helpers ----------------------------------------------------------------------------------
    def say(self, message: str) -> None:
        print(f"[pixel +{time.monotonic() - self.t0:.0f}s] {message}", flush=True)

    def app_state(self) -> dict[str, tuple[float, str]]:
        assert self.app is not None
        return self.app.state_seen()

    def app_stages(self) -> dict[str, tuple[float, ...]]:
        assert self.app is not None
        return self.app.live_stages()

    def sampler(self) -> ResourceSampler:
        assert self.resources is not None
        return self.resources

    def open_viewers(self, kinds: list[str]) -> list[Viewer]:
        assert self.viewers is not None
        viewers = self.viewers.set(kinds)
        self._add_processes()
        return viewers

    def _shown(self, viewers: list[Viewer], key: str, timeout_s: float, required: bool = False) -> bool:
        """Whether ``key`` (or a later probe) is on every viewer's screen in every element within ``timeout_s``."""
        def shown() -> bool:
            return all(any(seen_key >= key for seen_key in seen) for viewer in viewers
                       for seen in viewer.seen().values())

        try:
            wait_until(shown, timeout=timeout_s, interval=0.2, what=f"probe ₹{key} on every viewer's screen")
            return True
        except TimeoutError:
            if required:
                raise
            return False

    def _add_processes(self) -> None:
        """The app's Spark JVM, Chromium's processes and Playwright's driver, as they appear."""
        assert self.app is not None
        known = {process.pid for process in self.sampler().processes.values()}
        found = [("app's Spark (JVM)", pid) for pid in self.app.jvm_pids()]
        found += [(f"{group} {pid}", pid) for group, pid in process_groups(os.getpid())]
        for name, pid in found:
            if pid not in known:
                try:
                    self.sampler().add(name, pid)
                except Exception:  # noqa: BLE001 - a process that ended meanwhile is not sampled
                    pass

    def close(self) -> None:
        """Everything this run started, in reverse order, also after a failure or Ctrl-C."""
        for step in (self.viewers and self.viewers.close, self.app and self.app.stop,
                     self.resources and self.resources.close, self.client and self.client.close, self.stack.stop):
            if step:
                try:
                    step()
                except Exception as exc:  # noqa: BLE001 - the next step must still run
                    print(f"[pixel] cleanup: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.pixel", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=1000, help="trades/s of background load in the loaded phases")
    parser.add_argument("--duration", type=float, default=30, help="seconds of each loaded phase")
    parser.add_argument("--idle-duration", type=float, default=15, help="seconds of each idle phase's measurement")
    parser.add_argument("--probe-interval", type=float, default=0.25, help="mean seconds between probe trades")
    parser.add_argument("--settle", type=float, default=5,
                        help="seconds between opening viewers and measuring; before an idle phase, the window in which "
                             "the stack's CPU must be steady")
    parser.add_argument("--settle-timeout", type=float, default=120,
                        help="seconds an idle phase waits at most for the stack's CPU to be steady")
    parser.add_argument("--warm-load", type=float, default=240,
                        help="seconds of load with a Market viewer right after the start, measured as a phase of its "
                             "own (the JVM compiling), before the idle and loaded phases; 0: none")
    parser.add_argument("--warm-up-timeout", type=float, default=400,
                        help="seconds for the app's Spark queries to start and a probe to reach the screen")
    return parser


def run(args: argparse.Namespace) -> dict:
    """The whole measurement; prints the tables and writes ``bench/results/pixel.json``."""
    bench = PixelBench(args)
    started = datetime.now(timezone.utc)
    try:
        result = bench.run()
    finally:
        bench.close()
    result.update(started_at=started.isoformat(timespec="seconds"), machine=machine(), args=vars(args))
    results = PROJECT_ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "pixel.json").write_text(json.dumps(result, indent=1, default=str))
    print_tables(result)
    print(f"\n[pixel] results: {results / 'pixel.json'}")
    return result


def main(argv: list[str] | None = None) -> int:
    stop_on_sigterm()
    run(parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
