"""Figures and printed tables of ``python -m bench.pixel``: insert → pixel per element, CPU per process."""

from __future__ import annotations

import json
import math

import numpy as np
import psutil

from bench.common import WARMING, machine_line
from bench.resources import STOLEN
from pipeline.settings import PROJECT_ROOT

# The processes of the stack as `make run` starts it (the app hosts the Spark queries); the rest is the
# bench's own (its load and probes, the browser).
STACK = ("app (Streamlit, Spark driver)", "app's Spark (JVM)", "MongoDB stand-in", "Kafka", "CDC relay", "archive")
SHORT = {"app (Streamlit, Spark driver)": "app", "app's Spark (JVM)": "Spark JVM", "MongoDB stand-in": "stand-in",
         "Kafka": "Kafka", "CDC relay": "relay", "archive": "archive"}
TARGETS = ("targets: pixel p50 ≤ 0.3 s, p99 ≤ 0.6 s; state p99 ≤ 0.2 s; ledgers on screen ≤ 2 s; idle ≤ 10 % "
           "(1 viewer), ≤ +3 % per extra viewer; 1,000/s with 5 viewers ≤ 200 %")


def delays(probes: list[tuple[str, float]], seen: dict[str, float]) -> tuple[list[float], int]:
    """Insert → shown of each probe, and how many were never shown. A probe is shown from the first time
    its price or a later probe's was (probe prices rise, and only probes trade the probe symbol)."""
    found: list[float] = []
    unseen = 0
    earliest = math.inf
    for key, inserted_at in reversed(probes):
        earliest = min(earliest, seen.get(key, math.inf))
        if earliest == math.inf:
            unseen += 1
        else:
            found.append(earliest - inserted_at)
    return found, unseen


def stats(found: list[float], unseen: int) -> dict:
    if not found:
        return {"samples": 0, "p50_s": None, "p95_s": None, "p99_s": None, "max_s": None, "not_shown": unseen}
    p50, p95, p99 = (round(float(v), 3) for v in np.percentile(found, [50, 95, 99]))
    return {"samples": len(found), "p50_s": p50, "p95_s": p95, "p99_s": p99, "max_s": round(max(found), 3),
            "not_shown": unseen}


STAGES = ("insert → on trades topic (relay)", "→ tick on live topic (Spark)", "→ polled by the app's feed",
          "→ in the app's state")


def stage_delays(probes: list[tuple[str, float]], stages: dict[str, tuple[float, ...]]) -> dict[str, dict]:
    """Insert → state of the probes that came by the live ticks, cut where Kafka appended the trade and its
    live tick (the messages' times, ms: the bench stamps both topics with the broker's append time) and where
    the app's feed polled the tick."""
    cuts: list[list[float]] = [[] for _ in STAGES]
    for key, inserted_at in probes:
        if key in stages:
            times = (inserted_at, *stages[key])
            for cut, earlier, later in zip(cuts, times[:-1], times[1:], strict=True):
                cut.append(later - earlier)
    return {name: stats(cut, 0) for name, cut in zip(STAGES, cuts, strict=True)}


def process_groups(root_pid: int) -> list[tuple[str, int]]:
    """Chromium's processes and Playwright's driver among ``root_pid``'s descendants."""
    found = []
    for child in psutil.Process(root_pid).children(recursive=True):
        try:
            name, cmdline = child.name(), " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "chrom" in name:
            found.append(("Chromium", child.pid))
        elif "playwright" in cmdline and "node" in name:
            found.append(("Playwright driver", child.pid))
    return found


def cpu_groups(resources: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean CPU % per stack process, the stack's sum, Chromium's sum and the bench's own."""
    cpu = {name: figures["cpu_pct"] for name, figures in resources.items()}
    groups = {SHORT[name]: cpu.get(name, 0.0) for name in STACK}
    groups["stack"] = sum(cpu.get(name, 0.0) for name in STACK)
    groups["Chromium"] = sum(value for name, value in cpu.items() if name.startswith("Chromium"))
    groups["bench"] = sum(value for name, value in cpu.items() if name.startswith(("bench", "Playwright")))
    groups["stolen"] = cpu.get(STOLEN, 0.0)
    return {name: round(value, 1) for name, value in groups.items()}


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def print_tables(result: dict) -> None:
    print(f"\n{machine_line(result['machine'])}")
    print(f"\ninsert → on screen (Chromium), probe trades of {result['probe_symbol']} beside the background load; "
          f"STREAM_MODE={result.get('stream_mode', '?')}")
    print(f"{'phase':<28} {'element':<40} {'probes':>6} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7} {'max s':>7} "
          f"{'not shown':>9}")
    for phase in result["phases"]:
        for element, f in phase.get("elements", {}).items():
            print(f"{phase['phase']:<28} {element:<40} {f['samples']:>6} {_s(f['p50_s']):>7} {_s(f['p95_s']):>7} "
                  f"{_s(f['p99_s']):>7} {_s(f['max_s']):>7} {f['not_shown']:>9}")
    for phase in result["phases"]:
        for stage, f in phase.get("state_stages", {}).items():
            print(f"{phase['phase']:<28} {'  state: ' + stage:<40} {f['samples']:>6} {_s(f['p50_s']):>7} "
                  f"{_s(f['p95_s']):>7} {_s(f['p99_s']):>7} {_s(f['max_s']):>7}")
    for phase in result["phases"]:
        if "via_live_ticks" in phase:
            print(f"  {phase['phase']}: {phase['achieved_per_s']:,.0f} trades/s inserted, {phase['via_live_ticks']} of "
                  f"{phase['probes']} probes reached the app's state by the live ticks first (else the micro-batch)")
    _main_bench_state()
    names = [*SHORT.values(), "stack", "Chromium", "bench", "stolen"]
    print("\nCPU (mean %, 100 = one core; stolen: by the host from this VM)")
    print(f"{'phase':<28} " + " ".join(f"{name:>9}" for name in names))
    by_phase = {}
    for phase in result["phases"]:
        groups = cpu_groups(phase["resources"])
        by_phase[phase["phase"]] = groups
        print(f"{phase['phase']:<28} " + " ".join(f"{groups.get(name, 0.0):>9.1f}" for name in names))
    _per_viewer(result, by_phase)
    print(f"\n{TARGETS}")


def _main_bench_state() -> None:
    """The main bench's insert → state of every trade at 1,000/s in the default mode (another run), beside."""
    path = PROJECT_ROOT / "bench" / "results" / "latest.json"
    try:
        result = json.loads(path.read_text())
        # "real-time mode" in results written before the default mode was named so
        phase = next(p for p in result["phases"] if p["phase"] in ("default mode @ 1,000/s (target)",
                                                                    "real-time mode @ 1,000/s (target)"))
    except (OSError, ValueError, KeyError, StopIteration):
        return
    f = phase["freshness"]
    print(f"  for comparison, `python -m bench` of {result.get('started_at', '?')}: insert → state of every trade, "
          f"default mode at 1,000/s (a reader of the job's live ticks): p50 {_s(f['p50_s'])} s, p99 {_s(f['p99_s'])} s")


def _per_viewer(result: dict, by_phase: dict[str, dict[str, float]]) -> None:
    """The CPU per open viewer (a Streamlit session), from the phases' differences: the stack's, and the
    app process's alone."""
    phases = [p["phase"] for p in result["phases"]]
    idle = [by_phase[name] for name in phases if name.startswith("idle")]
    loaded = [by_phase[name] for name in phases if not name.startswith("idle") and "Pipeline" not in name
              and WARMING not in name]
    print()
    for part in ("stack", "app") if len(idle) == 3 else ():
        print(f"idle, {part}: {idle[1][part]:.1f} % with 1 viewer "
              f"({idle[1][part] - idle[0][part]:+.1f} % for it), {(idle[2][part] - idle[1][part]) / 4:+.1f} % per extra "
              f"viewer (5 viewers: {idle[2][part]:.1f} %)")
    for part in ("stack", "app") if len(loaded) == 3 else ():
        print(f"loaded, {part}: {loaded[0][part]:.1f} % with 1 Market viewer, {loaded[1][part]:.1f} % with 1 Stock "
              f"viewer, {loaded[2][part]:.1f} % with 5 viewers ({(loaded[2][part] - loaded[0][part]) / 4:+.1f} % per "
              "extra viewer)")
