"""Kafka topics the pipeline uses, created with explicit partitions, and a metadata-level health probe."""

from __future__ import annotations

from collections.abc import Iterable

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from pipeline.settings import Settings

# The largest change event the trades topic takes: MongoDB's largest document (16 MiB of BSON) as JSON,
# with room to spare. The CDC relay sends anything larger as a small oversize message (set aside downstream).
TRADES_MAX_MESSAGE_BYTES = 20 * 1024 * 1024


def topic_specs(settings: Settings) -> dict[str, dict[str, str]]:
    """Topic name -> topic configs. Partitions come from settings; replication is 1 on the embedded stack."""
    return {
        settings.trades_topic: {"max.message.bytes": str(TRADES_MAX_MESSAGE_BYTES)},
        settings.dead_letter_topic: {},
        settings.late_topic: {},
        # The latest aggregate per symbol (key): compaction keeps one record per key.
        settings.aggregates_topic: {"cleanup.policy": "compact", "segment.ms": "60000"},
        settings.candles_topic: {"cleanup.policy": "compact", "segment.ms": "60000"},
        # Live ticks matter for a second or two (until the micro-batch query has applied them).
        settings.live_topic: {"retention.ms": "600000", "segment.ms": "60000"},
    }


def admin_client(bootstrap: str, timeout_ms: int = 5000) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="stockdash-admin",
        request_timeout_ms=timeout_ms,
    )


def max_message_bytes(settings: Settings, topic: str) -> int | None:
    """The largest message ``topic`` takes (its ``max.message.bytes``), or None if Kafka does not say."""
    admin = admin_client(settings.effective_kafka_bootstrap)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": None})],
                                           config_filter="all")
        entries = [configs for by_name in described.values() for configs in by_name.values()]
        return int(entries[0]["max.message.bytes"]["value"])
    except (KafkaError, LookupError, TypeError, ValueError):
        return None
    finally:
        admin.close()


def kafka_ready(bootstrap: str) -> bool:
    """A real metadata request: the broker answers and knows its cluster."""
    admin = admin_client(bootstrap, timeout_ms=2000)
    try:
        return bool(admin.describe_cluster().get("brokers"))
    finally:
        admin.close()


def ensure_topics(settings: Settings, replication_factor: int = 1) -> list[str]:
    """Create missing topics; returns the names created now."""
    admin = admin_client(settings.effective_kafka_bootstrap)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, settings.topic_partitions, replication_factor, topic_configs=configs)
            for name, configs in topic_specs(settings).items()
            if name not in existing
        ]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created it in between: what we wanted
        return [topic.name for topic in missing]
    finally:
        admin.close()


class DeliveryError(RuntimeError):
    """Kafka did not acknowledge every message that was sent: whoever sent them must not go on as if it had."""


def send_all(producer: KafkaProducer, messages: Iterable[tuple[str, bytes | None, bytes]], timeout_s: float = 60.0) -> int:
    """Send (topic, key, value) messages and wait until Kafka acknowledged each; raises :class:`DeliveryError`
    naming the first failure otherwise (kafka-python's ``flush`` alone never says a send failed)."""
    futures = [producer.send(topic, key=key, value=value) for topic, key, value in messages]
    if not futures:
        return 0
    producer.flush(timeout=timeout_s)
    failures = [future.exception if future.is_done else KafkaTimeoutError("no acknowledgement")
                for future in futures if not future.is_done or future.failed()]
    if failures:
        raise DeliveryError(f"Kafka did not acknowledge {len(failures)} of {len(futures)} messages: {failures[0]!r}")
    return len(futures)
