"""The raw-event archive (the original design's "additional redundant layer"): every record of the trades topic as one
JSON line (:func:`archive_line`) in ``<archive>/YYYY-MM-DD/part-<partition>.jsonl``, kept ``ARCHIVE_RETENTION_DAYS``,
exactly once on disk (:class:`Archiver`). ``python -m pipeline.services.archive run`` runs the archiver (the local stack
starts it); ``python -m pipeline.services.archive replay 2026-11-25 [--topic T]`` re-publishes one day.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaError

from pipeline.services.heartbeat import ServiceStatus, write_atomically
from pipeline.services.paths import archive_status_path
from pipeline.settings import Settings, SettingsError

log = logging.getLogger("stockdash.archive")

GROUP_ID = "stockdash-archive"
POLL_MS = 500
FETCH = {"fetch_min_bytes": 256 * 1024, "fetch_max_wait_ms": 1000}  # a poll's fsync + commit per ~1 s, not per few ms
RETENTION_CHECK_S = 3600.0
FIRST_MS, END_MS = 946_684_800_000, 253_402_300_800_000  # 2000-01-01, 10000-01-01 UTC; outside: a day purged at once, or never
ACK_TIMEOUT_S = 120.0


def archive_line(record: Any, received_s: float) -> tuple[date, bytes]:
    """(day, line) of a consumed record. The line: ``{"topic", "partition", "offset", "timestamp", "key", "value"}``, key
    and value as text (null if none: a tombstone's value; bytes that are not UTF-8 as ``\\udcXX``, Python's lossless
    surrogateescape). The day: the timestamp's (UTC), or if that is missing or outside years 2000..9999, the day of
    receipt (then also in ``received_at``, ms). Never raises: what is odd about a record is logged, and it is archived."""
    where = f"{record.topic} partition {record.partition} offset {record.offset}"
    fields = {"topic": record.topic, "partition": record.partition, "offset": record.offset, "timestamp": record.timestamp}
    if not (isinstance(ms := record.timestamp, int) and FIRST_MS <= ms < END_MS):
        log.warning("archive: %s has timestamp %r, not in years 2000..9999: filed under today", where, record.timestamp)
        fields["received_at"] = ms = int(received_s * 1000)
    day = (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)).date()  # exact: no float rounding
    if record.value is None:
        log.warning("archive: %s is a tombstone: archived with a null value", where)
    # Cannot raise: key and value are bytes or None (no deserializers), and surrogateescape decodes any bytes.
    raw = {name: None if data is None else data.decode("utf-8", "surrogateescape")
           for name, data in (("key", record.key), ("value", record.value))}
    return day, json.dumps({**fields, **raw}).encode() + b"\n"


class ArchivedRecord(NamedTuple):
    """One archived line; ``value`` None is a tombstone; the origin is None for a line of the older format."""
    value: bytes | None
    key: bytes | None = None
    topic: str | None = None
    offset: int | None = None


def parse_line(line: bytes) -> ArchivedRecord:
    """An archived line (with or without its newline): an envelope, or a line of the older format (the raw value)."""
    with contextlib.suppress(ValueError):
        fields = json.loads(line)
        if isinstance(fields, dict) and isinstance(fields.get("offset"), int) and isinstance(fields.get("topic"), str):
            raw = [None if fields.get(n) is None else str(fields[n]).encode("utf-8", "surrogateescape") for n in ("value", "key")]
            return ArchivedRecord(raw[0], raw[1], fields["topic"], fields["offset"])
    return ArchivedRecord(line.rstrip(b"\n"))


def archived_records(root: Path, day: date) -> Iterator[ArchivedRecord]:
    """One day's archived records, partition by partition, in their original order; a last line without its newline (being
    written, or cut short by a crash) is left out."""
    for path in sorted((root / day.isoformat()).glob("part-*.jsonl")):
        with open(path, "rb") as handle:
            yield from (parse_line(line) for line in handle if line.endswith(b"\n") and line.strip())


class Positions:
    """Per partition: the next offset to archive and the committed length of each of its files. Reads ``path`` if it
    exists; raises ValueError, KeyError, TypeError or AttributeError if it holds no positions."""

    def __init__(self, path: Path) -> None:
        raw, self.path = json.loads(path.read_text()) if path.exists() else {}, path
        self.next_offset: dict[int, int] = {int(p): int(v["next_offset"]) for p, v in raw.items()}
        self.lengths: dict[int, dict[str, int]] = {int(p): {n: int(s) for n, s in v["lengths"].items()} for p, v in raw.items()}

    def save(self) -> None:
        data = {str(p): {"next_offset": self.next_offset[p], "lengths": self.lengths.get(p, {})} for p in sorted(self.next_offset)}
        write_atomically(self.path, json.dumps(data))


class Archiver:
    """Exactly once on disk: lines are appended and fsynced, then ``positions.json`` records per partition the next offset
    and every file's length, then offsets are committed to Kafka (for monitoring only). On start (:meth:`recover`), files
    are cut back to their recorded length. Missing or unreadable positions (the latter moved aside and reported in the log
    and the status's last_error) cost no line: only a partial last line is cut; the lines' own offsets rebuild them."""

    def __init__(self, settings: Settings, stop: threading.Event | None = None) -> None:
        self.settings, self.root, self.stop = settings, settings.effective_archive_dir, stop or threading.Event()
        self.notice: str | None = None
        self._purged_at, path = 0.0, self.root / "positions.json"
        try:
            self.positions = Positions(path)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            path.replace(aside := path.with_name(f"positions.json.corrupt-{time.time():.6f}"))  # epoch to the µs: unique
            self.notice = " ".join(f"{path} was unreadable ({type(exc).__name__}: {exc}); moved to {aside.name}; "
                                   "positions rebuilt from the part files, nothing deleted".split())
            log.error("archive: %s", self.notice)
            self.positions = Positions(path)
        self.status = ServiceStatus(archive_status_path(settings), lines=0, last_flush_at=None, last_error=self.notice,
                                    retention_days=settings.archive_retention_days)

    def recover(self) -> None:
        """Make files and positions agree before archiving resumes (see :meth:`_repair`); a partition without positions
        resumes after the highest offset in its files (from the start if they hold none)."""
        self.root.mkdir(parents=True, exist_ok=True)
        recorded, highest = set(self.positions.next_offset), dict[int, int]()
        for path in sorted(self.root.glob("*/part-*.jsonl")):
            if (number := path.name[len("part-"):-len(".jsonl")]).isdigit():  # else not a file of ours: left alone
                highest[int(number)] = max(highest.get(int(number), -1), self._repair(path, int(number), int(number) in recorded))
        if rebuilt := {p: offset + 1 for p, offset in highest.items() if p not in recorded and offset >= 0}:
            self.positions.next_offset.update(rebuilt)
            self.positions.save()
            log.warning("archive: positions rebuilt from the part files (positions.json %s): next offsets %s",
                        "unreadable" if self.notice else "missing or silent", rebuilt)

    def _repair(self, path: Path, partition: int, recorded: bool) -> int:
        """With positions: cut the file back to its recorded length, remove it if none (created after the last record;
        Kafka delivers its events again). Without (positions.json missing, unreadable or silent about the partition): keep
        all but a partial last line (a crash mid-append), return the highest offset of the trades topic in it (-1: none)."""
        relative, length, highest = path.relative_to(self.root).as_posix(), 0, -1
        with open(path, "r+b") as handle:
            for line in () if recorded else handle:
                if not line.endswith(b"\n"):
                    break
                length, record = length + len(line), parse_line(line)
                if record.topic == self.settings.trades_topic and record.offset is not None:
                    highest = max(highest, record.offset)
            length = self.positions.lengths.get(partition, {}).get(relative, 0) if recorded else length
            if os.fstat(handle.fileno()).st_size > length:
                log.warning("archive: cutting %s back to %d bytes (what follows was never recorded as archived)", relative, length)
                handle.truncate(length)
                os.fsync(handle.fileno())
        if not recorded:
            self.positions.lengths.setdefault(partition, {})[relative] = length
        elif length == 0:
            path.unlink()
        return highest

    def purge(self, today: date | None = None) -> list[str]:
        """Remove day folders older than the retention; returns their names."""
        cutoff = (today or datetime.now(timezone.utc).date()) - timedelta(days=self.settings.archive_retention_days)
        removed = []
        for folder in sorted(self.root.iterdir()) if self.root.exists() else []:
            with contextlib.suppress(ValueError):  # not a day's folder: not ours to purge
                if folder.is_dir() and date.fromisoformat(folder.name) < cutoff:
                    shutil.rmtree(folder)
                    removed.append(folder.name)
                    for lengths in self.positions.lengths.values():
                        for name in [n for n in lengths if n.startswith(folder.name + "/")]:
                            del lengths[name]
        if removed:
            self.positions.save()
            log.info("archive: purged %s (older than %d days)", ", ".join(removed), self.settings.archive_retention_days)
        return removed

    def run(self) -> None:
        self.recover()
        while not self.stop.is_set():
            try:
                self._archive_until_stopped()
            except KafkaError as exc:
                log.error("archive interrupted (%s: %s); retrying in 1 s from the recorded positions", type(exc).__name__, exc)
                self.status.update(force=True, state="retrying", last_error=f"{type(exc).__name__}: {exc}")
                self.stop.wait(1.0)
        self.status.update(force=True, state="stopped")

    def _archive_until_stopped(self) -> None:
        consumer = KafkaConsumer(bootstrap_servers=self.settings.effective_kafka_bootstrap, group_id=GROUP_ID,
                                 client_id="stockdash-archive", enable_auto_commit=False, auto_offset_reset="earliest",
                                 max_poll_records=5000, **FETCH)
        try:
            topic = self.settings.trades_topic
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not partitions:
                raise KafkaError(f"topic {topic} does not exist yet")
            consumer.assign(partitions)
            for tp in partitions:  # never recorded: offset 0, or the earliest kept once retention removed it (auto reset)
                consumer.seek(tp, self.positions.next_offset.get(tp.partition, 0))
            self.status.update(force=True, state="running", last_error=self.notice)
            log.info("archive running: %s -> %s", topic, self.root)
            while not self.stop.is_set():
                if batch := consumer.poll(timeout_ms=POLL_MS):
                    self._write(batch)
                    consumer.commit({tp: OffsetAndMetadata(self.positions.next_offset[tp.partition], None, -1) for tp in batch})
                if time.monotonic() - self._purged_at > RETENTION_CHECK_S:
                    self.purge()
                    self._purged_at = time.monotonic()
                self.status.update()
        finally:
            consumer.close()

    def _write(self, batch: dict) -> None:
        """Append, fsync, then record the positions: the order that makes a crash harmless. Runs of records bound for one
        file are appended in offset order, so a crash leaves a prefix of each partition's batch, never a gap."""
        runs: list[tuple[int, str, list[bytes]]] = []
        received = time.time()  # the day of a record without a usable timestamp
        for tp, records in batch.items():
            for record in records:
                day, line = archive_line(record, received)
                if (relative := f"{day.isoformat()}/part-{tp.partition}.jsonl") != (runs[-1][1] if runs else None):
                    runs.append((tp.partition, relative, []))
                runs[-1][2].append(line)
            self.positions.next_offset[tp.partition] = records[-1].offset + 1
        for partition, relative, chunk in runs:
            (self.root / relative).parent.mkdir(parents=True, exist_ok=True)
            with open(self.root / relative, "ab") as handle:
                handle.writelines(chunk)
                handle.flush()
                os.fsync(handle.fileno())
                self.positions.lengths.setdefault(partition, {})[relative] = handle.tell()
        self.positions.save()
        self.status.update(lines=self.status.values["lines"] + sum(len(run[2]) for run in runs), last_flush_at=time.time())


class ReplayFailed(Exception):
    """Kafka did not acknowledge a replayed event; the message says what failed and how to retry."""


def replay(settings: Settings, day: date, topic: str | None = None) -> int:
    """Publish one day's archive to ``topic`` (default: the trades topic) with the original keys (older lines: keyed by
    symbol, like the CDC); return how many events Kafka acknowledged (acks=all): all, else :class:`ReplayFailed` says so.
    Into the live topic, replayed events keep their ids and are dropped as repeats; into a new one, a job rebuilds."""
    from pipeline.services.change_events import event_key

    root, target, acknowledged, pending = settings.effective_archive_dir, topic or settings.trades_topic, 0, deque[Any]()
    if not (root / day.isoformat()).is_dir():
        raise FileNotFoundError(f"no archive for {day.isoformat()} in {root}")
    try:
        producer = KafkaProducer(bootstrap_servers=settings.effective_kafka_bootstrap, client_id="stockdash-replay",
                                 acks="all", linger_ms=5, max_block_ms=10_000)
        try:
            for record in archived_records(root, day):
                key = record.key if record.key is not None or record.value is None else event_key(record.value)
                pending.append(producer.send(target, key=key, value=record.value))
                while pending and pending[0].is_done:  # the producer's buffer bounds the sends not yet answered
                    acknowledged += bool(pending.popleft().get(timeout=ACK_TIMEOUT_S))  # raises Kafka's refusal
            producer.flush(timeout=ACK_TIMEOUT_S)
            while pending:
                acknowledged += bool(pending.popleft().get(timeout=0))
        finally:  # on a failure, the sends still in flight get their answer (close waits for them) and count
            producer.close(timeout=ACK_TIMEOUT_S)
            acknowledged += sum(future.succeeded() for future in pending)
    except (KafkaError, ValueError) as exc:
        raise ReplayFailed(" ".join((  # one line: what failed, how far it got, how to retry
            f"replay of {day} into {target} failed: Kafka acknowledged {acknowledged:,} of "
            f"{sum(1 for _ in archived_records(root, day)):,} events, then {type(exc).__name__}: {exc}; check Kafka "
            f"({settings.effective_kafka_bootstrap}) and topic {target}, then run `python -m pipeline.services.archive replay "
            f"{day} --topic {target}` again (repeats are dropped by event id)").split())) from None
    return acknowledged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.services.archive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="archive the trades topic until stopped")
    replay_args = commands.add_parser("replay", help="re-publish one day's archive")
    replay_args.add_argument("day", type=date.fromisoformat, help="YYYY-MM-DD")
    replay_args.add_argument("--topic", help="target topic (default: the trades topic)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        settings = Settings.from_env()
        if args.command == "replay":
            print(f"replayed {replay(settings, args.day, args.topic):,} change events of {args.day} into "
                  f"{args.topic or settings.trades_topic}, each acknowledged by Kafka")
            return 0
    except (SettingsError, FileNotFoundError, ValueError, ReplayFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, ReplayFailed) else 2
    archiver = Archiver(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: archiver.stop.set())
    archiver.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
