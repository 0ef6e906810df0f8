"""The stand-in's store on disk across versions: a store written by an earlier launcher opens, and its documents,
indexes and oplog read as they were written (stack/mongo/H2Storage.java changed how keys are written on
2026-11-27; a user's ``.local/data/mongo`` from before must not be lost to that)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from bson import Decimal128, ObjectId
from pymongo.errors import DuplicateKeyError

from pipeline.settings import Settings
from pipeline.sinks import mongo
from stack.local import LocalStack
from stack.process import free_port

pytestmark = [pytest.mark.integration]

# Written by the launcher of 2026-11-26 (keys as BSON documents) with tests/fixtures/make_standin_store.py.
STORE = Path(__file__).parent.parent / "fixtures" / "standin-store-2026-11-26.mv.db.gz"


def test_a_store_written_by_an_earlier_launcher_reads_as_written(base_settings: Settings, tmp_path: Path) -> None:
    settings = base_settings.with_changes(data_dir=tmp_path, local_mongo_port=free_port(), local_mongo_storage="disk")
    (tmp_path / "mongo").mkdir()
    with gzip.open(STORE) as written, open(tmp_path / "mongo" / "mongo.mv.db", "wb") as copy:
        shutil.copyfileobj(written, copy)
    standin = LocalStack(settings).services["mongo"]
    standin.start()
    try:
        with mongo.client(settings) as client:
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
    finally:
        standin.stop()
