"""Altair charts of the pages, built from the frames of ``ui.format`` (pure: data in, chart out)."""

from __future__ import annotations

import altair as alt
import pandas as pd

UP, DOWN = "#0a8f3c", "#d0312d"


def candlestick(candles: pd.DataFrame, low: float, high: float, interval_label: str) -> alt.VConcatChart:
    """Candles (wick = low..high, body = open..close) with the VWAP line and the since-start
    min/max band behind them, and volume bars below on the same time axis."""
    x = alt.X("Start:T", title=f"{interval_label} candles (UTC)")
    colour = alt.Color("Direction:N", scale=alt.Scale(domain=["up", "down"], range=[UP, DOWN]), legend=None)
    tooltip = ["Start:T", "Open:Q", "High:Q", "Low:Q", "Close:Q", "Volume:Q", "Transactions:Q",
               alt.Tooltip("VWAP:Q", format=".2f"), "Revised:N"]
    base = alt.Chart(candles).encode(x=x)
    band = (
        alt.Chart(pd.DataFrame({"low": [low], "high": [high]}))
        .mark_rect(opacity=0.08, color="#1f77b4")
        .encode(y=alt.Y("low:Q"), y2="high:Q", tooltip=[alt.Tooltip("low:Q", title="Since-start low"),
                                                        alt.Tooltip("high:Q", title="Since-start high")])
    )
    wicks = base.mark_rule().encode(
        y=alt.Y("Low:Q", title="Price (₹)", scale=alt.Scale(zero=False)), y2="High:Q", color=colour, tooltip=tooltip
    )
    bodies = base.mark_bar(size=7).encode(y="Open:Q", y2="Close:Q", color=colour, tooltip=tooltip)
    vwap = base.mark_line(color="#ff9f1c", strokeDash=[4, 2]).encode(y="VWAP:Q", tooltip=["Start:T", "VWAP:Q"])
    price = alt.layer(band, wicks, bodies, vwap).properties(height=320, width="container")
    volume = base.mark_bar(size=7).encode(
        y=alt.Y("Volume:Q", title="Volume"), color=colour, tooltip=["Start:T", "Volume:Q", "Transactions:Q"]
    ).properties(height=110, width="container")
    return alt.vconcat(price, volume, spacing=6).resolve_scale(x="shared")


def batch_timeline(batches: pd.DataFrame) -> alt.LayerChart:
    """Micro-batch duration and size over time."""
    base = alt.Chart(batches).encode(x=alt.X("Finished:T", title="Time (UTC)"))
    duration = base.mark_line(point=True).encode(
        y=alt.Y("Batch duration (ms):Q"), tooltip=["Finished:T", "Batch duration (ms):Q", "Messages:Q", "Trades:Q"]
    )
    size = base.mark_bar(opacity=0.3, color="#888").encode(y=alt.Y("Messages:Q", title="Messages per batch"))
    return alt.layer(size, duration).resolve_scale(y="independent").properties(height=220)
