"""Drills of the CDC relay on a stack of its own: Kafka down for longer than the producer's delivery
timeout, and a change event over the broker's size limit. In both, every change event reaches the
trades topic (once or more: at-least-once), the relay says what happened, and it never stops. And the
app's live feed on the same stack: it says Kafka is gone while it is, and stops saying so once it is back."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic

from pipeline.domain.state import MarketState
from pipeline.services.paths import relay_paths
from pipeline.services.relay import ResumeTokenStore
from pipeline.settings import Settings
from pipeline.sinks import mongo
from pipeline.sinks.live_feed import LiveFeed
from pipeline.sinks.mongo import seed_stocks
from pipeline.sinks.topics import TRADES_MAX_MESSAGE_BYTES
from pipeline.waits import wait_until
from stack.local import LocalStack
from stack.process import free_port, free_port_pair
from tests.children import RunningRelay, isolated, relay_started

pytestmark = [pytest.mark.integration, pytest.mark.drill]
DELIVERY_TIMEOUT_S = 5.0


@pytest.fixture(scope="module")
def relay_stack(base_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    data_dir = tmp_path_factory.mktemp("relay-drills")
    local = LocalStack(base_settings.with_changes(data_dir=data_dir, local_mongo_port=free_port(),
                                                  local_kafka_port=free_port_pair(), trades_topic="relaydrills.transaction"))
    local.start()
    yield local
    local.stop()


def own_pipeline(local: LocalStack, data_dir: Path, topic_configs: dict[str, str] | None = None) -> Settings:
    """A database (seeded) and a trades topic of this drill's own, the topic made as given."""
    name = f"relaydrill{uuid.uuid4().hex[:6]}"
    settings = local.ready_settings.with_changes(database=name, trades_topic=f"{name}.transaction", data_dir=data_dir)
    client = mongo.client(settings)
    seed_stocks(client[name])
    client.close()
    admin = KafkaAdminClient(bootstrap_servers=settings.effective_kafka_bootstrap)
    admin.create_topics([NewTopic(settings.trades_topic, 1, 1, topic_configs=topic_configs or {})])
    admin.close()
    return settings


def events_on_topic(settings: Settings) -> list[dict]:
    consumer = KafkaConsumer(settings.trades_topic, bootstrap_servers=settings.effective_kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=2000, max_partition_fetch_bytes=64 * 2**20)
    try:
        return [json.loads(message.value) for message in consumer]
    finally:
        consumer.close()


def trade(number: int, **extra: object) -> dict:
    return {"symbol": "INFY", "price": 100 + number % 10, "quantity": 1, "side": "buy",
            "trade_time": datetime.now(timezone.utc), "n": number, **extra}


def wait_for_distinct(settings: Settings, count: int, timeout: float = 120) -> list[dict]:
    """Wait until the topic holds ``count`` distinct change events (by event id); returns them all."""
    def distinct() -> int:
        return len({event["_id"]["_data"] for event in events_on_topic(settings)})
    wait_until(lambda: distinct() >= count, timeout=timeout, what=f"{count} distinct change events on the topic",
               describe=lambda: f"{distinct()} distinct", interval=1.0)
    return events_on_topic(settings)


def test_kafka_down_past_the_delivery_timeout_loses_nothing(relay_stack: LocalStack, tmp_path: Path):
    settings = own_pipeline(relay_stack, tmp_path)
    transactions = mongo.client(settings)[settings.database]["transaction"]
    with RunningRelay(settings, DELIVERY_TIMEOUT_S) as relay:
        relay_started(settings)
        transactions.insert_many([trade(n) for n in range(50)])
        wait_for_distinct(settings, 50)
        relay_stack.services["kafka"].stop()
        transactions.insert_many([trade(n) for n in range(50, 150)])
        wait_until(lambda: relay.status.values["state"] == "retrying", timeout=DELIVERY_TIMEOUT_S + 60,
                   what="the relay saying Kafka did not acknowledge", describe=lambda: repr(relay.status.values))
        assert "acknowledge" in relay.status.values["last_error"] or "Timeout" in relay.status.values["last_error"]
        relay_stack.services["kafka"].start()
        transactions.insert_many([trade(n) for n in range(150, 200)])
        events = wait_for_distinct(settings, 200, timeout=180)
    numbers = {event["fullDocument"]["n"] for event in events}
    assert numbers == set(range(200)), "every change event made while Kafka was down reached the topic"


def test_an_event_over_the_brokers_limit_is_set_aside_and_the_stream_goes_on(relay_stack: LocalStack, tmp_path: Path):
    # A topic made elsewhere, with the broker's default limit (1 MiB): the relay learns it from the refusal.
    settings = own_pipeline(relay_stack, tmp_path, {"max.message.bytes": str(1024 * 1024)})
    transactions = mongo.client(settings)[settings.database]["transaction"]
    drill = RunningRelay(settings, DELIVERY_TIMEOUT_S)
    # As if the topic's limit could not be read (no right to describe it): the relay learns it from the refusal.
    drill.relay.limit = TRADES_MAX_MESSAGE_BYTES
    with drill as relay:
        relay_started(settings)
        transactions.insert_many([trade(n) for n in range(20)])
        transactions.insert_one(trade(20, blob="x" * 3_000_000))
        transactions.insert_many([trade(n) for n in range(21, 40)])
        events = wait_for_distinct(settings, 40)
        assert relay.status.values["set_aside"] == 1 and relay.status.values["state"] == "running"
        assert relay.limit is not None and relay.limit < 3_100_000  # learned: below the refused message
    stubs = [event for event in events if "stockdashOversize" in event]
    assert len(stubs) == 1 and "fullDocument" not in stubs[0] and stubs[0]["documentKey"]["_id"]
    assert {event["fullDocument"]["n"] for event in events if "fullDocument" in event} == set(range(40)) - {20}


def test_the_resume_token_is_stored_only_for_what_kafka_acknowledged(stack: Settings, tmp_path: Path):
    """With Kafka unreachable nothing is acknowledged, so no token is stored; a relay started afterwards
    resumes from before those events and publishes every one of them."""
    settings = isolated(stack, tmp_path, "token")
    token_path, _ = relay_paths(settings)
    transactions = mongo.client(settings)[settings.database]["transaction"]
    unreachable = settings.with_changes(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    with RunningRelay(unreachable, DELIVERY_TIMEOUT_S) as relay:
        relay_started(unreachable)
        transactions.insert_many([trade(n) for n in range(10)])
        wait_until(lambda: relay.status.values["state"] == "retrying", timeout=DELIVERY_TIMEOUT_S + 60,
                   what="the relay failing to deliver", describe=lambda: repr(relay.status.values))
        token, start_at = ResumeTokenStore(token_path).load()
        assert token is None, "a token was stored for events Kafka never acknowledged"
        assert start_at is not None, "the first start position is kept, so a later start begins before those events"
    with RunningRelay(settings, DELIVERY_TIMEOUT_S) as relay:
        events = wait_for_distinct(settings, 10)
        wait_until(lambda: ResumeTokenStore(token_path).load()[0] is not None, timeout=30,
                   what="the token stored once Kafka acknowledged")
    assert {event["fullDocument"]["n"] for event in events} == set(range(10))


def test_the_live_feed_says_kafka_is_gone_and_when_it_is_back(relay_stack: LocalStack, tmp_path: Path):
    settings = own_pipeline(relay_stack, tmp_path)
    feed = LiveFeed(settings, MarketState()).start_in_background()
    try:
        wait_until(lambda: feed.read_at is not None, timeout=60, what="the feed reading the live topic")
        assert feed.error is None
        relay_stack.services["kafka"].stop()
        wait_until(lambda: feed.error is not None, timeout=60, what="the feed saying Kafka is gone")
        assert "Kafka is unavailable" in feed.error
        relay_stack.services["kafka"].start()
        wait_until(lambda: feed.error is None, timeout=120, what="the feed saying nothing once Kafka is back",
                   describe=lambda: repr(feed.error))
    finally:
        feed.stop()
