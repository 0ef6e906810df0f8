"""Per-batch aggregation (Spark) and the merge rule (Python) against the oracle."""

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from pipeline.domain.metrics import StockAggregate, merge
from pipeline.spark.parse import parse_change_events, valid_ticks
from pipeline.spark.summary import aggregate_ticks, summarize_batch
from tests.events import change_event, kafka_rows, trade_doc
from tests.oracle import OracleTick, expected_metrics, metric_values

KNOWN = {"INFY", "TCS", "ITC"}
T0 = datetime(2025, 11, 24, 9, 15, tzinfo=timezone.utc)


def make_ticks(count: int, seed: int) -> list[OracleTick]:
    rng = random.Random(seed)
    ticks = []
    for index in range(count):
        ticks.append(OracleTick(
            event_id=f"ev{index:05d}",
            symbol=rng.choice(sorted(KNOWN)),
            price=Decimal(rng.randrange(1000, 200000)) / 100,
            quantity=rng.randrange(1, 500),
            # Few distinct times: many ties, broken by event id.
            trade_time=T0 + timedelta(seconds=rng.randrange(0, 5)),
            side=rng.choice(("buy", "sell")),
        ))
    return ticks


def to_messages(ticks: list[OracleTick]) -> list[str]:
    return [
        change_event(t.event_id, trade_doc(t.symbol, str(t.price), t.quantity, side=t.side,
                                           when=t.trade_time.isoformat().replace("+00:00", "Z")))
        for t in ticks
    ]


def aggregates_of(spark, ticks: list[OracleTick]) -> dict[str, StockAggregate]:
    parsed = parse_change_events(kafka_rows(spark, to_messages(ticks)), KNOWN)
    rows = aggregate_ticks(valid_ticks(parsed)).collect()
    return {row.symbol: StockAggregate.from_row(row.asDict()) for row in rows}


@pytest.mark.spark
def test_one_batch_matches_the_oracle(spark):
    ticks = make_ticks(300, seed=7)
    result = aggregates_of(spark, ticks)
    assert {symbol: metric_values(agg) for symbol, agg in result.items()} == expected_metrics(ticks)


@pytest.mark.spark
def test_any_batch_split_and_order_merges_to_the_same_result(spark):
    ticks = make_ticks(120, seed=11)
    expected = expected_metrics(ticks)
    rng = random.Random(3)
    for _ in range(3):
        shuffled = ticks[:]
        rng.shuffle(shuffled)
        cuts = sorted(rng.sample(range(1, len(shuffled)), 3))
        batches = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)], strict=True)]
        merged: dict[str, StockAggregate] = {}
        for batch in batches:
            for symbol, aggregate in aggregates_of(spark, batch).items():
                merged[symbol] = merge(merged.get(symbol), aggregate)
        assert {symbol: metric_values(agg) for symbol, agg in merged.items()} == expected


@pytest.mark.spark
def test_summary_carries_ticks_deletes_and_rejects_in_one_result(spark):
    messages = [
        change_event("a", trade_doc("INFY", 10, 2)),
        change_event("b", trade_doc("INFY", 12, 1, when="2025-11-24T10:00:01Z")),
        change_event("c", None, op="delete"),
        change_event("d", trade_doc("NOPE", 1)),
        "garbage",
    ]
    summary = summarize_batch(parse_change_events(kafka_rows(spark, messages), KNOWN)).collect()
    rows = {(r.outcome, r.symbol): r for r in summary}
    tick = rows[("tick", "INFY")]  # both ticks fall in the 10:00 minute
    assert (tick.trades, tick.nav, tick.open, tick.volume) == (2, Decimal("12.0000"), Decimal("10.0000"), 3)
    assert [t.event_id for t in tick.recent] == ["b", "a"]  # latest first
    assert rows[("delete", None)].messages == 1
    assert [r.event_id for r in rows[("rejected:unknown_symbol", None)].set_aside] == ["d"]
    assert rows[("rejected:not_json", None)].set_aside[0].raw == "garbage"
    assert tick.window_start_s == 1763978400  # 2025-11-24 10:00 UTC


@pytest.mark.spark
def test_ticks_older_than_the_watermark_are_late_not_in_candles(spark):
    messages = [
        change_event("on-time", trade_doc("INFY", 10, 1, when="2025-11-24T10:05:00Z")),
        change_event("late", trade_doc("INFY", 7, 3, when="2025-11-24T10:00:00Z")),
    ]
    watermark_us = int(datetime(2025, 11, 24, 10, 3, tzinfo=timezone.utc).timestamp() * 1_000_000)
    summary = summarize_batch(parse_change_events(kafka_rows(spark, messages), KNOWN), {"INFY": watermark_us}).collect()
    by_outcome = {r.outcome: r for r in summary}
    assert by_outcome["late"].trades == 1 and [t.event_id for t in by_outcome["late"].set_aside] == ["late"]
    assert by_outcome["late"].window_start_s is None  # the late tick is in no candle
    assert by_outcome["tick"].trades == 1
