"""The ledgers' phase of ``bench.pixel``: insert → the Pipeline page's rejected and late counts.

Beside the background load, a rejected message (a negative price) and a late trade (ten minutes behind its
symbol) are inserted in turn (``bench.probe_trades.LedgerProbes``); ``bench/pixel.js`` notes when each
count first shows on the page, so the k-th probe of a ledger is on screen once its count reaches the count
before the phase plus k.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from bench.browser import Viewer
from bench.pixel_report import delays, stats
from bench.probe_trades import LedgerProbes
from pipeline.waits import wait_until

if TYPE_CHECKING:
    from bench.pixel import PixelBench

LEDGERS = ("rejected", "late")  # in the order of ELEMENTS["pipeline"] (bench.browser)
SHOWN_S = 60


def counts_seen(viewer: Viewer) -> dict[str, dict[str, float]]:
    """Per ledger: its count on screen (zero-padded text) -> when it first showed."""
    return dict(zip(LEDGERS, viewer.seen().values(), strict=True))


def ledger_phase(bench: PixelBench, name: str, rate: int, probes: LedgerProbes) -> dict:
    interval_s = bench.args.probe_interval * 2
    bench.say(f"{name}: {bench.args.duration:.0f} s, a rejected or late trade every ~{interval_s:g} s")
    resources = bench.sampler()
    resources.phase = "settle"
    [viewer] = bench.open_viewers(["pipeline"])
    wait_until(lambda: all(counts_seen(viewer).values()), timeout=SHOWN_S, interval=0.2, what="the ledgers' counts")
    probes.counts = {ledger: int(max(seen)) for ledger, seen in counts_seen(viewer).items()}
    stop = threading.Event()
    resources.phase = name
    with ThreadPoolExecutor(1, thread_name_prefix="load") as pool:
        loading = pool.submit(bench.load.run, rate, bench.args.duration, stop)
        try:
            probes.run(bench.args.duration, interval_s, stop)
        finally:
            stop.set()
        run = loading.result()
    resources.phase = "settle"
    last = {ledger: inserted[-1][0] for ledger, inserted in probes.inserted.items() if inserted}
    try:  # the last probes get their chance to show
        wait_until(lambda: all(max(seen) >= last.get(ledger, "") for ledger, seen in counts_seen(viewer).items()),
                   timeout=10, interval=0.2, what="the last ledger probes on screen")
    except TimeoutError:
        pass  # reported as not shown
    seen = counts_seen(viewer)
    elements = {element: stats(*delays(probes.inserted[ledger], seen[ledger]))
                for element, ledger in zip(viewer.seen(), LEDGERS, strict=True)}
    for element, figures in elements.items():
        bench.say(f"  {element}: p50 {figures['p50_s']} s, p99 {figures['p99_s']} s, not shown {figures['not_shown']}")
    return {"phase": name, "viewers": ["pipeline"], "rate_per_s": rate, "duration_s": bench.args.duration,
            "achieved_per_s": round(run.achieved_per_s, 1), "elements": elements, "resources": resources.summary(name)}
