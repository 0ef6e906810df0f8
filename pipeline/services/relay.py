"""CDC relay: MongoDB change stream of ``stockmarket.transaction`` -> Kafka trades topic.

The embedded default for change data capture (the MongoDB Kafka Connector is not served by any
registry reachable here; ``stack/connect`` keeps its configuration for real deployments).
Each message is the full change event as relaxed Extended JSON — what the connector publishes with
``publish.full.document.only=false`` and the RelaxedJson formatter — keyed by the trade's symbol so
one symbol's events stay in order on one partition.

Delivery is at-least-once: a batch is flushed to Kafka before its resume token is stored, so a crash
can only re-send events, which the pipeline drops by event id.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bson import json_util
from bson.json_util import RELAXED_JSON_OPTIONS
from kafka import KafkaProducer
from kafka.errors import KafkaError
from pymongo.errors import PyMongoError

from pipeline.services.heartbeat import ServiceStatus, write_atomically
from pipeline.services.paths import relay_paths
from pipeline.settings import Settings
from pipeline.sinks import mongo

log = logging.getLogger("stockdash.relay")

MAX_BATCH = 5000
IDLE_BACKOFF_S = (0.002, 0.005, 0.01, 0.02)  # the stand-in ignores awaitData: poll, don't spin
RETRY_BACKOFF_S = 1.0


def _symbol_key(event: Mapping[str, Any]) -> bytes | None:
    """The Kafka key of a change event: its trade's symbol, so one symbol stays on one partition."""
    document = event.get("fullDocument")
    symbol = document.get("symbol", document.get("stock")) if isinstance(document, Mapping) else None
    return symbol.encode() if isinstance(symbol, str) and symbol else None


def encode_event(event: Mapping[str, Any]) -> tuple[bytes | None, bytes]:
    """(key, value) of one change event: key = symbol (if any), value = relaxed Extended JSON."""
    return _symbol_key(event), json_util.dumps(event, json_options=RELAXED_JSON_OPTIONS).encode()


def event_key(value: bytes) -> bytes | None:
    """The key of an already encoded change event (archive replay); None if it is not JSON."""
    try:
        event = json.loads(value)
    except ValueError:
        return None
    return _symbol_key(event) if isinstance(event, dict) else None


def commit_time_ms(event: Mapping[str, Any]) -> int | None:
    """When the database committed the change (``wallTime``, MongoDB 6.0+), as the Kafka timestamp:
    the pipeline's freshness then starts at the insert. None (= now) where the server omits it."""
    wall_time = event.get("wallTime")
    if not isinstance(wall_time, datetime):
        return None
    if wall_time.tzinfo is None:  # pymongo decodes BSON dates as naive UTC unless tz_aware
        wall_time = wall_time.replace(tzinfo=timezone.utc)
    return int(wall_time.timestamp() * 1000)


class ResumeTokenStore:
    """The last resume token whose events are safely in Kafka, in one small file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Mapping[str, Any] | None:
        try:
            return json_util.loads(self.path.read_text())
        except FileNotFoundError:
            return None

    def save(self, token: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, json_util.dumps(token))



class ChangeRelay:
    """Follows the change stream of ``transaction`` into the trades topic until ``stop`` is set: each batch
    is in Kafka before its resume token is stored (at-least-once; the pipeline drops replays by event id)."""

    def __init__(self, settings: Settings, stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        token_path, status_path = relay_paths(settings)
        self.tokens = ResumeTokenStore(token_path)
        self.status = ServiceStatus(status_path, events=0, last_event_at=None)

    def _producer(self) -> KafkaProducer:
        return KafkaProducer(
            bootstrap_servers=self.settings.effective_kafka_bootstrap,
            client_id="stockdash-cdc-relay",
            acks="all",
            linger_ms=0,  # freshness first: a batch is already formed by draining the change stream
            batch_size=256 * 1024,
            max_request_size=8 * 1024 * 1024,
            retries=5,
        )

    def run(self) -> None:
        """Relay until ``stop`` is set, reconnecting after failures of either side."""
        while not self.stop.is_set():
            try:
                self._relay_once()
            except (PyMongoError, KafkaError, OSError) as exc:
                message = f"{type(exc).__name__}: {exc}"
                log.error("CDC relay interrupted (%s); retrying in %.0fs from the last stored token",
                          message, RETRY_BACKOFF_S)
                self.status.update(force=True, state="retrying", last_error=message)
                self.stop.wait(RETRY_BACKOFF_S)
        self.status.update(force=True, state="stopped")

    def _relay_once(self) -> None:
        client = mongo.client(self.settings)
        producer = self._producer()
        try:
            collection = client[self.settings.database]["transaction"]
            with mongo.open_change_stream(collection, self.tokens.load()) as stream:
                self.status.update(force=True, state="running", last_error=None)
                log.info("CDC relay running: %s.transaction -> %s", self.settings.database,
                         self.settings.trades_topic)
                idle = 0
                while not self.stop.is_set():
                    sent = self._relay_batch(stream, producer)
                    if sent:
                        idle = 0
                    else:
                        self.status.update()
                        self.stop.wait(IDLE_BACKOFF_S[min(idle, len(IDLE_BACKOFF_S) - 1)])
                        idle += 1
        finally:
            producer.close(timeout=5)
            client.close()

    def _relay_batch(self, stream: Any, producer: KafkaProducer) -> int:
        sent = 0
        event = stream.try_next()
        while event is not None:
            key, value = encode_event(event)
            producer.send(self.settings.trades_topic, key=key, value=value, timestamp_ms=commit_time_ms(event))
            sent += 1
            event = stream.try_next() if sent < MAX_BATCH else None
        if sent:
            producer.flush()
            self.tokens.save(stream.resume_token)
            self.status.update(events=self.status.values["events"] + sent, last_event_at=time.time())
        return sent


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python logs every reconnect attempt as an error; our own one-line messages say what matters.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    settings = Settings.from_env()
    relay = ChangeRelay(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: relay.stop.set())
    relay.run()


if __name__ == "__main__":
    main()
