"""What the stream sets aside, never silently: rejected messages (with their reason) and late ticks
(with their event time and how late), each in a MongoDB collection and on a Kafka topic.

- ``rejected`` / ``<trades topic>.dead-letter``: invalid input, counted per reason;
- ``late_ticks`` / ``<trades topic>.late``: valid ticks older than the candle watermark, counted per
  symbol (they still count in the since-start figures, not in candles).

Writes are keyed by the change event's id: a batch that Spark re-runs after a crash upserts the same
MongoDB documents (counts stay exact) and re-publishes the same keys (consumers drop repeats by key).

A record keeps the start of its message (``raw``) as long as the archive keeps the whole message
(``ARCHIVE_RETENTION_DAYS``); then the start is dropped and the record stays, with its reason, symbol and
where the message was: counts stay exact and a record's size is bounded, whatever a flood of junk sent.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from kafka import KafkaProducer
from pymongo import ASCENDING, ReplaceOne
from pymongo.database import Database
from pymongo.errors import PyMongoError

from pipeline.domain.reasons import REJECT_REASONS
from pipeline.settings import Settings
from pipeline.sinks.codec import utc_from_micros
from pipeline.sinks.topics import send_all

log = logging.getLogger("stockdash.ledger")
TRIM_EVERY_S = 3600.0


def _source(row: Any) -> dict:
    """Where the whole message is (the trades topic, and the archive): ``raw`` keeps only its start."""
    return {"topic": row.topic, "partition": row.partition, "offset": row.offset, "raw_bytes": row.raw_bytes}


def rejected_record(row: Any, batch_id: int) -> dict:
    """A rejected message as stored and published (``row``: a ``set_aside`` struct of summarize_batch)."""
    return {"_id": row.event_id, "reason": row.reject_reason,
            "description": REJECT_REASONS.get(row.reject_reason, row.reject_reason), "symbol": row.symbol,
            "raw": row.raw, "source": _source(row), "ingest_time": utc_from_micros(row.ingest_time_us), "batch_id": batch_id}


def late_record(row: Any, batch_id: int, watermark_us: int | None, latest_us: int | None,
                session_start_us: int | None = None) -> dict:
    """A late tick: why (``LATE_REASONS``), its event time, and how far behind the symbol's watermark (or,
    with none, the trading day's start) and its latest trade it was."""
    earlier_session = session_start_us is not None and row.trade_time_us < session_start_us
    bound = watermark_us if watermark_us is not None else session_start_us or row.trade_time_us
    return {"_id": row.event_id, "symbol": row.symbol, "reason": "earlier_session" if earlier_session else "behind_watermark",
            "trade_time": utc_from_micros(row.trade_time_us), "late_by_s": (bound - row.trade_time_us) / 1e6,
            "behind_latest_s": None if latest_us is None else (latest_us - row.trade_time_us) / 1e6,
            "watermark": None if watermark_us is None else utc_from_micros(watermark_us),
            "session_start": None if session_start_us is None else utc_from_micros(session_start_us),
            "raw": row.raw, "source": _source(row), "ingest_time": utc_from_micros(row.ingest_time_us), "batch_id": batch_id}


class Ledger:
    """One kind of set-aside record: a MongoDB collection, a Kafka topic, and counts by one field."""

    def __init__(self, settings: Settings, db: Database, collection: str, topic: str, count_by: str) -> None:
        self.settings = settings
        self.collection = db[collection]
        self.topic = topic
        self.count_by = count_by
        self._producer: KafkaProducer | None = None
        self._trimmed_at = float("-inf")

    def counts(self, by: str | None = None) -> Counter:
        """Stored records per ``count_by`` (or ``by``) value: exact after restarts and re-run batches."""
        return Counter({doc["_id"]: doc["count"] for doc in self.collection.aggregate(
            [{"$group": {"_id": f"${by or self.count_by}", "count": {"$sum": 1}}}])})

    def size(self) -> int:
        """How many records (cheap: collection metadata); records are never deleted, so it grows with each new one."""
        return self.collection.estimated_document_count()

    def trim_raw(self, now: datetime | None = None) -> int:
        """Drop the message start of records older than the archive keeps messages; returns how many."""
        cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=self.settings.archive_retention_days)
        self.collection.create_index([("ingest_time", ASCENDING)])
        return self.collection.update_many({"ingest_time": {"$lt": cutoff}, "raw_trimmed": {"$ne": True}},
                                           {"$set": {"raw": None, "raw_trimmed": True}}).modified_count

    def write(self, records: Iterable[dict]) -> list[dict]:
        """Store and publish; returns the records that were not stored before, the ones to count (a batch
        Spark re-runs after a crash stores the same ids again and adds nothing). Hourly, old records' message
        starts are trimmed (housekeeping: a failure is logged, the batch goes on)."""
        records = list(records)
        if not records:
            return []
        if time.monotonic() - self._trimmed_at > TRIM_EVERY_S:
            self._trimmed_at = time.monotonic()
            try:
                if trimmed := self.trim_raw():
                    log.info("%s: message starts of %d records older than %d days dropped", self.collection.name,
                             trimmed, self.settings.archive_retention_days)
            except PyMongoError as exc:
                log.error("%s: old message starts not trimmed (%s: %s)", self.collection.name, type(exc).__name__,
                          str(exc)[:200])
        stored = self.collection.bulk_write([ReplaceOne({"_id": r["_id"]}, r, upsert=True) for r in records],
                                            ordered=False)
        send_all(self._producer or self._new_producer(), [(self.topic, str(record["_id"]).encode(), _payload(record))
                                                          for record in records])
        return [records[index] for index in sorted(stored.upserted_ids or {})]

    def _new_producer(self) -> KafkaProducer:
        self._producer = KafkaProducer(bootstrap_servers=self.settings.effective_kafka_bootstrap,
                                       client_id=f"stockdash-{self.collection.name}", acks="all", linger_ms=0)
        return self._producer

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None


def _payload(record: dict) -> bytes:
    """A record as its Kafka message: JSON, ``_id`` named ``event_id``, times in ISO-8601."""
    return json.dumps({("event_id" if k == "_id" else k): (v.isoformat() if isinstance(v, datetime) else v)
                       for k, v in record.items()}).encode()


def dead_letters(settings: Settings, db: Database) -> Ledger:
    return Ledger(settings, db, "rejected", settings.dead_letter_topic, count_by="reason")


def late_ledger(settings: Settings, db: Database) -> Ledger:
    return Ledger(settings, db, "late_ticks", settings.late_topic, count_by="symbol")
