"""The candles a MarketState holds (see ``pipeline.domain.candles``) and the trading day they add up to
(``pipeline.domain.days``)."""

from __future__ import annotations

from pipeline.domain.candles import CANDLE_INTERVALS_S, Candle
from pipeline.domain.days import Days


class CandleBook:
    """The candles a MarketState holds, with the batch that last changed each and the trading day's figures
    they add up to (``pipeline.domain.days``). Not thread-safe: MarketState owns one under its lock."""

    def __init__(self, kept_per_series: int) -> None:
        self.kept_per_series = kept_per_series
        self.candles: dict[tuple[str, int, int], Candle] = {}
        self.batches: dict[tuple[str, int, int], int] = {}
        self.days = Days()
        self._series: dict[tuple[str, int], tuple[Candle, ...]] | None = None

    def batch_of(self, key: tuple[str, int, int]) -> int:
        return self.batches.get(key, -1)

    def put(self, candle: Candle, batch_id: int) -> None:
        if candle.interval_s == CANDLE_INTERVALS_S[0]:
            self.days.on_candle(self.candles.get(candle.key), candle)
        self.candles[candle.key] = candle
        self.batches[candle.key] = batch_id
        self._series = None

    def prune(self) -> None:
        by_series: dict[tuple[str, int], list[tuple[str, int, int]]] = {}
        for key in self.candles:
            by_series.setdefault(key[:2], []).append(key)
        for keys in by_series.values():
            if len(keys) > self.kept_per_series:
                for key in sorted(keys)[: len(keys) - self.kept_per_series]:
                    del self.candles[key]
                    self.batches.pop(key, None)
        self._series = None

    def series(self) -> dict[tuple[str, int], tuple[Candle, ...]]:
        """(symbol, interval) -> its candles in time order; rebuilt only after a change."""
        if self._series is None:
            series: dict[tuple[str, int], list[Candle]] = {}
            for key in sorted(self.candles):
                series.setdefault(key[:2], []).append(self.candles[key])
            self._series = {key: tuple(values) for key, values in series.items()}
        return self._series
