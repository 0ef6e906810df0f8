"""Set-aside input: every rejected message, with its reason, in MongoDB ``rejected`` and on the
dead-letter topic ``<trades topic>.dead-letter``.

Both writes are keyed by the change event's id: a batch that Spark re-runs after a crash upserts
the same MongoDB documents (counts stay exact) and re-publishes the same keys (consumers of the
topic can drop repeats by key).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from kafka import KafkaProducer
from pymongo import ReplaceOne
from pymongo.database import Database

from pipeline.settings import Settings
from pipeline.trades import REJECT_REASONS

COLLECTION = "rejected"


def _utc(micros: int | None) -> datetime | None:
    return None if micros is None else datetime.fromtimestamp(micros / 1_000_000, tz=timezone.utc)


def dead_letter_record(row: Any, batch_id: int) -> dict:
    """One rejected message as stored and published (``row`` is a struct of ``summarize_batch``)."""
    return {
        "_id": row.event_id,
        "reason": row.reject_reason,
        "description": REJECT_REASONS.get(row.reject_reason, row.reject_reason),
        "symbol": row.symbol,
        "raw": row.raw,
        "source": {"topic": row.topic, "partition": row.partition, "offset": row.offset},
        "ingest_time": _utc(row.ingest_time_us),
        "batch_id": batch_id,
    }


class DeadLetters:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.collection = db[COLLECTION]
        self._producer: KafkaProducer | None = None

    def counts_by_reason(self) -> Counter:
        """What is stored, per reason: the counts a restarted app starts from."""
        return Counter({doc["_id"]: doc["count"] for doc in self.collection.aggregate(
            [{"$group": {"_id": "$reason", "count": {"$sum": 1}}}])})

    def write(self, batch_id: int, rows: Iterable[Any]) -> int:
        records = [dead_letter_record(row, batch_id) for row in rows]
        if not records:
            return 0
        self.collection.bulk_write([ReplaceOne({"_id": r["_id"]}, r, upsert=True) for r in records], ordered=False)
        producer = self._producer or self._new_producer()
        for record in records:
            payload = {**record, "event_id": record.pop("_id"),
                       "ingest_time": record["ingest_time"].isoformat() if record["ingest_time"] else None}
            producer.send(self.settings.dead_letter_topic, key=payload["event_id"].encode(),
                          value=json.dumps(payload).encode())
        producer.flush()
        return len(records)

    def _new_producer(self) -> KafkaProducer:
        self._producer = KafkaProducer(bootstrap_servers=self.settings.effective_kafka_bootstrap,
                                       client_id="stockdash-dead-letters", acks="all", linger_ms=0)
        return self._producer

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None
