"""Live ticks on top of the record: shown at once, never counted twice, never a figure the record will not
reach (``pipeline.domain.live`` through MarketState)."""

import functools
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.domain.candles import candles_of_minute, candles_of_ticks, merge_candle, minute_aggregates
from pipeline.domain.live import LiveTick, LiveTicks
from pipeline.domain.metrics import aggregate_of, aggregate_of_run, merge
from pipeline.domain.snapshot import BatchResult, Tick
from pipeline.domain.state import MarketState
from tests.oracle import T0, OracleTick, expected_metrics, metric_values

LATENESS_S = 120


def tick(n: int, symbol: str = "INFY", seconds: float | None = None, price: str | None = None) -> LiveTick:
    trade = Tick(symbol, T0 + timedelta(seconds=n if seconds is None else seconds), f"e{n}", f"t{n}",
                 Decimal(price or f"{100 + n}.5"), 1 + n % 3, "buy", None)
    return LiveTick(trade, partition=0, offset=n)


def record(state: MarketState, batch_id: int, ticks: list[LiveTick]) -> None:
    """The micro-batch query applying these ticks, as its handler does."""
    trades = [live.tick for live in ticks]
    aggregates = state.merged_with(batch_id, aggregate_of(trades).values())
    minutes: dict = {}
    for trade in trades:
        minutes.setdefault((trade.symbol, int(trade.trade_time.timestamp()) // 60 * 60), []).append(trade)
    candles = [c for (symbol, minute), group in minutes.items()
               for c in candles_of_minute(symbol, minute, aggregate_of(group)[symbol])]
    state.apply_batch(BatchResult(batch_id, tuple(aggregates), tuple(state.merged_candles(batch_id, candles, {})),
                                  tuple(trades), offsets={0: max(live.offset for live in ticks)}))


def figures(state: MarketState) -> dict:
    return {symbol: metric_values(a) for symbol, a in state.snapshot().stocks.items()}


def oracle(ticks: list[LiveTick]) -> dict:
    return expected_metrics([OracleTick(t.tick.event_id, t.tick.symbol, t.tick.price, t.tick.quantity,
                                        t.tick.trade_time, t.tick.side or "buy") for t in ticks])


def test_live_ticks_show_once_the_record_is_past_the_first_and_count_once_after_it_applies_them():
    state = MarketState()
    state.apply_live([tick(0), tick(1)], LATENESS_S)
    assert state.snapshot().stocks == {}  # the record has not caught up with the first live tick yet
    record(state, 0, [tick(0), tick(1)])
    state.apply_live([tick(2), tick(3)], LATENESS_S)
    assert figures(state) == oracle([tick(n) for n in range(4)])
    assert [t.event_id for t in state.snapshot().recent_ticks["INFY"]] == ["e0", "e1", "e2", "e3"]
    record(state, 1, [tick(2)])  # the record applied one of the two
    assert figures(state) == oracle([tick(n) for n in range(4)])
    record(state, 2, [tick(3)])
    assert figures(state) == oracle([tick(n) for n in range(4)])


def test_a_tick_passed_on_again_or_sent_twice_by_the_cdc_counts_once():
    state = MarketState()
    state.apply_live([tick(0)], LATENESS_S)
    record(state, 0, [tick(0)])
    state.apply_live([tick(0), tick(1)], LATENESS_S)  # a restarted real-time query replays offset 0
    resent = LiveTick(tick(1).tick, partition=0, offset=7)  # the same change event, sent again by the relay
    state.apply_live([tick(1), resent], LATENESS_S)
    assert figures(state) == oracle([tick(0), tick(1)])


def test_a_late_live_tick_counts_but_stays_out_of_the_candles_as_in_the_record():
    state = MarketState()
    state.apply_live([tick(0, seconds=600)], LATENESS_S)
    record(state, 0, [tick(0, seconds=600)])
    state.apply_live([tick(1, seconds=0)], LATENESS_S)  # ten minutes older than the record's latest
    snapshot = state.snapshot()
    assert snapshot.stocks["INFY"].trades == 2
    assert sum(c.metrics.trades for c in snapshot.candles[("INFY", 60)]) == 1


def test_the_forming_candle_moves_with_each_live_tick():
    state = MarketState()
    state.apply_live([tick(0)], LATENESS_S)
    record(state, 0, [tick(0)])
    state.apply_live([tick(1, price="150")], LATENESS_S)
    candle = state.snapshot().candles[("INFY", 60)][-1]
    assert (candle.metrics.trades, candle.metrics.high, candle.metrics.nav) == (2, Decimal("150"), Decimal("150"))


def test_a_reconnected_feed_shows_the_record_alone_until_the_record_is_past_its_gap():
    state = MarketState()
    state.apply_live([tick(0)], LATENESS_S)
    record(state, 0, [tick(0)])
    state.reset_live()
    state.apply_live([tick(3)], LATENESS_S)  # 1 and 2 were missed while reconnecting
    assert figures(state) == oracle([tick(0)])
    record(state, 1, [tick(1), tick(2), tick(3)])
    state.apply_live([tick(4)], LATENESS_S)
    assert figures(state) == oracle([tick(n) for n in range(5)])


def test_ticks_read_before_a_reconnect_are_dropped_with_it_even_if_not_folded_in_yet():
    state = MarketState()
    record(state, 0, [tick(0)])
    state.apply_live([tick(2)], LATENESS_S)  # queued; nobody has read the state since
    state.reset_live()
    state.apply_live([tick(5)], LATENESS_S)  # 3 and 4 were missed while reconnecting
    record(state, 1, [tick(1), tick(2)])
    assert figures(state) == oracle([tick(n) for n in range(3)])  # not 5 (a gap before it): the record alone


def test_queued_live_ticks_are_folded_in_by_themselves_when_nobody_reads(monkeypatch):
    monkeypatch.setattr("pipeline.domain.live.QUEUED_MAX", 10)
    state = MarketState()
    state.apply_live([tick(0)], LATENESS_S)
    record(state, 0, [tick(0)])
    for n in range(1, 25):
        state.apply_live([tick(n)], LATENESS_S)
    assert len(state._live.queued) < 10  # noqa: SLF001 - the bound is what is tested
    assert figures(state) == oracle([tick(n) for n in range(25)])


def test_a_trade_is_one_freshness_sample_whichever_path_brings_it_first():
    def ingested(n: int) -> LiveTick:
        live = tick(n)
        return LiveTick(replace(live.tick, ingest_time=live.tick.trade_time), live.partition, live.offset)

    state = MarketState()
    state.apply_live([ingested(0), ingested(1)], LATENESS_S)
    record(state, 0, [ingested(0), ingested(1), ingested(2)])  # 2 came by the record alone
    assert state.freshness(window_s=60).samples == 3


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_what_is_shown_is_always_the_record_plus_every_later_live_tick(data):
    """Any interleaving of live ticks (with replays) and record batches: once the record is past the first
    live tick, the screen shows exactly the ticks up to the newest one seen, never fewer, never twice."""
    symbols = ("INFY", "TCS")
    ticks = [tick(n, symbol=data.draw(st.sampled_from(symbols)), seconds=data.draw(st.integers(0, 900)))
             for n in range(data.draw(st.integers(2, 30)))]
    state = MarketState()
    first_live: dict[str, int] = {}  # per symbol, the offset of its first live tick
    live_end = recorded_end = batch = 0
    while recorded_end < len(ticks):
        step = data.draw(st.integers(1, 5))
        if data.draw(st.booleans()) and live_end < len(ticks):
            replayed = data.draw(st.integers(0, 2))
            sent = ticks[max(0, live_end - replayed):live_end + step]
            state.apply_live(sent, LATENESS_S)
            for live in sent:
                first_live.setdefault(live.tick.symbol, live.offset)
            live_end = min(len(ticks), live_end + step)
        else:
            record(state, batch, ticks[recorded_end:recorded_end + step])
            recorded_end, batch = min(len(ticks), recorded_end + step), batch + 1
        shown = [t for t in ticks[:max(live_end, recorded_end)]
                 if t.offset < recorded_end or first_live.get(t.tick.symbol, len(ticks)) < recorded_end]
        assert figures(state) == oracle(shown)


def test_a_symbol_on_two_partitions_shows_ticks_at_equal_offsets_of_each():
    """Debezium keys messages by document id: one symbol's trades span partitions, and offsets repeat."""
    state = MarketState()
    state.apply_live([tick(0)], LATENESS_S)
    record(state, 0, [tick(0)])
    other = LiveTick(tick(2).tick, partition=1, offset=1)
    state.apply_live([tick(1), other], LATENESS_S)
    assert figures(state) == oracle([tick(0), tick(1), tick(2)])


def test_live_ticks_leave_the_candles_when_the_record_moves_the_late_rule_past_them():
    state = MarketState()
    state.apply_live([tick(0, seconds=100)], LATENESS_S)
    record(state, 0, [tick(0, seconds=100)])
    state.apply_live([tick(1, seconds=50), tick(2, seconds=60)], LATENESS_S)
    assert sum(c.metrics.trades for c in state.snapshot().candles[("INFY", 60)]) == 3
    newer = tick(3, seconds=400).tick  # on another partition: the record applies it first
    aggregates = state.merged_with(1, aggregate_of([newer]).values())
    minute = int(newer.trade_time.timestamp()) // 60 * 60
    candles = state.merged_candles(1, candles_of_minute("INFY", minute, aggregate_of([newer])["INFY"]), {})
    state.apply_batch(BatchResult(1, tuple(aggregates), tuple(candles), (newer,), offsets={1: 0}))
    snapshot = state.snapshot()
    assert snapshot.stocks["INFY"].trades == 4  # counted, as the record will count them
    assert sum(c.metrics.trades for c in snapshot.candles[("INFY", 60)]) == 2  # but late now: out of the candles


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 600), st.integers(100, 200), st.integers(1, 9), st.booleans()), min_size=1,
                max_size=40))
def test_a_run_folds_to_what_merging_each_tick_gives(rows):
    trades = [Tick("INFY", T0 + timedelta(seconds=s), f"e{i % 7}", None, Decimal(p) / 4, q, "buy" if b else "sell", None)
              for i, (s, p, q, b) in enumerate(rows)]
    assert aggregate_of_run(trades) == aggregate_of(trades)["INFY"]
    by_key: dict = {}
    for trade in trades:
        minute = int(trade.trade_time.timestamp()) // 60 * 60
        for candle in candles_of_minute("INFY", minute, aggregate_of([trade])["INFY"]):
            by_key[candle.key] = merge_candle(by_key.get(candle.key), candle, None)
    minute_of = lambda trade: int(trade.trade_time.timestamp()) // 60 * 60  # noqa: E731
    assert {c.key: c for c in candles_of_ticks(trades, minute_of)} == by_key
    assert functools.reduce(merge, minute_aggregates(trades, minute_of).values()) == aggregate_of_run(trades)


def whole_series_with_live(live: LiveTicks, recorded: dict, latest_us: dict) -> dict:
    """The plain way: every series with a live candle rebuilt whole (what the tail-only rebuild must equal)."""
    series = dict(recorded)
    for symbol in live.symbols():
        by_series: dict = {}
        for candle in live.candles_of(symbol):
            held = by_series.setdefault(candle.key[:2], {c.start_s: c for c in recorded.get(candle.key[:2], ())})
            held[candle.start_s] = merge_candle(held.get(candle.start_s), candle, latest_us.get(symbol))
        for key, candles in by_series.items():
            series[key] = tuple(candles[start] for start in sorted(candles))
    return series


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=0, max_size=30), st.lists(st.integers(0, 40), min_size=1, max_size=20))
def test_live_candles_join_the_recorded_series_as_a_whole_rebuild_would(recorded_minutes, live_minutes):
    """Live candles anywhere in a recorded series (late but accepted ones too): only the tail is rebuilt."""
    recorded_ticks = [tick(n, seconds=m * 60 + 1) for n, m in enumerate(recorded_minutes)]
    minutes: dict = {}
    for live_tick in recorded_ticks:
        minutes.setdefault(int(live_tick.tick.trade_time.timestamp()) // 60 * 60, []).append(live_tick.tick)
    book: dict = {}
    for minute, group in minutes.items():
        for candle in candles_of_minute("INFY", minute, aggregate_of(group)["INFY"]):
            book[candle.key] = candle
    recorded = {}
    for key in sorted(book):
        recorded.setdefault(key[:2], []).append(book[key])
    recorded = {key: tuple(candles) for key, candles in recorded.items()}
    live = LiveTicks(lateness_s=3600)
    live.confirm({"INFY": {0: 99}}, {})
    # The first tick is one the record holds already: the live ticks after it follow on, and are shown.
    live.add([tick(99, seconds=1), *(tick(100 + n, seconds=m * 60 + 2) for n, m in enumerate(live_minutes))], {})
    assert live.symbols() == ("INFY",)
    latest = {"INFY": int((T0 + timedelta(minutes=20)).timestamp() * 1_000_000)}
    assert live.candles_with_live(recorded, latest) == whole_series_with_live(live, recorded, latest)
