"""Pure pieces of the pages: the market table, movers and breadth, candles with VWAP, scenario
expectations, Kafka lag, the relay's health, freshness percentiles, Markdown escaping."""

import json
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from pipeline.domain import state as state_module
from pipeline.domain.candles import Candle
from pipeline.domain.snapshot import BatchReport, BatchResult, Freshness, Tick
from pipeline.domain.state import MarketState
from pipeline.domain.stocks import Stock
from pipeline.settings import Settings
from simulator.scenarios import SCENARIOS, Figures, ScenarioRun, comparison, verdict
from simulator.trades import Trade
from stack.process import free_port
from tests.oracle import aggregate
from ui.format import LIVE, STALE, Breadth, breadth, candles_frame, change_colour, market_table, movers, plain, recent_trades
from ui.health import check_cdc, input_rate, kafka_lag
from ui.status import BEHIND_S, catching_up_text

T0 = datetime(2025, 11, 24, 9, 15, tzinfo=timezone.utc)
STOCKS = {s: Stock(s, f"{s} Ltd", "Test", 100.0) for s in ("AAA", "BBB", "CCC", "DDD")}


def agg(symbol, open_, nav, when=T0, volume=10):
    """Two trades at ``when``: the open, then the NAV, half the volume each."""
    return aggregate(symbol, open_, nav, when=when, quantities=[volume // 2, volume - volume // 2])


def state_with(*aggregates, ticks=(), candles=None):
    """A state holding these aggregates, and (unless ``candles`` are given) each as one 1-minute candle of the
    trading day, as the record would hold them."""
    state = MarketState()
    if candles is None:
        candles = [Candle(a.symbol, 60, int(a.open_time.timestamp()) // 60 * 60, a) for a in aggregates]
    state.apply_batch(BatchResult(0, tuple(state.merged_with(0, aggregates)), tuple(candles), tuple(ticks)))
    return state.snapshot()


def test_market_table_has_change_trend_and_a_freshness_badge():
    now = T0.timestamp() + 30
    ticks = [Tick("AAA", T0 + timedelta(seconds=i), f"e{i}", None, Decimal(100 + i), 1, "buy", None) for i in range(3)]
    snapshot = state_with(agg("AAA", "100", "110"), agg("BBB", "50", "45", when=T0 - timedelta(minutes=5)), ticks=ticks)
    table = market_table(snapshot, STOCKS, stale_after_s=60, now=now).set_index("Symbol")
    # Against the previous close: with no earlier session seen, the reference price (100)
    assert table.loc["AAA", "Change %"] == 10.0 and table.loc["BBB", "Change %"] == -55.0
    assert (table.loc["AAA", "Change"], table.loc["AAA", "Prev close"], table.loc["AAA", "Trades"]) == (10.0, 100.0, 2)
    assert table.loc["AAA", "Trend"] == [100.0, 101.0, 102.0]
    assert (table.loc["AAA", "Freshness"], table.loc["BBB", "Freshness"]) == (LIVE, STALE)
    assert table.loc["AAA", "Company"] == "AAA Ltd"
    assert change_colour(1.5).startswith("color") and change_colour(-1).startswith("color") and change_colour(0) == ""


def test_movers_and_breadth_leave_unchanged_stocks_out():
    snapshot = state_with(agg("AAA", "100", "110"), agg("BBB", "100", "95"), agg("CCC", "100", "100"),
                          agg("DDD", "100", "101"))
    table = market_table(snapshot, STOCKS, stale_after_s=60)
    gainers, losers = movers(table)
    assert list(gainers["Symbol"]) == ["AAA", "DDD"] and list(losers["Symbol"]) == ["BBB"]
    assert breadth(table["Change %"]) == Breadth(advancers=2, decliners=1, unchanged=1)
    assert breadth([1.0, None, float("nan"), -2]) == Breadth(advancers=1, decliners=1, unchanged=2)


def test_candles_carry_ohlc_and_a_running_vwap():
    first = Candle("AAA", 60, int(T0.timestamp()), agg("AAA", "100", "104", volume=10))
    second = Candle("AAA", 60, int(T0.timestamp()) + 60, agg("AAA", "104", "98", volume=30))
    frame = candles_frame(state_with(agg("AAA", "100", "98"), candles=[first, second]), "AAA", 60)
    assert list(frame["Open"]) == [100.0, 104.0] and list(frame["Close"]) == [104.0, 98.0]
    assert list(frame["Direction"]) == ["up", "down"]
    assert frame["VWAP"].round(4).tolist() == [102.0, round((1020 + 3030) / 40, 4)]  # turnover 5×100+5×104, 15×104+15×98
    assert candles_frame(state_with(agg("AAA", "1", "1")), "AAA", 300).empty


def test_recent_trades_are_newest_first_with_both_times():
    ticks = [Tick("AAA", T0 + timedelta(seconds=i), f"e{i}", f"t{i}", Decimal(10 + i), 1, "buy", T0 + timedelta(seconds=i + 1))
             for i in range(3)]
    frame = recent_trades(state_with(agg("AAA", "10", "12"), ticks=ticks), "AAA")
    assert list(frame["Trade id"]) == ["t2", "t1", "t0"]
    # Stored in UTC, shown in IST (UTC+05:30) as a naive wall-clock time: 09:15:03 UTC is 14:45:03 IST.
    assert frame.iloc[0]["Ingest time (IST)"] == datetime(2025, 11, 24, 14, 45, 3)
    assert frame.iloc[0]["Trade time (IST)"] == datetime(2025, 11, 24, 14, 45, 2)


def test_scenario_expectations_follow_event_time_not_arrival():
    before = Figures(trades=3, nav=Decimal("100"), nav_time=T0, low=Decimal("90"), high=Decimal("110"))
    newer, older = Trade("AAA", "buy", Decimal("105"), 1, T0 + timedelta(seconds=5)), \
        Trade("AAA", "buy", Decimal("80"), 1, T0 - timedelta(minutes=10))
    expected = before.with_trades([newer]).with_trades([older], late=1)
    assert (expected.trades, expected.nav, expected.low, expected.high, expected.late) == (5, 105, 80, 110, 1)
    assert expected.set_aside_total == 1
    rows = comparison(before, expected, expected)
    assert all(row["Agree"] for row in rows) and rows[1]["Expected"] == "₹105.00"


def test_a_scenario_verdict_is_computed_anew_and_never_latches():
    """Agreeing once proves nothing about later: figures that move afterwards (a redelivered copy counted
    after all) turn the verdict back, and the page asks again at every refresh."""
    before = Figures(trades=3, nav=Decimal("100"), nav_time=T0, low=Decimal("90"), high=Decimal("110"))
    trade = Trade("AAA", "buy", Decimal("101"), 1, T0 + timedelta(seconds=1))
    expected = before.with_trades([trade])
    run = ScenarioRun(SCENARIOS["duplicate"], "AAA", before, expected, started_at=1000.0)
    first = verdict(run, expected, timeout_s=30, now=1002.0)
    assert first.agreed and not first.timed_out and first.waited_s == 2.0
    copies_counted = replace(expected, trades=expected.trades + 2)
    later = verdict(run, copies_counted, timeout_s=30, now=1003.0)
    assert not later.agreed and not later.timed_out
    assert [row["Figure"] for row in later.rows if not row["Agree"]] == ["Transactions"]
    assert verdict(run, copies_counted, timeout_s=30, now=1031.0).timed_out
    assert verdict(run, expected, timeout_s=30, now=1031.0).agreed  # and back, from the figures alone


def test_kafka_lag_compares_end_offsets_with_the_query_progress():
    progress = {"sources": [{"endOffset": json.dumps({"trades": {"0": 40, "1": 7}})}]}
    assert kafka_lag({0: 50, 1: 7}, progress, "trades") == 10
    assert kafka_lag({0: 50}, {"sources": [{"endOffset": {"trades": {"0": 50}}}]}, "trades") == 0
    assert kafka_lag({}, progress, "trades") is None and kafka_lag({0: 1}, None, "trades") is None


def test_the_input_rate_of_the_first_batch_after_a_start_is_the_rate_it_read_at():
    assert input_rate({"numInputRows": 900, "inputRowsPerSecond": 1000.0, "processedRowsPerSecond": 1800.0}) == 1000
    # Spark's first batch has no previous start to measure from: it reports 0 for 20,000 messages.
    assert input_rate({"numInputRows": 20_000, "inputRowsPerSecond": 0.0, "processedRowsPerSecond": 543.5}) == 543.5
    assert input_rate({"numInputRows": 0, "inputRowsPerSecond": 0.0, "processedRowsPerSecond": 0.0}) == 0
    assert input_rate({"numInputRows": 10, "inputRowsPerSecond": float("nan"), "processedRowsPerSecond": 5.0}) == 5
    assert input_rate({}) is None and input_rate(None) is None


def test_relay_health_reads_its_heartbeat(tmp_path):
    settings = Settings.from_env({"STOCKDASH_DATA_DIR": str(tmp_path)})
    assert check_cdc(settings).ok is False and "python -m stack up" in check_cdc(settings).detail
    status = tmp_path / "cdc" / "relay-status.json"
    status.parent.mkdir()
    status.write_text(json.dumps({"state": "running", "events": 1234, "heartbeat_at": time.time()}))
    assert check_cdc(settings).ok is True and "1,234" in check_cdc(settings).detail
    assert check_cdc(settings, now=time.time() + 60).ok is False


def test_connector_health_in_debezium_mode_asks_the_connect_worker(tmp_path):
    settings = Settings.from_env({"STOCKDASH_DATA_DIR": str(tmp_path), "CDC_MODE": "debezium",
                                  "CONNECT_URL": f"http://127.0.0.1:{free_port()}"})
    check = check_cdc(settings)
    assert check.ok is False and "Debezium" in check.name and "CONNECT_URL" in check.detail


def test_freshness_percentiles_over_a_window(monkeypatch):
    assert Freshness.of([]) == Freshness(0, None, None, None)
    delays = sorted(i / 100 for i in range(1, 101))
    stats = Freshness.of(delays)
    assert (stats.samples, stats.p50_s, stats.p99_s, stats.max_s) == (100, 0.5, 1.0, 1.0)
    # The clock is pinned: a sample is the exact difference of two known times, not a bound on how fast
    # this machine is (speed is the benchmark's business).
    applied_at = T0.timestamp() + 3600
    monkeypatch.setattr(state_module.time, "time", lambda: applied_at)
    state = MarketState()
    report = BatchReport(0, applied_at, 0.2, 1, 1)
    ingested = datetime.fromtimestamp(applied_at - 2.5, tz=timezone.utc)
    state.apply_batch(BatchResult(0, ticks=(Tick("AAA", T0, "e", None, Decimal(1), 1, "buy", ingested),), report=report))
    fresh = state.freshness(window_s=60)
    assert (fresh.samples, fresh.p50_s, fresh.p99_s) == (1, 2.5, 2.5)
    assert state.freshness(window_s=60, now=applied_at + 120).samples == 0
    assert state.batch_reports() == [report]


def test_the_screen_is_behind_when_its_newest_trades_took_long_and_says_how_much_is_left(monkeypatch):
    applied_at = T0.timestamp() + 3600
    monkeypatch.setattr(state_module.time, "time", lambda: applied_at)
    state = MarketState()
    ticks = [Tick("AAA", T0, f"e{i}", None, Decimal(1), 1, "buy", datetime.fromtimestamp(applied_at - delay, tz=timezone.utc))
             for i, delay in enumerate([300.0] * 5 + [0.2] * 3)]  # a backlog, then caught up
    state.apply_batch(BatchResult(0, ticks=tuple(ticks), report=BatchReport(0, applied_at, 0.2, 8, 8)))
    assert state.freshness(window_s=60).p50_s == 300.0
    assert state.freshness(window_s=60, newest=3).p50_s == pytest.approx(0.2)  # the newest alone: caught up
    assert catching_up_text(state.freshness(window_s=60, newest=3).p50_s, 0) is None
    text = catching_up_text(state.freshness(window_s=60, newest=8).p50_s, 104_874)
    assert text is not None and "Catching up" in text
    assert "5 min after" in text and "104,874 change events still to count" in text
    assert "reached it 11 s after" in (catching_up_text(BEHIND_S + 1, None) or "")
    assert "still to count" not in (catching_up_text(BEHIND_S + 1, None) or "")
    assert catching_up_text(BEHIND_S, 10) is None and catching_up_text(None, 10) is None  # quiet: nothing to say


def test_text_from_the_database_cannot_become_markup():
    assert plain("A [x](http://e) <b>") == r"A \[x\]\(http://e\) \<b\>"
