"""Stock: one symbol's candles (1m/5m/15m/1h) with volume and VWAP, its figures and its latest trades.

Deep link: ``/stock?symbol=INFY``.
"""

import streamlit as st

from pipeline.domain.metrics import StockAggregate
from pipeline.domain.snapshot import MarketSnapshot
from ui import live, push
from ui.charts import ZOOM, candlestick, zoom_of
from ui.exchange import ZONE_NOTE
from ui.format import candles_frame, plain, recent_trades
from ui.runtime import get_runtime, listed_stocks
from ui.status import show_service_banners
from ui.stock_view import stock_view

INTERVALS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600}  # 15m and 1h are merged from the 1m candles
PRICE = st.column_config.NumberColumn(format="₹%,.2f")

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


def stock_figures(view: dict) -> None:
    """The trading day's figures, the caption and the forming candle (``ui.stock_view``): pushed to the browser
    at each change where the push route is served, else drawn with Streamlit's own elements."""
    if push.route_served():
        push.pushed("figures", f"stock:{symbol}", build_view, view)
        return
    push.metrics(view["figures"], per_row=4)
    st.caption(view["caption"])
    if candle := view["candle"]:
        st.caption(f"{candle['title']} · {candle['figures']}")


def build_view(snapshot: MarketSnapshot) -> dict | None:
    return stock_view(snapshot, stocks.get(symbol), symbol)


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


def latest_trades(snapshot: MarketSnapshot, view: dict) -> None:
    st.subheader("Latest trades")
    if push.route_served():
        push.pushed("trades", f"stock:{symbol}", build_view, view)
        return
    trades = recent_trades(snapshot, symbol)
    if trades.empty:
        st.caption("Trades received since the app started are listed here.")
        return
    st.dataframe(trades, hide_index=True, width="stretch", height=280, column_config={
        "Price": PRICE,
        "Trade time (IST)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss.SSS"),
        "Ingest time (IST)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss.SSS"),
    })


@live.fragment(runtime, idle_s=5, gap_s=push.REST_OF_PAGE_S)  # and every 5 s for "updated … ago" and the banners
def live_stock() -> None:
    show_service_banners(runtime)
    snapshot = runtime.state.snapshot()
    aggregate = snapshot.stocks.get(symbol)
    if aggregate is None:
        st.info(f"No trade of {symbol} has arrived yet. Insert one on the **Simulator** page.", icon="💡")
        if rejected := snapshot.rejected_by_symbol.get(symbol, 0):
            st.caption(f"{rejected:,} rejected messages for {symbol} were set aside (see **Pipeline**).")
        return
    view = build_view(snapshot)
    assert view is not None  # the symbol has an aggregate
    stock_figures(view)
    candle_chart(aggregate, snapshot)
    latest_trades(snapshot, view)


live_stock()
