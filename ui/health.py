"""Health of the services around the app: MongoDB, Kafka (with the trades topic's end offsets) and
the CDC component, probed by one background thread so no page ever waits on a service that is down.

``ServiceHealth`` owns its lock and its thread; pages read :meth:`ServiceHealth.latest`, a frozen
report at most ``interval_s`` old. Messages are words with a fix, never connection strings; the fix is
what is true for how this app runs (:func:`service_fix`): ``make run`` is never it, as it would start a
second app on the same port.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from pipeline.services.heartbeat import read_status
from pipeline.services.paths import archive_status_path, relay_paths
from pipeline.settings import Settings
from pipeline.sinks import mongo
from stack.connect import connector_config
from stack.embedded import EmbeddedStack, Phase, Plan, StackStatus

log = logging.getLogger("stockdash.health")


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


def input_rate(progress: Mapping[str, Any] | None) -> float | None:
    """Messages a second reaching the query, from its last progress report (None before the first one). Spark
    measures the input rate from the previous batch's start, so the first batch after a start reports 0 for
    any size (for a minute, while a restart's backlog is caught up): then the rate that batch read them at."""
    if not progress:
        return None

    def finite(key: str) -> float:
        value = float(progress.get(key) or 0)
        return value if math.isfinite(value) else 0.0  # older Sparks report NaN there

    rate = finite("inputRowsPerSecond")
    return finite("processedRowsPerSecond") if rate == 0 and progress.get("numInputRows") else rate


def service_fix(settings: Settings, stack: StackStatus | None = None) -> str:
    """How to start one of the local stack's services that is down, as true for this app: ``stack`` is how
    the app's start-up went (None for a runtime made by a test or a host: then the addresses decide)."""
    if stack is not None and stack.plan is Plan.ELSEWHERE:
        return (f"this app uses a local stack started from another data folder than {settings.data_dir}: run the app "
                "with that folder as STOCKDASH_DATA_DIR, or stop that stack and restart the app")
    run_up = "start it with `python -m stack up` in another terminal (it starts only what is missing)"
    if stack is not None and stack.plan is Plan.CONFIGURED or not (settings.embedded_mongo and settings.embedded_kafka):
        return run_up
    return f"{run_up}, or restart the app: it starts the local stack itself when none runs"


def check_cdc(settings: Settings, now: float | None = None, fix: str | None = None) -> ServiceCheck:
    if settings.uses_connect:
        return _check_connector(settings)
    return _check_heartbeat("CDC relay", relay_paths(settings)[1], fix or service_fix(settings),
                            lambda s: f"running · {int(s.get('events', 0)):,} change events relayed", now)


def check_archive(settings: Settings, now: float | None = None, fix: str | None = None) -> ServiceCheck:
    return _check_heartbeat("Archive", archive_status_path(settings), fix or service_fix(settings),
                            lambda s: f"{int(s.get('lines', 0)):,} events archived · kept {s.get('retention_days')} days",
                            now)


def stack_report(stack: StackStatus) -> HealthReport:
    """While the app's own stack starts, or after it failed to: nothing to probe, every service says so."""
    detail = f"starting with the app · {stack.detail}" if stack.phase is Phase.STARTING else f"not started: {stack.error}"
    ok = None if stack.phase is Phase.STARTING else False
    mongo_check, kafka, cdc, archive = (ServiceCheck(name, ok, detail) for name in ("MongoDB", "Kafka", "CDC relay", "Archive"))
    return HealthReport(mongo_check, kafka, cdc, archive, checked_at=time.time())


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
    name = "Kafka Connect (Debezium MongoDB source)" if settings.cdc_mode == "debezium" else "Kafka Connect (MongoDB source)"
    url = f"{settings.effective_connect_url.rstrip('/')}/connectors/{connector_config(settings)[0]}/status"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own configured URL
            status = json.loads(response.read())
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return ServiceCheck(name, False, f"not reachable ({type(exc).__name__}); check CONNECT_URL")
    states = [status.get("connector", {}).get("state")] + [t.get("state") for t in status.get("tasks", [])]
    return ServiceCheck(name, all(s == "RUNNING" for s in states), " / ".join(str(s) for s in states))


class ServiceHealth:
    """Probes every ``interval_s`` in a daemon thread, started on the first read."""

    def __init__(self, settings: Settings, mongo_client: MongoClient, interval_s: float = 2.0, *,
                 stack: EmbeddedStack | None = None) -> None:
        self.settings = settings
        self.mongo = mongo_client
        self.interval_s = interval_s
        self.stack = stack
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
        stack = self.stack.status() if self.stack is not None else None
        if stack is not None and stack.plan is not Plan.CONFIGURED and stack.phase in (Phase.STARTING, Phase.FAILED):
            report = stack_report(stack)
        else:
            fix = service_fix(self.settings, stack)
            end_offsets, kafka_check = self._kafka(fix)
            report = HealthReport(self._mongo(fix), kafka_check, check_cdc(self.settings, fix=fix),
                                  check_archive(self.settings, fix=fix), end_offsets, time.time())
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

    def _mongo(self, fix: str) -> ServiceCheck:
        try:
            mongo.ping(self.mongo)
        except PyMongoError as exc:
            hint = fix if self.settings.embedded_mongo else \
                "check MONGO_URI, and that the server runs as a replica set (README 'Real services')"
            return ServiceCheck("MongoDB", False, f"{mongo.describe_address(self.settings)} is not reachable "
                                                  f"({type(exc).__name__}); {hint}")
        return ServiceCheck("MongoDB", True, mongo.describe_address(self.settings))

    def _kafka(self, fix: str) -> tuple[dict[int, int], ServiceCheck]:
        topic = self.settings.trades_topic
        hint = fix if self.settings.embedded_kafka else "check KAFKA_BOOTSTRAP_SERVERS"
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
