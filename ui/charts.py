"""Altair charts of the pages, built from the frames of ``ui.format`` (pure: data in, chart out)."""

from __future__ import annotations

import functools
from typing import Any

import altair as alt
import pandas as pd

UP, DOWN = "#0a8f3c", "#d0312d"
# Times reach the charts as naive IST wall-clock datetimes. Vega-Lite would format a time in the viewer's
# browser zone (12-hour in some locales), so each chart gets the wall clock *as if it were UTC* with an
# explicit 24-hour format: epoch milliseconds on a `utc` scale (``ist_axis``), or epoch minutes on a linear
# scale labelled by ``utcFormat`` (``minutes_axis``, the zoomable candles). The browser's zone cannot shift
# either. Tooltips show the same time as a string made here.
AXIS_TIME, TOOLTIP_TIME = "%H:%M", "%Y-%m-%d %H:%M:%S"
# The candle chart's x zoom/pan, a named selection: its range comes back through ``st.vega_lite_chart``'s
# ``on_select`` and is drawn again at every redraw (pages/stock.py), so a redraw keeps the user's view.
ZOOM, CROSSHAIR = "zoom", "crosshair"
CANDLES, BAND = "candles", "band"  # the candle chart's datasets


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


def minutes_axis(column: str, title: str) -> alt.X:
    """An x channel for ``<column> min``: the IST wall clock in minutes since the epoch, on a *linear* scale.

    Linear, not temporal: Streamlit reports a zoom of a temporal scale as an empty selection, so the zoom
    could not be kept. Minutes make the scale's round ticks whole minutes (1, 5, 10, 20 … apart); the
    labels are the same 24-hour IST clock as elsewhere."""
    return alt.X(f"{column} min:Q", title=title, scale=alt.Scale(zero=False, nice=False, padding=10),
                 axis=alt.Axis(labelExpr=f"utcFormat(datum.value * 60000, '{AXIS_TIME}')", tickMinStep=1,
                               labelOverlap=True))


def zoom_of(event: object) -> tuple[float, float] | None:
    """The x range (minutes) of a candle chart's zoom from its ``on_select`` event, None when not zoomed."""
    selection = getattr(event, "selection", None) or (event.get("selection") if isinstance(event, dict) else None)
    chosen = (selection or {}).get(ZOOM) or {}
    span = chosen.get("Start min")
    if not isinstance(span, (list, tuple)) or len(span) != 2:
        return None
    low, high = (float(value) for value in span)
    return (low, high) if low < high else None


def candlestick(candles: pd.DataFrame, low: float, high: float, interval_label: str,
                zoom: tuple[float, float] | None = None) -> dict[str, Any]:
    """The candle chart as a Vega-Lite spec for ``st.vega_lite_chart``, data included: candles (wick = low..high,
    body = open..close), the VWAP line, the day's low..high band, volume bars along the bottom quarter on
    their own scale, a crosshair and x zoom/pan (wheel, drag; double-click resets) starting from ``zoom``.

    Altair builds and validates this layered spec in ~130 ms of CPU, nine tenths of a Stock page's redraw:
    it is built once per interval and zoom (:func:`_candle_template`), and a redraw only puts in the data
    and the two data-bound scale domains."""
    rows = candle_rows(candles)
    # Room below the lowest price for the volume bars; a flat price still gets a visible range.
    span = (high - low) or max(high * 0.01, 0.01)
    domains: dict[str, list[float]] = {"price": [low - span * 0.45, high + span * 0.05],
               # Volume on its own axis whose top is 4x the largest bar: the bars keep to the bottom quarter.
               "Volume": [0.0, max(1.0, float(rows["Volume"].max()) * 4) if len(rows) else 1.0]}
    spec = dict(_candle_template(interval_label, zoom))
    spec["layer"] = [_with_domain(layer, domains) for layer in spec["layer"]]
    spec["datasets"] = {CANDLES: rows, BAND: pd.DataFrame({"low": [low], "high": [high]})}
    return spec


def candle_rows(candles: pd.DataFrame) -> pd.DataFrame:
    """``candles_frame`` rows with what the chart reads: minutes on the x scale, IST text, the readout."""
    candles = ist_time_columns(candles, "Start")
    candles["Start min"] = candles["Start ms"] / 60_000
    candles["Readout"] = [f"{when[11:16]}  O {o:,.2f}  H {h:,.2f}  L {lo:,.2f}  C {c:,.2f}  Vol {v:,}" for when, o, h, lo, c, v in
                          candles[["Start IST", "Open", "High", "Low", "Close", "Volume"]].itertuples(index=False)]
    return candles


def _with_domain(layer: dict[str, Any], domains: dict[str, list[float]]) -> dict[str, Any]:
    """A template layer with its y scale's domain for this redraw (copied where changed: the template is shared)."""
    y = layer.get("encoding", {}).get("y")
    if not isinstance(y, dict) or "domain" not in y.get("scale", {}):
        return layer
    domain = domains["Volume" if y.get("field") == "Volume" else "price"]
    return {**layer, "encoding": {**layer["encoding"], "y": {**y, "scale": {**y["scale"], "domain": domain}}}}


@functools.lru_cache(maxsize=64)
def _candle_template(interval_label: str, zoom: tuple[float, float] | None) -> dict[str, Any]:
    """The Altair-built spec with its data taken out (datasets named ``candles`` and ``band``) and the theme
    Streamlit would have switched off, built from one sample candle. Callers copy what they change."""
    sample = pd.DataFrame([{"Start": pd.Timestamp("2026-01-01 09:15"), "Open": 1.0, "High": 1.0, "Low": 1.0,
                            "Close": 1.0, "Volume": 1, "Transactions": 1, "VWAP": 1.0, "Direction": "up",
                            "Revised": False}])
    spec = _candle_layers(candle_rows(sample), 0.0, 1.0, interval_label, zoom).to_dict()
    names = {name: BAND if rows and set(rows[0]) == {"low", "high"} else CANDLES
             for name, rows in spec.pop("datasets").items()}
    spec["layer"] = [{**layer, "data": {"name": names[layer["data"]["name"]]}} for layer in spec["layer"]]
    spec.pop("config", None)  # Altair's default theme (a 300x300 view): Streamlit disables it for its charts
    return spec


# The room for the volume bars below the lowest price can reach below zero (a day from ₹2 to ₹3,500): no price
# is negative, so that part of the axis has no label, tick or grid line.
_BELOW_ZERO = "datum.value < 0"
PRICE_AXIS = alt.Axis(labelExpr=f"{_BELOW_ZERO} ? '' : datum.label",
                      gridOpacity=alt.condition(_BELOW_ZERO, alt.value(0), alt.value(1)),
                      tickOpacity=alt.condition(_BELOW_ZERO, alt.value(0), alt.value(1)))


def _candle_layers(candles: pd.DataFrame, low: float, high: float, interval_label: str,
                   zoom: tuple[float, float] | None) -> alt.LayerChart:
    """The chart in Altair. One level of layers (it stretches to the page; Vega-Lite drops a zoom's initial
    value in nested layers), each with its own y scale: the price layers share one explicit domain and one
    axis. Every mark clips: a zoomed chart draws nothing over its axes."""
    base = alt.Chart(candles).encode(x=minutes_axis("Start", f"{interval_label} candles (IST, 24-hour)"))
    when = alt.Tooltip("Start IST:N", title="Start (IST)")
    colour = alt.Color("Direction:N", scale=alt.Scale(domain=["up", "down"], range=[UP, DOWN]), legend=None)
    tooltip = [when, "Open:Q", "High:Q", "Low:Q", "Close:Q", "Volume:Q", "Transactions:Q",
               alt.Tooltip("VWAP:Q", format=".2f"), "Revised:N"]
    price_scale = alt.Scale(zero=False, domain=[low, high])  # each redraw puts in its own

    def price(field: str, axis: bool = False) -> alt.Y:
        return alt.Y(field, scale=price_scale, title="Price (₹)", axis=PRICE_AXIS if axis else None)

    band = (
        alt.Chart(pd.DataFrame({"low": [low], "high": [high]}))
        .mark_rect(opacity=0.08, color="#1f77b4")
        .encode(y=price("low:Q", axis=True), y2="high:Q")
    )
    wicks = base.mark_rule(clip=True).encode(y=price("Low:Q"), y2="High:Q", color=colour, tooltip=tooltip)
    bodies = base.mark_bar(size=7, clip=True).encode(y=price("Open:Q"), y2="Close:Q", color=colour, tooltip=tooltip)
    vwap = base.mark_line(color="#ff9f1c", strokeDash=[4, 2], clip=True).encode(y=price("VWAP:Q"),
                                                                                 tooltip=[when, "VWAP:Q"])
    volume = base.mark_bar(size=7, opacity=0.35, clip=True).encode(
        y=alt.Y("Volume:Q", title="Volume", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(orient="right")),
        color=colour, tooltip=[when, "Volume:Q", "Transactions:Q"],
    )
    return (alt.layer(band, wicks, bodies, vwap, volume, *crosshair(base, tooltip, zoom))
            .resolve_scale(y="independent").properties(height=420))


def crosshair(base: alt.Chart, tooltip: list, zoom: tuple[float, float] | None) -> tuple[alt.Chart, alt.Chart]:
    """A rule on the candle nearest the pointer, with that candle's figures read out at its top; the chart's
    zoom lives on the rule's layer. Both selections on one layer: Altair lists a layered chart's selections
    for every layer that has one, and a selection defined in two views is a duplicate signal Vega refuses."""
    zooming = alt.selection_interval(name=ZOOM, bind="scales", encodings=["x"],
                                     value={"x": list(zoom)} if zoom else alt.Undefined)
    hover = alt.selection_point(name=CROSSHAIR, on="pointermove", nearest=True, encodings=["x"], empty=False,
                                clear="pointerout")
    rule = base.mark_rule(color="#666", strokeDash=[3, 3], clip=True).encode(
        opacity=alt.condition(hover, alt.value(0.9), alt.value(0)), tooltip=tooltip).add_params(zooming, hover)
    readout = base.mark_text(align="left", dx=6, fontSize=12, clip=True).encode(
        text="Readout:N", y=alt.value(10)).transform_filter(hover)
    return rule, readout


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
