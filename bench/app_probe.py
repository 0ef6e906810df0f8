"""``python -m bench.app_probe SYMBOL LOG streamlit-arguments…``: ``streamlit`` as ``python -m streamlit`` runs
it, with the app's MarketState noting when each trade of the probe symbol reached it.

Run by :mod:`bench.pixel` as the app's process, so "insert → state" is measured in the very state the pages
draw from, not in a second reader. Each probe price is noted once, after the update that took it returned
(the version had moved, the pages' change feed was woken): ``<epoch s> <live|record> <price>`` per line.
Only the probe symbol's ticks are looked at: the cost is a loop over each update's ticks.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from pipeline.domain.snapshot import Tick
from pipeline.domain.state import MarketState
from pipeline.sinks.live_feed import LiveFeed


class ProbeNotes:
    """The log of when each probe price reached the state (and, by the live ticks, its two message times and
    when the feed polled it)."""

    def __init__(self, symbol: str, log_path: str) -> None:
        self.symbol = symbol
        self.key_bytes = symbol.encode()
        self.out = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the life of the process
        self.noted: set[str] = set()
        self.sent: dict[str, tuple[float, float]] = {}  # probe price -> (its live tick's message time, polled at)
        self.lock = threading.Lock()

    def messages(self, messages: list[Any]) -> None:
        """The live topic's messages a poll brought: their times."""
        polled_at = time.time()
        for message in messages:
            value = message.value()  # librdkafka's messages (the feed's consumer): methods, not fields
            if message.key() == self.key_bytes and b'"reject"' not in value:
                self.sent[f"{Decimal(json.loads(value)['price']):.2f}"] = (message.timestamp()[1] / 1000, polled_at)

    def ticks(self, ticks: Iterable[Tick], source: str) -> None:
        at = time.time()
        for tick in ticks:
            if tick.symbol == self.symbol:
                key = f"{tick.price:.2f}"
                stages = ""
                if source == "live" and tick.ingest_time is not None and key in self.sent:
                    appended, polled_at = self.sent[key]
                    stages = f" {tick.ingest_time.timestamp():.6f} {appended:.3f} {polled_at:.6f}"
                with self.lock:
                    if key not in self.noted:
                        self.noted.add(key)
                        self.out.write(f"{at:.6f} {source} {key}{stages}\n")


def instrument(symbol: str, log_path: str) -> None:
    notes = ProbeNotes(symbol, log_path)
    install_messages: Callable[..., None] = LiveFeed._install
    apply_live: Callable[..., None] = MarketState.apply_live
    apply_batch: Callable[..., None] = MarketState.apply_batch

    def install(self: LiveFeed, messages: Iterable[Any]) -> None:
        messages = list(messages)
        notes.messages(messages)
        install_messages(self, messages)

    def live(self: MarketState, ticks: Iterable[Any], *args: Any, **kwargs: Any) -> None:
        ticks = list(ticks)  # iterated twice: by the state, then here
        apply_live(self, ticks, *args, **kwargs)
        notes.ticks((live_tick.tick for live_tick in ticks), "live")

    def batch(self: MarketState, result: Any) -> None:
        apply_batch(self, result)
        notes.ticks(result.ticks, "record")

    setattr(LiveFeed, "_install", install)  # noqa: B010
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
