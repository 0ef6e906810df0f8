"""The trading day (``pipeline.domain.days``): the session's figures are its candles', the previous close is
the last price of an earlier session, the day rolls over with the first trade of a new IST date."""

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.domain.candles import candles_of_minute, merge_candle
from pipeline.domain.days import Days, session_of, session_start_s
from pipeline.domain.live import LiveTick
from pipeline.domain.metrics import aggregate_of, grown, merge
from pipeline.domain.snapshot import BatchResult, Tick
from pipeline.domain.state import MarketState
from tests.oracle import OracleTick, expected_metrics, metric_values

IST_MIDNIGHT = datetime(2025, 11, 24, 18, 30, tzinfo=timezone.utc)  # 2025-11-25 00:00 IST


def trade(n: int, at: datetime, price: str = "100") -> Tick:
    return Tick("INFY", at, f"e{n}", f"t{n}", Decimal(price), 1 + n % 4, "buy", None)


def apply(state: MarketState, batch_id: int, trades: list[Tick], offsets: dict[int, int] | None = None) -> None:
    """The record applying these trades (its handler's merges, one minute candle per minute)."""
    minutes: dict = {}
    for t in trades:
        minutes.setdefault(int(t.trade_time.timestamp()) // 60 * 60, []).append(t)
    candles = [c for minute, group in minutes.items() for c in candles_of_minute("INFY", minute, aggregate_of(group)["INFY"])]
    state.apply_batch(BatchResult(batch_id, tuple(state.merged_with(batch_id, aggregate_of(trades).values())),
                                  tuple(state.merged_candles(batch_id, candles, {})), tuple(trades),
                                  offsets=offsets or {}))


def test_sessions_are_ist_dates():
    assert session_of(IST_MIDNIGHT - timedelta(seconds=1)) == date(2025, 11, 24)
    assert session_of(IST_MIDNIGHT) == date(2025, 11, 25)
    assert session_start_s(date(2025, 11, 25)) == int(IST_MIDNIGHT.timestamp())


def test_the_day_rolls_over_with_the_first_trade_of_a_new_date_and_keeps_the_previous_close():
    state = MarketState()
    yesterday = [trade(0, IST_MIDNIGHT - timedelta(hours=9), "90"), trade(1, IST_MIDNIGHT - timedelta(hours=8), "95")]
    apply(state, 0, yesterday)
    before = state.snapshot()
    assert before.trading_day == date(2025, 11, 24) and before.day_figures["INFY"].previous_close is None
    today = [trade(2, IST_MIDNIGHT + timedelta(hours=4), "99"), trade(3, IST_MIDNIGHT + timedelta(hours=4, minutes=3), "97")]
    apply(state, 1, today)
    figures = state.snapshot().day_figures["INFY"]
    assert state.snapshot().trading_day == date(2025, 11, 25)
    assert figures.previous_close == Decimal("95")
    assert (figures.metrics.open, figures.metrics.nav, figures.metrics.trades) == (Decimal("99"), Decimal("97"), 2)
    assert figures.change() == Decimal("2") and round(figures.change_pct(), 4) == round(2 / 95 * 100, 4)
    assert state.snapshot().stocks["INFY"].trades == 4  # since the start: both sessions


def test_without_an_earlier_session_the_reference_price_stands_in():
    state = MarketState()
    apply(state, 0, [trade(0, IST_MIDNIGHT + timedelta(hours=4), "110")])
    figures = state.snapshot().day_figures["INFY"]
    assert figures.previous_close is None and figures.change(Decimal("100")) == Decimal("10")


def test_live_ticks_of_the_trading_day_move_its_figures_and_earlier_ones_do_not():
    state = MarketState()
    first = trade(0, IST_MIDNIGHT + timedelta(hours=4), "100")
    state.apply_live([LiveTick(first, 0, 0)], 120)
    apply(state, 0, [first], {0: 0})
    state.apply_live([LiveTick(trade(1, IST_MIDNIGHT + timedelta(hours=4, seconds=5), "104"), 0, 1),
                      LiveTick(trade(2, IST_MIDNIGHT - timedelta(hours=1), "1"), 0, 2)], 120)
    snapshot = state.snapshot()
    assert snapshot.stocks["INFY"].trades == 3  # since the start, the earlier session's trade too
    day = snapshot.day_figures["INFY"].metrics
    assert (day.trades, day.high, day.low, day.nav) == (2, Decimal("104"), Decimal("100"), Decimal("104"))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(1, 1000), st.integers(1, 9)), min_size=1, max_size=40))
def test_a_day_kept_by_growing_candles_equals_its_candles_merged(steps):
    """``grown`` (sums move by the difference, the rest merge) keeps the day exact however candles grow."""
    days, candles = Days(), {}
    ticks = []
    for n, (minute, price, quantity) in enumerate(steps):
        tick = Tick("INFY", IST_MIDNIGHT + timedelta(minutes=minute, seconds=n % 60), f"e{n}", None, Decimal(price),
                    quantity, "sell", None)
        ticks.append(tick)
        [one_minute, _] = candles_of_minute("INFY", int(tick.trade_time.timestamp()) // 60 * 60, aggregate_of([tick])["INFY"])
        before = candles.get(one_minute.key)
        candles[one_minute.key] = merge_candle(before, one_minute, None)
        days.on_candle(before, candles[one_minute.key])
    [figures] = days.figures(date(2025, 11, 25)).values()
    assert metric_values(figures.metrics) == expected_metrics([_oracle(t) for t in ticks])["INFY"]


def _oracle(tick: Tick) -> OracleTick:
    return OracleTick(tick.event_id, tick.symbol, tick.price, tick.quantity, tick.trade_time, tick.side or "buy")


def test_grown_with_nothing_before_is_a_merge():
    one = aggregate_of([trade(0, IST_MIDNIGHT)])["INFY"]
    assert grown(None, None, one) == one and grown(one, None, one) == merge(one, one)
