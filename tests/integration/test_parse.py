"""Parsing and validation of change events (pipeline/trades.py) on small DataFrames."""

import json
from decimal import Decimal

import pytest

from pipeline.domain.live import LiveTick
from pipeline.domain.live_rejects import LiveReject
from pipeline.domain.reasons import REJECT_REASONS
from pipeline.sinks.live_feed import live_tick
from pipeline.spark.parse import parse_change_events
from pipeline.spark.realtime import live_ticks
from tests.events import CLUSTER_SECONDS, change_event, debezium_event, kafka_rows, trade_doc

pytestmark = pytest.mark.spark
KNOWN = {"INFY", "TCS"}


def parse(spark, messages):
    rows = parse_change_events(kafka_rows(spark, messages), KNOWN).collect()
    return [row.asDict() for row in rows]


def test_valid_insert_is_parsed_exactly(spark):
    [row] = parse(spark, [change_event("a1", trade_doc("infy", 1523.45, 10, side="SELL"))])
    assert row["reject_reason"] is None
    assert row["event_id"] == "a1"
    assert row["symbol"] == "INFY"
    assert row["side"] == "sell"
    assert row["price"] == Decimal("1523.4500")
    assert row["quantity"] == 10
    assert row["trade_time"].isoformat().startswith("2025-11-24T10:00:00")


def test_original_design_shape_is_accepted(spark):
    [row] = parse(spark, [change_event("a2", {"stock": "TCS", "price": "3470.5", "type": "buy"})])
    assert row["reject_reason"] is None
    assert (row["symbol"], row["side"], row["price"], row["quantity"]) == ("TCS", "buy", Decimal("3470.5000"), 1)


def test_update_and_replace_are_ticks_delete_is_not(spark):
    rows = parse(spark, [
        change_event("u1", trade_doc("INFY", 1), op="update"),
        change_event("r1", trade_doc("INFY", 2), op="replace"),
        change_event("d1", None, op="delete"),
    ])
    assert [(r["op"], r["reject_reason"]) for r in rows] == [("update", None), ("replace", None), ("delete", None)]


def test_extended_json_numbers_and_dates(spark):
    doc = {"symbol": "INFY", "price": {"$numberDecimal": "99.5"}, "quantity": {"$numberLong": "3"},
           "trade_time": {"$date": {"$numberLong": "1764000000000"}}}
    [row] = parse(spark, [change_event("x1", doc)])
    assert row["reject_reason"] is None
    assert (row["price"], row["quantity"]) == (Decimal("99.5000"), 3)
    assert row["trade_time"].isoformat().startswith("2025-11-24T16:00:00")


def test_missing_trade_time_falls_back_to_cluster_time(spark):
    [row] = parse(spark, [change_event("c1", trade_doc("INFY", 5, when=None))])
    assert row["reject_reason"] is None
    assert row["trade_time"] == row["cluster_time"]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("this is not json", "not_json"),
        ("[1, 2, 3]", "not_json"),
        # NaN is no JSON number, though Spark's JSON reader would take it by default.
        ('{"_id": {"_data": "n1"}, "operationType": "insert", "fullDocument": {"symbol": "INFY", "price": NaN}}',
         "not_json"),
        (change_event("e1", trade_doc("INFY", 1), op="drop"), "unsupported_operation"),
        (change_event("e2", None), "missing_document"),
        (change_event("e3", {"price": 1, "quantity": 1}), "missing_symbol"),
        (change_event("e4", trade_doc("NOPE", 1)), "unknown_symbol"),
        (change_event("e5", trade_doc(42, 1)), "unknown_symbol"),
        (change_event("e6", {"symbol": "INFY", "quantity": 1}), "missing_price"),
        (change_event("e7", trade_doc("INFY", -5)), "invalid_price"),
        (change_event("e8", trade_doc("INFY", 0)), "invalid_price"),
        (change_event("e9", trade_doc("INFY", "NaN")), "invalid_price"),
        (change_event("e10", trade_doc("INFY", "Infinity")), "invalid_price"),
        (change_event("e11", trade_doc("INFY", "abc")), "invalid_price"),
        (change_event("e12", trade_doc("INFY", True)), "invalid_price"),
        (change_event("e13", trade_doc("INFY", 10, quantity=1.5)), "invalid_quantity"),
        (change_event("e14", trade_doc("INFY", 10, quantity=0)), "invalid_quantity"),
        (change_event("e15", trade_doc("INFY", 10, quantity="many")), "invalid_quantity"),
        (change_event("e16", trade_doc("INFY", 10, side="hold")), "invalid_side"),
        (change_event("e17", trade_doc("INFY", 10, when="yesterday")), "invalid_trade_time"),
        (change_event("e18", trade_doc("INFY", 10, when="1990-01-01T00:00:00Z")), "absurd_trade_time"),
        (change_event("e19", trade_doc("INFY", 10, when="2025-11-26T16:00:00Z")), "absurd_trade_time"),
    ],
)
def test_bad_input_is_rejected_with_its_reason(spark, message, reason):
    [row] = parse(spark, [message])
    assert row["reject_reason"] == reason
    assert reason in REJECT_REASONS


def test_a_field_named_like_the_parsers_own_column_is_just_a_field(spark):
    # The envelope's parser puts a message it cannot read whole into a column of that name: a change event that
    # brings the name itself is still an ordinary, valid trade.
    forged = json.loads(change_event("f1", trade_doc("INFY", 10)))
    forged["stockdash_unparsed"] = "anything"
    [row] = parse(spark, [json.dumps(forged)])
    assert (row["reject_reason"], row["event_id"], row["price"]) == (None, "f1", Decimal("10.0000"))


def test_one_output_row_per_message_and_valid_rows_survive_bad_neighbours(spark):
    messages = ["{oops", change_event("ok1", trade_doc("INFY", 10)), b"\xff\xfe", change_event("ok2", trade_doc("TCS", 20))]
    rows = parse(spark, messages)
    assert len(rows) == 4
    assert [r["event_id"] for r in rows if r["reject_reason"] is None] == ["ok1", "ok2"]


def test_epoch_times_out_of_range_are_rejected_not_fatal(spark):
    # Found by the fuzz test: 9223372036854776 ms overflowed in Spark and failed the whole batch.
    messages = [change_event(f"e{i}", trade_doc("INFY", 10, when=None, trade_time={"$numberLong": str(value)}))
                for i, value in enumerate((9223372036854776, -62135510400001, 253402300800000))]
    rows = parse_change_events(kafka_rows(spark, messages), ["INFY"]).select("reject_reason").collect()
    assert [row.reject_reason for row in rows] == ["invalid_trade_time"] * 3


# -- Debezium's envelope (CDC_MODE=debezium) -------------------------------------------------------------------------

# As Debezium 3.6's MongoDB connector writes an insert through JsonConverter (schemas off): ``after`` is the document
# in the Java driver's strict JSON (dates as epoch ms, int64 as $numberLong), ``source.ord`` the cluster time's
# increment, ``source.ts_ms`` the change's wall time.
DEBEZIUM_INSERT = (
    '{"before":null,"after":"{\\"_id\\": {\\"$oid\\": \\"6750a1b2c3d4e5f601234567\\"}, \\"symbol\\": \\"infy\\", '
    '\\"side\\": \\"SELL\\", \\"price\\": 1523.45, \\"quantity\\": {\\"$numberLong\\": \\"10\\"}, '
    '\\"trade_time\\": {\\"$date\\": 1764000000000}}","updateDescription":null,'
    '"source":{"version":"3.6.1.Final","connector":"mongodb","name":"stockdash","ts_ms":1764000000123,"snapshot":"false",'
    '"db":"stockmarket","sequence":null,"ts_us":1764000000123000,"ts_ns":1764000000123000000,"collection":"transaction",'
    '"ord":7,"lsid":null,"txnNumber":null,"wallTime":1764000000123},"op":"c","ts_ms":1764000000150,"transaction":null}'
)


def test_a_debezium_insert_is_parsed_exactly(spark):
    [row] = parse(spark, [DEBEZIUM_INSERT])
    assert row["reject_reason"] is None
    assert row["event_id"] == "debezium/1764000000123/7/6750a1b2c3d4e5f601234567"
    assert row["op"] == "insert" and row["trade_id"] == "6750a1b2c3d4e5f601234567"
    assert (row["symbol"], row["side"], row["price"], row["quantity"]) == ("INFY", "sell", Decimal("1523.4500"), 10)
    assert row["trade_time"].isoformat().startswith("2025-11-24T16:00:00")
    assert row["cluster_time"].isoformat().startswith("2025-11-24T16:00:00.123")  # source.ts_ms, to the ms


def test_debezium_ops_map_onto_change_event_ops(spark):
    doc = trade_doc("INFY", 10, _id={"$oid": "6750a1b2c3d4e5f601234567"})
    rows = parse(spark, [
        debezium_event(doc, op="c", ord_=1),
        debezium_event(doc, op="r", ord_=2),  # a snapshot read: the document as it is, one tick
        debezium_event({**doc, "price": 11}, op="u", ord_=3,
                       update_description={"removedFields": None, "updatedFields": '{"price": 11}', "truncatedArrays": None}),
        debezium_event(None, op="d", ord_=4),
        debezium_event(doc, op="t", ord_=5),  # a truncate: not a trade's change
    ])
    assert [(r["op"], r["reject_reason"]) for r in rows] == [
        ("insert", None), ("insert", None), ("update", None), ("delete", None), ("debezium:t", "unsupported_operation")]
    assert rows[2]["price"] == Decimal("11.0000")  # change_streams_update_full: the whole document is in after


def test_the_same_trade_through_either_envelope_is_the_same_row_but_for_its_id(spark):
    doc = trade_doc("TCS", {"$numberDecimal": "3470.5"}, quantity={"$numberLong": "4"}, when=None, side="buy",
                    _id={"$oid": "6750a1b2c3d4e5f6012345ff"}, trade_time={"$date": 1764000000000})
    for relay_op, debezium_op in (("insert", "c"), ("update", "u"), ("delete", "d")):
        relay, debezium = parse(spark, [
            change_event("token-1", None if relay_op == "delete" else doc, op=relay_op),
            debezium_event(None if debezium_op == "d" else doc, op=debezium_op, ts_ms=CLUSTER_SECONDS * 1000),
        ])
        different = {"event_id", "raw", "offset"}
        assert {k: v for k, v in relay.items() if k not in different} == {
            k: v for k, v in debezium.items() if k not in different}, relay_op
        assert relay["event_id"] == "token-1" and debezium["event_id"].startswith("debezium/1764000000000/1")
    # A document without a trade time is dated by the database either way.
    undated = trade_doc("TCS", 5, when=None)
    relay, debezium = parse(spark, [change_event("token-2", undated), debezium_event(undated)])
    assert relay["trade_time"] == debezium["trade_time"] == debezium["cluster_time"]


def test_a_debezium_event_re_sent_keeps_its_id_and_changes_of_one_transaction_do_not_share_one(spark):
    first = debezium_event(trade_doc("INFY", 1, _id={"$oid": "a" * 24}), ord_=3)
    same_transaction = debezium_event(trade_doc("INFY", 2, _id={"$oid": "b" * 24}), ord_=3)
    rows = parse(spark, [first, first, same_transaction, debezium_event(None, op="d", ord_=4)])
    ids = [r["event_id"] for r in rows]
    assert ids[0] == ids[1] == f"debezium/{CLUSTER_SECONDS * 1000}/3/{'a' * 24}"
    assert ids[2] == f"debezium/{CLUSTER_SECONDS * 1000}/3/{'b' * 24}"
    assert ids[3] == f"debezium/{CLUSTER_SECONDS * 1000}/4"  # a delete's after is empty: its position alone


def test_a_debezium_envelope_without_a_position_gets_the_kafka_position_and_no_database_time(spark):
    [row] = parse(spark, [debezium_event(trade_doc("INFY", 10), ts_ms=None)])
    assert row["event_id"] == "kafka/t/0/0"
    assert row["cluster_time"] is None and row["reject_reason"] is None  # its trade time still dates it


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (debezium_event(None, op="c"), "missing_document"),
        # capture.mode=change_streams (not _update_full) sends an update without its document.
        (debezium_event(None, op="u", update_description={"updatedFields": '{"price": 3}'}), "missing_document"),
        (debezium_event("{not a document", op="c"), "missing_document"),
        (json.dumps({"source": {"ts_ms": 1, "ord": 1}, "after": "{}"}), "unsupported_operation"),
        (debezium_event(trade_doc("INFY", 1), op="m"), "unsupported_operation"),
        (debezium_event({"price": 1, "quantity": 1}), "missing_symbol"),
        (debezium_event(trade_doc("NOPE", 1)), "unknown_symbol"),
        (debezium_event({"symbol": "INFY", "quantity": 1}), "missing_price"),
        (debezium_event(trade_doc("INFY", -5)), "invalid_price"),
        # The Java driver's strict JSON writes a double NaN bare.
        (debezium_event('{"symbol": "INFY", "price": NaN, "quantity": 1}'), "invalid_price"),
        (debezium_event(trade_doc("INFY", 10, quantity=1.5)), "invalid_quantity"),
        (debezium_event(trade_doc("INFY", 10, side="hold")), "invalid_side"),
        (debezium_event(trade_doc("INFY", 10, when="yesterday")), "invalid_trade_time"),
        (debezium_event(trade_doc("INFY", 10, when=None, trade_time={"$date": 631152000000})), "absurd_trade_time"),
        (debezium_event(trade_doc("INFY", 10, when=None, trade_time={"$date": (CLUSTER_SECONDS + 3600) * 1000})),
         "absurd_trade_time"),
    ],
)
def test_bad_debezium_input_is_rejected_with_its_reason(spark, message, reason):
    [row] = parse(spark, [message])
    assert row["reject_reason"] == reason


def test_debezium_times_out_of_range_are_rejected_not_fatal(spark):
    rows = parse(spark, [debezium_event(trade_doc("INFY", 10), ts_ms=9223372036854775),
                         debezium_event(trade_doc("INFY", 10, when=None), ts_ms=-62135510400001)])
    assert rows[0]["cluster_time"] is None and rows[0]["reject_reason"] is None
    assert rows[1]["reject_reason"] == "invalid_trade_time"


def test_the_live_ticks_query_passes_on_every_trade_and_every_reject_with_its_reason_and_no_delete(spark):
    """What the real-time query writes to the live topic, read back as the app's feed reads it: the
    ledgers count a reject the moment it is parsed (``pipeline.domain.live_rejects``)."""
    messages = [change_event("ok", trade_doc("INFY", 10)), change_event("neg", trade_doc("INFY", -1)),
                change_event("gone", None, op="delete"), change_event("long", trade_doc("X" * 1000, 5)),
                change_event("nosym", {"price": 5})]
    read = [live_tick(row.value.encode()) for row in live_ticks(kafka_rows(spark, messages)).collect()]
    [tick] = [r for r in read if isinstance(r, LiveTick)]
    assert (tick.tick.event_id, tick.tick.price) == ("ok", Decimal("10.0000"))
    rejects = {r.event_id: r for r in read if isinstance(r, LiveReject)}
    assert {event_id: (r.reason, r.symbol) for event_id, r in rejects.items()} == {
        "neg": ("invalid_price", "INFY"), "long": ("unknown_symbol", "X" * 64), "nosym": ("missing_symbol", None)}
    assert all(r.offset >= 0 for r in rejects.values())
