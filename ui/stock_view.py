"""The Stock page's live part as plain data: its figures, its forming 1-minute candle and its latest trades,
as text ready to show (pure functions of a snapshot).

The same data is drawn twice over: by the page when it runs (``pages/stock.py``), and by the browser each
time the server pushes a newer one (``ui/push.py``), so a trade is on screen without waiting for a rerun.
Every text is final here: the browser only places it (as text, never as HTML).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from pipeline.domain.candles import Candle
from pipeline.domain.snapshot import MarketSnapshot
from pipeline.domain.stocks import Stock
from ui.exchange import ist_of_timestamp, ist_text, naive_ist
from ui.format import ago, day_row

CANDLE_S = 60
CANDLES_SHOWN = 30  # the live strip's width in 1-minute candles
TRADES_SHOWN = 50


@dataclass(frozen=True)
class Figure:
    label: str
    value: str
    delta: str | None = None
    tone: str = "normal"  # "normal": the delta's sign colours it (as st.metric); "off": grey
    help: str | None = None


def money(value: object) -> str:
    return f"₹{value:,.2f}" if isinstance(value, (int, float)) else "–"


def figures(snapshot: MarketSnapshot, stock: Stock | None, symbol: str) -> list[Figure]:
    """The trading day's figures (``pipeline.domain.days``): last price against the previous close, the day's
    range, VWAP, volume and trades; late and rejected counts since the start."""
    day = day_row(snapshot, stock, symbol)
    late, rejected = snapshot.late_by_symbol.get(symbol, 0), snapshot.rejected_by_symbol.get(symbol, 0)
    change = f"{day['Change']:+,.2f} ({day['Change %']:+.2f}%)" if day["Change"] is not None else None
    bought = f"{day['Buy %']:.0f}% bought" if day["Buy %"] is not None else None
    since_start = snapshot.stocks[symbol].trades
    return [
        Figure("Last", money(day["Last"]), change, help="latest trade's price; change against the previous close"),
        Figure("High", money(day["High"]), help="the trading day's highest price"),
        Figure("Low", money(day["Low"]), help="the trading day's lowest price"),
        Figure("Prev close", money(day["Prev close"]),
               help="last price of the previous session seen, else the stock's reference price"),
        Figure("VWAP", money(day["VWAP"]), help="the day's volume-weighted average price"),
        Figure("Volume", f"{day['Volume'] or 0:,}", bought, "off",
               help="shares traded today; the share bought is the volume of buy-side trades"),
        Figure("Trades", f"{day['Trades']:,}", help=f"today; {since_start:,} since the start"),
        # The sum as the value, the split below it: "12 late · 3 rejected" is too wide for a quarter of the page.
        Figure("Set aside", f"{late + rejected:,}", f"{late:,} late · {rejected:,} rejected", "off",
               help="late: counted since the start, left out of candles and the day; rejected: not counted"),
    ]


def caption(snapshot: MarketSnapshot, symbol: str, now: float | None = None) -> str:
    last = snapshot.stocks[symbol].last_trade_time
    return (f"Trading day {snapshot.trading_day or '–'} · last trade {ist_text(last)} · "
            f"updated {ago(snapshot.updated_at, now)}")


def candle_row(candle: Candle) -> dict[str, object]:
    """A candle's prices (to draw it) and its figures in words (its label, read by screen readers and tooltips)."""
    m = candle.metrics
    start = ist_of_timestamp(candle.start_s).strftime("%H:%M")
    revised = " (revised)" if candle.revised else ""
    return {"open": float(m.open), "high": float(m.high), "low": float(m.low), "close": float(m.nav),
            "label": f"{start} IST{revised} · Open: {m.open:.2f}; High: {m.high:.2f}; Low: {m.low:.2f}; "
                     f"Volume: {m.volume:,}; Close: {m.nav:.2f}"}


def forming(candles: Sequence[Candle], now: float | None = None) -> dict[str, object] | None:
    """The latest 1-minute candle as figures ("forming" while its minute lasts), and the strip of the last
    ``CANDLES_SHOWN`` candles it ends."""
    if not candles:
        return None
    latest, m = candles[-1], candles[-1].metrics
    state = "Forming" if latest.start_s + CANDLE_S > (now or time.time()) else "Last"
    start = ist_of_timestamp(latest.start_s).strftime("%H:%M")
    return {"title": f"{state} 1-minute candle · {start} IST",
            "figures": f"O {money(float(m.open))} · H {money(float(m.high))} · L {money(float(m.low))} · "
                       f"C {money(float(m.nav))} · volume {m.volume:,} · {m.trades:,} trades",
            "strip": [candle_row(candle) for candle in candles[-CANDLES_SHOWN:]]}


def trade_rows(snapshot: MarketSnapshot, symbol: str, count: int = TRADES_SHOWN) -> list[dict[str, str]]:
    """The symbol's latest trades in memory, newest first, as the columns of the page's list."""
    def clock(moment: object) -> str:
        local = naive_ist(moment)  # type: ignore[arg-type]
        return local.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if local is not None else ""

    return [{"Trade time (IST)": clock(t.trade_time), "Price": money(float(t.price)), "Quantity": f"{t.quantity:,}",
             "Side": t.side or "", "Trade id": t.trade_id or "", "Ingest time (IST)": clock(t.ingest_time),
             "Event id": t.event_id}
            for t in reversed(snapshot.recent_ticks.get(symbol, ())[-count:])]


def stock_view(snapshot: MarketSnapshot, stock: Stock | None, symbol: str, now: float | None = None
               ) -> dict[str, object] | None:
    """Everything the live part of the Stock page shows, as JSON-ready data; None before the symbol's first trade."""
    if symbol not in snapshot.stocks:
        return None
    return {
        "version": snapshot.version, "symbol": symbol,
        "figures": [asdict(figure) for figure in figures(snapshot, stock, symbol)],
        "caption": caption(snapshot, symbol, now),
        "candle": forming(snapshot.candles.get((symbol, CANDLE_S), ()), now),
        "trades": trade_rows(snapshot, symbol),
    }
