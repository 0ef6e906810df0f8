"""LocalStack: the embedded services, one process each, data and logs under ``settings.data_dir``."""

from __future__ import annotations

import base64
import functools
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from kafka.errors import KafkaError

from pipeline.services.heartbeat import read_status
from pipeline.services.paths import archive_status_path, relay_paths
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.sinks import mongo, topics
from pipeline.sinks.mongo import seed_stocks
from stack import jvm
from stack.proc import PidRecord
from stack.process import ServiceError, ServiceProcess, exclusive

STACK_DIR = Path(__file__).resolve().parent
# The services run for hours under load, so they keep the JIT's optimising tier (C2): C1 alone made the stand-in
# take 69-72 % of a core at 10,000 inserts/s where C2 takes 46-50 % (docs/benchmarks.md, "JVM flags").
JVM_HEAP = ["-Xms64m", "-Xmx512m", "-XX:+UseSerialGC"]
ONE_SHOT_JVM = [*JVM_HEAP, "-XX:TieredStopAtLevel=1"]  # a tool that only starts and ends: compiling more is waste
# Every write and change stream of the stand-in waits out its collector's pauses. With the serial collector, at
# 1,000 inserts/s on the default stack: 31 full collections in 2 minutes, pauses of up to 110 ms (300 ms with the
# benchmarks' oplog), 7.6 s stopped; G1 with a 20 ms target: no full collection, at most 37 ms, 2.2 s stopped,
# the same CPU (docs/benchmarks.md, "JVM flags").
MONGO_JVM = ["-Xms64m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"]
# Long enough for another process to start every service (the start timeouts of mongo, kafka, relay, archive).
START_LOCK_TIMEOUT_S = 300.0


class StackError(RuntimeError):
    """The local stack could not be started; the message names the service and the fix."""



def kafka_cluster_id() -> str:
    """A random KRaft cluster id (a UUID in URL-safe base64), as Kafka's own ``Uuid.randomUuid`` makes it:
    never starting with "-", which the storage tool's argument parser would take for an option (1 in 64)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class LocalStack:
    """Start what ``settings`` leaves embedded, reuse what already runs, stop only what it started.

    >>> with LocalStack(Settings.from_env()) as settings:   # doctest: +SKIP
    ...     print(settings.effective_mongo_uri)

    Setting ``cancel`` (from another thread) makes a :meth:`start` under way stop what it started and fail.
    ``on_spawn(name, record)`` is told of each process as soon as it is started (see :mod:`stack.watchdog`).
    """

    def __init__(self, settings: Settings, *, log: Callable[[str], None] | None = None,
                 cancel: threading.Event | None = None, on_spawn: Callable[[str, PidRecord], None] | None = None) -> None:
        self.settings = settings
        self.run_dir = settings.data_dir / "run"
        self._log = log or (lambda message: print(f"[stack] {message}", file=sys.stderr, flush=True))
        self.cancel = cancel or threading.Event()
        self.services: dict[str, ServiceProcess] = {}
        self._build_services()
        for name, service in self.services.items():
            # A pid file naming a process that is not the service is reported in the stack's own log.
            service.log = self._log
            service.cancel = self.cancel
            if on_spawn is not None:
                service.on_spawn = functools.partial(on_spawn, name)

    # -- services ---------------------------------------------------------------------------
    def _build_services(self) -> None:
        s = self.settings
        if s.embedded_mongo or s.embedded_kafka:
            java = jvm.java_executable()
            if s.embedded_mongo:
                self.services["mongo"] = self._mongo_service(java)
            if s.embedded_kafka:
                self.services["kafka"] = self._kafka_service(java)
        if s.cdc_mode == "relay":
            self.services["cdc-relay"] = self._python_service("cdc-relay", "pipeline.services.relay", relay_paths(s)[1])
        elif s.connect_url is None:
            from stack.connect import connect_service

            try:
                self.services["kafka-connect"] = connect_service(s, self.run_dir)
            except ServiceError as exc:
                raise StackError(str(exc)) from None
        self.services["archive"] = self._python_service("archive", "pipeline.services.archive", archive_status_path(s),
                                                        "run")

    def _mongo_service(self, java: str) -> ServiceProcess:
        s = self.settings
        storage = ["--memory"] if s.local_mongo_storage == "memory" else ["--data-dir", str(s.data_dir / "mongo")]
        return ServiceProcess(
            name="mongo",
            command=[java, *MONGO_JVM, f"-Xmx{s.local_mongo_heap_mb}m",
                     "-cp", jvm.launcher_classpath(STACK_DIR / "mongo", "mongo"), "MongoLauncher",
                     "--port", str(s.local_mongo_port), "--oplog-max-entries", str(s.local_mongo_oplog_entries), *storage],
            run_dir=self.run_dir,
            port=s.local_mongo_port,
            ready=lambda: mongo.ping(mongo.client(s, timeout_ms=500)),
        )

    def _kafka_service(self, java: str) -> ServiceProcess:
        s = self.settings
        return ServiceProcess(
            name="kafka",
            command=[java, *JVM_HEAP, "-Dlog4j.configuration=none", "-cp", jvm.classpath("kafka"), "kafka.Kafka",
                     str(self._kafka_config())],
            run_dir=self.run_dir,
            port=s.local_kafka_port,
            ready=lambda: topics.kafka_ready(s.effective_kafka_bootstrap),
            start_timeout=90,
        )

    def _python_service(self, name: str, module: str, status_path: Path, *args: str) -> ServiceProcess:
        """One of our services (``python -m module``), ready when its status file says "running"."""
        return ServiceProcess(
            name=name,
            command=[sys.executable, "-m", module, *args],
            run_dir=self.run_dir,
            env=self.settings.service_env(),
            cwd=PROJECT_ROOT,
            ready=lambda: _running(status_path, self.services[name].pid()),
        )

    def _kafka_config(self) -> Path:
        s = self.settings
        kafka_dir = s.data_dir / "kafka"
        log_dir = kafka_dir / "data"
        config = kafka_dir / "server.properties"
        kafka_dir.mkdir(parents=True, exist_ok=True)
        template = (STACK_DIR / "kafka" / "server.properties.template").read_text()
        config.write_text(template.format(port=s.local_kafka_port, controller_port=s.local_kafka_port + 1,
                                          log_dir=log_dir))
        if not (log_dir / "meta.properties").exists():
            # KRaft needs its storage formatted once with a cluster id.
            import subprocess

            cluster_id = kafka_cluster_id()
            result = subprocess.run(
                [jvm.java_executable(), *ONE_SHOT_JVM, "-cp", jvm.classpath("kafka"), "kafka.tools.StorageTool",
                 "format", "-t", cluster_id, "-c", str(config)],
                capture_output=True, text=True,
            )
            if result.returncode != 0:
                raise StackError(f"formatting Kafka storage in {log_dir} failed:\n{result.stdout}{result.stderr}")
        return config

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Settings:
        """Start (or reuse) every service in dependency order; returns settings with their addresses."""
        started = time.monotonic()
        try:
            # One start at a time per data folder: a second one waits, then reuses what the first started.
            with exclusive(self.run_dir / "start.lock", timeout=START_LOCK_TIMEOUT_S, cancel=self.cancel,
                           what=f"the local stack of {self.settings.data_dir} free to start"):
                self._start_services()
            ready = self.ready_settings  # may run Maven (first run): a failure stops what was started too
        except (ServiceError, jvm.JvmError, mongo.MongoUnavailable) as exc:
            self.stop()
            raise StackError(str(exc)) from None
        except BaseException:
            self.stop()
            raise
        self._log(f"ready in {time.monotonic() - started:.1f}s")
        return ready

    def _start_services(self) -> None:
        for name in ("mongo", "kafka"):
            self._start(name)
        self._prepare_data()
        for name in ("kafka-connect", "cdc-relay", "archive"):
            self._start(name)
        if self.settings.uses_connect:
            from stack.connect import register_connector

            register_connector(self.settings)

    @property
    def ready_settings(self) -> Settings:
        s = self.settings
        return s.with_changes(mongo_uri=s.effective_mongo_uri, kafka_bootstrap_servers=s.effective_kafka_bootstrap,
                              spark_jars=s.spark_jars or jvm.spark_jars())

    def _start(self, name: str) -> None:
        service = self.services.get(name)
        if service is None:
            return
        if self.cancel.is_set():
            raise ServiceError(f"{name} not started: the process that starts the stack is ending")
        if not service.running():
            self._log(f"{name}: starting …")
        began = time.monotonic()
        if service.start():
            self._log(f"{name}: started in {time.monotonic() - began:.1f}s (log: {service.log_file})")
        else:
            self._log(f"{name}: already running, reused")

    def _prepare_data(self) -> None:
        self._log("seeding the stock list and creating the topics …")
        client = mongo.client(self.settings)
        try:
            mongo.check_reachable(self.settings, client)
            seed_stocks(client[self.settings.database])
        finally:
            client.close()
        try:
            topics.ensure_topics(self.settings)
        except KafkaError as exc:
            where = ("the local stack's Kafka" if self.settings.embedded_kafka else
                     f"Kafka at {self.settings.effective_kafka_bootstrap} (KAFKA_BOOTSTRAP_SERVERS)")
            raise ServiceError(f"{where} did not answer ({exc}); start it, or check the address "
                               "(unset KAFKA_BOOTSTRAP_SERVERS to use the local stack's)") from None

    def stop(self) -> None:
        """Stop what this object started, in reverse order; safe to call twice."""
        for name in reversed(list(self.services)):
            service = self.services[name]
            if service.started_here:
                service.stop()
                service.started_here = False
                self._log(f"{name}: stopped")

    def stop_all(self) -> None:
        """Stop every service of this data folder, whoever started it (``python -m stack down``)."""
        for name in reversed(list(self.services)):
            if self.services[name].running():
                self.services[name].stop()
                self._log(f"{name}: stopped")

    def __enter__(self) -> Settings:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _running(status_path: Path, pid: int | None) -> bool:
    # The pid check keeps a status file left by an earlier process from counting as this one's.
    status = read_status(status_path, pid)
    return status is not None and status.get("state") == "running"
