"""MarketState: one lock, snapshots are copies, replayed batches do not count twice."""

import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from pipeline.domain.metrics import StockAggregate
from pipeline.domain.snapshot import BatchResult, Persisted, Tick
from pipeline.domain.state import MarketState
from tests.oracle import aggregate

T0 = datetime(2025, 11, 24, 9, 15, tzinfo=timezone.utc)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def agg(symbol: str, price: str, trades: int = 1) -> StockAggregate:
    return aggregate(symbol, *[price] * trades)


def apply(state: MarketState, batch_id: int, aggregates=(), ticks=()) -> None:
    state.apply_batch(BatchResult(batch_id, tuple(state.merged_with(batch_id, aggregates)), ticks=tuple(ticks)))


def test_snapshot_is_a_copy_that_later_batches_do_not_change():
    state = MarketState()
    apply(state, 0, [agg("INFY", "10")])
    before = state.snapshot()
    apply(state, 1, [agg("INFY", "11"), agg("TCS", "5")])
    assert set(before.stocks) == {"INFY"} and before.stocks["INFY"].trades == 1
    after = state.snapshot()
    assert after.stocks["INFY"].trades == 2 and after.version > before.version


def test_a_batch_applied_twice_counts_once_per_symbol():
    state = MarketState()
    state.load(Persisted(aggregates={"INFY": (agg("INFY", "10", trades=4), 7)}))
    assert state.merged_with(7, [agg("INFY", "11")]) == []  # batch 7 is already in INFY
    merged = state.merged_with(8, [agg("INFY", "11"), agg("TCS", "3")])
    assert {a.symbol: a.trades for a in merged} == {"INFY": 5, "TCS": 1}


def test_recent_ticks_are_kept_in_trade_time_order_and_bounded():
    state = MarketState(recent_ticks_kept=3)
    ticks = [Tick("INFY", T0 + timedelta(seconds=s), f"e{s}", None, Decimal(s), 1, "buy", None) for s in (5, 1, 4, 2, 3)]
    apply(state, 0, ticks=ticks[:2])
    apply(state, 1, ticks=ticks[2:])
    assert [t.event_id for t in state.snapshot().recent_ticks["INFY"]] == ["e3", "e4", "e5"]
    assert state.recent_ticks_of(["INFY", "TCS"]) == {"INFY": state.snapshot().recent_ticks["INFY"], "TCS": ()}


def test_a_trade_older_than_every_kept_one_is_not_among_the_latest():
    state = MarketState(recent_ticks_kept=3)
    ticks = [Tick("INFY", T0 + timedelta(seconds=s), f"e{s}", None, Decimal(s), 1, "buy", None) for s in (3, 4, 5, 1)]
    apply(state, 0, ticks=ticks[:3])
    apply(state, 1, ticks=ticks[3:])  # a record batch far behind what the live ticks brought
    assert [t.event_id for t in state.snapshot().recent_ticks["INFY"]] == ["e3", "e4", "e5"]


def test_the_version_is_the_next_snapshots_without_building_one():
    state = MarketState()
    assert state.version == state.snapshot().version
    apply(state, 0, [agg("INFY", "10")])
    assert state.version == state.snapshot().version > 0


def test_readers_and_a_writer_in_threads_see_consistent_snapshots():
    state = MarketState()
    stop = threading.Event()
    seen_errors = []

    def reader():
        while not stop.is_set():
            snap = state.snapshot()
            total = sum(s.trades for s in snap.stocks.values())
            if total != snap.total_trades:
                seen_errors.append(total)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for thread in readers:
        thread.start()
    for batch in range(300):
        apply(state, batch, [agg("INFY", "10"), agg("TCS", "20")])
    stop.set()
    for thread in readers:
        thread.join()
    assert seen_errors == []
    assert state.snapshot().total_trades == 600


def test_wait_for_change_returns_when_a_batch_lands():
    state = MarketState()
    version = state.snapshot().version
    timer = threading.Timer(0.05, lambda: apply(state, 0, [agg("ITC", "4")]))
    timer.start()
    assert state.wait_for_change(version, timeout=10) > version
    timer.join()
