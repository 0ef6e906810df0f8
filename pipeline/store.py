"""Durable aggregates: ``stockmarket.stock_aggregates``, written idempotently per micro-batch.

Each document holds one symbol's aggregate, the id of the last batch merged into it and the
*lineage* of the Spark checkpoint that produced it. A batch that Spark re-runs after a crash has an
id not greater than the stored one and is skipped per symbol, so nothing is counted twice; a new
checkpoint (new lineage) means the stream is re-read from the start and old documents are dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
from pymongo import ReplaceOne
from pymongo.database import Database

from pipeline.aggregate import Candle, StockAggregate

COLLECTION = "stock_aggregates"
_DECIMAL_FIELDS = ("low", "high", "nav", "open", "turnover")


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
    document = {name: getattr(aggregate, name) for name in StockAggregate.__dataclass_fields__}
    for name in _DECIMAL_FIELDS:
        document[name] = Decimal128(document[name])
    return {"_id": aggregate.symbol, **document, "batch_id": batch_id, "lineage": lineage}


def aggregate_from_document(document: dict) -> StockAggregate:
    values = {name: document[name] for name in StockAggregate.__dataclass_fields__}
    for name in _DECIMAL_FIELDS:
        values[name] = values[name].to_decimal() if isinstance(values[name], Decimal128) else Decimal(values[name])
    return StockAggregate(**values)


def candle_from_document(document: dict) -> Candle:
    return Candle(document["symbol"], document["interval_s"], document["start_s"], aggregate_from_document(document),
                  document["revised"])


class AggregateStore:
    def __init__(self, db: Database, lineage: str) -> None:
        self.collection = db.get_collection(COLLECTION, codec_options=CodecOptions(tz_aware=True, tzinfo=timezone.utc))
        self.lineage = lineage

    def load(self) -> dict[str, tuple[StockAggregate, int]]:
        """Aggregates of this lineage with their last batch id; documents of another lineage are removed."""
        self.collection.delete_many({"lineage": {"$ne": self.lineage}})
        return {doc["_id"]: (aggregate_from_document(doc), doc["batch_id"]) for doc in self.collection.find({})}

    def save(self, batch_id: int, aggregates: Iterable[StockAggregate]) -> None:
        ops = [ReplaceOne({"_id": agg.symbol}, _to_document(agg, batch_id, self.lineage), upsert=True)
               for agg in aggregates]
        if ops:
            self.collection.bulk_write(ops, ordered=False)


CANDLES = "candles"


class CandleStore:
    """``stockmarket.candles``: one document per (symbol, interval, window start), idempotent per batch."""

    def __init__(self, db: Database, lineage: str) -> None:
        self.collection = db.get_collection(CANDLES, codec_options=CodecOptions(tz_aware=True, tzinfo=timezone.utc))
        self.lineage = lineage

    @staticmethod
    def _key(candle: Candle) -> str:
        return f"{candle.symbol}|{candle.interval_s}|{candle.start_s}"

    def save(self, batch_id: int, candles: Iterable[Candle]) -> None:
        ops = []
        for candle in candles:
            document = _to_document(candle.metrics, batch_id, self.lineage)
            document.update(_id=self._key(candle), interval_s=candle.interval_s, start_s=candle.start_s,
                            start=datetime.fromtimestamp(candle.start_s, tz=timezone.utc), revised=candle.revised)
            ops.append(ReplaceOne({"_id": document["_id"]}, document, upsert=True))
        if ops:
            self.collection.bulk_write(ops, ordered=False)

    def load(self, since_s: int) -> list[tuple[Candle, int]]:
        self.collection.delete_many({"lineage": {"$ne": self.lineage}})
        return [(candle_from_document(doc), doc["batch_id"]) for doc in self.collection.find({"start_s": {"$gte": since_s}})]
