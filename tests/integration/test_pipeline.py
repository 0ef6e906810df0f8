"""The whole path on real parts: pymongo insert -> change stream -> relay -> Kafka -> Spark -> MarketState."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from kafka import KafkaConsumer

from pipeline.domain.days import session_start_s
from pipeline.domain.reasons import REJECT_REASONS
from pipeline.sinks.ledger import dead_letters
from pipeline.waits import wait_until
from tests.modes import DEFAULT_MODE_ONLY, wait_for_the_record
from tests.trading_day import clear_of_midnight_ist

pytestmark = pytest.mark.integration
T0 = datetime(2026, 1, 5, 9, 15, tzinfo=timezone.utc)


def wait_for_trades(job, symbol: str, count: int, timeout: float = 60):
    return wait_until(
        lambda: (agg := job.state.snapshot().stocks.get(symbol)) is not None and agg.trades >= count and agg,
        timeout=timeout,
        what=f"{count} trades of {symbol} in MarketState",
        describe=lambda: repr(job.state.snapshot().stocks.get(symbol)),
    )


def test_inserted_trades_show_up_with_exact_numbers(market_job, transactions, fresh_symbol):
    docs = [
        {"symbol": fresh_symbol, "side": "buy", "price": 101.5, "quantity": 10, "trade_time": T0 + timedelta(seconds=3)},
        {"symbol": fresh_symbol, "side": "sell", "price": 99.25, "quantity": 5, "trade_time": T0 + timedelta(seconds=1)},
        # Latest by trade time though inserted before the last one: NAV is chosen by event time.
        {"symbol": fresh_symbol, "side": "buy", "price": 100.0, "quantity": 1, "trade_time": T0 + timedelta(seconds=9)},
        {"symbol": fresh_symbol, "side": "buy", "price": 104.75, "quantity": 4, "trade_time": T0 + timedelta(seconds=2)},
    ]
    transactions.insert_many(docs)
    agg = wait_for_trades(market_job, fresh_symbol, 4)
    assert agg.trades == 4
    assert (agg.low, agg.high) == (Decimal("99.25"), Decimal("104.75"))
    assert agg.nav == Decimal("100.00")
    assert agg.open == Decimal("99.25")
    assert agg.last_trade_time == T0 + timedelta(seconds=9)
    assert agg.volume == 20
    assert agg.vwap == Decimal("101.5125")  # (1015 + 496.25 + 100 + 419) / 20


def test_updates_are_ticks_and_deletes_change_nothing(market_job, transactions, fresh_symbol):
    inserted = transactions.insert_one({"symbol": fresh_symbol, "price": 50, "quantity": 2, "trade_time": T0}).inserted_id
    wait_for_trades(market_job, fresh_symbol, 1)
    deletes_before = market_job.state.snapshot().deletes
    transactions.update_one({"_id": inserted}, {"$set": {"price": 55, "trade_time": T0 + timedelta(seconds=5)}})
    agg = wait_for_trades(market_job, fresh_symbol, 2)
    assert (agg.nav, agg.high, agg.low) == (Decimal("55"), Decimal("55"), Decimal("50"))
    transactions.delete_one({"_id": inserted})
    wait_until(lambda: market_job.state.snapshot().deletes > deletes_before, timeout=60, what="delete counted")
    assert market_job.state.snapshot().stocks[fresh_symbol].trades == 2


def test_find_and_modify_writes_reach_the_dashboard(market_job, transactions, fresh_symbol):
    """A user's findOneAndUpdate (mongosh) or find_one_and_* (pymongo) is a tick or a delete like the plain write."""
    transactions.insert_one({"symbol": fresh_symbol, "price": 50, "quantity": 2, "trade_time": T0})
    wait_for_trades(market_job, fresh_symbol, 1)
    transactions.find_one_and_update({"symbol": fresh_symbol},
                                     {"$set": {"price": 55, "trade_time": T0 + timedelta(seconds=5)}})
    assert wait_for_trades(market_job, fresh_symbol, 2).nav == Decimal("55")
    transactions.find_one_and_replace({"symbol": fresh_symbol}, {"symbol": fresh_symbol, "price": 45, "quantity": 1,
                                                                 "trade_time": T0 + timedelta(seconds=10)})
    agg = wait_for_trades(market_job, fresh_symbol, 3)
    assert (agg.nav, agg.low, agg.high) == (Decimal("45"), Decimal("45"), Decimal("55"))
    transactions.find_one_and_update({"symbol": fresh_symbol, "upserted": True},
                                     {"$set": {"price": 60, "quantity": 1, "trade_time": T0 + timedelta(seconds=15)}},
                                     upsert=True)
    assert wait_for_trades(market_job, fresh_symbol, 4).nav == Decimal("60")
    deletes_before = market_job.state.snapshot().deletes
    transactions.find_one_and_delete({"symbol": fresh_symbol, "upserted": True})
    wait_until(lambda: market_job.state.snapshot().deletes > deletes_before, timeout=60, what="delete counted")
    assert market_job.state.snapshot().stocks[fresh_symbol].trades == 4


def test_bad_documents_are_counted_and_the_stream_goes_on(market_job, transactions, fresh_symbol):
    before = dict(market_job.state.snapshot().rejected_by_reason)
    transactions.insert_many([
        {"symbol": fresh_symbol, "price": -1, "quantity": 1, "trade_time": T0},
        {"symbol": "NOT-LISTED", "price": 10, "quantity": 1, "trade_time": T0},
        {"symbol": fresh_symbol, "price": 20, "quantity": 1, "trade_time": T0},
    ])
    agg = wait_for_trades(market_job, fresh_symbol, 1)
    after = market_job.state.snapshot().rejected_by_reason
    assert agg.trades == 1 and agg.nav == Decimal("20")
    assert after.get("invalid_price", 0) - before.get("invalid_price", 0) == 1
    assert after.get("unknown_symbol", 0) - before.get("unknown_symbol", 0) == 1


def test_original_design_documents_are_accepted(market_job, transactions, fresh_symbol):
    transactions.insert_one({"stock": fresh_symbol, "price": "250.5", "type": "buy"})
    agg = wait_for_trades(market_job, fresh_symbol, 1)
    assert agg.nav == Decimal("250.5") and agg.volume == 1


def test_change_events_are_on_the_kafka_topic(stack, transactions, fresh_symbol):
    inserted = transactions.insert_one({"symbol": fresh_symbol, "price": 12.5, "quantity": 3, "trade_time": T0}).inserted_id
    consumer = KafkaConsumer(stack.trades_topic, bootstrap_servers=stack.effective_kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=1000, enable_auto_commit=False)
    found = []

    def seen() -> bool:
        for message in consumer:
            try:
                event = json.loads(message.value)
            except (TypeError, ValueError):
                continue  # the topic is shared: other tests put junk and tombstones on it on purpose
            document = event.get("fullDocument") if isinstance(event, dict) else None
            if isinstance(document, dict) and document.get("symbol") == fresh_symbol:
                found.append((message.key, event))
        return bool(found)

    try:
        wait_until(seen, timeout=60, what=f"a change event of {fresh_symbol} on {stack.trades_topic}")
    finally:
        consumer.close()
    key, event = found[0]
    assert key == fresh_symbol.encode()  # keyed by symbol: one symbol's events stay in order
    assert event["operationType"] == "insert"
    assert event["_id"]["_data"]  # the event's own id
    assert "$timestamp" in event["clusterTime"]  # and its cluster time
    assert event["fullDocument"]["_id"] == {"$oid": str(inserted)}
    assert event["fullDocument"]["price"] == 12.5


def test_aggregates_are_persisted_in_mongodb(market_job, stack, mongo_client, transactions, fresh_symbol):
    transactions.insert_one({"symbol": fresh_symbol, "price": 77, "quantity": 7, "trade_time": T0})
    wait_for_trades(market_job, fresh_symbol, 1)
    stored = wait_until(lambda: mongo_client[stack.database]["stock_aggregates"].find_one({"_id": fresh_symbol}),
                        timeout=30, what="stored aggregate")
    assert stored["trades"] == 1 and stored["nav"].to_decimal() == Decimal("77")


def test_a_replayed_change_event_is_counted_once(market_job, stack, fresh_symbol):
    """CDC is at-least-once: the same event published twice (a relay restart) must count once."""
    from bson import json_util
    from bson.json_util import RELAXED_JSON_OPTIONS
    from bson.timestamp import Timestamp
    from kafka import KafkaProducer

    now = datetime.now(timezone.utc)
    event = {
        "_id": {"_data": f"replay-{fresh_symbol}"},
        "operationType": "insert",
        "clusterTime": Timestamp(int(now.timestamp()), 1),
        "fullDocument": {"symbol": fresh_symbol, "price": 42.0, "quantity": 2, "trade_time": now},
    }
    value = json_util.dumps(event, json_options=RELAXED_JSON_OPTIONS).encode()
    producer = KafkaProducer(bootstrap_servers=stack.effective_kafka_bootstrap)
    try:
        producer.send(stack.trades_topic, key=fresh_symbol.encode(), value=value)
        producer.flush()
        wait_for_trades(market_job, fresh_symbol, 1)
        producer.send(stack.trades_topic, key=fresh_symbol.encode(), value=value)  # the replay
        producer.send(stack.trades_topic, key=fresh_symbol.encode(), value=value.replace(b"42.0", b"43.0").replace(
            f"replay-{fresh_symbol}".encode(), f"other-{fresh_symbol}".encode()))  # a new event after it
        producer.flush()
    finally:
        producer.close()
    agg = wait_until(lambda: (a := market_job.state.snapshot().stocks[fresh_symbol]).high == Decimal("43") and a,
                     timeout=60, what="the event after the replay")
    assert agg.trades == 2 and agg.volume == 4


def test_rejected_messages_land_in_the_dead_letter_places_with_their_reason(market_job, stack, mongo_client,
                                                                            transactions, fresh_symbol):
    bad = transactions.insert_one({"symbol": fresh_symbol, "price": "free", "quantity": 1}).inserted_id
    transactions.insert_one({"symbol": fresh_symbol, "price": 10, "quantity": 1})
    wait_for_trades(market_job, fresh_symbol, 1)
    rejected = mongo_client[stack.database]["rejected"]
    stored = wait_until(lambda: rejected.find_one({"symbol": fresh_symbol}), timeout=30, what="rejected document")
    assert stored["reason"] == "invalid_price"
    assert stored["description"] == REJECT_REASONS["invalid_price"]  # the registry's words, stored with the record
    assert str(bad) in stored["raw"]
    consumer = KafkaConsumer(stack.dead_letter_topic, bootstrap_servers=stack.effective_kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=1000)
    letters = []
    try:
        wait_until(lambda: letters.extend(json.loads(m.value) for m in consumer) or any(
            letter["symbol"] == fresh_symbol for letter in letters), timeout=30, what="dead letter on Kafka")
    finally:
        consumer.close()
    [letter] = [letter for letter in letters if letter["symbol"] == fresh_symbol]
    assert letter["reason"] == "invalid_price" and letter["event_id"] == stored["_id"]
    assert market_job.state.snapshot().rejected_by_reason["invalid_price"] == rejected.count_documents(
        {"reason": "invalid_price"})


def test_a_set_aside_record_written_again_is_not_counted_again(stack, mongo_client):
    """A batch Spark re-runs after a crash writes the same records: the ledger says none of them are new."""
    ledger = dead_letters(stack, mongo_client[stack.database])
    record = {"_id": f"rerun-{uuid.uuid4().hex}", "reason": "invalid_price", "symbol": "X", "raw": "{}"}
    other = {**record, "_id": f"rerun-{uuid.uuid4().hex}"}
    try:
        assert ledger.write([record]) == [record]
        assert ledger.write([record, other]) == [other]
    finally:
        ledger.close()


def test_a_tick_beyond_the_watermark_lands_in_the_late_ledger(market_job, stack, mongo_client, transactions, fresh_symbol):
    clear_of_midnight_ist(lookback=timedelta(seconds=stack.candle_lateness_s + 600))  # the late tick: today's too
    now = datetime.now(timezone.utc).replace(microsecond=0)
    transactions.insert_one({"symbol": fresh_symbol, "price": 100, "quantity": 1, "trade_time": now})
    wait_for_trades(market_job, fresh_symbol, 1)
    wait_for_the_record(market_job)  # lateness is judged against what the record held before the late tick's batch
    late_time = now - timedelta(seconds=stack.candle_lateness_s + 600)
    transactions.insert_one({"symbol": fresh_symbol, "price": 90, "quantity": 5, "trade_time": late_time})
    agg = wait_for_trades(market_job, fresh_symbol, 2)
    assert agg.nav == Decimal("100") and agg.low == Decimal("90")  # still a trade since the start
    ledger = mongo_client[stack.database]["late_ticks"]
    entry = wait_until(lambda: ledger.find_one({"symbol": fresh_symbol}), timeout=30, what="late ledger entry")
    assert entry["trade_time"].replace(tzinfo=timezone.utc) == late_time
    assert entry["behind_latest_s"] == pytest.approx(stack.candle_lateness_s + 600)
    assert entry["late_by_s"] == pytest.approx(600)
    # The live ticks show the trade at once; the late count comes with the record's batch.
    wait_until(lambda: market_job.state.snapshot().late_by_symbol.get(fresh_symbol) == 1, timeout=30, what="late count")
    minute = int(now.timestamp()) // 60 * 60
    candles = market_job.state.snapshot().candles[(fresh_symbol, 60)]
    assert [(c.start_s, c.metrics.trades) for c in candles] == [(minute, 1)]  # the late tick is in no candle
    stored = mongo_client[stack.database]["candles"].find_one({"_id": f"{fresh_symbol}|60|{minute}"})
    assert stored["trades"] == 1 and stored["nav"].to_decimal() == Decimal("100")


def test_a_late_but_accepted_tick_revises_its_candle(market_job, transactions, fresh_symbol):
    clear_of_midnight_ist()
    now = datetime.now(timezone.utc).replace(second=30, microsecond=0)
    earlier = now - timedelta(minutes=1)
    transactions.insert_one({"symbol": fresh_symbol, "price": 10, "quantity": 1, "trade_time": earlier})
    transactions.insert_one({"symbol": fresh_symbol, "price": 11, "quantity": 1, "trade_time": now})
    wait_for_trades(market_job, fresh_symbol, 2)
    # "Revised" is the record's rule: the window had ended, in the symbol's event time, before the batch that
    # brings the tick. So the record must hold the later trade first (the live ticks can show it sooner).
    wait_for_the_record(market_job)
    transactions.insert_one({"symbol": fresh_symbol, "price": 12, "quantity": 1, "trade_time": earlier + timedelta(seconds=1)})
    wait_for_trades(market_job, fresh_symbol, 3)
    candles = {c.start_s: c for c in market_job.state.snapshot().candles[(fresh_symbol, 60)]}
    revised = candles[int(earlier.timestamp()) // 60 * 60]
    assert revised.revised and revised.metrics.trades == 2 and revised.metrics.nav == Decimal("12")
    assert not candles[int(now.timestamp()) // 60 * 60].revised


def test_aggregates_are_published_on_a_compacted_topic(market_job, stack, transactions, fresh_symbol):
    transactions.insert_one({"symbol": fresh_symbol, "price": 31.5, "quantity": 2})
    wait_for_trades(market_job, fresh_symbol, 1)
    consumer = KafkaConsumer(stack.aggregates_topic, bootstrap_servers=stack.effective_kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=1000)
    seen = []
    try:
        wait_until(lambda: seen.extend(m for m in consumer if m.key == fresh_symbol.encode()) or seen, timeout=30,
                   what="aggregate on the compacted topic")
    finally:
        consumer.close()
    latest = json.loads(seen[-1].value)
    assert (latest["trades"], latest["nav"], latest["vwap"]) == (1, "31.5000", "31.5000")
    consumer = KafkaConsumer(stack.candles_topic, bootstrap_servers=stack.effective_kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=1000)
    candles = []
    try:
        wait_until(lambda: candles.extend(m for m in consumer if m.key.startswith(f"{fresh_symbol}|".encode())) or
                   len(candles) >= 2, timeout=30, what="1m and 5m candles on the compacted topic")
    finally:
        consumer.close()
    assert sorted(json.loads(m.value)["interval_s"] for m in candles) == [60, 300]
    assert all(json.loads(m.value)["close"] == "31.5000" for m in candles)


def test_every_kind_of_bad_input_is_set_aside_with_its_reason(market_job, stack, mongo_client, transactions,
                                                               fresh_symbol):
    from kafka import KafkaProducer

    marker = f"bad-{fresh_symbol}"
    documents = {
        "missing_symbol": {"price": 1, "quantity": 1},
        "unknown_symbol": {"symbol": "NOSUCH", "price": 1, "quantity": 1},
        "missing_price": {"symbol": fresh_symbol, "quantity": 1},
        "invalid_price": {"symbol": fresh_symbol, "price": "NaN", "quantity": 1},
        "invalid_quantity": {"symbol": fresh_symbol, "price": 1, "quantity": 2.5},
        "invalid_side": {"symbol": fresh_symbol, "price": 1, "quantity": 1, "side": "short"},
        "invalid_trade_time": {"symbol": fresh_symbol, "price": 1, "quantity": 1, "trade_time": "tomorrow-ish"},
        "absurd_trade_time": {"symbol": fresh_symbol, "price": 1, "quantity": 1, "trade_time": datetime(1999, 1, 1)},
    }
    transactions.insert_one({"symbol": fresh_symbol, "price": 5, "quantity": 1})
    transactions.insert_many([{**doc, "marker": marker, "expect": reason} for reason, doc in documents.items()])
    transactions.insert_one({"symbol": fresh_symbol, "price": 6, "quantity": 1})
    producer = KafkaProducer(bootstrap_servers=stack.effective_kafka_bootstrap)
    try:  # what only a broken producer would publish: not JSON, and an event we do not handle
        producer.send(stack.trades_topic, value=f"{marker} not json".encode())
        producer.send(stack.trades_topic, value=json.dumps({"_id": {"_data": marker}, "operationType": "drop"}).encode())
        producer.flush()
    finally:
        producer.close()
    agg = wait_for_trades(market_job, fresh_symbol, 2)
    assert (agg.trades, agg.low, agg.high) == (2, Decimal("5"), Decimal("6"))  # the stream went on, nothing else counted
    rejected = mongo_client[stack.database]["rejected"]
    expected = {reason: reason for reason in [*documents, "not_json", "unsupported_operation"]}

    def landed() -> dict:
        found = {}
        for doc in rejected.find({"raw": {"$regex": marker}}):
            raw = doc["raw"]
            key = "not_json" if raw.startswith(marker) else "unsupported_operation" if '"drop"' in raw else \
                json.loads(raw)["fullDocument"]["expect"]
            found[key] = doc["reason"]
        return found

    wait_until(lambda: landed() == expected, timeout=60, what="every bad input in `rejected`", describe=lambda: repr(landed()))


@DEFAULT_MODE_ONLY  # micro-batch mode has no live ticks
def test_live_ticks_put_trades_on_screen_ahead_of_the_record_and_then_hand_over(market_job, transactions, fresh_symbol):
    """Default mode: a trade shows through the live-ticks query before the micro-batch record applies it; once
    the record has it, the figures are the record's and nothing is counted twice."""
    assert market_job.live is not None
    inserted: list[Decimal] = []
    ahead: list[int] = []

    def insert_and_look() -> bool:
        price = Decimal(100 + len(inserted))
        transactions.insert_one({"symbol": fresh_symbol, "price": int(price), "quantity": 1,
                                 "trade_time": datetime.now(timezone.utc)})
        inserted.append(price)
        ahead.append(market_job.state.snapshot().live_ticks)
        return max(ahead) > 0

    wait_until(insert_and_look, timeout=60, interval=0.02, what="a trade on screen ahead of the record")
    wait_until(lambda: market_job.state.snapshot().live_ticks == 0 and wait_for_trades(
        market_job, fresh_symbol, len(inserted)).trades == len(inserted), timeout=60, what="the record caught up")
    agg = market_job.state.snapshot().stocks[fresh_symbol]
    assert (agg.trades, agg.low, agg.high, agg.nav) == (len(inserted), min(inserted), max(inserted), inserted[-1])
    assert market_job.feed.received > 0  # (trades inserted before the live query had started are only in the record)


def test_a_trade_of_an_earlier_session_is_late_with_its_own_reason(market_job, stack, mongo_client, transactions,
                                                                   fresh_symbol):
    """The trading day is the newest IST date seen: a trade dated before it counts since the start and is
    set aside as late (``earlier_session``), never in the day's figures or candles."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    transactions.insert_one({"symbol": fresh_symbol, "price": 100, "quantity": 1, "trade_time": now})
    wait_for_trades(market_job, fresh_symbol, 1)
    day = market_job.state.snapshot().trading_day
    earlier = datetime.fromtimestamp(session_start_s(day), timezone.utc) - timedelta(hours=1)
    transactions.insert_one({"symbol": fresh_symbol, "price": 1, "quantity": 5, "trade_time": earlier})
    entry = wait_until(lambda: mongo_client[stack.database]["late_ticks"].find_one({"symbol": fresh_symbol}),
                       timeout=30, what="late ledger entry")
    assert entry["reason"] == "earlier_session"
    wait_until(lambda: market_job.state.snapshot().late_by_symbol.get(fresh_symbol) == 1, timeout=30, what="late count")
    snapshot = market_job.state.snapshot()
    assert snapshot.stocks[fresh_symbol].trades == 2 and snapshot.stocks[fresh_symbol].low == Decimal(1)
    today = snapshot.day_figures[fresh_symbol].metrics
    assert (today.trades, today.low, today.volume) == (1, Decimal(100), 1)


def test_old_set_aside_records_lose_their_message_start_but_stay_counted(stack, mongo_client):
    """A record keeps the start of its message as long as the archive keeps the whole message; then only the
    start goes: the record, its reason and where the message was stay, and so do the counts."""
    ledger = dead_letters(stack, mongo_client[stack.database])
    now = datetime.now(timezone.utc)
    old = {"_id": f"old-{uuid.uuid4().hex}", "reason": "invalid_price", "symbol": "X", "raw": "{\"price\": -1}",
           "source": {"topic": "t", "partition": 0, "offset": 7},
           "ingest_time": now - timedelta(days=stack.archive_retention_days + 1)}
    new = {**old, "_id": f"new-{uuid.uuid4().hex}", "ingest_time": now}
    try:
        size = ledger.size()
        ledger.write([old, new])
        counts = ledger.counts()
        assert ledger.trim_raw() >= 1
        stored = {doc["_id"]: doc for doc in ledger.collection.find({"_id": {"$in": [old["_id"], new["_id"]]}})}
        assert stored[old["_id"]]["raw"] is None and stored[old["_id"]]["raw_trimmed"] is True
        assert stored[old["_id"]]["source"]["offset"] == 7 and stored[old["_id"]]["reason"] == "invalid_price"
        assert stored[new["_id"]]["raw"] == new["raw"]
        assert ledger.counts() == counts
        assert ledger.size() >= size + 2  # what the reader checks before it counts again
    finally:
        ledger.collection.delete_many({"_id": {"$in": [old["_id"], new["_id"]]}})
        ledger.close()


def test_a_micro_batch_compiles_none_of_the_query_s_stages_again(market_job, spark, transactions, fresh_symbol):
    """Spark keeps a stage's compiled class by its generated code. A value new in every batch written into that
    code (the batch's time, as it was) made each batch compile the ~1,900-line parse stage again, twice (janino
    50-240 ms each, then the JIT on the new class). Only the dedupe's small watermark predicate is new per batch."""
    compilations = spark._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()
    query = market_job.market.query

    def next_batch(after: int) -> int:
        transactions.insert_one({"symbol": fresh_symbol, "side": "buy", "price": 100.0, "quantity": 1,
                                 "trade_time": datetime.now(timezone.utc)})
        return wait_until(lambda: (progress := query.lastProgress) is not None and progress["batchId"] > after
                          and progress["batchId"], timeout=60, interval=0.1, what=f"a micro-batch after {after}")

    batch = next_batch(next_batch(-1))  # warm: the code of every stage compiled once
    before, first = compilations.getCount(), batch
    for _ in range(3):
        batch = next_batch(batch)
    assert compilations.getCount() - before <= batch - first
