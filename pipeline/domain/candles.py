"""OHLC candles: per symbol and window, the registry's metrics over the window's on-time ticks.

Each symbol's candles close on its own event-time clock: a tick older than the symbol's latest trade
time minus the allowed lateness is *late* (counted in the since-start figures, left out of candles,
written to the late ledger).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.domain.metrics import StockAggregate, aggregate_of_run, merge

CANDLE_INTERVALS_S = (60, 300)  # 1-minute and 5-minute candles; the second is a multiple of the first
CANDLE_HISTORY_S = 12 * 3600  # candles loaded at start, and kept, per symbol and interval


@dataclass(frozen=True)
class Candle:
    """One OHLC candle of one symbol: the mergeable metrics of its window's on-time ticks.

    ``revised`` is set when a tick changes the candle after its window had ended in event time
    (a late but accepted tick): whoever read it before saw other numbers.
    """

    symbol: str
    interval_s: int
    start_s: int
    metrics: StockAggregate
    revised: bool = False

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.symbol, self.interval_s, self.start_s)

    @property
    def storage_key(self) -> str:
        """The key of this candle's document and compacted-topic record."""
        return f"{self.symbol}|{self.interval_s}|{self.start_s}"

    @property
    def end_s(self) -> int:
        return self.start_s + self.interval_s


def candles_of_minute(symbol: str, minute_start_s: int, metrics: StockAggregate) -> list[Candle]:
    """The candles of every interval that one 1-minute summary belongs to."""
    return [Candle(symbol, interval, minute_start_s // interval * interval, metrics) for interval in CANDLE_INTERVALS_S]


def minute_aggregates(ticks: Sequence[Any], minute_of: Callable[[Any], int]) -> dict[int, StockAggregate]:
    """Minute start (epoch s, ``minute_of`` a tick's) -> the aggregate of these ticks of one symbol in it."""
    by_minute: dict[int, list[Any]] = {}
    for tick in ticks:
        by_minute.setdefault(minute_of(tick), []).append(tick)
    return {minute: aggregate_of_run(group) for minute, group in by_minute.items()}


def candles_of_minutes(symbol: str, minutes: Mapping[int, StockAggregate]) -> list[Candle]:
    """The candles of every interval that these 1-minute aggregates fall in, each the merge of its minutes
    (every interval is a multiple of a minute): each tick is folded once, not once per interval."""
    merged: dict[tuple[int, int], StockAggregate] = {}
    for minute, aggregate in minutes.items():
        for interval in CANDLE_INTERVALS_S:
            key = (interval, minute // interval * interval)
            merged[key] = merge(merged.get(key), aggregate)
    return [Candle(symbol, interval, start, metrics) for (interval, start), metrics in merged.items()]


def candles_of_ticks(ticks: Sequence[Any], minute_of: Callable[[Any], int]) -> list[Candle]:
    """The candles of every interval holding these ticks of one symbol (``minute_of``: a tick's minute
    start, epoch s): what merging each tick's :func:`candles_of_minute` gives, one aggregate per candle."""
    return candles_of_minutes(ticks[0].symbol, minute_aggregates(ticks, minute_of)) if ticks else []


def merge_candle(old: Candle | None, new: Candle, latest_before_us: int | None) -> Candle:
    """Both candles' ticks; revised if the window had ended (before this batch) in the symbol's event time."""
    if old is None:
        return new
    window_had_ended = latest_before_us is not None and new.end_s * 1_000_000 <= latest_before_us
    # Not dataclasses.replace (2x slower): the live path merges candles thousands of times a second.
    return Candle(old.symbol, old.interval_s, old.start_s, merge(old.metrics, new.metrics),
                  old.revised or window_had_ended)

