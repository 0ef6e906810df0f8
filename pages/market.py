"""Market: every stock in one live table, the day's movers and the market's breadth."""

import time

import pandas as pd
import streamlit as st

from pipeline.domain.snapshot import MarketSnapshot
from ui.format import LIVE, ago, breadth, change_colour, market_table, movers
from ui.runtime import get_runtime, listed_stocks
from ui.status import show_service_banners

runtime = get_runtime()
st.title("📊 Market")
PRICE = st.column_config.NumberColumn(format="₹%.2f")


def market_figures(table: pd.DataFrame, snapshot: MarketSnapshot, stale_after: int) -> None:
    wide = breadth(table)
    live = int((table["Freshness"] == LIVE).sum())
    cols = st.columns(6)
    cols[0].metric("Stocks traded", f"{len(table):,}")
    cols[1].metric("Advancers", f"{wide.advancers:,}")
    cols[2].metric("Decliners", f"{wide.decliners:,}")
    cols[3].metric("Unchanged", f"{wide.unchanged:,}")
    cols[4].metric("Transactions", f"{snapshot.total_trades:,}")
    cols[5].metric("Live", f"{live:,} of {len(table):,}", help=f"a stock is stale when its last trade is more than "
                   f"{stale_after} s old")
    st.caption(f"Last updated: {ago(snapshot.updated_at)} · "
               f"{sum(snapshot.rejected_by_reason.values()):,} rejected and "
               f"{sum(snapshot.late_by_symbol.values()):,} late ticks set aside (see **Pipeline**)")


def market_dataframe(table: pd.DataFrame, stale_after: int) -> None:
    st.dataframe(
        table.style.map(change_colour, subset=["Change %"]),
        hide_index=True,
        width="stretch",
        height=min(36 + 35 * len(table), 600),
        key="market_table",
        column_config={
            "NAV": PRICE, "High": PRICE, "Low": PRICE, "VWAP": PRICE,
            "Change %": st.column_config.NumberColumn(format="%+.2f%%", help="NAV against the first trade since start"),
            "Volume": st.column_config.NumberColumn(format="localized"),
            "Buy %": st.column_config.NumberColumn(format="%.0f%%", help="share of the volume bought (buy-side trades)"),
            "Transactions": st.column_config.NumberColumn(format="localized"),
            "Company": st.column_config.TextColumn(width="medium"),
            "Last trade (UTC)": st.column_config.DatetimeColumn(format="HH:mm:ss", help="event time of the NAV trade"),
            "Trend": st.column_config.LineChartColumn("Trend", help="recent trade prices", width=90),
            "Freshness": st.column_config.TextColumn(help=f"stale: no trade for more than {stale_after} s"),
        },
    )


def movers_tables(table: pd.DataFrame) -> None:
    gainers, losers = movers(table)
    left, right = st.columns(2)
    for column, title, frame, empty in ((left, "🚀 Top gainers", gainers, "No stock is up yet."),
                                        (right, "🔻 Top losers", losers, "No stock is down yet.")):
        column.subheader(title)
        if frame.empty:
            column.caption(empty)
        else:
            column.dataframe(frame.style.map(change_colour, subset=["Change %"]), hide_index=True, width="stretch",
                             column_config={"NAV": PRICE, "Change %": st.column_config.NumberColumn(format="%+.2f%%")})


@st.fragment(run_every=runtime.settings.dashboard_refresh_ms / 1000)
def live_market() -> None:
    show_service_banners(runtime)
    snapshot = runtime.state.snapshot()
    if not snapshot.stocks:
        st.info("No trade has arrived yet. Insert one on the **Simulator** page (or start the random-walk "
                "generator there), or write a document into `stockmarket.transaction`.", icon="💡")
        return
    stocks = listed_stocks()
    # Rebuilt only when the state changed, or every 5 s for the freshness badges.
    stale_after = runtime.settings.stale_after_s
    table = runtime.view("market_table", (snapshot.version, int(time.time()) // 5),
                         lambda: market_table(snapshot, stocks, stale_after))
    market_figures(table, snapshot, stale_after)
    market_dataframe(table, stale_after)
    movers_tables(table)
    # The table is drawn on a canvas; the same figures in text, for people and browser tests.
    with st.expander("As text"):
        st.text("\n".join(f"{row.Symbol}: NAV {row.NAV:.2f} high {row.High:.2f} low {row.Low:.2f} "
                          f"transactions {row.Transactions}" for row in table.itertuples(index=False)))


live_market()
