"""``python -m bench.app_probe SYMBOL LOG streamlit-arguments…``: ``streamlit`` as ``python -m streamlit`` runs
it, with the app's MarketState noting when each trade of the probe symbol reached it.

Run by :mod:`bench.pixel` as the app's process, so "insert → state" is measured in the very state the pages
draw from, not in a second reader. Each probe price is noted once, after the update that took it returned
(the version had moved, the pages' change feed was woken): ``<epoch s> <live|record> <price>`` per line.
Only the probe symbol's ticks are looked at: the cost is a loop over each update's ticks.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from pipeline.domain.snapshot import Tick
from pipeline.domain.state import MarketState


def instrument(symbol: str, log_path: str) -> None:
    out = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the life of the process
    noted: set[str] = set()
    lock = threading.Lock()

    def note(ticks: Iterable[Tick], source: str) -> None:
        at = time.time()
        for tick in ticks:
            if tick.symbol == symbol:
                key = f"{tick.price:.2f}"
                with lock:
                    if key not in noted:
                        noted.add(key)
                        out.write(f"{at:.6f} {source} {key}\n")

    apply_live: Callable[..., None] = MarketState.apply_live
    apply_batch: Callable[..., None] = MarketState.apply_batch

    def live(self: MarketState, ticks: Iterable[Any], *args: Any, **kwargs: Any) -> None:
        ticks = list(ticks)  # iterated twice: by the state, then here
        apply_live(self, ticks, *args, **kwargs)
        note((live_tick.tick for live_tick in ticks), "live")

    def batch(self: MarketState, result: Any) -> None:
        apply_batch(self, result)
        note(result.ticks, "record")

    setattr(MarketState, "apply_live", live)  # noqa: B010 - mypy refuses assigning to a method
    setattr(MarketState, "apply_batch", batch)  # noqa: B010


def main() -> None:
    symbol, log_path, *streamlit_args = sys.argv[1:]
    instrument(symbol, log_path)
    from streamlit.web.cli import main as streamlit_main

    sys.argv = ["streamlit", *streamlit_args]
    streamlit_main(prog_name="streamlit")


if __name__ == "__main__":
    main()
