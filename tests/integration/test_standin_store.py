"""The stand-in's store on disk across versions: a store written by an earlier launcher opens, and its documents,
indexes and oplog read as they were written (stack/mongo/H2Storage.java changed how keys are written on
2026-11-27; a user's ``.local/data/mongo`` from before must not be lost to that). And a collection's size (collStats)
is the BSON size of its documents, in a store of an earlier launcher as in a new one."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pytest
from bson import Binary, CodecOptions, Decimal128, Int64, ObjectId, Regex, Timestamp
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from pipeline.settings import Settings
from pipeline.sinks import mongo
from stack.local import LocalStack
from stack.process import free_port

pytestmark = [pytest.mark.integration]

# Written by the launcher of 2026-11-26 (keys as BSON documents) with tests/fixtures/make_standin_store.py.
STORE = Path(__file__).parent.parent / "fixtures" / "standin-store-2026-11-26.mv.db.gz"


@contextmanager
def standin_on_disk(base_settings: Settings, data_dir: Path) -> Iterator[tuple[Settings, MongoClient]]:
    """A stand-in alone, storing in ``data_dir``, and a client of it."""
    settings = base_settings.with_changes(data_dir=data_dir, local_mongo_port=free_port(), local_mongo_storage="disk")
    standin = LocalStack(settings).services["mongo"]
    standin.start()
    try:
        with mongo.client(settings) as client:
            yield settings, client
    finally:
        standin.stop()


def sizes(collection: Collection) -> tuple[int, int]:
    """The collection's size as collStats reports it, and the sum of its documents' sizes as the server sends them."""
    raw = collection.with_options(codec_options=CodecOptions(document_class=RawBSONDocument))
    return collection.database.command("collStats", collection.name)["size"], sum(len(doc.raw) for doc in raw.find())


def test_a_store_written_by_an_earlier_launcher_reads_as_written(base_settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "mongo").mkdir()
    with gzip.open(STORE) as written, open(tmp_path / "mongo" / "mongo.mv.db", "wb") as copy:
        shutil.copyfileobj(written, copy)
    with standin_on_disk(base_settings, tmp_path) as (settings, client):
        trades = client[settings.database]["transaction"]
        assert trades.count_documents({}) == 20  # 21 inserted, one deleted
        by_object_id = trades.find_one({"_id": ObjectId("65a000000000000000000003")})
        assert by_object_id is not None and by_object_id["quantity"] == 99  # as updated
        assert by_object_id["price"] == Decimal128("1503.25")
        assert trades.find_one({"trade_id": "T7"})["_id"] == ObjectId("65a000000000000000000007")  # unique index
        assert trades.find_one({"_id": 7})["trade_id"] == "T-int"
        assert trades.find_one({"trade_id": "T4"}) is None
        with pytest.raises(DuplicateKeyError):  # the old index still guards its keys
            trades.insert_one({"trade_id": "T5"})
        trades.insert_one({"trade_id": "T-new", "symbol": "INFY"})  # new keys beside the old ones
        assert {d["trade_id"] for d in trades.find({"trade_id": {"$in": ["T5", "T-new"]}})} == {"T5", "T-new"}
        oldest = client.local["oplog.rs"].find_one(sort=[("$natural", 1)])["ts"]
        with trades.watch(start_at_operation_time=oldest, max_await_time_ms=100) as stream:
            operations = []
            while (event := stream.try_next()) is not None:
                operations.append(event["operationType"])
        assert operations == ["insert"] * 21 + ["update", "delete", "insert"], operations
        reported, documents = sizes(trades)  # counted by the earlier launcher, then by this one
        assert reported == documents


def test_a_collections_size_is_the_bson_size_of_its_documents(base_settings: Settings, tmp_path: Path) -> None:
    """collStats' size (what a database dashboard shows; a replica set's oplog size is read from it too) is kept
    as documents of every type are inserted, updated, replaced and removed."""
    with standin_on_disk(base_settings, tmp_path) as (_, client):
        trades = client["sizes"]["transaction"]
        trades.insert_many([
            {"symbol": "INFY", "price": Decimal128("1503.25"), "quantity": Int64(3), "side": "buy",
             "trade_time": datetime(2026, 11, 27, 9, 15, tzinfo=timezone.utc), "ok": True, "fee": 0.5},
            {"note": "₹ ünïcödé 📈", "nested": {"levels": [1, 2.5, None, False, {"deep": "x"}]}, "ids": list(range(12))},
            {"blob": Binary(b"\x00\x01\x02"), "pattern": Regex("^IN", "i"), "ts": Timestamp(5, 1)},
            {"_id": 7, "empty": {}, "nothing": []},
        ])
        assert sizes(trades)[0] == sizes(trades)[1] > 0
        trades.update_one({"symbol": "INFY"}, {"$set": {"note": "a longer note ✓" * 10}, "$unset": {"fee": ""}})
        trades.replace_one({"_id": 7}, {"replaced": "entirely", "by": ObjectId()})
        assert sizes(trades)[0] == sizes(trades)[1]
        trades.delete_one({"symbol": "INFY"})
        assert sizes(trades)[0] == sizes(trades)[1]
        trades.delete_many({})
        assert sizes(trades) == (0, 0)
