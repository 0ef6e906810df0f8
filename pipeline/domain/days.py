"""The trading day: each symbol's figures for the current NSE session, and its previous close.

- A trade belongs to the session of its trade time's date in IST (Asia/Kolkata). The NSE trades
  09:15-15:30 IST on weekdays; the simulator's trades outside those hours belong to their IST date too.
- The market's **trading day** is the newest session any trade has been seen in: it rolls over with the
  first trade of a new IST date, not with the clock, so a quiet weekend still shows Friday's session.
- A symbol's **day figures** (open, high, low, last, volume, VWAP, trades) are the merge of its 1-minute
  candles of the trading day: what the candle chart shows, to the trade.
- Its **previous close** is its last price of the latest earlier session seen, within 10 days (the caller
  falls back to the stock's reference price when there is none).
- A trade dated in an earlier session than the trading day is *late* (reason ``earlier_session``): it is
  in the late ledger and the since-start totals, never in a day's figures or candles.

Pure and not thread-safe: MarketState owns one under its lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from pipeline.domain.candles import Candle
from pipeline.domain.metrics import StockAggregate, grown, merge

IST = ZoneInfo("Asia/Kolkata")
DAYS_KEPT = 3  # per symbol: the trading day and the sessions before it that a previous close may come from
# A previous close comes from a session at most this long before the trading day (a long weekend and a few
# holidays); an older one (a stock that stopped trading, or one forged trade dated years back) is no close.
CLOSE_WITHIN = timedelta(days=10)


def session_of(moment: datetime) -> date:
    """The NSE session (IST date) of an instant; a naive datetime is taken to be UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(IST).date()


def session_start_s(day: date) -> int:
    """The session's first instant (midnight IST) as a Unix timestamp."""
    return int(datetime.combine(day, time(0), tzinfo=IST).timestamp())


@dataclass(frozen=True)
class DayFigures:
    """One symbol on the trading day: its figures so far (None before its first trade of the day) and the
    previous close (None when no earlier session was seen)."""

    symbol: str
    day: date
    metrics: StockAggregate | None
    previous_close: Decimal | None

    def change(self, previous_close: Decimal | None = None) -> Decimal | None:
        """Last price minus the previous close (``previous_close`` stands in when none was seen)."""
        base = self.previous_close or previous_close
        return None if self.metrics is None or not base else self.metrics.nav - base

    def change_pct(self, previous_close: Decimal | None = None) -> float | None:
        base = self.previous_close or previous_close
        change = self.change(base)
        return None if change is None or not base else float(change / base * 100)


class Days:
    """Per symbol and session, the merge of its 1-minute candles; fed with every 1-minute candle change."""

    def __init__(self) -> None:
        self.by_symbol: dict[str, dict[date, StockAggregate]] = {}

    def on_candle(self, before: Candle | None, after: Candle) -> None:
        """A 1-minute candle was stored (``before``: the version it replaced)."""
        day = session_of(datetime.fromtimestamp(after.start_s, tz=timezone.utc))
        days = self.by_symbol.setdefault(after.symbol, {})
        days[day] = grown(days.get(day), before.metrics if before is not None else None, after.metrics)
        for old in sorted(days)[:-DAYS_KEPT]:
            del days[old]

    def on_close(self, candle: Candle) -> None:
        """The last 1-minute candle of an earlier session (loaded at start): its close is a previous close."""
        day = session_of(datetime.fromtimestamp(candle.start_s, tz=timezone.utc))
        days = self.by_symbol.setdefault(candle.symbol, {})
        if day not in days:
            days[day] = candle.metrics
            for old in sorted(days)[:-DAYS_KEPT]:
                del days[old]

    def trading_day(self, live: Mapping[str, date] | None = None) -> date | None:
        """The newest session seen (``live``: sessions of trades not yet in the candles)."""
        seen = [max(days) for days in self.by_symbol.values() if days] + list((live or {}).values())
        return max(seen) if seen else None

    def figures(self, day: date, live: Mapping[str, StockAggregate] | None = None) -> dict[str, DayFigures]:
        """Every symbol's figures on ``day``, with ``live`` (the day's live 1-minute candles merged per symbol)."""
        figures = {}
        for symbol in self.by_symbol.keys() | (live or {}).keys():
            days = self.by_symbol.get(symbol, {})
            today = days.get(day)
            if live and symbol in live:
                today = merge(today, live[symbol])
            earlier = [d for d in days if day - CLOSE_WITHIN <= d < day]
            figures[symbol] = DayFigures(symbol, day, today, days[max(earlier)].nav if earlier else None)
        return figures
