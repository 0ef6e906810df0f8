"""Claims of the README and docs that had no test: the dedupe horizon, the late topic, archive replays into
the live topic, a restart that shows the persisted market at once, and form prices kept as shown.

Each test states the claim it checks in its docstring and fails when the claim does not hold.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from bson import json_util
from bson.json_util import RELAXED_JSON_OPTIONS
from bson.timestamp import Timestamp
from kafka import KafkaConsumer, KafkaProducer

from pipeline.domain.state import MarketState
from pipeline.services.archive import archived_records, replay
from pipeline.settings import Settings
from pipeline.spark.batch import BatchHandler
from pipeline.spark.microbatch import MarketJob, market_stream
from pipeline.spark.parse import parse_change_events
from pipeline.waits import wait_until
from simulator.trades import validate_trade
from tests.children import isolated
from tests.events import CLUSTER_SECONDS, KAFKA_SCHEMA, change_event, kafka_rows, trade_doc
from tests.modes import wait_for_the_record
from tests.oracle import OracleTick, expected_metrics, metric_values
from tests.trading_day import clear_of_midnight_ist

pytestmark = pytest.mark.integration
HORIZON_S = 60  # a dedupe horizon small enough to pass in a few events' database time
_streams = itertools.count()


# -- the dedupe horizon, on the job's own stream (parse -> drop replays), one micro-batch per file ---------------
def run_stream(spark, folder: Path, batches: list[list[tuple[str, int]]],
               handler: Callable[[Any, int], None] | None = None) -> tuple[list[str], list[dict]]:
    """Feed (event id, database time in s) batches of INFY trades through ``market_stream`` with a horizon of
    HORIZON_S, into ``handler`` if given; returns the ids the dedupe let through, in order, and Spark's
    progress reports."""
    (folder / "in").mkdir(parents=True)
    offsets = itertools.count()
    for number, batch in enumerate(batches):
        values = [change_event(event_id, trade_doc("INFY", 1), cluster_seconds=at).encode() for event_id, at in batch]
        frame = pd.DataFrame({"value": values, "topic": "t", "partition": 0, "offset": [next(offsets) for _ in values],
                              "timestamp": pd.Timestamp(CLUSTER_SECONDS, unit="s", tz="UTC")})
        frame["partition"] = frame["partition"].astype("int32")
        frame.to_parquet(folder / "in" / f"{number:03d}.parquet")
    through: list[str] = []

    def each_batch(frame, batch_id: int) -> None:
        through.extend(r.event_id for r in frame.select("event_id").collect())
        if handler is not None:
            handler(frame, batch_id)

    source = spark.readStream.schema(KAFKA_SCHEMA).option("maxFilesPerTrigger", 1).parquet(str(folder / "in"))
    query = (market_stream(source, dedupe_horizon_s=HORIZON_S).writeStream.foreachBatch(each_batch)
             .option("checkpointLocation", str(folder / "checkpoint")).trigger(availableNow=True).start())
    query.awaitTermination(timeout=300)
    assert query.exception() is None, query.exception()
    return through, query.recentProgress


@pytest.mark.spark
def test_replays_within_the_horizon_are_dropped_and_no_new_event_is_dropped_unseen(spark, tmp_path):
    """Replays are dropped by event id for DEDUPE_HORIZON_S of the query's own time. No event is dropped
    for being behind in database time, first seen or not: F, 100 s behind the newest with a 60 s horizon
    (one partition lagging another in a catch-up, say), goes on to the batch handler."""
    t = CLUSTER_SECONDS
    through, progress = run_stream(spark, tmp_path / f"s{next(_streams)}", [
        [("A", t)], [("A", t)],  # a replay: dropped by its id
        [("D", t + 200)], [("E", t + 210)], [("F", t + 110)], [("A", t)],
    ])
    assert through == ["A", "D", "E", "F"]
    assert sum(op.get("numRowsDroppedByWatermark", 0) for report in progress for op in report["stateOperators"]) == 0


@pytest.mark.spark
def test_an_event_far_behind_in_database_time_is_set_aside_never_counted_twice_or_lost(spark, tmp_path):
    """What the dedupe lets through more than the horizon behind the newest database time may be a replay
    older than the ids it remembers: the batch handler sets it aside (``behind_replay_horizon``, in the
    rejected ledger with its offset, to re-inject if it is new) instead of counting it."""
    t = CLUSTER_SECONDS
    state = MarketState()
    handler = BatchHandler(state, lambda: ["INFY"], replay_horizon_s=HORIZON_S)
    through, _ = run_stream(spark, tmp_path / f"s{next(_streams)}",
                            [[("A", t)], [("D", t + 200)], [("E", t + 210), ("G", t + 150)], [("F", t + 110)]],
                            handler)
    assert through == ["A", "D", "E", "G", "F"]
    snapshot = state.snapshot()
    assert snapshot.stocks["INFY"].trades == 4  # A, D, E, G (G: 50 s behind D, within the horizon)
    assert snapshot.rejected_by_reason == {"behind_replay_horizon": 1}  # F


# -- the late topic ---------------------------------------------------------------------------------------------
def late_records(stack: Settings, symbol: str) -> list[tuple[bytes, dict]]:
    """(key, payload) of every record of ``symbol`` on ``<topic>.late`` so far."""
    consumer = KafkaConsumer(stack.late_topic, bootstrap_servers=stack.effective_kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=1000, enable_auto_commit=False)
    try:
        return [(m.key, payload) for m in consumer if (payload := json.loads(m.value)).get("symbol") == symbol]
    finally:
        consumer.close()


def wait_for_trades(job: MarketJob, symbol: str, count: int):
    return wait_until(lambda: (a := job.state.snapshot().stocks.get(symbol)) is not None and a.trades >= count and a,
                      timeout=60, what=f"{count} trades of {symbol} in MarketState",
                      describe=lambda: repr(job.state.snapshot().stocks.get(symbol)))


def test_late_ticks_reach_the_late_kafka_topic(market_job, stack, mongo_client, transactions, fresh_symbol):
    """A tick older than the candle watermark is published on ``<topic>.late`` with its event time and how late
    it was, keyed by its event id; the on-time tick is not."""
    clear_of_midnight_ist(lookback=timedelta(seconds=stack.candle_lateness_s + 600))  # the late tick: today's too
    now = datetime.now(timezone.utc).replace(microsecond=0)
    transactions.insert_one({"symbol": fresh_symbol, "price": 100, "quantity": 1, "trade_time": now})
    wait_for_trades(market_job, fresh_symbol, 1)
    wait_for_the_record(market_job)  # lateness is judged against what the record held before the late tick's batch
    late_time = now - timedelta(seconds=stack.candle_lateness_s + 600)
    transactions.insert_one({"symbol": fresh_symbol, "price": 90, "quantity": 5, "trade_time": late_time})
    wait_for_trades(market_job, fresh_symbol, 2)
    stored = wait_until(lambda: mongo_client[stack.database]["late_ticks"].find_one({"symbol": fresh_symbol}),
                        timeout=30, what="late ledger entry")
    records = wait_until(lambda: late_records(stack, fresh_symbol), timeout=60, what=f"{fresh_symbol} on {stack.late_topic}")
    assert {key for key, _ in records} == {stored["_id"].encode()}  # one tick, keyed by its event id (repeats share it)
    payload = records[-1][1]
    assert payload["event_id"] == stored["_id"]
    assert datetime.fromisoformat(payload["trade_time"]) == late_time
    assert payload["late_by_s"] == pytest.approx(600)
    assert payload["behind_latest_s"] == pytest.approx(stack.candle_lateness_s + 600)


# -- archive replays into the live topic ------------------------------------------------------------------------
def archived_values(root: Path, trade_ids: set[str]) -> dict[date, list[bytes]]:
    """The archived change events of these trades, per archive day, in archive order."""
    found: dict[date, list[bytes]] = {}
    for folder in sorted(root.iterdir()) if root.exists() else []:
        if folder.is_dir() and folder.name[:2] == "20":
            day = date.fromisoformat(folder.name)
            for value in (record.value for record in archived_records(root, day) if record.value is not None):
                try:
                    trade_id = json.loads(value)["fullDocument"]["_id"]["$oid"]
                except (ValueError, KeyError, TypeError, RecursionError):
                    continue  # other tests' deliberately bad messages (deep nesting among them)
                if trade_id in trade_ids:
                    found.setdefault(day, []).append(value)
    return found


def oracle_of(documents: list[dict]) -> dict:
    """Every registry metric of one symbol, in plain Python over the documents as MongoDB holds them."""
    ticks = [OracleTick(str(d["_id"]), d["symbol"], Decimal(repr(d["price"])), d["quantity"],
                        d["trade_time"].replace(tzinfo=timezone.utc), d["side"]) for d in documents]
    [values] = expected_metrics(ticks).values()
    return values


def test_replaying_archived_events_into_the_live_topic_drops_them_as_repeats(market_job, stack, transactions,
                                                                            fresh_symbol, tmp_path):
    """``archive replay`` into the live topic re-publishes events with their original ids: none is counted
    again. A trade inserted after the replay (same symbol, so the same partition, after the replays) shows
    the job has read past them before the figures are compared with a plain-Python oracle."""
    when = datetime.now(timezone.utc)
    documents = [{"symbol": fresh_symbol, "side": "buy", "price": 50.0 + i % 7, "quantity": 1 + i % 3,
                  "trade_time": when + timedelta(milliseconds=i)} for i in range(20)]
    transactions.insert_many(documents)
    wait_for_trades(market_job, fresh_symbol, 20)
    ids = {str(d["_id"]) for d in documents}
    found = wait_until(lambda: (f := archived_values(stack.effective_archive_dir, ids)) and
                       sum(map(len, f.values())) >= len(ids) and f, timeout=60, what="the trades archived")
    # Only these trades' archived lines, in an archive of their own: other tests' events stay untouched.
    own = stack.with_changes(archive_dir=tmp_path / "archive")
    for day, values in found.items():
        (own.effective_archive_dir / day.isoformat()).mkdir(parents=True)
        (own.effective_archive_dir / day.isoformat() / "part-0.jsonl").write_bytes(b"".join(v + b"\n" for v in values))
        sent = replay(own, day)  # into the live trades topic
        sent = sent[0] if isinstance(sent, tuple) else sent  # (acknowledged, skipped) in the newer archive
        assert sent == len(values), f"replay of {day} published {sent} of {len(values)} events"
    follow_up = {"symbol": fresh_symbol, "side": "sell", "price": 77.0, "quantity": 4,
                 "trade_time": when + timedelta(seconds=5)}
    transactions.insert_one(follow_up)
    agg = wait_until(lambda: (a := market_job.state.snapshot().stocks[fresh_symbol]).nav == Decimal("77") and a,
                     timeout=60, what="the trade after the replay")
    stored = list(transactions.find({"symbol": fresh_symbol}))
    assert len(stored) == 21
    assert metric_values(agg) == oracle_of(stored)  # 21 trades, not 41


# -- a restart shows the persisted market at once ---------------------------------------------------------------
def produce(settings: Settings, events: list[str]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.effective_kafka_bootstrap)
    try:
        for event in events:
            producer.send(settings.trades_topic, key=b"restart", value=event.encode())
        producer.flush()
    finally:
        producer.close()


def visible(snapshot) -> dict:
    """What the Market, Stock and Pipeline pages read from the persisted state (recent trades are in memory only)."""
    return {"stocks": dict(snapshot.stocks), "rejected_by_reason": dict(snapshot.rejected_by_reason),
            "rejected_by_symbol": dict(snapshot.rejected_by_symbol), "late_by_symbol": dict(snapshot.late_by_symbol),
            "candles": {c.key: c for series in snapshot.candles.values() for c in series}}


@pytest.mark.spark
def test_a_restarted_job_shows_the_persisted_market_at_once(stack, spark, tmp_path):
    """A new MarketJob on the same database and checkpoint starts with the figures, candles and ledgers of the
    last run already in its state: before any new trade, before its first batch."""
    settings = isolated(stack, tmp_path, "restart")
    clear_of_midnight_ist(lookback=timedelta(seconds=settings.candle_lateness_s + 600))  # the late tick: today's too
    now = int(datetime.now(timezone.utc).timestamp())
    iso = lambda s: datetime.fromtimestamp(s, tz=timezone.utc).isoformat().replace("+00:00", "Z")  # noqa: E731
    name = f"stockdash_restart_{uuid.uuid4().hex[:6]}"
    first = MarketJob(settings, spark=spark, name=name).start()
    try:
        produce(settings, [change_event("r1", trade_doc("INFY", 1500.5, 3, when=iso(now - 5)), cluster_seconds=now),
                           change_event("r2", trade_doc("INFY", 1510, 2, when=iso(now - 1)), cluster_seconds=now),
                           change_event("r3", trade_doc("TCS", 3400, 1, when=iso(now)), cluster_seconds=now),
                           change_event("r4", trade_doc("INFY", -1, 1, when=iso(now)), cluster_seconds=now)])
        wait_for_trades(first, "INFY", 2)
        late = now - settings.candle_lateness_s - 600
        produce(settings, [change_event("r5", trade_doc("INFY", 1490, 1, when=iso(late)), cluster_seconds=now)])
        wait_until(lambda: first.state.snapshot().late_by_symbol.get("INFY") == 1, timeout=60, what="the late tick")
        before = visible(first.state.snapshot())
    finally:
        first.stop()
    assert before["stocks"]["INFY"].trades == 3 and before["rejected_by_symbol"] == {"INFY": 1}
    again = MarketJob(settings, spark=spark, name=name).start()
    try:
        shown = visible(again.state.snapshot())  # no wait: "at once"
    finally:
        again.stop()
    assert {(symbol, interval) for symbol, interval, _ in shown["candles"]} == {
        ("INFY", 60), ("INFY", 300), ("TCS", 60), ("TCS", 300)}  # the late tick is in none
    assert shown == before


# -- a price the form accepts is the price the pipeline keeps ---------------------------------------------------
def relay_message(event_id: str, document: dict) -> str:
    """A change event as the relay writes it (relaxed Extended JSON: a double price as its shortest repr)."""
    return json_util.dumps({"_id": {"_data": event_id}, "operationType": "insert",
                            "clusterTime": Timestamp(CLUSTER_SECONDS, 1), "fullDocument": document},
                           json_options=RELAXED_JSON_OPTIONS)


@pytest.mark.spark
def test_a_price_the_form_accepts_is_kept_exactly_and_one_it_refuses_would_be_rejected(spark):
    """The Simulator form rounds to the pipeline's precision before it checks: what it says it inserted is
    what the pipeline keeps, and a price it refuses as rounding to 0 is one the pipeline would reject."""
    when = datetime(2025, 11, 24, 10, tzinfo=timezone.utc)
    accepted = [validate_trade("INFY", "buy", typed, 1, {"INFY"}, trade_time=when)
                for typed in ("0.001", "0.00005", "9999999.995", "1523.45675", "2.5e2", "0.0001")]
    refused = ["0.00004", "1e-999999"]
    messages = [relay_message(f"ok{i}", t.to_document()) for i, t in enumerate(accepted)]
    messages += [relay_message(f"no{i}", {"symbol": "INFY", "price": float(p), "quantity": 1, "trade_time": when})
                 for i, p in enumerate(refused)]
    rows = {r.event_id: r for r in parse_change_events(kafka_rows(spark, messages), {"INFY"}).collect()}
    assert [(rows[f"ok{i}"].reject_reason, rows[f"ok{i}"].price) for i in range(len(accepted))] == \
        [(None, t.price) for t in accepted]
    assert [rows[f"no{i}"].reject_reason for i in range(len(refused))] == ["invalid_price"] * len(refused)
