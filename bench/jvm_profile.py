"""Where a JVM's CPU goes: record a Flight Recorder file of a running JVM and summarise it.

    python -m bench.jvm_profile record PID SECONDS FILE.jfr   # e.g. the app's Spark JVM under load
    python -m bench.jvm_profile summary FILE.jfr

The summary gives each thread family's CPU (JFR's per-thread CPU load, % of one core; the JIT's compiler
threads included, which execution samples never show), how many execution samples were running interpreted
code (a method not compiled yet, or one HotSpot will not compile: over 8,000 bytes of bytecode), the methods
sampled most, and the JIT's compilations in the window. Uses the JDK's own ``jcmd`` and ``jfr`` tools.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
from collections import Counter
from datetime import datetime
from pathlib import Path

from pipeline.waits import wait_until

THREAD_NUMBERS = re.compile(r"\d+")


def record(pid: int, seconds: float, path: Path) -> None:
    """A recording with the JDK's "profile" settings (execution samples every 10-20 ms), waited for."""
    path.unlink(missing_ok=True)
    subprocess.run(["jcmd", str(pid), "JFR.start", "name=bench", "settings=profile", f"duration={int(seconds)}s",
                    f"filename={path.resolve()}"], check=True, capture_output=True, text=True)
    # The JVM writes the file when the recording ends, and then no longer lists it.
    wait_until(lambda: path.exists() and not _recording(pid), timeout=seconds + 60, interval=1.0,
               what=f"the recording {path}")


def _recording(pid: int) -> bool:
    listed = subprocess.run(["jcmd", str(pid), "JFR.check"], capture_output=True, text=True).stdout
    return "name=bench" in listed


def events(path: Path, name: str) -> list[dict]:
    shown = subprocess.run(["jfr", "print", "--json", "--events", name, str(path)], check=True,
                           capture_output=True, text=True).stdout
    return json.loads(shown)["recording"]["events"]


def thread_cpu(loads: list[dict], cores: int, period_s: float = 10.0) -> Counter[str]:
    """% of one core per thread family (names without their numbers) over the recording. JFR reports each
    thread's load (a share of the machine) for the time since its previous report: every ``period_s``, and
    when the thread ends."""
    seconds: Counter[str] = Counter()
    last: dict[int, float] = {}
    times = [_epoch_s(event["values"]["startTime"]) for event in loads]
    start = min(times, default=0.0)
    for event, at in sorted(zip(loads, times, strict=True), key=lambda pair: pair[1]):
        values, thread = event["values"], event["values"]["eventThread"]
        since = last.get(thread["osThreadId"], max(start, at - period_s))
        last[thread["osThreadId"]] = at
        name = THREAD_NUMBERS.sub("N", thread["javaName"] or thread["osName"] or "?")
        seconds[name] += (values["user"] + values["system"]) * cores * (at - since)
    window = max(times, default=0.0) - start
    return Counter({name: 100 * used / window for name, used in seconds.items()}) if window else Counter()


def _epoch_s(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def execution(samples: list[dict]) -> tuple[Counter[str], Counter[str]]:
    """How each sampled top frame ran (interpreted, JIT compiled, inlined), and the methods sampled most."""
    kinds: Counter[str] = Counter()
    methods: Counter[str] = Counter()
    for sample in samples:
        trace = sample["values"]["stackTrace"]
        if not trace or not trace["frames"]:
            continue
        top = trace["frames"][0]
        kinds[top.get("type") or "?"] += 1
        methods[f"{top['method']['type']['name'].replace('/', '.')}.{top['method']['name']} ({top.get('type')})"] += 1
    return kinds, methods


def compilations(statistics: list[dict]) -> str:
    if len(statistics) < 2:
        return "no compiler statistics in the recording"
    first, last = statistics[0]["values"], statistics[-1]["values"]
    return f"{last['compileCount'] - first['compileCount']} compilations (of {last['compileCount']} since the start)"


def summary(path: Path, cores: int, top: int = 15) -> str:
    lines = [f"{path}: CPU by thread (% of one core)"]
    cpu = thread_cpu(events(path, "jdk.ThreadCPULoad"), cores)
    lines += [f"{share:6.1f}  {thread[:90]}" for thread, share in cpu.most_common(top)]
    kinds, methods = execution(events(path, "jdk.ExecutionSample"))
    sampled = sum(kinds.values()) or 1
    lines.append("top frames: " + ", ".join(f"{kind} {100 * count / sampled:.0f} %" for kind, count in kinds.most_common()))
    lines += [f"{100 * count / sampled:6.1f}  {method[:110]}" for method, count in methods.most_common(top)]
    lines.append("JIT: " + compilations(events(path, "jdk.CompilerStatistics")))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.jvm_profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    recording = commands.add_parser("record", help="record a running JVM")
    recording.add_argument("pid", type=int)
    recording.add_argument("seconds", type=float)
    recording.add_argument("file", type=Path)
    summarising = commands.add_parser("summary", help="summarise a recording")
    summarising.add_argument("file", type=Path)
    summarising.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    try:
        if args.command == "record":
            record(args.pid, args.seconds, args.file)
            print(args.file)
        else:
            print(summary(args.file, args.cores))
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:  # no such JVM, no JDK tools, no file
        said = (exc.stderr or exc.stdout or "").strip() if isinstance(exc, subprocess.CalledProcessError) else str(exc)
        raise SystemExit(f"{parser.prog}: {said.splitlines()[0] if said else exc}") from None


if __name__ == "__main__":
    main()
