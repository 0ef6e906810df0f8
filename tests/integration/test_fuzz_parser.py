"""Fuzz: random bytes, random JSON and change events with wild field values go through the parser
and the batch handler. Nothing raises; every message is either a valid tick, a delete, or a
rejection with a known reason; and every message is accounted for in the state."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.domain.reasons import REJECT_REASONS, TICK_OPERATIONS
from pipeline.domain.state import MarketState
from pipeline.spark.batch import BatchHandler
from pipeline.spark.parse import parse_change_events
from tests.events import kafka_rows

pytestmark = pytest.mark.spark
KNOWN = ("INFY", "TCS")

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=6), inner, max_size=3), max_leaves=6)
wild = st.one_of(
    json_values,
    st.sampled_from(["INFY", "tcs ", "", "12.5", "-1", "1e400", "NaN", "Infinity", "0", "2025-11-24T10:00:00Z",
                     "yesterday", "buy", "SELL", "hold", "1764000000000"]),
    st.builds(lambda k, v: {k: v}, st.sampled_from(["$numberDecimal", "$numberDouble", "$numberLong", "$numberInt",
                                                    "$date", "$oid"]), json_scalars),
    st.decimals(allow_nan=False, allow_infinity=False, places=6).map(float),
)


@st.composite
def change_events(draw, event_id: int) -> bytes:
    document = {field: draw(wild) for field in draw(st.sets(st.sampled_from(
        ["symbol", "stock", "price", "quantity", "side", "type", "trade_time", "tradeTime", "timestamp", "_id"])))}
    event = {
        "_id": {"_data": f"fuzz-{event_id}"},
        "operationType": draw(st.sampled_from(["insert", "update", "replace", "delete", "drop", "", None])),
        "clusterTime": {"$timestamp": {"t": 1_764_000_000, "i": 1}},
        "fullDocument": draw(st.just(document) | st.none() | json_values),
    }
    for key in draw(st.sets(st.sampled_from(list(event)), max_size=1)):
        del event[key]  # sometimes a required part is missing altogether
    return json.dumps(event, allow_nan=True).encode()  # NaN/Infinity: JSON that strict parsers refuse


@st.composite
def debezium_envelopes(draw, event_id: int) -> bytes:
    """Debezium's envelope (CDC_MODE=debezium) with wild documents, ops and positions; ``after`` is JSON text."""
    document = {field: draw(wild) for field in draw(st.sets(st.sampled_from(
        ["symbol", "stock", "price", "quantity", "side", "type", "trade_time", "tradeTime", "timestamp", "_id"])))}
    envelope = {
        "before": None,
        "after": draw(st.just(json.dumps(document, allow_nan=True)) | st.none() | st.text(max_size=12)
                      | json_values.map(lambda v: json.dumps(v, allow_nan=True))),
        "source": {"ts_ms": draw(st.just(1_764_000_000_000) | json_scalars), "ord": f"fuzz-{event_id}"},
        "op": draw(st.sampled_from(["c", "u", "r", "d", "t", "", None])),
    }
    for key in draw(st.sets(st.sampled_from(list(envelope)), max_size=1)):
        del envelope[key]
    return json.dumps(envelope, allow_nan=True).encode()


def messages():
    one = st.one_of(
        st.binary(max_size=40),
        json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
        st.integers(0, 10**6).flatmap(change_events),
        st.integers(0, 10**6).flatmap(debezium_envelopes),
    )
    return st.lists(one, min_size=1, max_size=40)


def unique_ids(batch: list[bytes]) -> list[bytes]:
    """Event ids must be unique within a batch (a repeat is a replay, dropped by design elsewhere)."""
    return [m.replace(b'"fuzz-', f'"fuzz-{i}-'.encode(), 1) for i, m in enumerate(batch)]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=messages())
# What it found once (an epoch number that overflowed in Spark and failed the whole batch): always re-run.
@example(batch=[b'{"_id": {"_data": "f"}, "operationType": "insert", "fullDocument": {"symbol": "INFY", "price": 1, '
                b'"trade_time": {"$numberLong": 9223372036854776}}}'])
@example(batch=[b'{"_id": {"_data": "f"}, "operationType": "insert", "fullDocument": {"symbol": "INFY", "price": 1, '
                b'"trade_time": {"$numberLong": -62135510400001}}}'])
def test_every_message_is_a_valid_tick_or_a_rejection_with_a_reason(spark, batch):
    batch = unique_ids(batch)
    # Times come back as epoch microseconds: Python's datetime cannot hold every year Spark can.
    rows = (parse_change_events(kafka_rows(spark, batch), KNOWN)
            .selectExpr("reject_reason", "op", "symbol", "price", "quantity", "side",
                        "unix_micros(trade_time) AS trade_time_us").collect())
    assert len(rows) == len(batch)
    for row in rows:
        if row.reject_reason is not None:
            assert row.reject_reason in REJECT_REASONS, row
        elif row.op != "delete":
            assert row.op in TICK_OPERATIONS and row.symbol in KNOWN, row
            assert isinstance(row.price, Decimal) and row.price > 0 and math.isfinite(row.price), row
            assert row.quantity >= 1 and row.trade_time_us is not None and row.side in (None, "buy", "sell"), row

    # The same messages through the job's batch handler: nothing raises, and nothing goes missing.
    state = MarketState()
    BatchHandler(state, lambda: KNOWN)(parse_change_events(kafka_rows(spark, batch)), 0)
    snapshot = state.snapshot()
    accounted = snapshot.total_trades + sum(snapshot.rejected_by_reason.values()) + snapshot.deletes
    assert accounted == len(batch), (snapshot, rows)
