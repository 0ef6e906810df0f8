"""Health of the services around the app: MongoDB, Kafka (with the trades topic's end offsets) and
the CDC component, probed by one background thread so no page ever waits on a service that is down.

``ServiceHealth`` owns its lock and its thread; pages read :meth:`ServiceHealth.latest`, a frozen
report at most ``interval_s`` old. Messages are words with a fix, never connection strings.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from pymongo import MongoClient

from pipeline.services.heartbeat import read_status
from pipeline.services.paths import archive_status_path, relay_paths
from pipeline.settings import Settings
from pipeline.sinks import mongo

log = logging.getLogger("stockdash.health")

CONNECTOR_NAME = "mongo-transaction-source"


@dataclass(frozen=True)
class ServiceCheck:
    name: str
    ok: bool | None  # None: not checked yet
    detail: str


@dataclass(frozen=True)
class HealthReport:
    mongo: ServiceCheck
    kafka: ServiceCheck
    cdc: ServiceCheck
    archive: ServiceCheck = field(default_factory=lambda: _unknown("Archive"))
    end_offsets: Mapping[int, int] = field(default_factory=dict)  # trades topic: partition -> next offset
    checked_at: float | None = None

    @property
    def problems(self) -> list[ServiceCheck]:
        """Services the market needs (the archive is extra: shown on the Pipeline page only)."""
        return [check for check in (self.mongo, self.kafka, self.cdc) if check.ok is False]


def _unknown(name: str) -> ServiceCheck:
    return ServiceCheck(name, None, "checking …")


def kafka_lag(end_offsets: Mapping[int, int], progress: Mapping[str, Any] | None, topic: str) -> int | None:
    """Messages on the trades topic that the query has not processed yet (None if unknown)."""
    if not end_offsets or not progress or not progress.get("sources"):
        return None
    processed = progress["sources"][0].get("endOffset")
    if isinstance(processed, str):
        processed = json.loads(processed)
    done = (processed or {}).get(topic, {})
    return sum(max(0, end - int(done.get(str(partition), 0))) for partition, end in end_offsets.items())


def check_cdc(settings: Settings, now: float | None = None) -> ServiceCheck:
    if settings.cdc_mode == "connect":
        return _check_connector(settings)
    return _check_heartbeat("CDC relay", relay_paths(settings)[1], "start it with `make run` (or `python -m stack up`)",
                            lambda s: f"running · {int(s.get('events', 0)):,} change events relayed", now)


def check_archive(settings: Settings, now: float | None = None) -> ServiceCheck:
    return _check_heartbeat("Archive", archive_status_path(settings),
                            "`make run` starts it (`python -m pipeline.services.archive run`)",
                            lambda s: f"{int(s.get('lines', 0)):,} events archived · kept {s.get('retention_days')} days",
                            now)


def _check_heartbeat(name: str, status_path: Path, how_to_start: str, describe: Callable[[dict], str],
                     now: float | None) -> ServiceCheck:
    """A service of ours that writes a status file with a heartbeat (see ``pipeline.services.heartbeat``)."""
    status = read_status(status_path, now=now)
    if status is None or status.get("state") == "stopped":
        return ServiceCheck(name, False, f"not running; {how_to_start}")
    if status.get("state") != "running":
        return ServiceCheck(name, False, f"{status.get('state')}: {status.get('last_error') or 'starting'}")
    return ServiceCheck(name, True, describe(status))


def _check_connector(settings: Settings) -> ServiceCheck:
    name = "Kafka Connect (MongoDB source)"
    url = f"{settings.effective_connect_url.rstrip('/')}/connectors/{CONNECTOR_NAME}/status"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own configured URL
            status = json.loads(response.read())
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return ServiceCheck(name, False, f"not reachable ({type(exc).__name__}); check CONNECT_URL")
    states = [status.get("connector", {}).get("state")] + [t.get("state") for t in status.get("tasks", [])]
    return ServiceCheck(name, all(s == "RUNNING" for s in states), " / ".join(str(s) for s in states))


class ServiceHealth:
    """Probes every ``interval_s`` in a daemon thread, started on the first read."""

    def __init__(self, settings: Settings, mongo_client: MongoClient, interval_s: float = 2.0) -> None:
        self.settings = settings
        self.mongo = mongo_client
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._latest = HealthReport(_unknown("MongoDB"), _unknown("Kafka"), _unknown("CDC"))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: KafkaConsumer | None = None

    def latest(self) -> HealthReport:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="service-health", daemon=True)
                self._thread.start()
            return self._latest

    def refresh(self) -> HealthReport:
        """Probe every service now (the thread's loop; also used by tests)."""
        end_offsets, kafka_check = self._kafka()
        report = HealthReport(self._mongo(), kafka_check, check_cdc(self.settings), check_archive(self.settings),
                              end_offsets, time.time())
        with self._lock:
            self._latest = report
        return report

    def stop(self) -> None:
        self._stop.set()
        if self._consumer is not None:
            self._consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - a probe must never kill the prober
                log.warning("health probe failed", exc_info=True)
            self._stop.wait(self.interval_s)

    def _mongo(self) -> ServiceCheck:
        try:
            mongo.check_reachable(self.settings, self.mongo)
        except mongo.MongoUnavailable as exc:
            return ServiceCheck("MongoDB", False, str(exc))
        return ServiceCheck("MongoDB", True, mongo.describe_address(self.settings))

    def _kafka(self) -> tuple[dict[int, int], ServiceCheck]:
        topic = self.settings.trades_topic
        hint = ("start the local stack with `make run` (or `python -m stack up`)" if self.settings.embedded_kafka
                else "check KAFKA_BOOTSTRAP_SERVERS")
        try:
            if self._consumer is None:
                self._consumer = KafkaConsumer(bootstrap_servers=self.settings.effective_kafka_bootstrap,
                                               client_id="stockdash-health", request_timeout_ms=3000,
                                               bootstrap_timeout_ms=3000, enable_auto_commit=False)
            partitions = self._consumer.partitions_for_topic(topic) or set()
            offsets = self._consumer.end_offsets([TopicPartition(topic, p) for p in sorted(partitions)])
        except Exception as exc:  # noqa: BLE001 - kafka-python raises many kinds; all mean "not usable now"
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
            return {}, ServiceCheck("Kafka", False, f"the broker is not reachable ({type(exc).__name__}); {hint}")
        if not offsets:
            return {}, ServiceCheck("Kafka", False, f"topic {topic} does not exist yet; the streaming query creates it")
        total = sum(offsets.values())
        return ({tp.partition: offset for tp, offset in offsets.items()},
                ServiceCheck("Kafka", True, f"topic {topic}: {len(offsets)} partitions, {total:,} messages"))
