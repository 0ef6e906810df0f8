"""Stock: one symbol's price over time (Altair) and its figures."""

import altair as alt
import streamlit as st

from ui.format import ago, price_history
from ui.runtime import get_runtime, listed_stocks
from ui.status import show_service_banners

runtime = get_runtime()
stocks = listed_stocks()
symbols = sorted(stocks)
requested = st.query_params.get("symbol", "").upper()
symbol = st.selectbox("Symbol", symbols, index=symbols.index(requested) if requested in symbols else 0,
                      key="stock_symbol")
st.query_params["symbol"] = symbol
st.title(f"📈 {symbol} · {stocks[symbol].company}")


@st.fragment(run_every=runtime.settings.dashboard_refresh_ms / 1000)
def live_stock() -> None:
    show_service_banners(runtime)
    snapshot = runtime.state.snapshot()
    aggregate = snapshot.stocks.get(symbol)
    if aggregate is None:
        st.info(f"No trade of {symbol} has arrived yet. Insert one on the **Simulator** page.", icon="💡")
        return
    cols = st.columns(5)
    change = aggregate.change_pct
    cols[0].metric("NAV", f"₹{aggregate.nav:,.2f}", f"{change:+.2f}%" if change is not None else None)
    cols[1].metric("High", f"₹{aggregate.high:,.2f}")
    cols[2].metric("Low", f"₹{aggregate.low:,.2f}")
    cols[3].metric("Transactions", f"{aggregate.trades:,}")
    cols[4].metric("Volume", f"{aggregate.volume:,}")
    st.caption(f"Last trade {aggregate.last_trade_time:%Y-%m-%d %H:%M:%S} UTC · updated {ago(snapshot.updated_at)}")
    history = price_history(snapshot, symbol)
    if history.empty:
        st.info("Price history starts with the next trade of this symbol.")
        return
    chart = (
        alt.Chart(history)
        .mark_line(point=True)
        .encode(
            x=alt.X("Trade time:T", title="Trade time (UTC)"),
            y=alt.Y("Price:Q", title="Price (₹)", scale=alt.Scale(zero=False)),
            tooltip=["Trade time:T", "Price:Q", "Quantity:Q", "Side:N"],
        )
        .properties(height=360)
    )
    st.altair_chart(chart, width="stretch")


live_stock()
