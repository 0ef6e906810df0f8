"""Dashboard: every stock with NAV, high, low, transactions and last trade time, live."""

import streamlit as st

from ui.format import ago, market_table
from ui.runtime import get_runtime, listed_stocks
from ui.status import show_service_banners

runtime = get_runtime()
st.title("📊 NSE market, live")


@st.fragment(run_every=runtime.settings.dashboard_refresh_ms / 1000)
def live_market() -> None:
    show_service_banners(runtime)
    snapshot = runtime.state.snapshot()
    st.caption(f"Last updated: {ago(snapshot.updated_at)} · {snapshot.total_trades:,} transactions · "
               f"{sum(snapshot.rejected_by_reason.values()):,} set aside")
    if not snapshot.stocks:
        st.info("No trade has arrived yet. Insert one on the **Simulator** page, or write a document "
                "into `stockmarket.transaction`.", icon="💡")
        return
    table = market_table(snapshot, listed_stocks())
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "NAV": st.column_config.NumberColumn(format="₹%.2f"),
            "High": st.column_config.NumberColumn(format="₹%.2f"),
            "Low": st.column_config.NumberColumn(format="₹%.2f"),
            "VWAP": st.column_config.NumberColumn(format="₹%.2f"),
            "Change %": st.column_config.NumberColumn(format="%.2f%%"),
            "Last trade (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
        },
    )
    # The table is drawn on a canvas; the same figures in text, for people and browser tests.
    with st.expander("As text"):
        for row in table.itertuples(index=False):
            st.text(f"{row.Symbol}: NAV {row.NAV:.2f} high {row.High:.2f} low {row.Low:.2f} "
                    f"transactions {row.Transactions}")


live_market()
