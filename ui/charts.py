"""Altair charts of the pages, built from the frames of ``ui.format`` (pure: data in, chart out)."""

from __future__ import annotations

import altair as alt
import pandas as pd

UP, DOWN = "#0a8f3c", "#d0312d"
# Times reach the charts as naive IST wall-clock datetimes. Vega-Lite would format a time in the viewer's
# browser zone (12-hour in some locales), so each chart gets the wall clock as epoch milliseconds *as if
# it were UTC* on a `utc` scale with an explicit 24-hour format: the browser's zone cannot shift it.
# Tooltips show the same time as a string made here.
AXIS_TIME, TOOLTIP_TIME = "%H:%M", "%Y-%m-%d %H:%M:%S"


def ist_time_columns(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """``frame`` with ``<column> ms`` (the naive wall clock as UTC epoch ms) and ``<column> IST`` (text)."""
    wall = pd.to_datetime(frame[column])
    epoch_ms = (wall - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1)
    return frame.assign(**{f"{column} ms": epoch_ms.astype("int64"),
                           f"{column} IST": wall.dt.strftime(TOOLTIP_TIME)})


def ist_axis(column: str, title: str, label_format: str = AXIS_TIME) -> alt.X:
    """An x channel for ``<column> ms`` from ``ist_time_columns``: UTC scale, 24-hour labels."""
    return alt.X(f"{column} ms:T", title=title, scale=alt.Scale(type="utc"),
                 axis=alt.Axis(format=label_format, labelOverlap=True))


def candlestick(candles: pd.DataFrame, low: float, high: float, interval_label: str) -> alt.LayerChart:
    """Candles (wick = low..high, body = open..close) with the VWAP line and the since-start min/max
    band behind them, and volume bars along the bottom quarter on their own scale (one layered chart,
    so it stretches to the page's width)."""
    candles = ist_time_columns(candles, "Start")
    x = ist_axis("Start", f"{interval_label} candles (IST, 24-hour)")
    when = alt.Tooltip("Start IST:N", title="Start (IST)")
    colour = alt.Color("Direction:N", scale=alt.Scale(domain=["up", "down"], range=[UP, DOWN]), legend=None)
    tooltip = [when, "Open:Q", "High:Q", "Low:Q", "Close:Q", "Volume:Q", "Transactions:Q",
               alt.Tooltip("VWAP:Q", format=".2f"), "Revised:N"]
    # Room below the lowest price for the volume bars; a flat price still gets a visible range.
    span = (high - low) or max(high * 0.01, 0.01)
    price_scale = alt.Scale(zero=False, domain=[low - span * 0.45, high + span * 0.05])
    base = alt.Chart(candles).encode(x=x)
    band = (
        alt.Chart(pd.DataFrame({"low": [low], "high": [high]}))
        .mark_rect(opacity=0.08, color="#1f77b4")
        .encode(y=alt.Y("low:Q", scale=price_scale, title="Price (₹)"), y2="high:Q",
                tooltip=[alt.Tooltip("low:Q", title="Since-start low"), alt.Tooltip("high:Q", title="Since-start high")])
    )
    wicks = base.mark_rule().encode(y=alt.Y("Low:Q", scale=price_scale), y2="High:Q", color=colour, tooltip=tooltip)
    bodies = base.mark_bar(size=7).encode(y="Open:Q", y2="Close:Q", color=colour, tooltip=tooltip)
    vwap = base.mark_line(color="#ff9f1c", strokeDash=[4, 2]).encode(y="VWAP:Q", tooltip=[when, "VWAP:Q"])
    price = alt.layer(band, wicks, bodies, vwap)
    # Volume on its own axis whose top is 4x the largest bar: the bars keep to the bottom quarter.
    volume = base.mark_bar(size=7, opacity=0.35).encode(
        y=alt.Y("Volume:Q", title="Volume", scale=alt.Scale(domain=[0, max(1, int(candles["Volume"].max()) * 4)]),
                axis=alt.Axis(orient="right")),
        color=colour, tooltip=[when, "Volume:Q", "Transactions:Q"],
    )
    return alt.layer(price, volume).resolve_scale(y="independent").properties(height=420)


def batch_timeline(batches: pd.DataFrame) -> alt.LayerChart:
    """Micro-batch duration and size over time."""
    batches = ist_time_columns(batches, "Finished")
    # Batches come seconds apart: minutes alone would label every tick alike.
    base = alt.Chart(batches).encode(x=ist_axis("Finished", "Time (IST, 24-hour)", "%H:%M:%S"))
    duration = base.mark_line(point=True).encode(
        y=alt.Y("Batch duration (ms):Q"),
        tooltip=[alt.Tooltip("Finished IST:N", title="Finished (IST)"), "Batch duration (ms):Q", "Messages:Q",
                 "Trades:Q"],
    )
    size = base.mark_bar(opacity=0.3, color="#888").encode(y=alt.Y("Messages:Q", title="Messages per batch"))
    return alt.layer(size, duration).resolve_scale(y="independent").properties(height=220)
