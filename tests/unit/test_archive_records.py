"""Whatever a record holds, the archiver files it and goes on: tombstones, timestamps that are missing or absurd,
bytes that are not UTF-8. Each is archived (logged, never skipped) and reads back as it came."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timezone
from pathlib import Path

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from pipeline.services.archive import Archiver, archived_records
from pipeline.settings import Settings

TOPIC = "stockmarket.transaction"
EVENT = b'{"_id": {"_data": "e1"}, "fullDocument": {"symbol": "INFY"}}'
DAY_MS = int(datetime(2026, 11, 24, 10, tzinfo=timezone.utc).timestamp() * 1000)


def record(offset: int, timestamp: int | None, value: bytes | None = EVENT, key: bytes | None = b"INFY") -> ConsumerRecord:
    return ConsumerRecord(TOPIC, 0, 0, offset, timestamp, 0, key, value, [], None, -1, -1, -1)


def write(tmp_path: Path, *records: ConsumerRecord) -> Archiver:
    archiver = Archiver(Settings.from_env({"STOCKDASH_DATA_DIR": str(tmp_path)}))
    archiver.recover()
    archiver._write({TopicPartition(TOPIC, 0): list(records)})
    return archiver


def lines(root: Path) -> dict[str, list[dict]]:
    return {p.relative_to(root).as_posix(): [json.loads(x) for x in p.read_bytes().splitlines()]
            for p in sorted(root.glob("*/part-*.jsonl"))}


def test_tombstones_and_timestamps_out_of_range_are_archived_and_logged(tmp_path, caplog):
    today = datetime.now(timezone.utc).date().isoformat()
    with caplog.at_level(logging.WARNING, logger="stockdash.archive"):
        archiver = write(tmp_path, record(0, DAY_MS), record(1, DAY_MS, value=None), record(2, -1), record(3, 2**62),
                         record(4, None), record(5, DAY_MS, value=None, key=None), record(6, DAY_MS))
    files = lines(tmp_path / "archive")
    assert [x["offset"] for x in files["2026-11-24/part-0.jsonl"]] == [0, 1, 5, 6]
    assert [x["value"] for x in files["2026-11-24/part-0.jsonl"]] == [EVENT.decode(), None, None, EVENT.decode()]
    # Filed under the day it was received (never 1969-12-31, which retention deletes at once), timestamp kept.
    assert [(x["offset"], x["timestamp"]) for x in files[f"{today}/part-0.jsonl"]] == [(2, -1), (3, 2**62), (4, None)]
    assert all(isinstance(x["received_at"], int) for x in files[f"{today}/part-0.jsonl"])
    assert archiver.positions.next_offset == {0: 7}
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("tombstone" in m for m in warned) == 2 and sum("not in years 2000..9999" in m for m in warned) == 3


def test_the_edges_of_the_accepted_years_are_filed_by_their_own_day(tmp_path):
    first = int(datetime(2000, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)
    last = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp() * 1000) + 999  # float s would round up
    write(tmp_path, record(0, first - 1), record(1, first), record(2, last), record(3, last + 1))
    files = lines(tmp_path / "archive")
    assert [x["offset"] for x in files["2000-01-01/part-0.jsonl"]] == [1]
    assert [x["offset"] for x in files["9999-12-31/part-0.jsonl"]] == [2]
    assert len(files) == 3  # 0 and 3 went to the day of receipt


def test_keys_and_values_read_back_byte_for_byte(tmp_path):
    odd = b"\xff\xfe not UTF-8 \x00 \xc3\xa9 \n inner newline"
    write(tmp_path, record(0, DAY_MS, value=odd, key=b"\x80"), record(1, DAY_MS, value=None), record(2, DAY_MS))
    got = [(r.key, r.value, r.offset) for r in archived_records(tmp_path / "archive", date(2026, 11, 24))]
    assert got == [(b"\x80", odd, 0), (b"INFY", None, 1), (b"INFY", EVENT, 2)]
    assert len((tmp_path / "archive" / "2026-11-24" / "part-0.jsonl").read_bytes().splitlines()) == 3  # one line each
