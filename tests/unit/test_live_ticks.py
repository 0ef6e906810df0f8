"""Live ticks on top of the record: shown at once, never counted twice, never a figure the record will not
reach (``pipeline.domain.live`` through MarketState)."""

from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.domain.candles import candles_of_minute
from pipeline.domain.live import LiveTick
from pipeline.domain.metrics import aggregate_of
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
