"""An independent oracle: the per-symbol metrics computed in plain Python over a list of ticks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from pipeline.aggregate import StockAggregate


@dataclass(frozen=True)
class OracleTick:
    event_id: str
    symbol: str
    price: Decimal
    quantity: int
    trade_time: datetime


def expected_metrics(ticks: list[OracleTick]) -> dict[str, dict]:
    result: dict[str, dict] = {}
    for symbol in sorted({t.symbol for t in ticks}):
        mine = [t for t in ticks if t.symbol == symbol]
        latest = max(mine, key=lambda t: (t.trade_time, t.event_id))
        earliest = min(mine, key=lambda t: (t.trade_time, t.event_id))
        result[symbol] = {
            "trades": len(mine),
            "low": min(t.price for t in mine),
            "high": max(t.price for t in mine),
            "nav": latest.price,
            "open": earliest.price,
            "volume": sum(t.quantity for t in mine),
            "turnover": sum(t.price * t.quantity for t in mine),
        }
    return result


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
