"""Exchange time: every time on screen in IST (24-hour), NSE market hours, longer candles merged from
1-minute ones, the market table's new columns, and charts whose time axis the browser's zone cannot move."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from pipeline.domain.candles import Candle
from pipeline.domain.metrics import merge
from pipeline.domain.snapshot import BatchReport
from pipeline.domain.stocks import Stock
from tests.oracle import aggregate
from tests.unit.test_ui_views import state_with
from ui.charts import CANDLES, batch_timeline, candlestick, zoom_of
from ui.exchange import IST, ist_text, market_open, naive_ist, to_ist
from ui.format import MARKET_COLUMNS, batches_frame, candles_frame, market_table, merged_candles

UTC = timezone.utc
MONDAY = datetime(2025, 11, 24, tzinfo=IST)  # a Monday


def at(day: datetime, hour: int, minute: int, second: int = 0) -> datetime:
    return day.replace(hour=hour, minute=minute, second=second)


def test_utc_is_shown_as_ist_five_and_a_half_hours_ahead():
    moment = datetime(2025, 11, 24, 20, 0, tzinfo=UTC)
    assert to_ist(moment) == moment and to_ist(moment).utcoffset() == timedelta(hours=5, minutes=30)
    assert naive_ist(moment) == datetime(2025, 11, 25, 1, 30)  # past midnight: the next day in India
    assert naive_ist(datetime(2025, 11, 24, 9, 15)) == datetime(2025, 11, 24, 14, 45)  # naive = stored UTC
    assert naive_ist(None) is None
    assert ist_text(datetime(2025, 11, 24, 10, 5, 9, tzinfo=UTC)) == "2025-11-24 15:35:09 IST"  # 24-hour


@pytest.mark.parametrize(("moment", "is_open"), [
    (at(MONDAY, 9, 14, 59), False),
    (at(MONDAY, 9, 15), True),  # the opening bell
    (at(MONDAY, 12, 0), True),
    (at(MONDAY, 15, 29, 59), True),
    (at(MONDAY, 15, 30), False),  # closed from 15:30:00 on
    (at(MONDAY + timedelta(days=4), 10, 0), True),  # Friday
    (at(MONDAY + timedelta(days=5), 10, 0), False),  # Saturday
    (at(MONDAY + timedelta(days=6), 10, 0), False),  # Sunday
    (datetime(2025, 11, 24, 3, 45, tzinfo=UTC), True),  # 09:15 IST given in UTC
    (datetime(2025, 11, 24, 10, 0, tzinfo=UTC), False),  # 15:30 IST given in UTC
    (datetime(2025, 11, 23, 23, 0, tzinfo=UTC), False),  # Sunday in UTC, Monday 04:30 in IST: before the open
])
def test_market_hours_are_0915_to_1530_ist_on_weekdays(moment, is_open):
    assert market_open(moment) is is_open


def minute_candles(count: int, start: datetime, revised_at: int | None = None) -> list[Candle]:
    """``count`` 1-minute candles from ``start``, the i-th at price 100 + i (open) and 100 + i + 1 (close)."""
    return [Candle("AAA", 60, int(start.timestamp()) + 60 * i,
                   aggregate("AAA", str(100 + i), str(101 + i), when=start + timedelta(minutes=i), quantities=[1, 1]),
                   revised=i == revised_at)
            for i in range(count)]


def test_15_minute_and_hourly_candles_merge_the_minutes_of_their_window():
    start = datetime(2025, 11, 24, 3, 50, tzinfo=UTC)  # 09:20 IST: the first quarter hour is partial
    minutes = minute_candles(30, start, revised_at=12)
    quarters = merged_candles(minutes, 900)
    assert [c.start_s - int(start.timestamp()) for c in quarters] == [-300, 600, 1500]
    assert [(float(c.metrics.open), float(c.metrics.nav)) for c in quarters] == [(100, 110), (110, 125), (125, 130)]
    assert [c.metrics.trades for c in quarters] == [20, 30, 10] and [c.revised for c in quarters] == [False, True, False]
    expected = minutes[0].metrics
    for candle in minutes[1:10]:
        expected = merge(expected, candle.metrics)
    assert quarters[0].metrics == expected and quarters[0].interval_s == 900

    snapshot = state_with(aggregate("AAA", "100", "130", when=start), candles=minutes)
    hourly = candles_frame(snapshot, "AAA", 3600)
    # Hourly windows start at the opening bell, 09:15 IST (not at 08:30/09:30 IST, UTC's hours)
    assert list(hourly["Start"]) == [datetime(2025, 11, 24, 9, 15)] and hourly.iloc[0]["Transactions"] == 60
    assert (hourly.iloc[0]["Open"], hourly.iloc[0]["High"], hourly.iloc[0]["Low"], hourly.iloc[0]["Close"]) == (100, 130, 100, 130)
    fifteen = candles_frame(snapshot, "AAA", 900)
    assert list(fifteen["Start"].dt.strftime("%H:%M")) == ["09:15", "09:30", "09:45"]  # IST
    assert list(candles_frame(snapshot, "AAA", 60)["Start"])[:2] == [datetime(2025, 11, 24, 9, 20),
                                                                      datetime(2025, 11, 24, 9, 21)]


def test_market_table_has_sector_a_stock_link_and_ist_last_trade():
    when = datetime(2025, 11, 24, 9, 15, 7, tzinfo=UTC)
    stocks = {"INFY": Stock("INFY", "Infosys Ltd", "Information Technology", 1560.0)}
    table = market_table(state_with(aggregate("INFY", "1500", "1510", when=when)), stocks, stale_after_s=60)
    row = table.iloc[0]
    assert list(table.columns) == MARKET_COLUMNS
    assert (row["Symbol"], row["Link"], row["Sector"]) == ("INFY", "stock?symbol=INFY", "Information Technology")
    assert row["Last trade (IST)"] == datetime(2025, 11, 24, 14, 45, 7)
    assert not any("UTC" in column for column in table.columns)


def test_chart_time_axes_are_ist_24_hour_whatever_the_browser_zone():
    start = datetime(2025, 11, 24, 8, 0, tzinfo=UTC)  # 13:30 IST: a 12-hour clock would say 1:30
    frame = candles_frame(state_with(aggregate("AAA", "100", "101", when=start), candles=minute_candles(3, start)),
                          "AAA", 60)
    spec = candlestick(frame, 100, 103, "1m")
    x = next(layer["encoding"]["x"] for layer in spec["layer"] if "x" in layer.get("encoding", {}))
    # Minutes of the IST wall clock since the epoch, labelled by utcFormat: never the browser's zone.
    assert x["field"] == "Start min" and x["axis"]["labelExpr"] == "utcFormat(datum.value * 60000, '%H:%M')"
    assert "IST" in x["title"]
    rows = spec["datasets"][CANDLES].to_dict("records")
    assert [datetime.fromtimestamp(r["Start min"] * 60, tz=UTC).strftime("%H:%M") for r in rows] == \
        ["13:30", "13:31", "13:32"]
    assert [r["Start IST"] for r in rows][0] == "2025-11-24 13:30:00"
    assert "Start:T" not in str(spec["layer"])  # no encoding reads a time the browser would place in its own zone
    batches = batches_frame([BatchReport(0, start.timestamp(), 0.1, 5, 5)])
    assert batches.iloc[0]["Finished"] == datetime(2025, 11, 24, 13, 30)
    timeline = batch_timeline(batches).to_dict()
    assert timeline["layer"][0]["encoding"]["x"]["scale"]["type"] == "utc"


def test_hourly_windows_start_at_the_opening_bell_and_prices_stay_exact():
    start = datetime(2025, 11, 24, 4, 0, tzinfo=UTC)
    hour = merged_candles(minute_candles(60, start), 3600)  # 09:30..10:29 IST: across 10:15
    assert [c.metrics.trades for c in hour] == [90, 30]
    hour = merged_candles(minute_candles(60, start - timedelta(minutes=15)), 3600)  # 09:15..10:14 IST
    assert len(hour) == 1 and hour[0].metrics.nav == Decimal(160) and hour[0].metrics.high == Decimal(160)


def test_the_candle_chart_starts_from_the_users_zoom_and_has_a_crosshair():
    start = datetime(2025, 11, 24, 8, 0, tzinfo=UTC)
    frame = candles_frame(state_with(aggregate("AAA", "100", "101", when=start), candles=minute_candles(30, start)),
                          "AAA", 60)
    minutes = start.timestamp() / 60 + 330  # 13:30 IST as wall-clock minutes
    zoomed = str(candlestick(frame, 100, 103, "1m", zoom=(minutes, minutes + 5)))
    assert f"'value': {{'x': [{minutes}, {minutes + 5}]}}" in zoomed and "'bind': 'scales'" in zoomed
    assert "'name': 'crosshair'" in zoomed and "'nearest': True" in zoomed
    assert "'value': {'x'" not in str(candlestick(frame, 100, 103, "1m"))


def test_the_price_axis_labels_no_negative_price_below_a_wide_days_range():
    """The volume bars' room below the day's low reaches below zero when the low is far under the high."""
    start = datetime(2025, 11, 24, 8, 0, tzinfo=UTC)
    frame = candles_frame(state_with(aggregate("AAA", "2", "3500", when=start), candles=minute_candles(3, start)),
                          "AAA", 60)
    spec = candlestick(frame, 2, 3500, "1m")
    axes = [layer["encoding"]["y"] for layer in spec["layer"] if layer["encoding"].get("y", {}).get("axis")]
    assert [y["title"] for y in axes] == ["Price (₹)", "Volume"]
    price = axes[0]
    assert price["scale"]["domain"][0] < 0  # the room for the volume bars
    assert price["axis"]["labelExpr"] == "datum.value < 0 ? '' : datum.label"
    assert price["axis"]["gridOpacity"] == {"condition": {"test": "datum.value < 0", "value": 0}, "value": 1}


def test_the_zoom_comes_back_from_the_charts_selection_event():
    assert zoom_of({"selection": {"zoom": {"Start min": [10.5, 20.0]}}}) == (10.5, 20.0)
    for event in (None, {}, {"selection": {"zoom": {}}}, {"selection": {"zoom": {"Start min": [3, 3]}}}):
        assert zoom_of(event) is None
