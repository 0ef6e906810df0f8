"""Turning snapshots into tables and words for the pages (pure functions of their arguments)."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from pipeline.domain.snapshot import BatchReport, MarketSnapshot
from pipeline.domain.stocks import Stock

SPARKLINE_POINTS = 40
LIVE, STALE = "🟢 live", "🟠 stale"

MARKET_COLUMNS = ["Symbol", "Freshness", "Company", "NAV", "Change %", "Trend", "High", "Low", "VWAP", "Volume",
                  "Buy %", "Transactions", "Last trade (UTC)"]


def _naive_utc(moment: datetime | None) -> datetime | None:
    """Streamlit and Altair show naive datetimes as they are: keep them in UTC."""
    return None if moment is None else moment.astimezone(timezone.utc).replace(tzinfo=None)


def sparkline(snapshot: MarketSnapshot, symbol: str, points: int = SPARKLINE_POINTS) -> list[float]:
    """Recent prices of a symbol: its latest ticks, or its 1-minute closes when no tick is in memory
    (after a restart only the persisted candles are)."""
    ticks = snapshot.recent_ticks.get(symbol, ())
    if len(ticks) >= 2:
        return [float(t.price) for t in ticks[-points:]]
    candles = snapshot.candles.get((symbol, 60), ())
    return [float(c.metrics.nav) for c in candles[-points:]]


def freshness_badge(last_trade: datetime, stale_after_s: float, now: float | None = None) -> str:
    return STALE if (now or time.time()) - last_trade.timestamp() > stale_after_s else LIVE


def market_table(snapshot: MarketSnapshot, stocks: Mapping[str, Stock], stale_after_s: float,
                 now: float | None = None) -> pd.DataFrame:
    rows = []
    for symbol, agg in sorted(snapshot.stocks.items()):
        rows.append({
            "Symbol": symbol,
            "Company": stocks[symbol].company if symbol in stocks else "",
            "NAV": float(agg.nav),
            "Change %": round(agg.change_pct, 2) if agg.change_pct is not None else None,
            "High": float(agg.high),
            "Low": float(agg.low),
            "VWAP": float(agg.vwap) if agg.vwap is not None else None,
            "Volume": agg.volume,
            "Buy %": round(agg.buy_volume / agg.volume * 100, 1) if agg.volume else None,
            "Transactions": agg.trades,
            "Last trade (UTC)": _naive_utc(agg.last_trade_time),
            "Trend": sparkline(snapshot, symbol),
            "Freshness": freshness_badge(agg.last_trade_time, stale_after_s, now),
        })
    return pd.DataFrame(rows, columns=MARKET_COLUMNS)


def change_colour(value: object) -> str:
    """CSS for a change % cell: green up, red down (a Styler map function)."""
    if isinstance(value, (int, float)) and value == value:  # not NaN
        if value > 0:
            return "color: #0a8f3c"
        if value < 0:
            return "color: #d0312d"
    return ""


@dataclass(frozen=True)
class Breadth:
    advancers: int
    decliners: int
    unchanged: int


def breadth(table: pd.DataFrame) -> Breadth:
    change = table["Change %"].fillna(0)
    return Breadth(int((change > 0).sum()), int((change < 0).sum()), int((change == 0).sum()))


def movers(table: pd.DataFrame, count: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(top gainers, top losers) by change %, only stocks that actually moved that way."""
    columns = ["Symbol", "NAV", "Change %"]
    moved = table.dropna(subset=["Change %"])
    gainers = moved[moved["Change %"] > 0].sort_values(["Change %", "Symbol"], ascending=[False, True])
    losers = moved[moved["Change %"] < 0].sort_values(["Change %", "Symbol"], ascending=[True, True])
    return gainers[columns].head(count), losers[columns].head(count)


def plain(text: str) -> str:
    """Text from the database shown inside Markdown, with Markdown's special characters escaped
    (Streamlit never renders HTML from Markdown; this also keeps links and images out)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!<>|~])", r"\\\1", text)


def ago(timestamp: float | None, now: float | None = None) -> str:
    if timestamp is None:
        return "never"
    seconds = max(0.0, (now or time.time()) - timestamp)
    if seconds < 1:
        return "just now"
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def candles_frame(snapshot: MarketSnapshot, symbol: str, interval_s: int, last: int = 120) -> pd.DataFrame:
    """The ``last`` candles, one row each with OHLC, volume, and the VWAP since the first of them."""
    rows = []
    turnover = volume = 0
    for candle in snapshot.candles.get((symbol, interval_s), ())[-last:]:
        m = candle.metrics
        turnover += m.turnover
        volume += m.volume
        rows.append({
            "Start": datetime.fromtimestamp(candle.start_s, tz=timezone.utc).replace(tzinfo=None),
            "Open": float(m.open), "High": float(m.high), "Low": float(m.low), "Close": float(m.nav),
            "Volume": m.volume, "Transactions": m.trades,
            "VWAP": float(turnover / volume) if volume else None,
            "Direction": "up" if m.nav >= m.open else "down",
            "Revised": candle.revised,
        })
    return pd.DataFrame(rows, columns=["Start", "Open", "High", "Low", "Close", "Volume", "Transactions", "VWAP",
                                       "Direction", "Revised"])


def recent_trades(snapshot: MarketSnapshot, symbol: str, count: int = 50) -> pd.DataFrame:
    """The symbol's latest ticks in memory, newest first."""
    ticks = snapshot.recent_ticks.get(symbol, ())[-count:]
    return pd.DataFrame(
        [{"Trade time (UTC)": _naive_utc(t.trade_time), "Ingest time (UTC)": _naive_utc(t.ingest_time),
          "Price": float(t.price), "Quantity": t.quantity, "Side": t.side or "", "Trade id": t.trade_id or "",
          "Event id": t.event_id} for t in reversed(ticks)],
        columns=["Trade time (UTC)", "Ingest time (UTC)", "Price", "Quantity", "Side", "Trade id", "Event id"],
    )


def batches_frame(reports: Sequence[BatchReport]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"Finished": datetime.fromtimestamp(r.finished_at, tz=timezone.utc).replace(tzinfo=None),
          "Batch duration (ms)": round(r.duration_s * 1000, 1), "Messages": r.messages, "Trades": r.ticks}
         for r in reports],
        columns=["Finished", "Batch duration (ms)", "Messages", "Trades"],
    )


def seconds(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
