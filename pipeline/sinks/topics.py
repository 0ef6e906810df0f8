"""Kafka topics the pipeline uses, created with explicit partitions, and a metadata-level health probe."""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from pipeline.settings import Settings


def topic_specs(settings: Settings) -> dict[str, dict[str, str]]:
    """Topic name -> topic configs. Partitions come from settings; replication is 1 on the embedded stack."""
    return {
        settings.trades_topic: {},
        settings.dead_letter_topic: {},
        settings.late_topic: {},
        # The latest aggregate per symbol (key): compaction keeps one record per key.
        settings.aggregates_topic: {"cleanup.policy": "compact", "segment.ms": "60000"},
        settings.candles_topic: {"cleanup.policy": "compact", "segment.ms": "60000"},
        settings.realtime_topic: {"cleanup.policy": "compact", "segment.ms": "60000"},
    }


def admin_client(bootstrap: str, timeout_ms: int = 5000) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="stockdash-admin",
        request_timeout_ms=timeout_ms,
    )


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
