"""The stand-in's oplog on a stack of its own, capped small: a resume point that was trimmed away is refused
as a replica set refuses it (ChangeStreamHistoryLost, code 286), the relay resyncs from it loudly and goes
on, and findAndModify writes (find_one_and_*) produce change events like the plain writes."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from bson import Timestamp
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic
from pymongo import MongoClient, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from pipeline.services.paths import relay_paths
from pipeline.services.relay import ResumeTokenStore
from pipeline.settings import Settings
from pipeline.sinks import mongo
from pipeline.waits import wait_until
from stack.local import LocalStack
from stack.process import free_port, free_port_pair
from tests.children import RunningRelay

pytestmark = [pytest.mark.integration]
OPLOG_ENTRIES = 200  # the stand-in trims to this about once a second
HISTORY_LOST = 286


@pytest.fixture(scope="module")
def oplog_stack(base_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = LocalStack(base_settings.with_changes(
        data_dir=tmp_path_factory.mktemp("oplog"), local_mongo_port=free_port(), local_kafka_port=free_port_pair(),
        local_mongo_oplog_entries=OPLOG_ENTRIES, trades_topic="oplogtest.transaction"))
    local.start()
    yield local
    local.stop()


@pytest.fixture
def client(oplog_stack: LocalStack) -> Iterator[MongoClient]:
    client = mongo.client(oplog_stack.ready_settings)
    yield client
    client.close()


def own_collection(client: MongoClient) -> Collection:
    return client[f"oplogtest{uuid.uuid4().hex[:6]}"]["transaction"]


def next_event(stream: Any, what: str, field: str | None = None) -> Mapping[str, Any]:
    """The next change event (with ``field`` in its full document, if given: the others are skipped)."""
    def probe() -> Mapping[str, Any] | None:
        event = stream.try_next()
        return event if event is None or field is None or field in (event.get("fullDocument") or {}) else None
    return wait_until(probe, timeout=10, what=what)


def kept_time(collection: Collection) -> Timestamp:
    """The time of the newest oplog entry: a start that is surely still in the oplog (an earlier test's writes
    may have trimmed away the current second's first entries)."""
    newest = collection.database.client.local["oplog.rs"].find_one(sort=[("ts", -1)])
    return newest["ts"] if newest else Timestamp(int(time.time()) - 1, 0)


def stale_position(collection: Collection) -> tuple[Mapping[str, Any], Timestamp]:
    """A resume token and an operation time whose following entries the stand-in has since trimmed away."""
    start = kept_time(collection)
    collection.insert_one({"first": True})
    with collection.watch(start_at_operation_time=start) as stream:
        event = next_event(stream, "the change event of the first insert", "first")
    collection.insert_many([{"filler": i} for i in range(OPLOG_ENTRIES * 2)])
    wait_until(lambda: history_lost(collection, event["_id"]), timeout=30,
               what="the oplog trimmed past the first insert (the stand-in trims about once a second)")
    return event["_id"], event["clusterTime"]


def history_lost(collection: Collection, token: Mapping[str, Any]) -> bool:
    try:
        collection.watch(resume_after=token).close()
    except OperationFailure as exc:
        if exc.code == HISTORY_LOST:
            return True
        raise
    return False


def test_a_trimmed_resume_point_is_refused_as_history_lost(client: MongoClient) -> None:
    collection = own_collection(client)
    token, cluster_time = stale_position(collection)
    with pytest.raises(OperationFailure) as refused:
        collection.watch(resume_after=token)
    assert refused.value.code == HISTORY_LOST
    assert "ChangeStreamHistoryLost" in str(refused.value.details) and "oplog-max-entries" in str(refused.value)
    for stale in ({"start_after": token}, {"start_at_operation_time": cluster_time}):
        with pytest.raises(OperationFailure) as refused:
            collection.watch(**stale)
        assert refused.value.code == HISTORY_LOST, stale
    # a position still in the oplog resumes as before: its events, and nothing lost
    start = kept_time(collection)
    collection.insert_one({"after": 1})
    with collection.watch(start_at_operation_time=start) as stream:
        newest = next_event(stream, "the event of a recent insert", "after")
    collection.insert_one({"after": 2})
    with collection.watch(resume_after=newest["_id"]) as stream:
        assert next_event(stream, "the event after a kept token")["fullDocument"]["after"] == 2


def relay_settings(local: LocalStack, collection: Collection, data_dir: Path) -> Settings:
    name = collection.database.name
    settings = local.ready_settings.with_changes(database=name, trades_topic=f"{name}.transaction", data_dir=data_dir)
    admin = KafkaAdminClient(bootstrap_servers=settings.effective_kafka_bootstrap)
    admin.create_topics([NewTopic(settings.trades_topic, 1, 1)])
    admin.close()
    return settings


def documents_on_topic(settings: Settings) -> list[dict]:
    consumer = KafkaConsumer(settings.trades_topic, bootstrap_servers=settings.effective_kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=2000)
    try:
        return [json.loads(message.value).get("fullDocument") or {} for message in consumer]
    finally:
        consumer.close()


def test_the_relay_resyncs_loudly_from_a_lost_position(oplog_stack: LocalStack, client: MongoClient, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    collection = own_collection(client)
    token, _ = stale_position(collection)
    settings = relay_settings(oplog_stack, collection, tmp_path)
    ResumeTokenStore(relay_paths(settings)[0]).save(token)
    caplog.set_level(logging.ERROR, logger="stockdash.relay")
    with RunningRelay(settings) as relay:
        wait_until(lambda: relay.status.values["state"] == "running", timeout=30, what="the relay resyncing",
                   describe=lambda: repr(relay.status.values))
        assert relay.status.values["history_lost"] == 1
        assert "history lost" in relay.status.values["last_error"]
        stored_token, start_at = ResumeTokenStore(relay_paths(settings)[0]).load()
        assert stored_token is None and start_at is not None and start_at.time >= int(time.time()) - 60
        collection.insert_one({"marker": "after-resync"})
        wait_until(lambda: {"marker": "after-resync"}.items() <= _last(documents_on_topic(settings)).items(),
                   timeout=30, what="an event written after the resync on the topic")
        assert relay.status.values["history_lost"] == 1  # resynced once, never looping on the error
    lost_lines = [r for r in caplog.records if r.levelno == logging.ERROR and "history lost" in r.getMessage()]
    assert len(lost_lines) == 1, [r.getMessage() for r in caplog.records]
    assert "UTC" in lost_lines[0].getMessage()  # says from when


def _last(documents: list[dict]) -> dict:
    return documents[-1] if documents else {}


def test_find_and_modify_writes_produce_change_events(client: MongoClient) -> None:
    collection = own_collection(client)
    collection.insert_many([{"sym": "A", "qty": 1}, {"sym": "B", "qty": 2}])
    with collection.watch(start_at_operation_time=kept_time(collection), full_document="updateLookup") as stream:
        while stream.try_next() is not None:  # the two inserts
            pass

        def check(expected_type: str | tuple[str, ...], what: str) -> Mapping[str, Any]:
            event = next_event(stream, f"the change event of {what}")
            assert event["operationType"] in ((expected_type,) if isinstance(expected_type, str) else expected_type)
            return event

        before = collection.find_one_and_update({"sym": "A"}, {"$inc": {"qty": 10}})
        assert before is not None and before["qty"] == 1  # the client still gets what it asked for
        assert check("update", "find_one_and_update")["fullDocument"] == {"_id": before["_id"], "sym": "A", "qty": 11}
        collection.find_one_and_replace({"sym": "A"}, {"sym": "A", "qty": 5})
        # the stand-in reports a replace as an update, for plain replaces too
        assert check(("replace", "update"), "find_one_and_replace")["fullDocument"]["qty"] == 5
        assert collection.find_one_and_update({"sym": "C"}, {"$set": {"qty": 3}}, upsert=True) is None
        upserted = check("insert", "an upsert by find_one_and_update")["fullDocument"]
        assert upserted["sym"] == "C" and upserted["qty"] == 3
        after = collection.find_one_and_update({"sym": "D"}, {"$set": {"qty": 4}}, upsert=True,
                                               return_document=ReturnDocument.AFTER)
        assert check("insert", "an upsert returning the new document")["fullDocument"] == after
        deleted = collection.find_one_and_delete({"sym": "B"})
        assert deleted is not None
        assert check("delete", "find_one_and_delete")["documentKey"] == {"_id": deleted["_id"]}
        assert collection.find_one_and_update({"sym": "none"}, {"$set": {"qty": 0}}) is None  # no write, no event
        collection.insert_one({"sym": "E"})
        assert check("insert", "the insert after a findAndModify that matched nothing")["fullDocument"]["sym"] == "E"
