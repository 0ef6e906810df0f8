"""Archive recovery without trustworthy positions: a missing, unreadable or silent positions.json never costs an
archived line; positions are rebuilt from the lines' own offsets, a partial last line is cut, older lines still read."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path

import pytest

from pipeline.services.archive import Archiver, Positions, archived_records, parse_line
from pipeline.services.paths import archive_status_path
from pipeline.settings import Settings

TOPIC = "stockmarket.transaction"  # the default trades topic


def archiver_for(tmp_path: Path) -> Archiver:
    return Archiver(Settings.from_env({"STOCKDASH_DATA_DIR": str(tmp_path)}))


def line(partition: int, offset: int, topic: str = TOPIC) -> bytes:
    """An archived line as the format has it (written by hand: the test must not lean on the writer)."""
    value = json.dumps({"_id": {"_data": f"{partition}-{offset}"}, "fullDocument": {"symbol": "INFY"}})
    return json.dumps({"topic": topic, "partition": partition, "offset": offset, "timestamp": 1_764_000_000_000,
                       "key": "INFY", "value": value}).encode() + b"\n"


def make_archive(root: Path) -> dict[str, bytes]:
    """Two days, two partitions; partition 1's last file ends in half a line (a crash mid-append)."""
    files = {
        "2026-11-24/part-0.jsonl": b"".join(line(0, o) for o in range(0, 5)),
        "2026-11-25/part-0.jsonl": b"".join(line(0, o) for o in range(5, 9)),
        "2026-11-24/part-1.jsonl": b"".join(line(1, o) for o in range(0, 3)),
        "2026-11-25/part-1.jsonl": b"".join(line(1, o) for o in range(3, 7)) + line(1, 7)[:25],
    }
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return files


def assert_rebuilt(root: Path, files: dict[str, bytes], archiver: Archiver) -> None:
    complete = {name: data[: data.rindex(b"\n") + 1] for name, data in files.items()}
    assert {p.relative_to(root).as_posix(): p.read_bytes() for p in root.glob("*/part-*.jsonl")} == complete
    assert archiver.positions.next_offset == {0: 9, 1: 7}  # after the highest archived offset: nothing lost or repeated
    saved = Positions(root / "positions.json")
    assert saved.next_offset == {0: 9, 1: 7}
    assert saved.lengths == {0: {n: len(complete[n]) for n in complete if "part-0" in n},
                             1: {n: len(complete[n]) for n in complete if "part-1" in n}}


def test_a_missing_positions_file_deletes_nothing_and_positions_are_rebuilt_from_the_lines(tmp_path):
    root = tmp_path / "archive"
    files = make_archive(root)
    archiver = archiver_for(tmp_path)
    archiver.recover()
    assert_rebuilt(root, files, archiver)


@pytest.mark.parametrize("garbage", [b"{\"0\": {\"next_off", b"", b"\x00\x00\x00\x00", b"[1, 2]", b"null",
                                     b'{"0": {"next_offset": "x", "lengths": {}}}'])
def test_an_unreadable_positions_file_is_moved_aside_said_loudly_and_rebuilt(tmp_path, caplog, garbage):
    root = tmp_path / "archive"
    files = make_archive(root)
    (root / "positions.json").write_bytes(garbage)
    with caplog.at_level(logging.ERROR, logger="stockdash.archive"):
        archiver = archiver_for(tmp_path)
    archiver.recover()
    assert_rebuilt(root, files, archiver)
    [aside] = root.glob("positions.json.corrupt-*")
    assert aside.read_bytes() == garbage  # kept for a look, never trusted
    [error] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "\n" not in error and "unreadable" in error and aside.name in error
    archiver.status.update(force=True)
    assert aside.name in json.loads(archive_status_path(archiver.settings).read_text())["last_error"]


def test_a_partition_the_positions_are_silent_about_is_rebuilt_not_deleted(tmp_path):
    root = tmp_path / "archive"
    files = make_archive(root)
    recorded = Positions(root / "positions.json")  # only partition 0 recorded, its last file half recorded
    recorded.next_offset[0] = 7
    recorded.lengths[0] = {"2026-11-24/part-0.jsonl": len(files["2026-11-24/part-0.jsonl"]),
                           "2026-11-25/part-0.jsonl": len(line(0, 5) + line(0, 6))}
    recorded.save()
    archiver = archiver_for(tmp_path)
    archiver.recover()
    assert (root / "2026-11-25/part-0.jsonl").read_bytes() == line(0, 5) + line(0, 6)  # cut back: Kafka delivers 7, 8 again
    assert (root / "2026-11-25/part-1.jsonl").read_bytes() == files["2026-11-25/part-1.jsonl"][:-25]
    assert archiver.positions.next_offset == {0: 7, 1: 7}


def test_lines_of_the_older_format_are_kept_and_read(tmp_path):
    root = tmp_path / "archive"
    old = b'{"_id": {"_data": "old-1"}, "fullDocument": {"symbol": "TCS"}}\n'
    (root / "2026-11-24").mkdir(parents=True)
    (root / "2026-11-24" / "part-0.jsonl").write_bytes(old + line(0, 1))
    (root / "2026-11-24" / "part-1.jsonl").write_bytes(old)  # only older lines: no offset to go by
    archiver = archiver_for(tmp_path)
    archiver.recover()
    assert (root / "2026-11-24" / "part-1.jsonl").read_bytes() == old
    assert archiver.positions.next_offset == {0: 2}  # partition 1 is read from the start
    records = list(archived_records(root, date(2026, 11, 24)))
    assert [r.value for r in records] == [old.rstrip(), json.loads(line(0, 1))["value"].encode(), old.rstrip()]
    assert [(r.topic, r.offset, r.key) for r in records] == [(None, None, None), (TOPIC, 1, b"INFY"), (None, None, None)]
    assert parse_line(old) == parse_line(old.rstrip())


def test_offsets_of_another_topic_do_not_move_the_positions(tmp_path):
    root = tmp_path / "archive"
    (root / "2026-11-24").mkdir(parents=True)
    (root / "2026-11-24" / "part-0.jsonl").write_bytes(line(0, 500, topic="renamed.before") + line(0, 3))
    archiver = archiver_for(tmp_path)
    archiver.recover()
    assert archiver.positions.next_offset == {0: 4}
