"""The local stack as the app itself starts it: ``streamlit run app.py`` on a bootstrapped checkout.

With no address configured and no local stack running, the app starts the embedded services (MongoDB
stand-in, Kafka, CDC relay, archive) in a background thread, so its first page renders at once and shows
the progress (:meth:`EmbeddedStack.status`); when the process ends it stops what it started. With an
address configured, or a stack already running, it starts nothing. A guard process (:mod:`stack.watchdog`)
stops what it started should the app end without doing so (killed, its terminal closed). ``make run``
(``python -m stack run``) hands the app its stack's addresses: under it the app starts nothing either.

The stack's addresses are those the settings name (``LOCAL_*_PORT`` on 127.0.0.1): the app's MongoDB client
and prober use them from the first page on; the streaming job gets the settings :meth:`LocalStack.start`
returns, with the addresses and Spark's jars filled in, once the services answer.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

from pipeline.settings import Settings
from stack import jvm
from stack.local import LocalStack, StackError
from stack.proc import is_same_process, read_pid_file
from stack.process import port_is_open
from stack.watchdog import Guard

log = logging.getLogger("stockdash.stack")
STOP_WAIT_S = 60.0  # at exit, how long a start under way may take to notice it is cancelled


class Plan(Enum):
    """What the app does about the local stack, decided once from the settings and what runs."""

    CONFIGURED = "configured"  # an address is set: the user runs those services; the app starts nothing
    ELSEWHERE = "elsewhere"  # the embedded ports answer, but not for this data folder's stack: used as it is
    LOCAL = "local"  # this data folder's stack: started, or reused where it runs; what the app started it stops


class Phase(Enum):
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class StackStatus:
    """Where the app's start-up stands: ``detail`` is the latest step (or what is up), ``error`` one line
    saying what went wrong, ``started`` the services this process started (and stops when it ends)."""

    plan: Plan
    phase: Phase
    detail: str
    error: str | None = None
    started: tuple[str, ...] = ()


def configured_addresses(settings: Settings) -> list[str]:
    """The variables that name a service of the user's; any of them set means "start nothing"."""
    named = {"MONGO_URI": settings.mongo_uri, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers}
    if settings.uses_connect:
        named["CONNECT_URL"] = settings.connect_url
    return [name for name, value in named.items() if value]


def embedded_ports(settings: Settings) -> list[int]:
    """The ports the embedded services listen on (127.0.0.1)."""
    ports = [settings.local_mongo_port, settings.local_kafka_port]
    if settings.uses_connect:
        ports.append(settings.local_connect_port)
    return ports


def running_services(run_dir: Path) -> list[str]:
    """This data folder's services whose pid files name their running process (``python -m stack status``)."""
    return sorted(path.stem for path in run_dir.glob("*.pid")
                  if (record := read_pid_file(path)) is not None and is_same_process(record))


def choose_plan(settings: Settings, *, running: Collection[str], open_ports: Collection[int]) -> Plan:
    """CONFIGURED when an address is set; ELSEWHERE when nothing of this data folder runs but an embedded port
    answers (a stack of another folder, say: starting ours would collide on the port); LOCAL otherwise."""
    if configured_addresses(settings):
        return Plan.CONFIGURED
    if not running and open_ports:
        return Plan.ELSEWHERE
    return Plan.LOCAL


def with_addresses(settings: Settings) -> Settings:
    """``settings`` naming the embedded services' addresses explicitly, as :meth:`LocalStack.start` returns them."""
    return settings.with_changes(mongo_uri=settings.effective_mongo_uri,
                                 kafka_bootstrap_servers=settings.effective_kafka_bootstrap)


def _stderr(message: str) -> None:
    print(f"[stack] {message}", file=sys.stderr, flush=True)


class EmbeddedStack:
    """The app's local stack: :meth:`start_in_background` decides and starts; :meth:`stop` (idempotent, at exit)
    cancels a start under way and stops what this object started, nothing else."""

    def __init__(self, settings: Settings, *, log: Callable[[str], None] = _stderr) -> None:
        self.settings = settings
        self._print = log
        self._lock = threading.Lock()
        plan = Plan.CONFIGURED if configured_addresses(settings) else Plan.LOCAL  # LOCAL until checked
        self._status = StackStatus(plan, Phase.STARTING, "checking for a running local stack …")
        self._cancel = threading.Event()
        self._local: LocalStack | None = None
        self._guard = Guard(settings.data_dir / "run")
        self._thread: threading.Thread | None = None

    def status(self) -> StackStatus:
        with self._lock:
            return self._status

    def start_in_background(self, then: Callable[[Settings], None]) -> EmbeddedStack:
        """Start in a daemon thread; once the services answer, ``then(ready settings)`` runs in it."""
        self._thread = threading.Thread(target=self._run, args=(then,), name="local-stack", daemon=True)
        self._thread.start()
        return self

    def _run(self, then: Callable[[Settings], None]) -> None:
        try:
            ready = self.start()
        except Exception as exc:  # noqa: BLE001 - shown as words on the page; the details go to the terminal
            if not self._cancel.is_set():  # a start cancelled by stop() is no failure: the app is ending
                if not isinstance(exc, StackError | jvm.JvmError):
                    log.exception("the local stack did not start")
                self._fail(str(exc) if isinstance(exc, StackError | jvm.JvmError) else f"{type(exc).__name__}: {exc}")
            return
        if not self._cancel.is_set():
            then(ready)

    def start(self) -> Settings:
        """Decide, start what the plan says (blocking) and return the settings the services answer at."""
        s = self.settings
        running = running_services(s.data_dir / "run")
        plan = choose_plan(s, running=running, open_ports=[port for port in embedded_ports(s) if port_is_open(port)])
        self._update(plan=plan)
        given = with_addresses(s) if plan is Plan.ELSEWHERE else s
        ready = self._start_local() if plan is Plan.LOCAL else self._with_jars(given)
        started = tuple(name for name, service in (self._local.services.items() if self._local else ())
                        if service.started_here)
        self._update(phase=Phase.READY, started=started, detail=self._ready_detail(plan, started, running))
        self._note(self.status().detail)
        return ready

    def _start_local(self) -> Settings:
        if not all(jvm.resolved(profile) for profile in ("mongo", "kafka", "spark")):
            self._note("fetching the JVM parts with Maven (the first run downloads them: a few minutes) …")
        self._local = LocalStack(self.settings, log=self._note, cancel=self._cancel, on_spawn=self._guard.record)
        try:
            return self._local.start()
        except BaseException:
            self._guard.release()  # a failed start has stopped what it started
            raise

    def _with_jars(self, settings: Settings) -> Settings:
        # The app hosts the streaming query only in embedded mode; only then does it need Spark's Kafka source.
        if settings.app_mode != "embedded" or settings.spark_jars:
            return settings
        self._note("finding the jars of Spark's Kafka source …")
        return settings.with_changes(spark_jars=jvm.spark_jars())

    def _ready_detail(self, plan: Plan, started: tuple[str, ...], running: Collection[str]) -> str:
        if plan is Plan.CONFIGURED:
            return f"addresses configured ({', '.join(configured_addresses(self.settings))}): this app starts nothing"
        if plan is Plan.ELSEWHERE:
            ports = ", ".join(str(port) for port in embedded_ports(self.settings))
            return (f"a local stack not started from {self.settings.data_dir} answers on ports {ports}: "
                    "this app uses it and starts nothing")
        if not started:
            return "the local stack was running already: this app uses it and leaves it running"
        reused = f"; reused {', '.join(running)}" if running else ""
        return f"started {', '.join(started)}{reused}; this app stops what it started when it ends"

    def stop(self) -> None:
        """Cancel a start under way, stop what this object started; safe to call twice."""
        self._cancel.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(STOP_WAIT_S)
        if self._local is not None:
            self._local.stop()
        self._guard.release()
        if self.status().phase is not Phase.FAILED:
            self._update(phase=Phase.STOPPED, detail="stopped with the app")

    def _note(self, message: str) -> None:
        """A step of the start: shown on the page, and in the terminal as ``python -m stack`` shows it."""
        self._print(message)
        self._update(detail=message)

    def _fail(self, error: str) -> None:
        self._print(f"start-up failed: {error}")
        first_line = error.strip().splitlines()[0] if error.strip() else "unknown error"
        self._update(phase=Phase.FAILED, error=first_line.rstrip(":. "))

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)
