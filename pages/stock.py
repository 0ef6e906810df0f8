"""Stock: one symbol's candles (1m/5m/15m/1h) with volume and VWAP, its figures and its latest trades.

Deep link: ``/stock?symbol=INFY``.
"""

import streamlit as st

from pipeline.domain.metrics import StockAggregate
from pipeline.domain.snapshot import MarketSnapshot
from ui import live
from ui.charts import ZOOM, candlestick, zoom_of
from ui.exchange import ZONE_NOTE, ist_text
from ui.format import ago, candles_frame, day_row, plain, recent_trades
from ui.runtime import get_runtime, listed_stocks
from ui.status import show_service_banners

INTERVALS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600}  # 15m and 1h are merged from the 1m candles
PRICE = st.column_config.NumberColumn(format="₹%.2f")

runtime = get_runtime()
stocks = listed_stocks()
symbols = sorted(stocks)
# A symbol from the URL is only used if it is listed: it is never echoed back unchecked.
requested = st.query_params.get("symbol", "").strip().upper()
left, right = st.columns([3, 1])
symbol = left.selectbox("Symbol", symbols, index=symbols.index(requested) if requested in symbols else 0,
                        key="stock_symbol")
interval = right.radio("Candles", list(INTERVALS), horizontal=True, key="candle_interval")
st.query_params["symbol"] = symbol
if requested and requested not in symbols:
    st.warning("The symbol in the link is not a listed stock; showing the first one instead.", icon="⚠️")
st.title(f"📈 {plain(symbol)} · {plain(stocks[symbol].company)}")
st.caption(f"{plain(stocks[symbol].sector)} · {ZONE_NOTE}")


def stock_figures(aggregate: StockAggregate, snapshot: MarketSnapshot) -> None:
    """The trading day's figures (``pipeline.domain.days``): last price against the previous close, the day's
    range, VWAP, volume and trades; late and rejected counts since the start."""
    day = day_row(snapshot, stocks.get(symbol), symbol)
    late, rejected = snapshot.late_by_symbol.get(symbol, 0), snapshot.rejected_by_symbol.get(symbol, 0)
    change = f"{day['Change']:+,.2f} ({day['Change %']:+.2f}%)" if day["Change"] is not None else None
    top, bottom = st.columns(4), st.columns(4)
    top[0].metric("Last", f"₹{day['Last']:,.2f}", change, help="latest trade's price; change against the previous close")
    top[1].metric("High", money(day["High"]), help="the trading day's highest price")
    top[2].metric("Low", money(day["Low"]), help="the trading day's lowest price")
    top[3].metric("Prev close", money(day["Prev close"]),
                  help="last price of the previous session seen, else the stock's reference price")
    bottom[0].metric("VWAP", money(day["VWAP"]), help="the day's volume-weighted average price")
    bought = f"{day['Buy %']:.0f}% bought" if day["Buy %"] is not None else None
    bottom[1].metric("Volume", f"{day['Volume'] or 0:,}", bought, delta_color="off",
                     help="shares traded today; the share bought is the volume of buy-side trades")
    bottom[2].metric("Trades", f"{day['Trades']:,}", help=f"today; {aggregate.trades:,} since the start")
    # The sum as the value, the split below it: "12 late · 3 rejected" is too wide for a quarter of the page.
    bottom[3].metric("Set aside", f"{late + rejected:,}", f"{late:,} late · {rejected:,} rejected", delta_color="off",
                     delta_arrow="off",
                     help="late: counted since the start, left out of candles and the day; rejected: not counted")
    st.caption(f"Trading day {snapshot.trading_day or '–'} · last trade {ist_text(aggregate.last_trade_time)} · "
               f"updated {ago(snapshot.updated_at)}")


def money(value: object) -> str:
    return f"₹{value:,.2f}" if isinstance(value, (int, float)) else "–"


def candle_chart(aggregate: StockAggregate, snapshot: MarketSnapshot) -> None:
    # 15m and 1h candles are merged from the 1m ones: once per state change, not at every redraw.
    candles = runtime.view(f"candle_frame/{symbol}/{interval}", snapshot.version,
                           lambda: candles_frame(snapshot, symbol, INTERVALS[interval]))
    if candles.empty:
        st.info("Candles start with the next trade of this symbol.", icon="💡")
        return
    day = snapshot.day_figures.get(symbol)
    band = day.metrics if day is not None and day.metrics is not None else aggregate  # the day's range
    # The user's zoom comes back as the chart's selection and is drawn again: a redraw keeps it. One per
    # symbol and interval (a new key starts unzoomed).
    key = f"candles_{symbol}_{interval}"
    zoom = zoom_of(st.session_state.get(key))
    chart = runtime.view(f"candles/{symbol}/{interval}", (snapshot.version, zoom), lambda: candlestick(
        candles, float(band.low), float(band.high), interval, zoom))
    st.vega_lite_chart(spec=chart, width="stretch", key=key, on_select="rerun", selection_mode=[ZOOM])
    st.caption("Orange dashes: VWAP since the first candle shown · shaded band: the day's low to high · "
               "a revised candle received a trade after it had closed · "
               + ("zoomed: double-click the chart to see the whole day" if zoom else "wheel or drag to zoom"))


def latest_trades(snapshot: MarketSnapshot) -> None:
    st.subheader("Latest trades")
    trades = recent_trades(snapshot, symbol)
    if trades.empty:
        st.caption("Trades received since the app started are listed here.")
        return
    st.dataframe(trades, hide_index=True, width="stretch", height=280, column_config={
        "Price": PRICE,
        "Trade time (IST)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss.SSS"),
        "Ingest time (IST)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss.SSS"),
    })


@live.fragment(runtime, idle_s=5)  # and every 5 s for "updated … ago" and the banners
def live_stock() -> None:
    show_service_banners(runtime)
    snapshot = runtime.state.snapshot()
    aggregate = snapshot.stocks.get(symbol)
    if aggregate is None:
        st.info(f"No trade of {symbol} has arrived yet. Insert one on the **Simulator** page.", icon="💡")
        if rejected := snapshot.rejected_by_symbol.get(symbol, 0):
            st.caption(f"{rejected:,} rejected messages for {symbol} were set aside (see **Pipeline**).")
        return
    stock_figures(aggregate, snapshot)
    candle_chart(aggregate, snapshot)
    latest_trades(snapshot)


live_stock()
