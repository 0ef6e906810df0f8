"""The raw-event archive (the original design's "additional redundant layer"): every change event on
the trades topic, as one line of JSON in ``<archive>/YYYY-MM-DD/part-<partition>.jsonl`` (the day of
the Kafka timestamp, UTC), kept for ``ARCHIVE_RETENTION_DAYS`` and replayable into any topic.

Exactly once on disk: lines are appended and fsynced, then ``positions.json`` records, per partition,
the next offset and the length of every file. On start, files are cut back to their recorded length
and consumption resumes at the recorded offset, so a crash at any point neither loses nor repeats a
line. Kafka offsets are committed too (for monitoring), but the positions file is the truth.

``python -m pipeline.services.archive run`` runs the archiver (the local stack starts it);
``python -m pipeline.services.archive replay 2026-11-25 [--topic T]`` re-publishes one day.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaError

from pipeline.services.heartbeat import ServiceStatus, write_atomically
from pipeline.services.paths import archive_status_path
from pipeline.settings import Settings, SettingsError

log = logging.getLogger("stockdash.archive")

GROUP_ID = "stockdash-archive"
POLL_MS = 500
RETENTION_CHECK_S = 3600.0



def day_folder(root: Path, day: date) -> Path:
    return root / day.isoformat()


class Positions:
    """Per partition: the next offset to archive and the committed length of each of its files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raw = {}
        self.next_offset: dict[int, int] = {int(p): v["next_offset"] for p, v in raw.items()}
        self.lengths: dict[int, dict[str, int]] = {int(p): dict(v["lengths"]) for p, v in raw.items()}

    def save(self) -> None:
        data = {str(p): {"next_offset": self.next_offset[p], "lengths": self.lengths.get(p, {})}
                for p in sorted(self.next_offset)}
        write_atomically(self.path, json.dumps(data))

    def forget_files(self, relative_prefix: str) -> None:
        for lengths in self.lengths.values():
            for name in [n for n in lengths if n.startswith(relative_prefix)]:
                del lengths[name]


class Archiver:
    def __init__(self, settings: Settings, stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.root = settings.effective_archive_dir
        self.stop = stop or threading.Event()
        self.positions = Positions(self.root / "positions.json")
        self.status = ServiceStatus(archive_status_path(settings), lines=0, last_flush_at=None,
                                    retention_days=settings.archive_retention_days)
        self._purged_at = 0.0

    # -- recovery and retention ---------------------------------------------------------------
    def recover(self) -> None:
        """Cut every file back to its recorded length; remove part files no position knows."""
        self.root.mkdir(parents=True, exist_ok=True)
        known = {name: length for lengths in self.positions.lengths.values() for name, length in lengths.items()}
        for path in sorted(self.root.glob("*/part-*.jsonl")):
            relative = path.relative_to(self.root).as_posix()
            length = known.get(relative, 0)
            if path.stat().st_size > length:
                log.warning("archive: cutting %s back to %d bytes (written after the last recorded position)",
                            relative, length)
                with open(path, "r+b") as handle:
                    handle.truncate(length)
                    os.fsync(handle.fileno())
            if length == 0:
                path.unlink()

    def purge(self, today: date | None = None) -> list[str]:
        """Remove day folders older than the retention; returns their names."""
        cutoff = (today or datetime.now(timezone.utc).date()) - timedelta(days=self.settings.archive_retention_days)
        removed = []
        for folder in sorted(self.root.iterdir()) if self.root.exists() else []:
            try:
                day = date.fromisoformat(folder.name)
            except ValueError:
                continue
            if folder.is_dir() and day < cutoff:
                shutil.rmtree(folder)
                self.positions.forget_files(folder.name + "/")
                removed.append(folder.name)
        if removed:
            self.positions.save()
            log.info("archive: purged %s (older than %d days)", ", ".join(removed), self.settings.archive_retention_days)
        return removed

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> None:
        self.recover()
        while not self.stop.is_set():
            try:
                self._archive_until_stopped()
            except KafkaError as exc:
                message = f"{type(exc).__name__}: {exc}"
                log.error("archive interrupted (%s); retrying in 1 s from the recorded positions", message)
                self.status.update(force=True, state="retrying", last_error=message)
                self.stop.wait(1.0)
        self.status.update(force=True, state="stopped")

    def _consumer(self) -> KafkaConsumer:
        return KafkaConsumer(bootstrap_servers=self.settings.effective_kafka_bootstrap, group_id=GROUP_ID,
                             client_id="stockdash-archive", enable_auto_commit=False, auto_offset_reset="earliest",
                             max_poll_records=5000)

    def _archive_until_stopped(self) -> None:
        consumer = self._consumer()
        try:
            topic = self.settings.trades_topic
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not partitions:
                raise KafkaError(f"topic {topic} does not exist yet")
            consumer.assign(partitions)
            for tp in partitions:
                if tp.partition in self.positions.next_offset:
                    consumer.seek(tp, self.positions.next_offset[tp.partition])
                else:
                    consumer.seek_to_beginning(tp)
            self.status.update(force=True, state="running", last_error=None)
            log.info("archive running: %s -> %s", topic, self.root)
            while not self.stop.is_set():
                batch = consumer.poll(timeout_ms=POLL_MS)
                if batch:
                    self._write(batch)
                    consumer.commit({tp: OffsetAndMetadata(self.positions.next_offset[tp.partition], None, -1)
                                     for tp in batch})
                if time.monotonic() - self._purged_at > RETENTION_CHECK_S:
                    self.purge()
                    self._purged_at = time.monotonic()
                self.status.update()
        finally:
            consumer.close()

    def _write(self, batch: dict) -> None:
        """Append, fsync, then record the positions: the order that makes a crash harmless."""
        lines: dict[tuple[int, str], list[bytes]] = {}
        for tp, records in batch.items():
            for record in records:
                day = datetime.fromtimestamp(record.timestamp / 1000, tz=timezone.utc).date()
                relative = f"{day.isoformat()}/part-{tp.partition}.jsonl"
                lines.setdefault((tp.partition, relative), []).append(record.value.rstrip(b"\n") + b"\n")
            self.positions.next_offset[tp.partition] = records[-1].offset + 1
        for (partition, relative), chunk in lines.items():
            path = self.root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as handle:
                handle.writelines(chunk)
                handle.flush()
                os.fsync(handle.fileno())
                self.positions.lengths.setdefault(partition, {})[relative] = handle.tell()
        self.positions.save()
        written = sum(len(chunk) for chunk in lines.values())
        self.status.update(lines=self.status.values["lines"] + written, last_flush_at=time.time())


def archived_lines(root: Path, day: date) -> Iterator[bytes]:
    """One day's archived change events, partition by partition, in their original order."""
    for path in sorted(day_folder(root, day).glob("part-*.jsonl")):
        with open(path, "rb") as handle:
            for line in handle:
                if line.strip():
                    yield line.rstrip(b"\n")


def replay(settings: Settings, day: date, topic: str | None = None) -> int:
    """Publish one day's archive to ``topic`` (default: the trades topic), keyed by symbol like the CDC.

    Into the live topic, replayed events carry their original ids and are dropped as repeats; into a
    new topic, a job with a new checkpoint rebuilds the aggregates from them.
    """
    from pipeline.services.relay import event_key

    if not day_folder(settings.effective_archive_dir, day).is_dir():
        raise FileNotFoundError(f"no archive for {day.isoformat()} in {settings.effective_archive_dir}")
    producer = KafkaProducer(bootstrap_servers=settings.effective_kafka_bootstrap, client_id="stockdash-replay",
                             acks="all", linger_ms=5)
    sent = 0
    try:
        for line in archived_lines(settings.effective_archive_dir, day):
            producer.send(topic or settings.trades_topic, key=event_key(line), value=line)
            sent += 1
        producer.flush()
    finally:
        producer.close(timeout=10)
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.services.archive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="archive the trades topic until stopped")
    replay_args = commands.add_parser("replay", help="re-publish one day's archive")
    replay_args.add_argument("day", help="YYYY-MM-DD")
    replay_args.add_argument("--topic", help="target topic (default: the trades topic)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        settings = Settings.from_env()
        if args.command == "replay":
            day = date.fromisoformat(args.day)
            print(f"replayed {replay(settings, day, args.topic):,} change events of {day} "
                  f"into {args.topic or settings.trades_topic}")
            return 0
    except (SettingsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    archiver = Archiver(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: archiver.stop.set())
    archiver.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
