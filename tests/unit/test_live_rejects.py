"""Rejects and late ticks from the real-time query: in the ledgers at once, counted once when the record
files them (``pipeline.domain.live_rejects`` and the late count of ``pipeline.domain.live``, through
MarketState), with the record's reason (``pipeline.sinks.live_feed``)."""

import json
from collections import Counter

from pipeline.domain.live_rejects import LiveReject
from pipeline.domain.metrics import aggregate_of
from pipeline.domain.snapshot import BatchResult, SetAside
from pipeline.domain.state import MarketState
from pipeline.sinks.live_feed import as_recorded, live_tick
from tests.unit.test_live_ticks import LATENESS_S, record, tick


def rejected(state: MarketState) -> tuple[dict, dict]:
    snapshot = state.snapshot()
    return dict(snapshot.rejected_by_reason), dict(snapshot.rejected_by_symbol)


def test_a_reject_is_in_the_ledger_at_once_and_counts_once_when_the_record_files_it():
    state = MarketState()
    version = state.snapshot().version
    bad = LiveReject("invalid_price", "INFY", "e5", partition=0, offset=5)
    state.apply_live([], LATENESS_S, [bad])
    assert rejected(state) == ({"invalid_price": 1}, {"INFY": 1}) and state.snapshot().version > version
    state.apply_live([], LATENESS_S, [bad, LiveReject("invalid_price", "INFY", "e5", 0, 9)])  # replayed, resent
    assert rejected(state) == ({"invalid_price": 1}, {"INFY": 1})
    state.apply_batch(BatchResult(0, set_aside=SetAside(Counter({"invalid_price": 1}), Counter({"INFY": 1}), Counter()),
                                  offsets={0: 5}))
    assert rejected(state) == ({"invalid_price": 1}, {"INFY": 1})
    state.apply_live([], LATENESS_S, [bad])  # a restarted real-time query passes it on again
    assert rejected(state) == ({"invalid_price": 1}, {"INFY": 1})


def test_the_record_s_reason_is_final():
    state = MarketState()
    state.apply_live([], LATENESS_S, [LiveReject("invalid_price", "INFY", "e1", 0, 1)])
    state.apply_batch(BatchResult(0, set_aside=SetAside(Counter({"behind_replay_horizon": 1}), Counter({"INFY": 1}),
                                                        Counter()), offsets={0: 1}))
    assert rejected(state) == ({"behind_replay_horizon": 1}, {"INFY": 1})


def test_a_late_live_tick_is_in_the_late_ledger_until_the_record_files_it():
    state = MarketState()
    state.apply_live([tick(0, seconds=600)], LATENESS_S)
    record(state, 0, [tick(0, seconds=600)])
    late = tick(1, seconds=0)  # ten minutes older than the record's latest
    state.apply_live([late], LATENESS_S)
    assert dict(state.snapshot().late_by_symbol) == {"INFY": 1}
    state.apply_batch(BatchResult(1, tuple(state.merged_with(1, aggregate_of([late.tick]).values())), (), (late.tick,),
                                  set_aside=SetAside(Counter(), Counter(), Counter({"INFY": 1})), offsets={0: 1}))
    assert dict(state.snapshot().late_by_symbol) == {"INFY": 1}


def test_the_feed_files_a_reject_as_the_record_does():
    message = {"reject": "invalid_price", "symbol": "NOSUCH", "event_id": "e3", "partition": 1, "offset": 3}
    read = live_tick(json.dumps(message).encode())
    assert read == LiveReject("invalid_price", "NOSUCH", "e3", 1, 3)
    # An unlisted symbol ranks before price, quantity and time, after the message's shape.
    assert as_recorded(read, {"INFY"}).reason == "unknown_symbol"
    assert as_recorded(LiveReject("invalid_price", "INFY", "e", 0, 0), {"INFY"}).reason == "invalid_price"
    assert as_recorded(LiveReject("missing_symbol", None, "e", 0, 0), {"INFY"}).reason == "missing_symbol"


def test_beside_a_record_read_from_mongodb_the_live_path_counts_nothing_in_the_ledgers():
    """A reading app's ledger counts come from MongoDB with no offsets to confirm a live reject by."""
    state = MarketState()
    state.apply_live([tick(0, seconds=600)], LATENESS_S, ledgers=False)
    record(state, 0, [tick(0, seconds=600)])
    state.apply_live([tick(1, seconds=0)], LATENESS_S, [LiveReject("invalid_price", "INFY", "e5", 0, 5)], ledgers=False)
    snapshot = state.snapshot()
    assert (dict(snapshot.rejected_by_reason), dict(snapshot.late_by_symbol)) == ({}, {})
    assert snapshot.stocks["INFY"].trades == 2  # the live ticks themselves are shown
