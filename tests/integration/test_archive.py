"""The raw-event archive: recovery cuts files back to their recorded length, retention purges old days,
the running archiver writes every change event exactly once (also across kill -9), and a replayed day
rebuilds the same aggregates. Recovery without positions, odd records and replay failures: the other
test_archive_* modules."""

from __future__ import annotations

import json
import signal
import threading
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipeline.services.archive import Archiver, Positions, archived_records, replay
from pipeline.settings import Settings
from pipeline.sinks import topics
from pipeline.spark.microbatch import MarketJob
from pipeline.waits import wait_until
from tests.children import start, stop
from tests.modes import DEFAULT_MODE_ONLY


def archiver_for(tmp_path: Path, retention_days: int = 7) -> Archiver:
    settings = Settings.from_env({"STOCKDASH_DATA_DIR": str(tmp_path), "ARCHIVE_RETENTION_DAYS": str(retention_days)})
    return Archiver(settings)


def test_recovery_cuts_lines_written_after_the_last_recorded_position(tmp_path):
    root = tmp_path / "archive"
    (root / "2026-11-24").mkdir(parents=True)
    (root / "2026-11-25").mkdir(parents=True)
    recorded = root / "2026-11-24" / "part-0.jsonl"
    recorded.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3, "half')  # crashed mid-line, after the position was saved
    unrecorded = root / "2026-11-25" / "part-0.jsonl"
    unrecorded.write_bytes(b'{"b": 1}\n')  # created after the last save: nothing of it is recorded
    (root / "positions.json").write_text(json.dumps({"0": {"next_offset": 2, "lengths": {"2026-11-24/part-0.jsonl": 18}}}))
    archiver = archiver_for(tmp_path)
    archiver.recover()
    assert recorded.read_bytes() == b'{"a": 1}\n{"a": 2}\n'
    assert not unrecorded.exists()  # its partition's recorded offset (2) precedes it: Kafka delivers it again
    assert archiver.positions.next_offset == {0: 2}


def test_retention_purges_days_older_than_configured(tmp_path):
    root = tmp_path / "archive"
    for day in ("2026-11-10", "2026-11-20", "2026-11-24", "not-a-day"):
        (root / day).mkdir(parents=True)
        (root / day / "part-0.jsonl").write_bytes(b"{}\n")
    positions = Positions(root / "positions.json")
    positions.next_offset[0] = 3
    positions.lengths[0] = {"2026-11-10/part-0.jsonl": 3, "2026-11-20/part-0.jsonl": 3, "2026-11-24/part-0.jsonl": 3}
    positions.save()
    archiver = archiver_for(tmp_path, retention_days=7)
    assert archiver.purge(today=date(2026, 11, 25)) == ["2026-11-10"]
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["2026-11-20", "2026-11-24", "not-a-day"]
    assert "2026-11-10/part-0.jsonl" not in Positions(root / "positions.json").lengths[0]


def _trade_id(line: bytes) -> str | None:
    """The trade id of an archived change event; None for the other tests' deliberately bad messages."""
    try:
        return json.loads(line)["fullDocument"]["_id"]["$oid"]
    except (ValueError, KeyError, TypeError, RecursionError):  # deep nesting among them
        return None


def _archived_ids(root: Path) -> list[str]:
    days = [date.fromisoformat(p.name) for p in sorted(root.iterdir()) if p.is_dir()] if root.exists() else []
    return [i for day in days for r in archived_records(root, day) if r.value and (i := _trade_id(r.value)) is not None]


@pytest.mark.integration
def test_every_event_is_archived_exactly_once_across_kill_9(stack: Settings, transactions, fresh_symbol, tmp_path):
    settings = stack.with_changes(archive_dir=tmp_path / "archive")
    env = settings.service_env()
    archiver = start(["pipeline.services.archive", "run"], env, tmp_path / "archive-1.log")
    inserted: list[str] = []
    done = threading.Event()

    def insert() -> None:
        while not done.wait(0.05):
            result = transactions.insert_many([{"symbol": fresh_symbol, "price": 10.0 + i, "quantity": 1} for i in range(10)])
            inserted.extend(str(i) for i in result.inserted_ids)

    writer = threading.Thread(target=insert)
    writer.start()
    try:
        # The archiver starts at the topic's beginning: after the hostile suite's floods (tests run grouped by
        # stream mode, so this one comes late) that is a few hundred MB to file before this test's trades.
        wait_until(lambda: len(set(_archived_ids(tmp_path / "archive")) & set(inserted)) >= 200, timeout=360,
                   what="events archived before the crash")
        archiver.send_signal(signal.SIGKILL)
        archiver.wait(timeout=30)
        archiver = start(["pipeline.services.archive", "run"], env, tmp_path / "archive-2.log")
        wait_until(lambda: len(inserted) > 600, timeout=60, what="more trades after the restart")
    finally:
        done.set()
        writer.join(timeout=30)
    try:
        def missing() -> set[str]:
            return set(inserted) - set(_archived_ids(tmp_path / "archive"))

        wait_until(lambda: not missing(), timeout=360, what="every trade archived", describe=lambda: f"{len(missing())} missing")
    finally:
        stop(archiver)
    # Only this test's trades: other tests deliberately deliver some change events twice (a CDC replay).
    mine = set(inserted)
    ids = [i for i in _archived_ids(tmp_path / "archive") if i in mine]
    assert len(ids) == len(mine), f"{len(ids) - len(mine)} events archived twice"


@pytest.mark.integration
@pytest.mark.spark
@DEFAULT_MODE_ONLY  # a second query beside the job's: the record is the same in both modes
def test_a_replayed_day_rebuilds_the_same_aggregates(stack: Settings, market_job, transactions, fresh_symbol, spark, tmp_path):
    when = datetime.now(timezone.utc)
    transactions.insert_many([{"symbol": fresh_symbol, "price": 100.0 + (i * 7) % 13, "quantity": 1 + i % 4,
                               "trade_time": when + timedelta(milliseconds=i)} for i in range(300)])
    original = wait_until(lambda: (a := market_job.state.snapshot().stocks.get(fresh_symbol)) and a.trades == 300 and a,
                          timeout=60, what="the original aggregate")
    # The session's own archiver (started with the stack) has the day's events.
    today = when.date()
    wait_until(lambda: sum(fresh_symbol.encode() in (r.value or b"") for r in archived_records(stack.effective_archive_dir, today))
               >= 300, timeout=60, what="the day archived")
    replay_settings = stack.with_changes(trades_topic=f"replay-{uuid.uuid4().hex[:8]}", checkpoint_dir=tmp_path / "ckpt")
    topics.ensure_topics(replay_settings)
    assert replay(stack, today, replay_settings.trades_topic) >= 300
    rebuilt = MarketJob(replay_settings, persist=False, spark=spark, name="stockdash_replay").start()
    try:
        again = wait_until(lambda: (a := rebuilt.state.snapshot().stocks.get(fresh_symbol)) and a.trades == 300 and a,
                           timeout=120, what="the rebuilt aggregate")
    finally:
        rebuilt.stop()
    assert again == original
