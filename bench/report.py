"""The benchmark's printed tables and its plot (freshness of every trade over time, rate steps)."""

from __future__ import annotations

from pathlib import Path

from bench.common import machine_line

COLOURS = {"ours": "#1f77b4", "default mode": "#2ca02c", "original design": "#d62728"}


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _ratio(theirs: float | None, mine: float | None) -> str:
    return f"{theirs / mine:.0f}x" if theirs and mine else "–"


def print_tables(result: dict) -> None:
    print(f"\n{machine_line(result['machine'])}")
    print(f"\n{'phase':<40} {'rate/s':>8} {'achieved':>9} {'trades':>8} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7} "
          f"{'max s':>7} {'all seen':>8}")
    for p in result["phases"]:
        f = p["freshness"]
        print(f"{p['phase']:<40} {p['rate_per_s']:>8,} {p['achieved_per_s']:>9,.0f} {f['trades']:>8,} {_s(f['p50_s']):>7} "
              f"{_s(f['p95_s']):>7} {_s(f['p99_s']):>7} {_s(f['max_s']):>7} {'yes' if p['all_visible'] else 'NO':>8}")
    for mode, sustained, exact in (("micro-batch", result["sustained_per_s"], result["exact"]),
                                   ("default mode", result.get("sustained_realtime_per_s"), result.get("exact_realtime"))):
        if exact is None:
            continue
        print(f"\n{mode}: highest sustained rate (p99 < 5 s, rate kept, every trade seen): "
              f"{f'{sustained:,} trades/s' if sustained else 'below the first step'}; exact final numbers: "
              f"{'yes' if exact['equal'] else 'NO'} ({exact['trades']:,} trades, {exact['symbols']} symbols, "
              "against MongoDB's own $group)")

    rate = result["args"]["compare_rate"]
    ours = {name: next((p for p in result["phases"] if p["phase"] == f"{name} @ {rate:,}/s"), None)
            for name in ("ours", "default mode")}
    print(f"\n{'comparison at ' + f'{rate:,}/s':<40} {'p50 s':>8} {'p99 s':>8}   original design / ours (p50, p99)")
    for p in result["phases"]:
        if p["pipeline"] != "original design" and p not in ours.values():
            continue
        f = p["freshness"]
        ratios = [f"{name}: {_ratio(f['p50_s'], mine['freshness']['p50_s'])}, {_ratio(f['p99_s'], mine['freshness']['p99_s'])}"
                  for name, mine in ours.items() if mine and p["pipeline"] == "original design"]
        print(f"{p['phase']:<40} {_s(f['p50_s']):>8} {_s(f['p99_s']):>8}   {'; '.join(ratios)}")

    print(f"\n{'resources (mean CPU %, 100 = one core; peak RSS MiB)':<58}")
    for p in result["phases"]:
        if p["resources"]:
            parts = ", ".join(f"{name} {r['cpu_pct']:.0f}% {r['rss_mib']:.0f} MiB" for name, r in p["resources"].items())
            print(f"  {p['phase']}: {parts}")


def plot(result: dict, path: Path) -> None:
    """Freshness of the inserted trades over the run (log scale), and the offered rate of each phase."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), height_ratios=[3, 1.4], sharex=True)
    for phase in result["phases"]:
        points = phase["timeline"]
        colour = COLOURS.get(phase["pipeline"], "#d62728")
        if points:
            top.scatter([p[0] for p in points], [max(p[1], 1e-3) for p in points], s=2, color=colour, alpha=0.5)
        top.axvspan(phase["started_s"], phase["ended_s"], color=colour, alpha=0.04)
        top.text(phase["started_s"], 200, phase["phase"], rotation=90, fontsize=6, va="top")
        bottom.step([phase["started_s"], phase["ended_s"]], [phase["rate_per_s"]] * 2, where="post", color=colour)
        bottom.plot([phase["started_s"], phase["ended_s"]], [phase["achieved_per_s"]] * 2, ":", color="black")
    top.set_yscale("log")
    top.set_ylim(0.01, 300)
    top.axhline(0.5, color="green", linestyle=":", linewidth=1)
    top.axhline(1.5, color="orange", linestyle=":", linewidth=1)
    top.set_ylabel("insert → in state (s)")
    top.set_title(f"Freshness of every trade (blue: micro-batch, green: default mode (record + live ticks), red: original design; "
                  f"dotted: targets 0.5 s / 1.5 s) — "
                  f"{result['machine']['cpus']} CPUs, {result['started_at']}", fontsize=8)
    bottom.set_ylabel("trades/s (offered; dotted: inserted)", fontsize=7)
    bottom.set_xlabel("seconds since the benchmark started")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
