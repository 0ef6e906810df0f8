"""An independent oracle: the per-symbol metrics computed in plain Python over a list of ticks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from pipeline.domain.metrics import METRICS, Kind, Metric, StockAggregate, aggregate_of


@dataclass(frozen=True)
class OracleTick:
    event_id: str
    symbol: str
    price: Decimal
    quantity: int
    trade_time: datetime
    side: str = "buy"


T0 = datetime(2025, 11, 24, 9, 15, tzinfo=timezone.utc)


def _fold(metric: Metric, ticks: list[OracleTick]) -> object:
    """One metric over a symbol's ticks, straight from its kind's definition (not through ``merge``)."""
    by_time = sorted(ticks, key=lambda t: (t.trade_time, t.event_id))
    values = [metric.of(t) for t in ticks]
    return {Kind.SUM: lambda: sum(values), Kind.MIN: lambda: min(values), Kind.MAX: lambda: max(values),
            Kind.LATEST: lambda: metric.of(by_time[-1]), Kind.EARLIEST: lambda: metric.of(by_time[0])}[metric.kind]()


def expected_metrics(ticks: list[OracleTick]) -> dict[str, dict]:
    """Symbol -> every registry metric's value (by-time metrics: the value, not its time and id)."""
    return {symbol: {metric.name: _fold(metric, [t for t in ticks if t.symbol == symbol]) for metric in METRICS}
            for symbol in sorted({t.symbol for t in ticks})}


def metric_values(aggregate: StockAggregate) -> dict[str, object]:
    """What :func:`expected_metrics` says of a symbol, read from an aggregate."""
    return {metric.name: getattr(aggregate, metric.name) for metric in METRICS}


def aggregate(symbol: str, *prices: str, when: datetime = T0, quantities: Sequence[int] | None = None) -> StockAggregate:
    """The aggregate of one tick per price, all at ``when`` with event ids e1, e2 … (so the last is the NAV)."""
    quantities = quantities or [1] * len(prices)
    ticks = [OracleTick(f"e{i + 1}", symbol, Decimal(price), quantity, when)
             for i, (price, quantity) in enumerate(zip(prices, quantities, strict=True))]
    return aggregate_of(ticks)[symbol]


def expected_candles(batches: list[list[OracleTick]], lateness_s: int, intervals=(60, 300)) -> tuple[dict, set[str]]:
    """Candles and late ticks, replaying the documented semantics batch by batch in plain Python.

    Per symbol, a batch's watermark is the latest trade time seen before it minus the lateness; older
    ticks are late (no candle). A candle that existed and whose window had ended before the batch is
    revised when the batch adds to it. Replayed event ids count once.
    """
    seen: set[str] = set()
    latest: dict[str, datetime] = {}
    candles: dict[tuple[str, int, int], dict] = {}
    late: set[str] = set()
    for batch in batches:
        fresh = []
        for tick in batch:
            if tick.event_id not in seen:
                seen.add(tick.event_id)
                fresh.append(tick)
        touched: dict[tuple[str, int, int], list[OracleTick]] = {}
        for tick in fresh:
            watermark = latest[tick.symbol].timestamp() - lateness_s if tick.symbol in latest else None
            if watermark is not None and tick.trade_time.timestamp() < watermark:
                late.add(tick.event_id)
                continue
            for interval in intervals:
                start = int(tick.trade_time.timestamp()) // interval * interval
                touched.setdefault((tick.symbol, interval, start), []).append(tick)
        for key, ticks in touched.items():
            symbol, interval, start = key
            before = candles.get(key)
            all_ticks = (before["ticks"] if before else []) + ticks
            ended = symbol in latest and start + interval <= latest[symbol].timestamp()
            metrics = expected_metrics(all_ticks)[symbol]
            candles[key] = {**metrics, "ticks": all_ticks,
                            "revised": bool(before and (before["revised"] or ended))}
        for tick in fresh:
            if tick.symbol not in latest or tick.trade_time > latest[tick.symbol]:
                latest[tick.symbol] = tick.trade_time
    for values in candles.values():
        values.pop("ticks")
    return candles, late


def trade_documents(symbols: tuple[str, ...], first: int, count: int) -> list[dict]:
    """``count`` trade documents over ``symbols`` in turn, trade times 1 ms apart from now (numbered from ``first``)."""
    when = datetime.now(timezone.utc)
    return [{"symbol": symbols[i % len(symbols)], "price": 100.0 + (i * 7) % 11, "quantity": 1 + i % 3,
             "trade_time": when + timedelta(milliseconds=i)} for i in range(first, first + count)]


def assert_figures_match(stocks: Mapping[str, StockAggregate], documents: list[dict]) -> None:
    """Each symbol's trades, low, high, volume and NAV (latest trade time) as the inserted documents say."""
    for symbol in {d["symbol"] for d in documents}:
        mine = sorted((d for d in documents if d["symbol"] == symbol), key=lambda d: d["trade_time"])
        agg = stocks[symbol]
        assert (agg.trades, agg.low, agg.high, agg.volume, agg.nav) == (
            len(mine), Decimal(str(min(d["price"] for d in mine))), Decimal(str(max(d["price"] for d in mine))),
            sum(d["quantity"] for d in mine), Decimal(str(mine[-1]["price"]))), symbol
