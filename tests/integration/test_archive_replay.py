"""Replay reports what Kafka acknowledged, not what it sent: a day comes back with its keys, values and tombstones;
a send Kafka refuses, or a topic that does not exist, ends it with one line that says what failed and how to retry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.sinks import topics
from pipeline.waits import wait_until

pytestmark = pytest.mark.integration

DAY = "2026-11-24"


def _event(symbol: str, n: int, padding: int = 0) -> str:
    return json.dumps({"_id": {"_data": f"{symbol}-{n}"}, "fullDocument": {"symbol": symbol, "pad": "x" * padding}})


def _line(offset: int, key: str | None, value: str | None) -> bytes:
    return json.dumps({"topic": "t", "partition": 0, "offset": offset, "timestamp": 1, "key": key, "value": value}).encode() + b"\n"


def _archive(root: Path, files: dict[str, bytes]) -> None:
    (root / DAY).mkdir(parents=True)
    for name, data in files.items():
        (root / DAY / name).write_bytes(data)


def _replay(settings: Settings, topic: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pipeline.services.archive", "replay", DAY, "--topic", topic]
    return subprocess.run(command, env={**os.environ, **settings.service_env()}, cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=180)


def _topic(settings: Settings, configs: dict[str, str] | None = None) -> str:
    name = f"replay-{uuid.uuid4().hex[:8]}"
    admin = topics.admin_client(settings.effective_kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(name, 1, 1, topic_configs=configs or {})])
    finally:
        admin.close()
    return name


def _read(settings: Settings, topic: str, count: int) -> list[tuple[bytes | None, bytes | None]]:
    consumer = KafkaConsumer(bootstrap_servers=settings.effective_kafka_bootstrap, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    got: list[tuple[bytes | None, bytes | None]] = []
    try:
        def more() -> bool:
            got.extend((r.key, r.value) for records in consumer.poll(timeout_ms=200).values() for r in records)
            return len(got) >= count

        wait_until(more, timeout=30, what=f"{count} replayed records", describe=lambda: f"{len(got)} read")
    finally:
        consumer.close()
    return got


def _end_offset(settings: Settings, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.effective_kafka_bootstrap)
    try:
        return consumer.end_offsets([TopicPartition(topic, 0)])[TopicPartition(topic, 0)]
    finally:
        consumer.close()


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.strip().splitlines()
    return line


def test_a_day_comes_back_as_archived_and_the_count_is_what_kafka_acknowledged(stack: Settings, tmp_path):
    settings = stack.with_changes(archive_dir=tmp_path / "archive")
    older = _event("TCS", 9).encode() + b"\n"  # a line of the older format: the raw value, keyed by symbol like the CDC
    odd = b"\xff not UTF-8".decode("utf-8", "surrogateescape")
    _archive(settings.effective_archive_dir, {
        "part-0.jsonl": _line(0, "INFY", _event("INFY", 0)) + _line(1, "INFY", None) + _line(2, "WIPRO", odd),
        "part-1.jsonl": older + _line(7, "INFY", _event("INFY", 1))[:30],  # half a line: a crash's, not archived
    })
    topic = _topic(settings)
    result = _replay(settings, topic)
    assert result.returncode == 0, result
    assert f"replayed 4 change events of {DAY} into {topic}, each acknowledged by Kafka" in result.stdout
    assert _end_offset(settings, topic) == 4
    assert _read(settings, topic, 4) == [(b"INFY", _event("INFY", 0).encode()), (b"INFY", None), (b"WIPRO", b"\xff not UTF-8"),
                                         (b"TCS", older.rstrip())]


def test_a_send_kafka_refuses_fails_the_replay_with_one_line_that_says_how_to_retry(stack: Settings, tmp_path):
    settings = stack.with_changes(archive_dir=tmp_path / "archive")
    lines = [_line(i, "INFY", _event("INFY", i, padding=20_000 if i == 5 else 0)) for i in range(11)]
    _archive(settings.effective_archive_dir, {"part-0.jsonl": b"".join(lines)})
    topic = _topic(settings, {"max.message.bytes": "8000"})  # the record at offset 5 is too large for this topic
    line = _one_error_line(_replay(settings, topic))
    assert line.startswith(f"error: replay of {DAY} into {topic} failed: Kafka acknowledged "), line
    assert " of 11 events, then " in line and "TooLarge" in line, line
    assert f"python -m pipeline.services.archive replay {DAY} --topic {topic}` again" in line, line
    acknowledged = int(line.split("Kafka acknowledged ")[1].split(" of ")[0])
    assert acknowledged < 11
    assert _end_offset(settings, topic) == acknowledged, "the count is what Kafka holds, not what was sent"


def test_a_topic_that_does_not_exist_fails_the_replay_with_one_line(stack: Settings, tmp_path):
    settings = stack.with_changes(archive_dir=tmp_path / "archive")
    _archive(settings.effective_archive_dir, {"part-0.jsonl": _line(0, "INFY", _event("INFY", 0))})
    missing = f"missing-{uuid.uuid4().hex[:8]}"  # the stack does not create topics on demand
    line = _one_error_line(_replay(settings, missing))
    assert "failed: Kafka acknowledged 0 of 1 events, then KafkaTimeoutError" in line, line
    assert f"check Kafka ({settings.effective_kafka_bootstrap}) and topic {missing}" in line, line
