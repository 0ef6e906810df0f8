"""Market: every stock in one live table, the day's movers and the market's breadth.

The sector filter and the watchlist live in the URL (``/?sector=FMCG&watch=INFY,TCS&only=watchlist``),
so a view can be bookmarked, shared and reloaded.
"""

import time
from collections.abc import Collection
from datetime import datetime, timezone

import pandas as pd
import streamlit as st

from ui import live, push
from ui.exchange import ZONE_NOTE, market_badge
from ui.format import change_colour, market_table, movers
from ui.market_view import market_view
from ui.runtime import get_runtime, listed_stocks
from ui.status import show_service_banners

runtime = get_runtime()
stocks = listed_stocks()
st.title("📊 Market")
PRICE = st.column_config.NumberColumn(format="₹%,.2f", width=72)
# What the table shows, in order; the frame keeps "Symbol" as plain text beside the link.
# The company is on the Stock page (and in the "As text" view): the table must fit 1440 px without scrolling.
SHOWN = ["Link", "Sector", "Last", "Change", "Change %", "Trend", "High", "Low", "Prev close", "VWAP",
         "Volume", "Buy %", "Trades", "Last trade (IST)", "Freshness"]
WATCH_ONLY = "watchlist"


def url_list(name: str, allowed: Collection[str]) -> list[str]:
    """A comma-separated query parameter, keeping only allowed values (never echoed back unchecked)."""
    given = [item.strip() for item in st.query_params.get(name, "").split(",")]
    return sorted({item for item in given if item and item in allowed})  # a stock may have a blank sector


def set_url_list(name: str, values: list[str]) -> None:
    if values:
        st.query_params[name] = ",".join(values)
    else:
        st.query_params.pop(name, None)


def view_controls() -> tuple[list[str], list[str], bool]:
    """Sector filter, watchlist and "watchlist only", each started from the URL and written back to it."""
    sectors = sorted({stock.sector for stock in stocks.values() if stock.sector})
    if "market_sectors" not in st.session_state:
        st.session_state["market_sectors"] = url_list("sector", sectors)
    if "market_watch" not in st.session_state:
        st.session_state["market_watch"] = url_list("watch", stocks)
    if "market_watch_only" not in st.session_state:
        st.session_state["market_watch_only"] = st.query_params.get("only") == WATCH_ONLY
    left, middle, right = st.columns([2, 3, 1], vertical_alignment="bottom")
    chosen = left.multiselect("Sector", sectors, key="market_sectors", placeholder="All sectors")
    watch = middle.multiselect("Watchlist", sorted(stocks), key="market_watch", placeholder="Add symbols to watch")
    only = right.toggle("Watchlist only", key="market_watch_only")
    set_url_list("sector", chosen)
    set_url_list("watch", watch)
    if only:
        st.query_params["only"] = WATCH_ONLY
    else:
        st.query_params.pop("only", None)
    return chosen, watch, only


def shown_rows(table: pd.DataFrame, sectors: list[str], watch: list[str], only: bool) -> pd.DataFrame:
    if sectors:
        table = table[table["Sector"].isin(sectors)]
    if only:
        table = table[table["Symbol"].isin(watch)]
    return table


def market_figures(view: dict) -> None:
    push.metrics(view["figures"], per_row=6)
    st.caption(view["caption"])


def market_dataframe(table: pd.DataFrame, stale_after: int) -> None:
    st.dataframe(
        table.style.map(change_colour, subset=["Change %"]),
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * max(len(table), 1), 600),
        key="market_table",
        column_order=SHOWN,
        column_config={
            "Link": st.column_config.LinkColumn("Symbol", display_text=r"symbol=(.+)$", width=90,
                                                help="opens the stock's page (candles, latest trades)"),
            "Last": st.column_config.NumberColumn("Last", format="₹%,.2f", width=72,
                                                  help="the latest trade's price (by trade time) on the trading day"),
            "Change": st.column_config.NumberColumn("Chg ₹", format="%+,.2f", width=58,
                                                    help="last price minus the previous close"),
            "Change %": st.column_config.NumberColumn("Chg %", format="%+.2f%%", width=58,
                                                      help="against the previous close"),
            "High": PRICE, "Low": PRICE, "VWAP": PRICE,
            "Prev close": st.column_config.NumberColumn("Prev", format="₹%,.2f", width=72,
                                                        help="last price of the previous session, else the reference price"),
            "Volume": st.column_config.NumberColumn("Vol", format="compact", width=48, help="shares traded today"),
            "Trades": st.column_config.NumberColumn("Trades", format="compact", width=48, help="trades today"),
            "Buy %": st.column_config.NumberColumn("Buy", format="%.0f%%", width=40,
                                                   help="share of today's volume bought (buy-side trades)"),
            "Company": st.column_config.TextColumn(width=90),
            "Sector": st.column_config.TextColumn(width=90),
            "Last trade (IST)": st.column_config.DatetimeColumn("Time", format="HH:mm:ss", width=62,
                                                                help="event time of the latest trade, IST 24-hour"),
            "Trend": st.column_config.LineChartColumn("Trend", help="recent trade prices: green rising, red falling",
                                                      width=62, color="auto"),
            "Freshness": st.column_config.TextColumn("Fresh", width=62,
                                                     help=f"stale: no trade for more than {stale_after} s"),
        },
    )


def as_text(row: dict) -> str:
    """One stock on the trading day in words (a stock with no trade today shows its previous close)."""
    if not row["Trades"]:
        return f"{row['Symbol']}: last {row['Last']:.2f}, no trade today"
    change = "" if pd.isna(row["Change"]) else f" change {row['Change']:+.2f} ({row['Change %']:+.2f}%)"
    return (f"{row['Symbol']}: last {row['Last']:.2f}{change} high {row['High']:.2f} low {row['Low']:.2f} "
            f"trades today {row['Trades']}")


def movers_tables(gainers: pd.DataFrame, losers: pd.DataFrame) -> None:
    left, right = st.columns(2)
    for column, title, frame, empty in ((left, "🚀 Top gainers", gainers, "No stock is up yet."),
                                        (right, "🔻 Top losers", losers, "No stock is down yet.")):
        column.subheader(title)
        if frame.empty:
            column.caption(empty)
        else:
            column.dataframe(frame.style.map(change_colour, subset=["Change %"]), hide_index=True, width="stretch",
                             column_config={"Last": PRICE, "Change %": st.column_config.NumberColumn(format="%+.2f%%")})


# Redrawn when the market changed; and every 5 s, the freshness badges' step, for the ages and badges.
@live.fragment(runtime, idle_s=5, gap_s=push.REST_OF_PAGE_S)
def live_market(sectors: list[str], watch: list[str], only: bool) -> None:
    show_service_banners(runtime)
    st.caption(f"{market_badge(datetime.now(timezone.utc))} · {ZONE_NOTE}")
    snapshot = runtime.state.snapshot()
    if not snapshot.stocks:
        st.info("No trade has arrived yet. Insert one on the **Simulator** page (or start the random-walk "
                "generator there), or write a document into `stockmarket.transaction`.", icon="💡")
        return
    # Rebuilt only when the state changed, or every 5 s for the freshness badges.
    stale_after = runtime.settings.stale_after_s
    key = (snapshot.version, int(time.time()) // 5)
    table = runtime.view("market_table", key, lambda: market_table(snapshot, stocks, stale_after))
    view = runtime.view("market_view", key, lambda: market_view(snapshot, stocks, stale_after))
    if push.route_served():  # the figures, the table and the movers follow each change, pushed; the rest reruns
        push.pushed("market", "market", lambda pushed: market_view(pushed, stocks, stale_after), view,
                    filter={"sectors": sectors, "watch": watch, "only": only})
    else:
        market_figures(view)
        shown = shown_rows(table, sectors, watch, only)
        if shown.empty:
            st.caption("No traded stock matches the sector filter and watchlist.")
        market_dataframe(shown, stale_after)
        movers_tables(*runtime.view("market_movers", key, lambda: movers(table)))
    # The same figures in words, for people, screen readers and browser tests.
    with st.expander("As text"):
        st.text("\n".join(as_text(row) for row in table.to_dict("records")))


live_market(*view_controls())
