"""The stand-in's oplog on a stack of its own, capped small: a resume point that was trimmed away is refused
as a replica set refuses it (ChangeStreamHistoryLost, code 286), the relay resyncs from it loudly and goes
on, findAndModify writes (find_one_and_*) produce change events like the plain writes, and a refused write
produces none (an update refused part-way, one for each document it wrote before). The stand-in also
answers as a one-member replica set does: change events of a replica set's shape (ns, documentKey {_id},
wallTime, replace, updateDescription), operationTime on replies, a postBatchResumeToken that moves while the
watched collection is idle, a plain watch(), and ?replicaSet=rs0 in the URI."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from bson import Timestamp
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic
from pymongo import MongoClient, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from pipeline.services.paths import relay_paths
from pipeline.services.relay import ResumeTokenStore
from pipeline.settings import Settings
from pipeline.sinks import mongo
from pipeline.waits import wait_until
from stack.local import LocalStack
from stack.process import free_port, free_port_pair
from tests.children import RunningRelay, relay_started

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


def test_a_stream_resumed_behind_what_the_stand_in_keeps_in_memory_gets_every_change(client: MongoClient) -> None:
    """On disk the stand-in keeps only the newest oplog entries in memory (a twentieth of the oplog: 10 of 200
    here); a stream further behind reads the rest back from the file, in order, with their documents."""
    collection = own_collection(client)
    start = kept_time(collection)
    collection.insert_one({"n": -1})
    with collection.watch(start_at_operation_time=start) as stream:
        token = next_event(stream, "the change event of the first insert", "n")["_id"]
    collection.insert_many([{"n": n} for n in range(60)])
    collection.update_one({"n": 0}, {"$set": {"price": 1}})
    with collection.watch(resume_after=token, full_document="updateLookup") as stream:
        events = next_events(stream, 61, "every change after the token")
    assert [e["fullDocument"]["n"] for e in events] == [*range(60), 0]
    assert [e["operationType"] for e in events] == ["insert"] * 60 + ["update"]
    assert events[-1]["updateDescription"]["updatedFields"] == {"price": 1}


def test_the_relay_resyncs_loudly_from_a_lost_position(oplog_stack: LocalStack, client: MongoClient, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    collection = own_collection(client)
    token, stale_time = stale_position(collection)
    settings = relay_settings(oplog_stack, collection, tmp_path)
    ResumeTokenStore(relay_paths(settings)[0]).save(token)
    caplog.set_level(logging.ERROR, logger="stockdash.relay")
    with RunningRelay(settings) as relay:
        wait_until(lambda: relay.status.values["state"] == "running", timeout=30, what="the relay resyncing",
                   describe=lambda: repr(relay.status.values))
        assert relay.status.values["history_lost"] == 1
        assert "history lost" in relay.status.values["last_error"]
        # stored: the resync's start time, or already the idle position the relay follows from there
        stored_token, start_at = ResumeTokenStore(relay_paths(settings)[0]).load()
        stored = token_time(stored_token) if stored_token is not None else (start_at.time, start_at.inc)
        assert stored > (stale_time.time, stale_time.inc) and stored[0] >= int(time.time()) - 60
        collection.insert_one({"marker": "after-resync"})
        wait_until(lambda: {"marker": "after-resync"}.items() <= _last(documents_on_topic(settings)).items(),
                   timeout=30, what="an event written after the resync on the topic")
        assert relay.status.values["history_lost"] == 1  # resynced once, never looping on the error
    lost_lines = [r for r in caplog.records if r.levelno == logging.ERROR and "history lost" in r.getMessage()]
    assert len(lost_lines) == 1, [r.getMessage() for r in caplog.records]
    assert "UTC" in lost_lines[0].getMessage()  # says from when


def test_an_idle_relays_position_follows_the_oplog_so_a_restart_loses_no_history(
        oplog_stack: LocalStack, client: MongoClient, tmp_path: Path) -> None:
    collection = own_collection(client)
    settings = relay_settings(oplog_stack, collection, tmp_path)
    tokens = ResumeTokenStore(relay_paths(settings)[0])
    with RunningRelay(settings):
        relay_started(settings)
        collection.insert_one({"marker": "before-idle"})
        first = wait_until(lambda: tokens.load()[0], timeout=30, what="the relay storing a resume token")
        # Its own collection stays idle while others write far more than the oplog keeps.
        own_collection(client).insert_many([{"n": n} for n in range(OPLOG_ENTRIES * 3)])
        wait_until(lambda: history_lost(collection, first), timeout=30, what="the oplog trimmed past the first token")
        wait_until(lambda: _position_kept(collection, tokens.load()[0]), timeout=30,
                   what="the idle relay's stored position following the oplog")
    with RunningRelay(settings) as restarted:
        relay_started(settings)
        collection.insert_one({"marker": "after-restart"})
        wait_until(lambda: {"marker": "after-restart"}.items() <= _last(documents_on_topic(settings)).items(),
                   timeout=30, what="an event written after the restart on the topic")
        assert restarted.status.values["history_lost"] == 0, restarted.status.values


def _position_kept(collection: Collection, token: Mapping[str, Any] | None) -> bool:
    """The stream can resume from ``token`` (its position was not trimmed away)."""
    return token is not None and not history_lost(collection, token)


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
        updated = check("update", "find_one_and_update")
        assert updated["fullDocument"] == {"_id": before["_id"], "sym": "A", "qty": 11}
        assert updated["documentKey"] == {"_id": before["_id"]}
        assert updated["updateDescription"] == {"updatedFields": {"qty": 11}, "removedFields": [], "truncatedArrays": []}
        collection.find_one_and_replace({"sym": "A"}, {"sym": "A", "qty": 5})
        assert check("replace", "find_one_and_replace")["fullDocument"] == {"_id": before["_id"], "sym": "A", "qty": 5}
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


def test_a_refused_insert_is_no_change_event(client: MongoClient) -> None:
    """A duplicate _id (a client's retry, or a forged trade reusing a real one's id) is refused by MongoDB and
    must not reach a change stream: the dashboard would count a trade MongoDB does not hold."""
    collection = own_collection(client)
    collection.create_index("trade_id", unique=True)
    collection.insert_one({"_id": 1, "trade_id": "T1", "price": 100})
    with collection.watch(start_at_operation_time=kept_time(collection)) as stream:
        while stream.try_next() is not None:  # the first insert
            pass
        with pytest.raises(DuplicateKeyError):
            collection.insert_one({"_id": 1, "trade_id": "forged", "price": 1})
        with pytest.raises(DuplicateKeyError):  # refused by another unique index
            collection.insert_one({"_id": 2, "trade_id": "T1", "price": 1})
        with pytest.raises(BulkWriteError) as ordered:  # stops at the refused one, as MongoDB does
            collection.insert_many([{"_id": 3, "trade_id": "T3"}, {"_id": 1}, {"_id": 4, "trade_id": "T4"}])
        assert ordered.value.details["nInserted"] == 1
        with pytest.raises(BulkWriteError) as unordered:
            collection.insert_many([{"_id": 5, "trade_id": "T5"}, {"_id": 1}, {"_id": 6, "trade_id": "T6"}],
                                   ordered=False)
        assert unordered.value.details["nInserted"] == 2
        collection.insert_one({"_id": 7, "trade_id": "T7"})
        events = next_events(stream, 4, "the change events of the four inserted documents")
        assert [event["documentKey"]["_id"] for event in events] == [3, 5, 6, 7]
        assert stream.try_next() is None
    assert sorted(document["_id"] for document in collection.find()) == [1, 3, 5, 6, 7]
    assert collection.find_one({"_id": 1})["price"] == 100


def test_an_update_that_fails_part_way_reports_what_it_wrote(client: MongoClient) -> None:
    """A replica set records each document an update wrote, also when a later one is refused: a price corrected
    by an update_many that then hit a unique index must still reach the dashboard."""
    collection = own_collection(client)
    collection.create_index("trade_id", unique=True)
    collection.insert_many([{"_id": 1, "trade_id": "T1", "price": 10}, {"_id": 2, "trade_id": "T2", "price": 20}])
    with collection.watch(start_at_operation_time=kept_time(collection)) as stream:
        while stream.try_next() is not None:  # the inserts
            pass
        with pytest.raises(DuplicateKeyError):  # the first gets trade_id T9, the second is refused it
            collection.update_many({}, {"$set": {"trade_id": "T9", "price": 11}})
        written = next_event(stream, "the change event of the document updated before the refusal")
        assert written["operationType"] == "update" and written["documentKey"] == {"_id": 1}
        assert written["updateDescription"]["updatedFields"] == {"trade_id": "T9", "price": 11}
        collection.insert_one({"_id": 3, "trade_id": "T3"})
        assert next_event(stream, "the next change event")["documentKey"] == {"_id": 3}  # nothing for the refused one
    assert [(d["_id"], d.get("price")) for d in collection.find(sort=[("_id", 1)])] == [(1, 11), (2, 20), (3, None)]


def next_events(stream: Any, count: int, what: str) -> list[Mapping[str, Any]]:
    """The next ``count`` change events."""
    events: list[Mapping[str, Any]] = []

    def probe() -> bool:
        event = stream.try_next()
        if event is not None:
            events.append(event)
        return len(events) >= count
    wait_until(probe, timeout=10, what=what, describe=lambda: f"{len(events)} of {count}: {events}")
    return events


def token_time(token: Mapping[str, Any]) -> tuple[int, int]:
    """The (seconds, increment) a resume token stands for: a replica set's layout, 0x82 + the timestamp."""
    data = token["_data"]
    assert data.startswith("82"), token
    return int(data[2:10], 16), int(data[10:18], 16)


def test_change_events_have_a_replica_sets_shape(client: MongoClient) -> None:
    collection = own_collection(client)
    ns = {"db": collection.database.name, "coll": collection.name}
    start = kept_time(collection)
    written_from = datetime.now(timezone.utc) - timedelta(seconds=1)
    collection.insert_one({"_id": "t1", "sym": "A", "qty": 1, "n": {"m": 1}, "gone": True})
    collection.update_one({"_id": "t1"}, {"$set": {"qty": 2, "n.m": 5}, "$inc": {"count": 3}, "$unset": {"gone": ""}})
    collection.replace_one({"_id": "t1"}, {"sym": "A", "qty": 7})
    collection.delete_one({"_id": "t1"})
    with collection.watch(start_at_operation_time=start, full_document="updateLookup") as stream:
        insert, update, replace, delete = next_events(stream, 4, "the events of insert, update, replace, delete")

    for event in (insert, update, replace, delete):
        assert event["ns"] == ns and event["documentKey"] == {"_id": "t1"}, event
        assert isinstance(event["clusterTime"], Timestamp) and token_time(event["_id"]) == (
            event["clusterTime"].time, event["clusterTime"].inc)
        wall_time = event["wallTime"].replace(tzinfo=timezone.utc)  # a BSON date
        assert written_from <= wall_time <= datetime.now(timezone.utc), event
    assert [e["operationType"] for e in (insert, update, replace, delete)] == ["insert", "update", "replace", "delete"]
    assert insert["fullDocument"] == {"_id": "t1", "sym": "A", "qty": 1, "n": {"m": 1}, "gone": True}
    assert update["updateDescription"] == {"updatedFields": {"qty": 2, "n.m": 5, "count": 3},
                                           "removedFields": ["gone"], "truncatedArrays": []}
    assert update["fullDocument"] is None  # looked up when read, as on a replica set: deleted by then
    assert replace["fullDocument"] == {"_id": "t1", "sym": "A", "qty": 7} and "updateDescription" not in replace
    assert "fullDocument" not in delete and "updateDescription" not in delete


def test_an_update_event_has_the_full_document_only_when_asked(client: MongoClient) -> None:
    collection = own_collection(client)
    start = kept_time(collection)
    collection.insert_one({"_id": "u", "qty": 1})
    collection.update_one({"_id": "u"}, {"$inc": {"qty": 1}})
    with collection.watch(start_at_operation_time=start, full_document="updateLookup") as stream:
        _, looked_up = next_events(stream, 2, "the insert and an update event with updateLookup")
    with collection.watch(start_at_operation_time=start) as stream:
        _, plain = next_events(stream, 2, "the insert and an update event without it")
    assert looked_up["fullDocument"] == {"_id": "u", "qty": 2}
    assert "fullDocument" not in plain
    assert plain["updateDescription"]["updatedFields"] == {"qty": 2} == looked_up["updateDescription"]["updatedFields"]


def test_replies_carry_the_newest_oplog_time(client: MongoClient) -> None:
    collection = own_collection(client)
    db = collection.database
    insert = db.command("insert", collection.name, documents=[{"_id": 1}])
    newest = client.local["oplog.rs"].find_one(sort=[("ts", -1)])["ts"]
    assert isinstance(insert["operationTime"], Timestamp) and insert["operationTime"] <= newest
    replies = {
        "hello": client.admin.command("hello"),
        "ping": client.admin.command("ping"),
        "find": db.command("find", collection.name),
        "update": db.command("update", collection.name, updates=[{"q": {"_id": 1}, "u": {"$set": {"a": 1}}}]),
        "aggregate": db.command("aggregate", collection.name, pipeline=[], cursor={}),
        "delete": db.command("delete", collection.name, deletes=[{"q": {"_id": 1}, "limit": 1}]),
    }
    for name, reply in replies.items():
        assert isinstance(reply["operationTime"], Timestamp) and reply["operationTime"] >= newest, name
        assert reply["$clusterTime"]["clusterTime"] == reply["operationTime"], name
    assert replies["delete"]["operationTime"] > replies["update"]["operationTime"]  # each write is a newer entry


def test_a_change_streams_batches_carry_a_post_batch_resume_token_that_moves_while_idle(client: MongoClient) -> None:
    collection = own_collection(client)
    other = collection.database["other"]
    db = collection.database
    opened = db.command("aggregate", collection.name, pipeline=[{"$changeStream": {}}], cursor={})
    cursor = opened["cursor"]
    assert cursor["firstBatch"] == [] and token_time(cursor["postBatchResumeToken"])
    other.insert_one({"elsewhere": 1})  # only another collection is written: the watched one is idle
    more = db.command("getMore", cursor["id"], collection=collection.name)["cursor"]
    assert more["nextBatch"] == []
    idle_token = more["postBatchResumeToken"]
    assert token_time(idle_token) > token_time(cursor["postBatchResumeToken"])
    newest = client.local["oplog.rs"].find_one(sort=[("ts", -1)])["ts"]
    assert token_time(idle_token) == (newest.time, newest.inc)  # the oplog's end
    collection.insert_one({"_id": "after-idle"})
    batch = db.command("getMore", cursor["id"], collection=collection.name)["cursor"]
    assert [event["documentKey"] for event in batch["nextBatch"]] == [{"_id": "after-idle"}]
    assert batch["postBatchResumeToken"] == batch["nextBatch"][-1]["_id"]
    db.command("killCursors", collection.name, cursors=[cursor["id"]])
    # resuming from the idle token gives the event after it, and nothing before
    with collection.watch(resume_after=idle_token) as stream:
        assert next_event(stream, "the event after the idle token")["documentKey"] == {"_id": "after-idle"}
        other.insert_one({"elsewhere": 2})
        wait_until(lambda: stream.try_next() is None and token_time(stream.resume_token) > token_time(idle_token),
                   timeout=10, what="pymongo's resume token moving with the idle batches")


def test_a_plain_watch_starts_at_the_current_time(client: MongoClient) -> None:
    collection = own_collection(client)
    collection.insert_one({"_id": "before"})
    with collection.watch() as stream:
        assert stream.try_next() is None
        assert stream.resume_token is not None  # the first batch's postBatchResumeToken
        collection.insert_one({"_id": "after"})
        assert next_event(stream, "the insert after watch()")["documentKey"] == {"_id": "after"}


def test_an_empty_get_more_waits_for_the_next_write_as_on_a_replica_set(client: MongoClient) -> None:
    """awaitData: a getMore that finds nothing waits (up to its maxTimeMS) and answers with the next write, so a
    reader needs no polling; a getMore that runs out of time answers empty."""
    collection = own_collection(client)
    with collection.watch(max_await_time_ms=30_000) as stream:
        stream.try_next()  # the first getMore (empty): the stream's position is now past every earlier write
        writer = threading.Timer(0.5, lambda: collection.insert_one({"_id": "while waiting"}))
        writer.start()
        try:
            event = stream.try_next()  # one getMore, held until the insert half a second later
        finally:
            writer.join()
        assert event is not None and event["documentKey"] == {"_id": "while waiting"}
    with collection.watch(max_await_time_ms=200) as quiet:
        assert quiet.try_next() is None and quiet.try_next() is None  # nothing written: empty once the time is up


def test_a_resume_token_of_an_earlier_launcher_still_resumes(client: MongoClient) -> None:
    collection = own_collection(client)
    start = kept_time(collection)
    collection.insert_many([{"_id": 1}, {"_id": 2}])
    with collection.watch(start_at_operation_time=start) as stream:
        first, _ = next_events(stream, 2, "the two inserts")
    earlier = {"_data": format(first["clusterTime"].time << 32 | first["clusterTime"].inc, "x")}  # the bare timestamp
    with collection.watch(resume_after=earlier) as stream:
        assert next_event(stream, "the event after an earlier launcher's token")["documentKey"] == {"_id": 2}


def test_a_replica_set_uri_connects_and_sessions_are_accepted(oplog_stack: LocalStack) -> None:
    port = oplog_stack.ready_settings.local_mongo_port
    with MongoClient(f"mongodb://127.0.0.1:{port}/?replicaSet=rs0", serverSelectionTimeoutMS=5000) as client:
        collection = own_collection(client)
        collection.insert_one({"_id": "rs"})  # a retryable write: lsid and txnNumber are sent and accepted
        assert client.topology_description.topology_type_name == "ReplicaSetWithPrimary"
        hello = client.admin.command("hello")
        me = f"127.0.0.1:{port}"
        assert (hello["setName"], hello["hosts"], hello["primary"], hello["me"]) == ("rs0", [me], me, me)
        assert hello["isWritablePrimary"] is True and hello["secondary"] is False
        assert hello["logicalSessionTimeoutMinutes"] > 0 and hello["lastWrite"]["opTime"]["ts"] <= hello["operationTime"]
        status = client.admin.command("replSetGetStatus")
        assert status["set"] == "rs0" and [m["stateStr"] for m in status["members"]] == ["PRIMARY"]
        with client.start_session(causal_consistency=True) as session:
            collection.insert_one({"_id": "in-session"}, session=session)
            assert collection.count_documents({}, session=session) == 2
            assert session.operation_time is not None and session.cluster_time is not None
        session = client.start_session()
        with session, pytest.raises(OperationFailure) as refused, session.start_transaction():
            collection.insert_one({"_id": "in-transaction"}, session=session)
        assert refused.value.code == 20 and "transactions are not supported" in str(refused.value)
        assert collection.find_one({"_id": "in-transaction"}) is None


def test_an_open_stream_that_fell_behind_the_trimmed_oplog_fails_as_history_lost(client: MongoClient) -> None:
    collection = own_collection(client)
    with collection.watch() as stream:
        assert stream.try_next() is None
        position = token_time(stream.resume_token)
        collection.insert_many([{"filler": i} for i in range(OPLOG_ENTRIES * 2)])
        wait_until(lambda: _oldest(collection) > position, timeout=30,
                   what="the oplog trimmed past the open stream's position (the stand-in trims about once a second)")
        with pytest.raises(OperationFailure) as lost:
            stream.try_next()  # never the events after the gap, as if nothing had been trimmed
    assert lost.value.code == HISTORY_LOST and "fell behind" in str(lost.value)


def _oldest(collection: Collection) -> tuple[int, int]:
    oldest = collection.database.client.local["oplog.rs"].find_one(sort=[("ts", 1)])["ts"]
    return oldest.time, oldest.inc
