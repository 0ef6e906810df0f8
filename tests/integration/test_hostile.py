"""Hostile input between valid trades, on the real stack (MongoDB stand-in, CDC relay, Kafka, Spark).

For every kind in ``hostile_inputs``: the query never stops, every valid trade is counted exactly once
(the figures equal the oracle's), each bad input is set aside with its reason (or refused by MongoDB
with a clear error), and the Pipeline page shows the reasons. A 100,000-message junk flood leaves the
memory of the query's processes bounded.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import psutil
import pytest
from bson.errors import InvalidDocument
from kafka import KafkaProducer
from pymongo.errors import PyMongoError
from streamlit.testing.v1 import AppTest

from pipeline.domain.status import QueryState
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.waits import wait_until
from tests.integration.hostile_inputs import COUNTED, REFUSED, Hostile, documents, raw_messages, tombstone
from tests.modes import DEFAULT_MODE_ONLY
from tests.oracle import OracleTick, expected_metrics
from ui import runtime as ui_runtime

# In the default mode only: the suite stores hundreds of MB of hostile documents, and the record it checks is
# the same query in both modes (the live path's part is covered by test_realtime and the live-ticks tests).
pytestmark = [pytest.mark.integration, pytest.mark.spark, DEFAULT_MODE_ONLY]
FLOOD = 100_000


@pytest.fixture
def producer(stack: Settings) -> Iterator[KafkaProducer]:
    producer = KafkaProducer(bootstrap_servers=stack.effective_kafka_bootstrap, max_request_size=4 * 1024 * 1024,
                             acks="all", linger_ms=5)
    yield producer
    producer.close(timeout=10)


def clock() -> Iterator[datetime]:
    """Trade times 10 ms apart from a little before now: distinct (no ties) and never late."""
    start = datetime.now(timezone.utc) - timedelta(seconds=5)
    return (start + timedelta(milliseconds=10 * i) for i in itertools.count())


def send(hostile: Hostile, transactions, producer: KafkaProducer, topic: str) -> str | None:
    """Deliver one hostile input; returns MongoDB's refusal, if it refused."""
    if hostile.document is None:
        producer.send(topic, key=hostile.key, value=hostile.raw).get(timeout=30)
        return None
    try:
        transactions.insert_one(hostile.document)
    except (PyMongoError, InvalidDocument) as exc:  # DocumentTooLarge: the client refuses it for the server
        return f"{type(exc).__name__}: {exc}"
    return None


def test_hostile_input_never_stops_empties_or_fools_the_market(stack, market_job, transactions, producer, fresh_symbol,
                                                               mongo_client):
    times = clock()
    cases = documents(fresh_symbol, lambda: next(times)) + raw_messages(fresh_symbol, lambda: next(times),
                                                                       uuid.uuid4().hex[:8]) + [tombstone()]
    assert len({case.kind for case in cases}) >= 40
    before = Counter(market_job.state.snapshot().rejected_by_reason)
    ledger_before = Counter({d["_id"]: d["count"] for d in mongo_client[stack.database]["rejected"].aggregate(
        [{"$group": {"_id": "$reason", "count": {"$sum": 1}}}])})
    valid: list[OracleTick] = []
    refusals: dict[str, str] = {}
    for number, case in enumerate(cases):
        when = next(times)
        price = Decimal(100 + number % 7) + Decimal(number) / 100
        transactions.insert_one({"symbol": fresh_symbol, "price": str(price), "quantity": 2, "side": "sell", "trade_time": when})
        valid.append(OracleTick(f"valid{number}", fresh_symbol, price, 2, when, "sell"))
        if (refusal := send(case, transactions, producer, stack.trades_topic)) is not None:
            refusals[case.kind] = refusal
    producer.flush()

    counted_hostile = [case for case in cases if case.expect == COUNTED]
    expected_trades = len(valid) + len(counted_hostile)
    expected_rejects = Counter(case.expect for case in cases if case.expect not in (COUNTED, REFUSED, "replay"))
    wait_until(lambda: (a := market_job.state.snapshot().stocks.get(fresh_symbol)) is not None
               and a.trades >= expected_trades, timeout=240, what=f"{expected_trades} trades of {fresh_symbol}",
               describe=lambda: f"{market_job.state.snapshot().stocks.get(fresh_symbol)!r}; "
                                f"rejects {rejects_since(market_job, before)}; refused {refusals}")
    wait_until(lambda: rejects_since(market_job, before) == expected_rejects, timeout=120, what="every reject counted",
               describe=lambda: f"got {rejects_since(market_job, before)}, expected {expected_rejects}")

    assert market_job.status().state is QueryState.RUNNING and market_job.restarts == 0
    assert {kind for kind, _ in refusals.items()} == {case.kind for case in cases if case.expect == REFUSED}
    assert all(len(message) > 10 for message in refusals.values())  # MongoDB said why
    aggregate = market_job.state.snapshot().stocks[fresh_symbol]
    assert aggregate.trades == expected_trades  # valid trades once each; the replayed id once
    valid_only = expected_metrics(valid)[fresh_symbol]
    hostile_prices = [case.price for case in counted_hostile]
    assert aggregate.low == min(valid_only["low"], *hostile_prices)
    assert aggregate.high == max(valid_only["high"], *hostile_prices)
    assert aggregate.volume == valid_only["volume"] + sum(case.quantity for case in counted_hostile)
    assert aggregate.buy_volume == valid_only["buy_volume"] + sum(
        case.quantity for case in counted_hostile if isinstance(case.document, dict) and case.document.get("side") == "buy")

    def filed() -> Counter:
        return Counter({d["_id"]: d["count"] for d in mongo_client[stack.database]["rejected"].aggregate(
            [{"$group": {"_id": "$reason", "count": {"$sum": 1}}}])}) - ledger_before

    # In the default mode the live path counts a reject at once and the record files it a batch later: the
    # ledger collection gets each once, and the counts on screen stay exact when the record takes over.
    wait_until(lambda: filed() == expected_rejects, timeout=120, what="every reject filed in the ledger",
               describe=lambda: f"filed {filed()}, expected {expected_rejects}")
    assert rejects_since(market_job, before) == expected_rejects
    with pipeline_page(stack, market_job, mongo_client) as at:
        shown = set(at.dataframe[0].value["Reason"])
        assert set(expected_rejects) <= shown, set(expected_rejects) - shown
    print_table(cases, refusals)


def rejects_since(job, before: Counter) -> Counter:
    return Counter(job.state.snapshot().rejected_by_reason) - before


@contextmanager
def pipeline_page(stack, market_job, mongo_client) -> Iterator[AppTest]:
    """The app's Pipeline page (AppTest) on the session's job."""
    runtime = ui_runtime.AppRuntime(stack, market_job.state, market_job, mongo_client)
    ui_runtime.install(runtime)
    try:
        at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60).run()
        at.switch_page("pages/pipeline.py").run()
        assert not at.exception, at.exception
        yield at
    finally:
        ui_runtime.install(None)
        runtime.health.stop()


def print_table(cases: list[Hostile], refusals: dict[str, str]) -> None:
    print(f"\n{'kind':<45} {'expected':<22} outcome")
    for case in cases:
        outcome = refusals.get(case.kind, "as expected")[:60]
        print(f"{case.kind:<45} {case.expect:<22} {outcome}")


def query_memory_mb() -> tuple[float, float]:
    """RSS (MiB) of this process (the Spark driver's Python side) and of its Spark JVM."""
    me = psutil.Process()
    return me.memory_info().rss / 2**20, sum(rss_of_spark(child) for child in me.children()) / 2**20


def rss_of_spark(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss if "org.apache.spark" in " ".join(process.cmdline()) else 0
    except psutil.Error:  # ended, or a zombie, while we looked
        return 0


def test_a_junk_flood_leaves_memory_bounded_and_loses_no_trade(stack, market_job, transactions, producer,
                                                                fresh_symbol):
    before = Counter(market_job.state.snapshot().rejected_by_reason)
    memory_before = query_memory_mb()
    junk = b"junk " + b"#" * 1000
    for chunk in range(10):
        transactions.insert_one({"symbol": fresh_symbol, "price": 50 + chunk, "quantity": 1,
                                 "trade_time": datetime.now(timezone.utc)})
        for _ in range(FLOOD // 10):
            producer.send(stack.trades_topic, value=junk)
    producer.flush()
    wait_until(lambda: rejects_since(market_job, before)["not_json"] >= FLOOD, timeout=600, what="the flood set aside",
               describe=lambda: f"{rejects_since(market_job, before)}")
    aggregate = wait_until(lambda: (a := market_job.state.snapshot().stocks.get(fresh_symbol)) and a.trades == 10 and a,
                           timeout=120, what="the ten trades between the junk")
    memory_after = query_memory_mb()
    print(f"\njunk flood of {FLOOD:,} messages: driver Python {memory_before[0]:,.0f} -> {memory_after[0]:,.0f} MiB, "
          f"Spark JVM {memory_before[1]:,.0f} -> {memory_after[1]:,.0f} MiB")
    assert rejects_since(market_job, before) == Counter(not_json=FLOOD)
    assert aggregate.high == Decimal(59) and market_job.status().state is QueryState.RUNNING
    # Bounded: the driver's Python side by the batch size (MAX_OFFSETS_PER_TRIGGER), the JVM by its heap
    # (spark.driver.memory = 1 GiB) plus its own overhead; what a JVM took for its heap it keeps.
    assert memory_after[0] - memory_before[0] < 512, "the driver's Python side grew with the flood"
    assert memory_after[1] < 1024 + 640, "the Spark JVM outgrew its heap"


def test_stock_documents_in_any_shape_list_their_symbol_and_odd_ones_are_skipped(stack, market_job, transactions,
                                                                                mongo_client):
    """A stock added as users add data (ObjectId ``_id``, the symbol in a field) is listed; one that names no
    usable symbol is skipped with a reason on the Pipeline page; no figure of any stock stops."""
    stock = mongo_client[stack.database]["stock"]
    newco, oldstyle = f"NEWCO{uuid.uuid4().hex[:4].upper()}", f"OLD{uuid.uuid4().hex[:4].upper()}"
    stock.insert_many([{"symbol": newco, "company": "New Co", "sector": 7, "reference_price": "n/a"},
                       {"stock": oldstyle.lower(), "company": "Original design's shape"},
                       {"company": "No symbol at all"}, {"_id": f"bad id {newco}", "symbol": "O'NEIL; DROP"}])
    wait_until(lambda: {newco, oldstyle} <= market_job.listed(), timeout=60, what="the new stocks listed")
    now = datetime.now(timezone.utc)
    transactions.insert_many([{"symbol": symbol, "price": 10 + i, "quantity": 1, "trade_time": now + timedelta(milliseconds=i)}
                              for i, symbol in enumerate([newco, oldstyle, newco])])
    wait_until(lambda: {newco, oldstyle} <= set(market_job.state.snapshot().stocks), timeout=120,
               what="trades of the new stocks counted")
    stocks = market_job.state.snapshot().stocks
    assert (stocks[newco].trades, stocks[oldstyle].trades) == (2, 1)
    assert market_job.status().state is QueryState.RUNNING
    skipped = dict(market_job.listed.listing.skipped)
    assert f"bad id {newco}" in skipped and any("no `symbol` field" in reason for reason in skipped.values())
    with pipeline_page(stack, market_job, mongo_client) as at:
        assert any("list no usable symbol" in warning.value for warning in at.warning)
        at.switch_page("pages/stock.py")
        at.query_params["symbol"] = newco
        at.run()
        assert not at.exception, at.exception
