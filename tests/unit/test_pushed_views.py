"""The pushed parts without a browser: the Stock, Market and ledger views as plain texts (``ui.stock_view``,
``ui.market_view``, ``ui.ledger_view``), and the route that sends them (``ui.push``) over a real WebSocket:
only for a symbol a page has shown, at once, again after a change of the symbol, and not for a change that
leaves the symbol's view as it was."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from pipeline.domain.candles import Candle
from pipeline.domain.snapshot import BatchResult, SetAside, Tick
from pipeline.domain.state import MarketState
from tests.unit.test_live import serving
from tests.unit.test_ui_views import STOCKS, T0, agg
from ui import live, push
from ui.ledger_view import LATE, REJECTED, ledger_view
from ui.market_view import compact, market_view
from ui.stock_view import stock_view


def apply(state: MarketState, batch_id: int, *aggregates, ticks=()) -> MarketState:
    """The record's batch of these aggregates (each with its 1-minute candle) and ticks."""
    candles = [Candle(a.symbol, 60, int(a.open_time.timestamp()) // 60 * 60, a) for a in aggregates]
    state.apply_batch(BatchResult(batch_id, tuple(state.merged_with(batch_id, aggregates)),
                                  tuple(state.merged_candles(batch_id, candles, {})), tuple(ticks)))
    return state


def tick(symbol: str, seconds: int, price: str) -> Tick:
    return Tick(symbol, T0 + timedelta(seconds=seconds), f"e-{symbol}-{seconds}", f"t{seconds}", Decimal(price), 3,
                "buy", T0 + timedelta(seconds=seconds, milliseconds=5))


def test_the_view_holds_the_days_figures_the_candle_and_the_latest_trades_as_text():
    ticks = [tick("AAA", 1, "100"), tick("AAA", 2, "1110")]
    snapshot = apply(MarketState(), 0, agg("AAA", "100", "1110", volume=10), ticks=ticks).snapshot()
    view = stock_view(snapshot, STOCKS["AAA"], "AAA", now=T0.timestamp() + 30)
    assert view is not None and view["version"] == snapshot.version
    figures = {f["label"]: f for f in view["figures"]}  # type: ignore[union-attr]
    assert list(figures) == ["Last", "High", "Low", "Prev close", "VWAP", "Volume", "Trades", "Set aside"]
    assert (figures["Last"]["value"], figures["Last"]["delta"]) == ("₹1,110.00", "+1,010.00 (+1010.00%)")
    assert (figures["Prev close"]["value"], figures["Set aside"]["value"]) == ("₹100.00", "0")
    assert figures["Set aside"]["tone"] == "off"
    candle = view["candle"]
    assert candle["title"].startswith("Forming 1-minute candle · 14:45 IST")  # type: ignore[index]
    assert "C ₹1,110.00" in candle["figures"]  # type: ignore[index]
    assert candle["strip"][-1]["label"].endswith("Close: 1110.00")  # type: ignore[index]
    trades = view["trades"]
    assert [t["Price"] for t in trades] == ["₹1,110.00", "₹100.00"]  # type: ignore[union-attr]
    assert trades[0]["Trade time (IST)"] == "2025-11-24 14:45:02.000"  # type: ignore[index]
    later = stock_view(snapshot, STOCKS["AAA"], "AAA", now=T0.timestamp() + 120)
    assert later["candle"]["title"].startswith("Last 1-minute candle")  # type: ignore[index]
    assert stock_view(snapshot, STOCKS["BBB"], "BBB") is None  # no trade yet


def test_the_market_view_has_a_row_of_texts_per_stock_with_its_tone_and_sort_keys():
    ticks = [tick("AAA", i, str(100 + i)) for i in range(3)]
    snapshot = apply(MarketState(), 0, agg("AAA", "100", "110", volume=25_000), agg("BBB", "100", "95"),
                     ticks=ticks).snapshot()
    view = market_view(snapshot, STOCKS, stale_after_s=60, now=T0.timestamp() + 30)
    headers = [c["header"] for c in view["columns"]]  # type: ignore[union-attr]
    assert headers[:5] == ["Symbol", "Sector", "Last", "Chg ₹", "Chg %"] and headers[-1] == "Fresh"
    aaa, bbb = view["rows"]  # type: ignore[misc]
    cells = dict(zip(headers, aaa["cells"], strict=True))
    assert (aaa["symbol"], aaa["tone"], bbb["tone"]) == ("AAA", "up", "down")
    assert (cells["Last"], cells["Chg ₹"], cells["Chg %"], cells["Vol"]) == ("₹110.00", "+10.00", "+10.00%", "25K")
    assert cells["Time"] == "14:45:00" and cells["Trend"] == "" and aaa["trend"] == [100.0, 101.0, 102.0]
    sort = dict(zip(headers, aaa["sort"], strict=True))
    assert (sort["Last"], sort["Symbol"], sort["Trend"]) == (110.0, "AAA", None)
    figures = {f["label"]: f["value"] for f in view["figures"]}  # type: ignore[union-attr]
    assert (figures["Stocks traded"], figures["Advancers"], figures["Decliners"]) == ("2", "1", "1")
    assert view["movers"] == {"gainers": [{"cells": ["AAA", "₹110.00", "+10.00%"], "tone": "up"}],
                              "losers": [{"cells": ["BBB", "₹95.00", "-5.00%"], "tone": "down"}]}
    assert [compact(n) for n in (999, 22_000, 1_250_000)] == ["999", "22K", "1.2M"]


def test_the_ledger_view_counts_each_ledger_and_lists_the_most_frequent_first():
    empty = ledger_view(MarketState().snapshot())
    assert [(ledger["label"], ledger["value"], ledger["rows"]) for ledger in empty["ledgers"]] == [  # type: ignore[index, union-attr]
        (REJECTED, "0", []), (LATE, "0", [])]
    state = MarketState()
    state.apply_batch(BatchResult(0, set_aside=SetAside(
        Counter({"invalid_price": 1_200, "unknown_symbol": 3}), Counter({"AAA": 1_203}), Counter({"BBB": 2, "AAA": 5}))))
    rejected, late = ledger_view(state.snapshot())["ledgers"]  # type: ignore[misc]
    assert (rejected["value"], late["value"]) == ("1,203", "7")
    assert [row[:2] for row in rejected["rows"]] == [["invalid_price", "1,200"], ["unknown_symbol", "3"]]
    assert rejected["rows"][0][2]  # what the reason means, in words
    assert late["rows"] == [["AAA", "5"], ["BBB", "2"]]
    assert len(rejected["columns"]) == len(rejected["kinds"]) and len(late["columns"]) == len(late["kinds"])


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, MarketState]]:
    """The push route on a real uvicorn server (as st.App serves it), on a state holding AAA and BBB."""
    state = apply(MarketState(), 0, agg("AAA", "100", "110"), agg("BBB", "50", "55"))
    feed = live.ChangeFeed(state, wake_s=0.2)
    views = push.PushedViews()
    views.allow("stock:AAA", lambda snapshot: stock_view(snapshot, STOCKS["AAA"], "AAA"))
    monkeypatch.setattr(live, "runtime_feed", lambda: feed)
    monkeypatch.setattr(push, "pushed_views", lambda: views)
    try:
        with serving(push.routes()) as base:
            yield f"{base}{push.VIEW_PATH}", state
    finally:
        feed.close()


def test_the_route_sends_the_view_at_once_and_after_each_change_of_the_symbol(served):
    url, state = served
    with connect(f"{url}?of=stock:AAA", open_timeout=5) as client:
        first = json.loads(client.recv(timeout=5))
        assert first["symbol"] == "AAA" and first["figures"][0]["value"] == "₹110.00"
        # Another symbol's trade moves the version, not AAA's view: nothing is sent for it.
        apply(state, 1, agg("BBB", "55", "56", when=T0 + timedelta(seconds=5)))
        apply(state, 2, agg("AAA", "110", "120", when=T0 + timedelta(seconds=10)))
        second = json.loads(client.recv(timeout=5))
        assert second["figures"][0]["value"] == "₹120.00" and second["version"] == state.version


def test_the_route_refuses_a_view_no_page_has_drawn(served):
    url, _ = served
    with pytest.raises(InvalidStatus, match="403"):
        connect(f"{url}?of=stock:BBB", open_timeout=5)
