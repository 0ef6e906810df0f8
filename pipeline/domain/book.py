"""The candles a MarketState holds (see ``pipeline.domain.candles``) and the trading day they add up to
(``pipeline.domain.days``)."""

from __future__ import annotations

from pipeline.domain.candles import CANDLE_INTERVALS_S, Candle
from pipeline.domain.days import Days


class CandleBook:
    """The candles a MarketState holds, with the batch that last changed each and the trading day's figures
    they add up to (``pipeline.domain.days``). Not thread-safe: MarketState owns one under its lock.

    Each series is kept by start too, so that a batch that changes a few candles re-sorts only their series,
    and pruning looks at series lengths, not at every candle (12 hours of 25 symbols are ~22,000 candles)."""

    def __init__(self, kept_per_series: int) -> None:
        self.kept_per_series = kept_per_series
        self.candles: dict[tuple[str, int, int], Candle] = {}
        self.batches: dict[tuple[str, int, int], int] = {}
        self.days = Days()
        self._by_series: dict[tuple[str, int], dict[int, Candle]] = {}  # (symbol, interval) -> start -> candle
        self._sorted: dict[tuple[str, int], tuple[Candle, ...]] = {}
        self._dirty: set[tuple[str, int]] = set()
        self._view: dict[tuple[str, int], tuple[Candle, ...]] = {}

    def batch_of(self, key: tuple[str, int, int]) -> int:
        return self.batches.get(key, -1)

    def put(self, candle: Candle, batch_id: int) -> None:
        if candle.interval_s == CANDLE_INTERVALS_S[0]:
            self.days.on_candle(self.candles.get(candle.key), candle)
        self.candles[candle.key] = candle
        self.batches[candle.key] = batch_id
        self._by_series.setdefault(candle.key[:2], {})[candle.start_s] = candle
        self._dirty.add(candle.key[:2])

    def prune(self) -> None:
        """Each series down to its newest ``kept_per_series`` candles."""
        for (symbol, interval), held in self._by_series.items():
            if len(held) > self.kept_per_series:
                for start in sorted(held)[: len(held) - self.kept_per_series]:
                    del held[start]
                    del self.candles[(symbol, interval, start)]
                    self.batches.pop((symbol, interval, start), None)
                self._dirty.add((symbol, interval))

    def series(self) -> dict[tuple[str, int], tuple[Candle, ...]]:
        """(symbol, interval) -> its candles in time order; a new dict after a change (snapshots keep the one
        they were given), the changed series alone sorted again."""
        if self._dirty:
            for key in self._dirty:
                held = self._by_series[key]
                self._sorted[key] = tuple(held[start] for start in sorted(held))
            self._dirty.clear()
            self._view = dict(self._sorted)
        return self._view
