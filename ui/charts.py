"""Altair charts of the pages, built from the frames of ``ui.format`` (pure: data in, chart out)."""

from __future__ import annotations

import altair as alt
import pandas as pd

UP, DOWN = "#0a8f3c", "#d0312d"


def candlestick(candles: pd.DataFrame, low: float, high: float, interval_label: str) -> alt.LayerChart:
    """Candles (wick = low..high, body = open..close) with the VWAP line and the since-start min/max
    band behind them, and volume bars along the bottom quarter on their own scale (one layered chart,
    so it stretches to the page's width)."""
    x = alt.X("Start:T", title=f"{interval_label} candles (UTC)")
    colour = alt.Color("Direction:N", scale=alt.Scale(domain=["up", "down"], range=[UP, DOWN]), legend=None)
    tooltip = ["Start:T", "Open:Q", "High:Q", "Low:Q", "Close:Q", "Volume:Q", "Transactions:Q",
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
    vwap = base.mark_line(color="#ff9f1c", strokeDash=[4, 2]).encode(y="VWAP:Q", tooltip=["Start:T", "VWAP:Q"])
    price = alt.layer(band, wicks, bodies, vwap)
    # Volume on its own axis whose top is 4x the largest bar: the bars keep to the bottom quarter.
    volume = base.mark_bar(size=7, opacity=0.35).encode(
        y=alt.Y("Volume:Q", title="Volume", scale=alt.Scale(domain=[0, max(1, int(candles["Volume"].max()) * 4)]),
                axis=alt.Axis(orient="right")),
        color=colour, tooltip=["Start:T", "Volume:Q", "Transactions:Q"],
    )
    return alt.layer(price, volume).resolve_scale(y="independent").properties(height=420)


def batch_timeline(batches: pd.DataFrame) -> alt.LayerChart:
    """Micro-batch duration and size over time."""
    base = alt.Chart(batches).encode(x=alt.X("Finished:T", title="Time (UTC)"))
    duration = base.mark_line(point=True).encode(
        y=alt.Y("Batch duration (ms):Q"), tooltip=["Finished:T", "Batch duration (ms):Q", "Messages:Q", "Trades:Q"]
    )
    size = base.mark_bar(opacity=0.3, color="#888").encode(y=alt.Y("Messages:Q", title="Messages per batch"))
    return alt.layer(size, duration).resolve_scale(y="independent").properties(height=220)
