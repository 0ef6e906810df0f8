"""Each symbol's latest trades, newest last, each trade once: the live ticks and the record both bring it.

Pure and not thread-safe: ``MarketState`` owns one under its lock.
"""

from __future__ import annotations

from collections import deque

from pipeline.domain.snapshot import Tick


class RecentTicks:
    """Per symbol, at most ``kept`` trades in (trade time, event id) order."""

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self._ticks: dict[str, deque[Tick]] = {}
        self._ids: dict[str, set[str]] = {}

    def add(self, tick: Tick) -> None:
        """Into the symbol's latest trades, unless kept already or older than every kept one."""
        recent = self._ticks.setdefault(tick.symbol, deque(maxlen=self.kept))
        ids = self._ids.setdefault(tick.symbol, set())
        key = (tick.trade_time, tick.event_id)
        if tick.event_id in ids or (len(recent) == recent.maxlen and key < (recent[0].trade_time, recent[0].event_id)):
            return  # kept already, or older than every kept trade (a record far behind the live ticks)
        if len(recent) == recent.maxlen:
            ids.discard(recent[0].event_id)
        ids.add(tick.event_id)
        if recent and key < (recent[-1].trade_time, recent[-1].event_id):
            # Out of order (live ticks and the record interleave): insert in place, searching from the newest end.
            if len(recent) == recent.maxlen:
                recent.popleft()  # as append() would have dropped it; its id is gone already
            at = len(recent)
            while at and key < (recent[at - 1].trade_time, recent[at - 1].event_id):
                at -= 1
            recent.insert(at, tick)
        else:
            recent.append(tick)

    def of(self, symbol: str) -> tuple[Tick, ...]:
        return tuple(self._ticks.get(symbol, ()))

    def by_symbol(self) -> dict[str, tuple[Tick, ...]]:
        return {symbol: tuple(ticks) for symbol, ticks in self._ticks.items()}
