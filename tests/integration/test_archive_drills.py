"""Archive drills on real services: the archiver killed with kill -9 mid-stream and its positions.json deleted or
replaced by garbage before the restart, while retention has dropped from Kafka what was archived (every event archived
exactly once, no part file or line lost), and a topic that holds tombstones and absurd timestamps between normal
events (the archiver keeps running and archives all). Each drill has a topic and an archive of its own."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import uuid
from collections.abc import Callable
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from pipeline.services.archive import GROUP_ID, archived_records, parse_line
from pipeline.services.heartbeat import read_status
from pipeline.services.paths import archive_status_path
from pipeline.settings import Settings
from pipeline.sinks import topics
from pipeline.waits import wait_until
from tests.children import start, stop

pytestmark = pytest.mark.integration


def _days(root: Path) -> list[date]:
    return [date.fromisoformat(p.name) for p in sorted(root.iterdir()) if p.is_dir() and p.name[:1].isdigit()]


def _trade_ids(root: Path) -> list[str]:
    """Trade ids of the archived change events."""
    ids = []
    for record in (r for day in _days(root) for r in archived_records(root, day)):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            ids.append(json.loads(record.value or b"")["fullDocument"]["_id"]["$oid"])
    return ids


def _complete_lines(root: Path) -> dict[str, bytes]:
    """Every part file's complete lines (a partial last line is a crash's, not archived)."""
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.glob("*/part-*.jsonl")}
    return {name: data[: data.rfind(b"\n") + 1] for name, data in files.items()}


def _committed(settings: Settings) -> dict[TopicPartition, int]:
    """What the archiver's group has committed as archived, per partition (none before its first commit)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.effective_kafka_bootstrap, group_id=GROUP_ID, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(settings.trades_topic, p) for p in consumer.partitions_for_topic(settings.trades_topic)]
        return {tp: offset for tp in partitions if (offset := consumer.committed(tp))}
    finally:
        consumer.close()


def _drop_what_kafka_says_is_archived(settings: Settings) -> int:
    """Delete from the topic what the archiver's group committed as archived, as retention would: from then on only
    the archive holds those events, and losing an archived line loses the event. Returns how many were deleted."""
    committed = _committed(settings)
    admin = topics.admin_client(settings.effective_kafka_bootstrap)
    try:
        admin.delete_records(committed)
    finally:
        admin.close()
    return sum(committed.values())


def _kill_damage_restart(stack: Settings, tmp_path: Path, damage: Callable[[Path], None]) -> Path:
    """Archive a steady stream of change events; kill -9 the archiver mid-stream, let retention drop what it archived,
    ``damage`` its folder, restart it; then check that each event is archived exactly once and that every line on disk
    at the crash is still there."""
    settings = stack.with_changes(trades_topic=f"archive-drill-{uuid.uuid4().hex[:8]}", archive_dir=tmp_path / "archive")
    topics.ensure_topics(settings)
    root, env = settings.effective_archive_dir, settings.service_env()
    archiver = start(["pipeline.services.archive", "run"], env, tmp_path / "archive-1.log")
    producer = KafkaProducer(bootstrap_servers=settings.effective_kafka_bootstrap, acks="all")
    sent: list[str] = []
    done = threading.Event()

    def produce() -> None:  # ~200 change events a second, keyed by symbol like the CDC
        while not done.wait(0.05):
            ids = [uuid.uuid4().hex for _ in range(10)]
            for i, oid in enumerate(ids):
                symbol = f"ZT{i:03d}"
                event = {"_id": {"_data": oid}, "operationType": "insert", "fullDocument": {"_id": {"$oid": oid}, "symbol": symbol}}
                producer.send(settings.trades_topic, key=symbol.encode(), value=json.dumps(event).encode())
            producer.flush(timeout=30)
            sent.extend(ids)

    writer = threading.Thread(target=produce)
    writer.start()
    try:
        try:
            wait_until(lambda: len(_trade_ids(root)) >= 200, timeout=90, what="events archived before the crash")
            # Files are written before the offsets are committed (for monitoring, after each poll's fsync): on a busy
            # machine the first commit can come after the 200th line. Retention below needs one.
            wait_until(lambda: _committed(settings), timeout=60, what="the archiver's first commit to Kafka")
            archiver.send_signal(signal.SIGKILL)
            archiver.wait(timeout=30)
            at_crash = _complete_lines(root)
            assert (root / "positions.json").exists(), "the archiver had recorded positions before the crash"
            assert _drop_what_kafka_says_is_archived(settings) > 0
            damage(root)
            archiver = start(["pipeline.services.archive", "run"], env, tmp_path / "archive-2.log")
            count = len(sent)
            wait_until(lambda: len(sent) > count + 300, timeout=60, what="more events after the restart")
        finally:
            done.set()
            writer.join(timeout=30)
            producer.close(timeout=10)

        def missing() -> set[str]:
            return set(sent) - set(_trade_ids(root))

        wait_until(lambda: not missing(), timeout=60, what="every event archived", describe=lambda: f"{len(missing())} missing")
    finally:
        stop(archiver)
    ids = _trade_ids(root)
    assert len(ids) == len(set(ids)) == len(sent), f"{len(ids) - len(set(ids))} events archived twice"
    after = _complete_lines(root)
    lost = [name for name, data in at_crash.items() if not after.get(name, b"").startswith(data)]
    assert lost == [], "part files or lines on disk at the crash are gone"
    assert "positions rebuilt from the part files" in (tmp_path / "archive-2.log").read_text()
    return root


def test_positions_deleted_after_kill_9_lose_and_repeat_nothing(stack: Settings, tmp_path):
    _kill_damage_restart(stack, tmp_path, lambda root: (root / "positions.json").unlink())


def test_positions_replaced_by_garbage_after_kill_9_are_set_aside_and_rebuilt(stack: Settings, tmp_path):
    garbage = b'{"0": {"next_offset": 12, "lengths": {"2026-\x00\xff'
    root = _kill_damage_restart(stack, tmp_path, lambda root: (root / "positions.json").write_bytes(garbage))
    [aside] = root.glob("positions.json.corrupt-*")
    assert aside.read_bytes() == garbage
    errors = [line for line in (tmp_path / "archive-2.log").read_text().splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "unreadable" in errors[0] and aside.name in errors[0], errors
    assert aside.name in json.loads((root / "archiver-status.json").read_text())["last_error"]


def _archived(root: Path) -> dict[tuple[int, int], tuple[bytes | None, int | None]]:
    """(partition, offset) -> (value, timestamp) of every complete archived line."""
    return {(int(p.name[len("part-"):-len(".jsonl")]), record.offset): (record.value, json.loads(line)["timestamp"])
            for day in _days(root) for p in sorted((root / day.isoformat()).glob("part-*.jsonl"))
            for line in p.read_bytes().splitlines(keepends=True) if line.endswith(b"\n") and (record := parse_line(line))}


def test_tombstones_and_absurd_timestamps_are_archived_and_the_archiver_keeps_running(stack: Settings, tmp_path):
    settings = stack.with_changes(trades_topic=f"archive-drill-{uuid.uuid4().hex[:8]}", archive_dir=tmp_path / "archive")
    root = settings.effective_archive_dir
    topics.ensure_topics(settings)
    archiver = start(["pipeline.services.archive", "run"], settings.service_env(), tmp_path / "archive.log")
    producer = KafkaProducer(bootstrap_servers=settings.effective_kafka_bootstrap, acks="all")
    # value, timestamp (None: the producer's clock); a tombstone is a None value. Odd ones between normal ones.
    records = [(b'{"normal": 1}', None), (None, None), (b'{"odd": "past"}', -1), (b'{"odd": "far"}', 2**62), (None, -1),
               (b"\xff\xfe not UTF-8", None), (b'{"normal": 2}', None)]
    sent: dict[tuple[int, int], tuple[bytes | None, int | None]] = {}
    first_day = datetime.now(timezone.utc).date()
    try:
        wait_until(lambda: (read_status(archive_status_path(settings)) or {}).get("state") == "running", timeout=60,
                   what="the archiver running")
        for round_ in range(3):  # while the archiver runs: it meets them live, round after round
            for i, (value, timestamp) in enumerate(records):
                meta = producer.send(settings.trades_topic, key=f"ZT{i:03d}".encode(), value=value, timestamp_ms=timestamp).get(30)
                sent[(meta.partition, meta.offset)] = (value, timestamp)
            wait_until(lambda: set(_archived(root)) >= set(sent), timeout=60, what=f"round {round_} archived",
                       describe=lambda: f"{len(set(sent) - set(_archived(root)))} of {len(sent)} missing")
            assert archiver.poll() is None, "the archiver died on a record"
    finally:
        producer.close(timeout=10)
        stop(archiver)
    assert archiver.returncode == 0
    got = _archived(root)
    assert len(got) == len(sent) == 3 * len(records), "each archived once"
    assert {k: got[k][0] for k in sent} == {k: v[0] for k, v in sent.items()}  # tombstones as null, odd bytes as they were
    assert sorted(got[k][1] for k, v in sent.items() if v[1] is not None) == sorted([-1, -1, 2**62] * 3), "timestamps kept"
    received_days = {first_day, datetime.now(timezone.utc).date()}
    assert set(_days(root)) <= received_days, "no usable timestamp: filed under the day received, never 1969-12-31"
