"""Durable aggregates: ``stockmarket.stock_aggregates``, written idempotently per micro-batch.

Each document holds one symbol's aggregate, the id of the last batch merged into it and the
*lineage* of the Spark checkpoint that produced it. A batch that Spark re-runs after a crash has an
id not greater than the stored one and is skipped per symbol, so nothing is counted twice; a new
checkpoint (new lineage) means the stream is re-read from the start and old documents are dropped.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

from bson.codec_options import CodecOptions
from pymongo import ReplaceOne
from pymongo.collection import Collection
from pymongo.database import Database

from pipeline.domain.candles import CANDLE_INTERVALS_S, Candle
from pipeline.domain.days import CLOSE_WITHIN, session_of, session_start_s
from pipeline.domain.metrics import StockAggregate
from pipeline.domain.replay import ReplayClock
from pipeline.sinks import codec

COLLECTION = "stock_aggregates"
CANDLES = "candles"
MINUTE = CANDLE_INTERVALS_S[0]


def checkpoint_lineage(checkpoint_dir: Path) -> str:
    """An id that lives exactly as long as the checkpoint folder's contents."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    marker = checkpoint_dir / "stockdash-lineage"
    if marker.exists() and (checkpoint_dir / "offsets").exists():
        return marker.read_text().strip()
    lineage = uuid.uuid4().hex
    marker.write_text(lineage)
    return lineage


def _to_document(aggregate: StockAggregate, batch_id: int, lineage: str) -> dict:
    return {"_id": aggregate.symbol, **codec.to_bson(aggregate), "batch_id": batch_id, "lineage": lineage}


def stored_offsets(document: dict) -> dict[int, int]:
    """Per trades-topic partition, the offset up to which an aggregate holds its symbol's trades."""
    return {int(partition): int(offset) for partition, offset in (document.get("offsets") or {}).items()}


def utc_collection(db: Database, name: str) -> Collection:
    return db.get_collection(name, codec_options=CodecOptions(tz_aware=True, tzinfo=timezone.utc))


class AggregateStore:
    """``stock_aggregates``: one document per symbol, written idempotently per batch (see the module doc)."""

    def __init__(self, db: Database, lineage: str) -> None:
        self.collection = utc_collection(db, COLLECTION)
        self.lineage = lineage

    def load(self) -> tuple[dict[str, tuple[StockAggregate, int]], dict[str, dict[int, int]]]:
        """Aggregates of this lineage with their last batch id, and the offsets each holds; documents of
        another lineage are removed."""
        self.collection.delete_many({"lineage": {"$ne": self.lineage}})
        documents = list(self.collection.find({}))
        return ({doc["_id"]: (codec.from_bson(doc), doc["batch_id"]) for doc in documents},
                {doc["_id"]: stored_offsets(doc) for doc in documents})

    def save(self, batch_id: int, aggregates: Iterable[StockAggregate], offsets: Mapping[int, int] | None = None) -> None:
        """``offsets``: the batch's greatest offset per partition (live ticks past it are not in these yet)."""
        extra = {"offsets": {str(partition): offset for partition, offset in (offsets or {}).items()}}
        ops = [ReplaceOne({"_id": agg.symbol}, {**_to_document(agg, batch_id, self.lineage), **extra}, upsert=True)
               for agg in aggregates]
        if ops:
            self.collection.bulk_write(ops, ordered=False)


class CandleStore:
    """``stockmarket.candles``: one document per (symbol, interval, window start), idempotent per batch."""

    def __init__(self, db: Database, lineage: str) -> None:
        self.collection = utc_collection(db, CANDLES)
        self.lineage = lineage

    def save(self, batch_id: int, candles: Iterable[Candle]) -> None:
        ops = []
        for candle in candles:
            document = _to_document(candle.metrics, batch_id, self.lineage)
            document.update(_id=candle.storage_key, interval_s=candle.interval_s, start_s=candle.start_s,
                            start=datetime.fromtimestamp(candle.start_s, tz=timezone.utc), revised=candle.revised)
            ops.append(ReplaceOne({"_id": document["_id"]}, document, upsert=True))
        if ops:
            self.collection.bulk_write(ops, ordered=False)

    def session_start_s(self) -> int | None:
        """The start of the newest session (IST date) a stored 1-minute candle is in: the trading day."""
        newest = self.collection.find_one({"interval_s": MINUTE}, {"start_s": 1}, sort=[("start_s", -1)])
        return None if newest is None else session_start_s(session_of(datetime.fromtimestamp(newest["start_s"], timezone.utc)))

    def load_session(self, history_s: int) -> tuple[list[tuple[Candle, int]], list[Candle]]:
        """What a state starts from: the candles of the last ``history_s`` and of the whole trading day, and
        per symbol its last 1-minute candle before that day (its previous close)."""
        day_start = self.session_start_s()
        since = int(time.time()) - history_s if day_start is None else min(day_start, int(time.time()) - history_s)
        return self.load(since), self.closes(day_start) if day_start is not None else []

    def closes(self, before_s: int) -> list[Candle]:
        """Per symbol, its last 1-minute candle that starts before ``before_s`` (within the sessions a previous
        close may come from): one scan, newest first, keeping each symbol's first."""
        window = {"interval_s": MINUTE, "start_s": {"$lt": before_s, "$gte": before_s - int(CLOSE_WITHIN.total_seconds())}}
        last: dict[str, dict] = {}
        for doc in self.collection.find(window).sort("start_s", -1):
            last.setdefault(doc["symbol"], doc)
        return [codec.candle_from_bson(doc) for doc in last.values()]

    def load(self, since_s: int) -> list[tuple[Candle, int]]:
        self.collection.delete_many({"lineage": {"$ne": self.lineage}})
        return [(codec.candle_from_bson(doc), doc["batch_id"]) for doc in self.collection.find({"start_s": {"$gte": since_s}})]


class ReplayClockStore:
    """``pipeline_clock``: the newest database time per partition the record has seen, as of the last batch,
    for the replay floor (``pipeline.domain.replay``). It keeps the batch's id and the time before it too, so a
    batch re-run after a crash gets the floor its first run had: the same rows set aside, exactly once."""

    def __init__(self, db: Database, lineage: str) -> None:
        self.collection = db["pipeline_clock"]
        self.lineage = lineage

    def load(self) -> ReplayClock | None:
        document = self.collection.find_one({"_id": "replay", "lineage": self.lineage})
        if document is None:
            return None
        return ReplayClock(document["batch_id"], *({int(p): int(t) for p, t in document[side].items()}
                                                   for side in ("before_us", "after_us")))

    def save(self, clock: ReplayClock) -> None:
        self.collection.replace_one({"_id": "replay"}, {
            "lineage": self.lineage, "batch_id": clock.batch_id,
            **{side: {str(p): t for p, t in times.items()} for side, times in (("before_us", clock.before_us),
                                                                              ("after_us", clock.after_us))}},
            upsert=True)
