"""CDC_MODE=debezium end to end, on a stack of its own: pymongo writes -> the stand-in's change stream ->
Debezium's MongoDB connector on the embedded Kafka Connect worker -> the trades topic -> the micro-batch query
-> MarketState, the figures the dashboard draws. The same semantics as the relay's path (test_pipeline.py):
inserts, updates and replaces are ticks, a delete changes nothing, bad documents are set aside with their
reason, and a connector that re-sends what it had already published (a restart before its offsets were
committed) counts nothing twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from kafka import KafkaConsumer
from pymongo import MongoClient
from pymongo.collection import Collection

from pipeline.domain.state import MarketState
from pipeline.settings import Settings
from pipeline.sinks import mongo
from pipeline.spark.microbatch import MarketJob
from pipeline.waits import wait_until
from stack import connect
from stack.local import LocalStack
from stack.process import free_port, free_port_pair
from ui.health import check_cdc

pytestmark = pytest.mark.integration
T0 = datetime(2026, 1, 5, 9, 15, tzinfo=timezone.utc)
SYMBOLS = tuple(f"DZ{index:02d}" for index in range(1, 21))  # listed on this module's stack only


@pytest.fixture(scope="module")
def debezium_stack(base_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    data_dir = tmp_path_factory.mktemp("debezium")
    requested = base_settings.with_changes(
        data_dir=data_dir, cdc_mode="debezium", local_mongo_port=free_port(),
        local_kafka_port=free_port_pair(), local_connect_port=free_port(), local_mongo_storage="memory",
        local_mongo_heap_mb=512, trades_topic="debezium.transaction")
    with LocalStack(requested) as ready:
        client = mongo.client(ready)
        client[ready.database]["stock"].insert_many(
            [{"_id": s, "symbol": s, "company": f"Test company {s}", "sector": "Test", "reference_price": 100.0}
             for s in SYMBOLS])
        client.close()
        yield ready


@pytest.fixture(scope="module")
def debezium_job(debezium_stack: Settings, spark) -> Iterator[MarketJob]:
    # Its own query name: the session's job may be running on the same SparkSession.
    job = MarketJob(debezium_stack, MarketState(), spark=spark, name="stockdash_market_debezium")
    job.start()
    yield job
    job.stop()


@pytest.fixture(scope="module")
def debezium_client(debezium_stack: Settings) -> Iterator[MongoClient]:
    client = mongo.client(debezium_stack)
    yield client
    client.close()


@pytest.fixture(scope="module")
def _symbols() -> Iterator[str]:
    return iter(SYMBOLS)


@pytest.fixture
def symbol(_symbols: Iterator[str]) -> str:
    """A listed symbol no other test of this module has traded."""
    return next(_symbols)


@pytest.fixture
def trades(debezium_stack: Settings, debezium_client: MongoClient) -> Collection:
    return debezium_client[debezium_stack.database]["transaction"]


def wait_for_trades(job: MarketJob, symbol: str, count: int, timeout: float = 90):
    return wait_until(
        lambda: (agg := job.state.snapshot().stocks.get(symbol)) is not None and agg.trades >= count and agg,
        timeout=timeout, what=f"{count} trades of {symbol} in MarketState", interval=0.2,
        describe=lambda: f"{job.state.snapshot().stocks.get(symbol)!r}; connector: "
                         f"{json.dumps(connect.connector_status(job.settings))[:1500]}",
    )


def envelopes_on_topic(settings: Settings, symbol: str) -> list[tuple[bytes | None, dict]]:
    """(key, value) of each Debezium envelope on the trades topic whose document has ``symbol``."""
    consumer = KafkaConsumer(settings.trades_topic, bootstrap_servers=settings.effective_kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=1000, enable_auto_commit=False)
    try:
        found = []
        for message in consumer:
            envelope = json.loads(message.value)
            if json.loads(envelope.get("after") or "{}").get("symbol") == symbol:
                found.append((message.key, envelope))
        return found
    finally:
        consumer.close()


def test_the_connector_publishes_its_envelope_on_our_trades_topic(debezium_stack, trades, symbol):
    inserted = trades.insert_one({"symbol": symbol, "price": 12.5, "quantity": 3, "trade_time": T0}).inserted_id
    [(key, envelope)] = wait_until(lambda: envelopes_on_topic(debezium_stack, symbol), timeout=90,
                                   what=f"a Debezium envelope of {symbol} on {debezium_stack.trades_topic}",
                                   describe=lambda: json.dumps(connect.connector_status(debezium_stack))[:1500])
    assert envelope["op"] == "c"
    assert envelope["source"]["db"] == debezium_stack.database and envelope["source"]["collection"] == "transaction"
    assert isinstance(envelope["source"]["ts_ms"], int) and isinstance(envelope["source"]["ord"], int)
    document = json.loads(envelope["after"])
    assert document["_id"] == {"$oid": str(inserted)} and document["price"] == 12.5
    assert document["trade_time"] == {"$date": int(T0.timestamp() * 1000)}
    # Keyed by the document: one document's changes stay in order on one partition.
    assert str(inserted) in json.loads(key)["id"]
    cdc = check_cdc(debezium_stack)  # what the Pipeline page shows
    assert cdc.ok is True and cdc.detail == "RUNNING / RUNNING" and "Debezium" in cdc.name


def test_inserted_trades_show_up_with_exact_numbers(debezium_job, trades, symbol):
    trades.insert_many([
        {"symbol": symbol, "side": "buy", "price": 101.5, "quantity": 10, "trade_time": T0 + timedelta(seconds=3)},
        {"symbol": symbol, "side": "sell", "price": 99.25, "quantity": 5, "trade_time": T0 + timedelta(seconds=1)},
        {"symbol": symbol, "side": "buy", "price": 100.0, "quantity": 1, "trade_time": T0 + timedelta(seconds=9)},
        {"symbol": symbol, "side": "buy", "price": 104.75, "quantity": 4, "trade_time": T0 + timedelta(seconds=2)},
    ])
    agg = wait_for_trades(debezium_job, symbol, 4)
    assert agg.trades == 4 and agg.volume == 20
    assert (agg.low, agg.high, agg.open, agg.nav) == (Decimal("99.25"), Decimal("104.75"), Decimal("99.25"),
                                                       Decimal("100.00"))
    assert agg.last_trade_time == T0 + timedelta(seconds=9)  # event time is the trade time
    assert agg.vwap == Decimal("101.5125")


def test_updates_and_replaces_are_ticks_and_deletes_change_nothing(debezium_job, trades, symbol):
    inserted = trades.insert_one({"symbol": symbol, "price": 50, "quantity": 2, "trade_time": T0}).inserted_id
    wait_for_trades(debezium_job, symbol, 1)
    deletes_before = debezium_job.state.snapshot().deletes
    trades.update_one({"_id": inserted}, {"$set": {"price": 55, "trade_time": T0 + timedelta(seconds=5)}})
    agg = wait_for_trades(debezium_job, symbol, 2)
    assert (agg.nav, agg.high, agg.low) == (Decimal("55"), Decimal("55"), Decimal("50"))
    trades.replace_one({"_id": inserted}, {"symbol": symbol, "price": 45, "quantity": 1,
                                           "trade_time": T0 + timedelta(seconds=7)})
    agg = wait_for_trades(debezium_job, symbol, 3)
    assert (agg.nav, agg.low, agg.volume) == (Decimal("45"), Decimal("45"), 5)
    trades.delete_one({"_id": inserted})
    wait_until(lambda: debezium_job.state.snapshot().deletes > deletes_before, timeout=90, what="delete counted")
    assert debezium_job.state.snapshot().stocks[symbol].trades == 3


def test_a_document_of_megabytes_is_carried_like_any_other(debezium_job, trades, symbol):
    # Over the producer's default request size (1 MiB): the connector's producer takes what the topic takes.
    trades.insert_one({"symbol": symbol, "price": 7, "quantity": 2, "trade_time": T0, "notes": "x" * 3_000_000})
    trades.insert_one({"symbol": symbol, "price": 8, "quantity": 1, "trade_time": T0 + timedelta(seconds=1)})
    agg = wait_for_trades(debezium_job, symbol, 2)
    assert (agg.trades, agg.volume, agg.low) == (2, 3, Decimal("7"))


def test_bad_documents_are_set_aside_with_their_reason_and_the_stream_goes_on(debezium_job, debezium_stack,
                                                                              debezium_client, trades, symbol):
    before = dict(debezium_job.state.snapshot().rejected_by_reason)
    trades.insert_many([
        {"symbol": symbol, "price": -1, "quantity": 1, "trade_time": T0, "marker": symbol},
        {"symbol": "NOT-LISTED", "price": 10, "quantity": 1, "trade_time": T0, "marker": symbol},
        {"symbol": symbol, "price": 1, "quantity": 1, "trade_time": datetime(1999, 1, 1), "marker": symbol},
        {"symbol": symbol, "price": 20, "quantity": 1, "trade_time": T0},
    ])
    agg = wait_for_trades(debezium_job, symbol, 1)
    assert agg.trades == 1 and agg.nav == Decimal("20")
    rejected = debezium_client[debezium_stack.database]["rejected"]
    wait_until(lambda: rejected.count_documents({"raw": {"$regex": f"marker.*{symbol}"}}) == 3, timeout=60,
               what="three set-aside records")
    after = debezium_job.state.snapshot().rejected_by_reason
    assert {reason: after.get(reason, 0) - before.get(reason, 0)
            for reason in ("invalid_price", "unknown_symbol", "absurd_trade_time")} == {
        "invalid_price": 1, "unknown_symbol": 1, "absurd_trade_time": 1}
    assert all(doc["_id"].startswith("debezium/") for doc in rejected.find({"raw": {"$regex": f"marker.*{symbol}"}}))


def test_a_connector_re_sending_after_a_restart_counts_nothing_twice(debezium_job, debezium_stack, trades, symbol):
    """The connector is stopped and put back to offsets committed before three trades, as if it had crashed
    after publishing them but before committing: it publishes them again, with the same event ids."""
    trades.insert_one({"symbol": symbol, "price": 10, "quantity": 1, "trade_time": T0})
    wait_for_trades(debezium_job, symbol, 1)
    before_trades = wait_until(lambda: connect.connector_offsets(debezium_stack), timeout=30,
                               what="the connector's committed offsets")
    trades.insert_many([{"symbol": symbol, "price": 11 + n, "quantity": 1, "trade_time": T0 + timedelta(seconds=n)}
                        for n in range(3)])
    wait_for_trades(debezium_job, symbol, 4)
    connect.rewind_connector(debezium_stack, before_trades)
    # The replayed envelopes are on the topic (each trade's insert twice) ...
    wait_until(lambda: len([e for _, e in envelopes_on_topic(debezium_stack, symbol) if e["op"] == "c"]) >= 7,
               timeout=90, what="the three inserts published again",
               describe=lambda: repr([(e["op"], e["source"]["ord"]) for _, e in envelopes_on_topic(debezium_stack, symbol)]))
    # ... and a trade made after the rewind shows the stream has read past them: counted once each.
    trades.insert_one({"symbol": symbol, "price": 99, "quantity": 1, "trade_time": T0 + timedelta(seconds=30)})
    agg = wait_for_trades(debezium_job, symbol, 5)
    assert agg.nav == Decimal("99")
    assert (agg.trades, agg.volume, agg.high) == (5, 5, Decimal("99"))
