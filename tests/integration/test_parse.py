"""Parsing and validation of change events (pipeline/trades.py) on small DataFrames."""

from decimal import Decimal

import pytest

from pipeline.domain.reasons import REJECT_REASONS
from pipeline.spark.parse import parse_change_events
from tests.events import change_event, kafka_rows, trade_doc

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
