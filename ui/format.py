"""Turning snapshots into tables and words for the pages (pure functions of their arguments)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import pandas as pd

from pipeline.domain.candles import CANDLE_INTERVALS_S, Candle
from pipeline.domain.metrics import merge
from pipeline.domain.snapshot import BatchReport, MarketSnapshot
from pipeline.domain.stocks import Stock
from ui.exchange import IST, ist_of_timestamp, ist_text, naive_ist

SPARKLINE_POINTS = 40
LIVE, STALE = "🟢 live", "🟠 stale"

# The pipeline stores 1-minute and 5-minute candles (CANDLE_INTERVALS_S); longer ones are merged here from
# the 1-minute ones.
SESSION_OPEN_UTC_S = 3 * 3600 + 45 * 60  # 09:15 IST is 03:45 UTC (India keeps no daylight saving time)
# The Market page's columns: each stock on the trading day (``pipeline.domain.days``).
MARKET_COLUMNS = ["Symbol", "Link", "Freshness", "Company", "Sector", "Last", "Change", "Change %", "Trend", "High",
                  "Low", "Volume", "VWAP", "Buy %", "Trades", "Prev close", "Last trade (IST)"]


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


def previous_close(snapshot: MarketSnapshot, stock: Stock | None, symbol: str) -> Decimal | None:
    """The last price of the symbol's latest earlier session seen, else the stock's reference price."""
    day = snapshot.day_figures.get(symbol)
    if day is not None and day.previous_close is not None:
        return day.previous_close
    return Decimal(str(stock.reference_price)) if stock is not None and stock.reference_price else None


def day_row(snapshot: MarketSnapshot, stock: Stock | None, symbol: str) -> dict[str, object]:
    """One stock on the trading day: last price, change against the previous close, the day's range,
    volume, VWAP and trades (None before its first trade of the day: it shows its previous close)."""
    day = snapshot.day_figures.get(symbol)
    today = day.metrics if day is not None else None
    close = previous_close(snapshot, stock, symbol)
    last = today.nav if today is not None else close if close is not None else snapshot.stocks[symbol].nav
    change = today.nav - close if today is not None and close else None
    return {
        "Last": float(last), "Change": float(change) if change is not None else None,
        "Change %": round(float(change / close * 100), 2) if change is not None and close else None,
        "High": float(today.high) if today else None, "Low": float(today.low) if today else None,
        "Volume": today.volume if today else None, "VWAP": float(today.vwap) if today and today.vwap else None,
        "Buy %": round(today.buy_volume / today.volume * 100, 1) if today and today.volume else None,
        "Trades": today.trades if today else 0, "Prev close": float(close) if close is not None else None,
    }


def market_table(snapshot: MarketSnapshot, stocks: Mapping[str, Stock], stale_after_s: float,
                 now: float | None = None) -> pd.DataFrame:
    return pd.DataFrame(market_records(snapshot, stocks, stale_after_s, now), columns=MARKET_COLUMNS)


def market_records(snapshot: MarketSnapshot, stocks: Mapping[str, Stock], stale_after_s: float,
                   now: float | None = None) -> list[dict[str, object]]:
    """One row per traded stock, by symbol: its day (``day_row``), company, sector, trend and freshness."""
    rows = []
    for symbol, agg in sorted(snapshot.stocks.items()):
        stock = stocks.get(symbol)
        rows.append({
            "Symbol": symbol,
            "Link": f"stock?symbol={symbol}",
            "Company": stock.company if stock else "",
            "Sector": stock.sector if stock else "",
            **day_row(snapshot, stock, symbol),
            "Last trade (IST)": naive_ist(agg.last_trade_time),
            "Trend": sparkline(snapshot, symbol),
            "Freshness": freshness_badge(agg.last_trade_time, stale_after_s, now),
        })
    return rows


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


def breadth(changes: Iterable[object]) -> Breadth:
    """Advancers, decliners and unchanged among the stocks' change % (a stock with none counts as unchanged)."""
    values = [float(c) if isinstance(c, (int, float)) and c == c else 0.0 for c in changes]  # c == c: not NaN
    return Breadth(sum(v > 0 for v in values), sum(v < 0 for v in values), sum(v == 0 for v in values))


def ranked_movers(records: Iterable[Mapping[str, object]], count: int = 5
                  ) -> tuple[list[Mapping[str, object]], list[Mapping[str, object]]]:
    """(top gainers, top losers) among market records by their "Change %", only stocks that actually moved
    that way; ties by symbol."""
    moved = [(float(change), record) for record in records  # type: ignore[arg-type]
             if (change := record["Change %"]) is not None and change == change]  # not NaN
    gainers = sorted((item for item in moved if item[0] > 0), key=lambda item: (-item[0], item[1]["Symbol"]))
    losers = sorted((item for item in moved if item[0] < 0), key=lambda item: (item[0], item[1]["Symbol"]))
    return [record for _, record in gainers[:count]], [record for _, record in losers[:count]]


def movers(table: pd.DataFrame, count: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``ranked_movers`` of the market table, as its columns Symbol, Last and Change %."""
    columns = ["Symbol", "Last", "Change %"]
    gainers, losers = ranked_movers(table.to_dict("records"), count)
    return pd.DataFrame(gainers, columns=columns), pd.DataFrame(losers, columns=columns)


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
    return ist_text(datetime.fromtimestamp(timestamp, tz=IST), seconds=False)


def merged_candles(candles: Sequence[Candle], interval_s: int) -> list[Candle]:
    """Candles of ``interval_s`` (a multiple of the candles' own interval) made by merging the given
    candles window by window; a merged candle is revised if any of its parts was. Windows are anchored
    at the NSE's opening bell, 09:15 IST, as Indian charts do: hourly candles start at 09:15, 10:15, ..."""
    anchor = SESSION_OPEN_UTC_S % interval_s
    windows: dict[int, Candle] = {}
    for candle in candles:
        start = (candle.start_s - anchor) // interval_s * interval_s + anchor
        old = windows.get(start)
        windows[start] = Candle(candle.symbol, interval_s, start, merge(old.metrics if old else None, candle.metrics),
                                candle.revised or (old is not None and old.revised))
    return [windows[start] for start in sorted(windows)]


def candles_of(snapshot: MarketSnapshot, symbol: str, interval_s: int) -> Sequence[Candle]:
    """The stored candles of an interval the pipeline keeps, else merged from the 1-minute ones."""
    if interval_s in CANDLE_INTERVALS_S:
        return snapshot.candles.get((symbol, interval_s), ())
    return merged_candles(snapshot.candles.get((symbol, 60), ()), interval_s)


def candles_frame(snapshot: MarketSnapshot, symbol: str, interval_s: int, last: int = 120) -> pd.DataFrame:
    """The ``last`` candles, one row each with OHLC, volume, and the VWAP since the first of them."""
    rows = []
    turnover = volume = 0
    for candle in list(candles_of(snapshot, symbol, interval_s))[-last:]:
        m = candle.metrics
        turnover += m.turnover
        volume += m.volume
        rows.append({
            "Start": ist_of_timestamp(candle.start_s),
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
        [{"Trade time (IST)": naive_ist(t.trade_time), "Ingest time (IST)": naive_ist(t.ingest_time),
          "Price": float(t.price), "Quantity": t.quantity, "Side": t.side or "", "Trade id": t.trade_id or "",
          "Event id": t.event_id} for t in reversed(ticks)],
        columns=["Trade time (IST)", "Ingest time (IST)", "Price", "Quantity", "Side", "Trade id", "Event id"],
    )


def batches_frame(reports: Sequence[BatchReport]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"Finished": ist_of_timestamp(r.finished_at),
          "Batch duration (ms)": round(r.duration_s * 1000, 1), "Messages": r.messages, "Trades": r.ticks}
         for r in reports],
        columns=["Finished", "Batch duration (ms)", "Messages", "Trades"],
    )


def seconds(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
