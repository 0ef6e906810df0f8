"""The app's live feed (``pipeline.sinks.live_feed``) on a real broker: it reads the live-ticks topic from its end,
takes what the real-time query writes, and sets aside, counts and logs anything else without stopping."""

from __future__ import annotations

import json
import time
from itertools import count

import pytest
from kafka import KafkaProducer

from pipeline.domain.state import MarketState
from pipeline.settings import Settings
from pipeline.sinks.live_feed import LiveFeed
from pipeline.waits import wait_until
from tests.children import isolated

pytestmark = pytest.mark.integration
OFFSETS = count()


def live_tick(symbol: str) -> bytes:
    """A message as ``pipeline.spark.realtime`` writes one."""
    now_us = int(time.time() * 1_000_000)
    offset = next(OFFSETS)
    return json.dumps({"symbol": symbol, "trade_time_us": now_us, "event_id": f"feed-test-{offset}",
                       "trade_id": f"t{offset}", "price": "101.25", "quantity": 3, "side": "BUY",
                       "ingest_us": now_us, "partition": 0, "offset": offset}).encode()


def test_the_live_feed_reads_ticks_and_sets_aside_what_is_not_one(stack: Settings, tmp_path):
    settings = isolated(stack, tmp_path, "feed")
    producer = KafkaProducer(bootstrap_servers=settings.effective_kafka_bootstrap)

    def send(value: bytes | None, symbol: str = "INFY") -> bool:
        producer.send(settings.live_topic, key=symbol.encode(), value=value).get(timeout=10)
        return True

    feed = LiveFeed(settings, MarketState()).start_in_background()
    try:
        # It starts at the topic's end: ticks sent before it got there are not its to read.
        wait_until(lambda: send(live_tick("INFY")) and feed.received > 0, timeout=60, what="the feed reading ticks")
        received = feed.received
        send(b"not json")
        send(None)  # a tombstone: no value at all
        send(json.dumps({"symbol": "INFY"}).encode())  # JSON, not a tick
        send(live_tick("NOSUCH"), "NOSUCH")
        send(live_tick("TCS"), "TCS")
        wait_until(lambda: feed.received >= received + 2, timeout=30, what="the ticks after the malformed messages")
        assert feed.skipped == 3
        assert feed.unlisted == {"NOSUCH"}
        assert feed.error is None
    finally:
        feed.stop()
        producer.close()
