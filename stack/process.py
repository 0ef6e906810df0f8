"""One background service process: started detached, found again by its pid file, stopped idempotently.

The pid file names the process by pid, start time and command (:mod:`stack.proc`): a pid that now
belongs to another program (after a reboot, say) is never taken for the service, never waited on and
never signalled.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.waits import WaitTimeout, wait_until
from stack.proc import PidRecord, describe, is_same_process, pid_alive, read_pid_file, still_runs, write_pid_file

__all__ = ["ServiceError", "ServiceProcess", "exclusive", "free_port", "free_port_pair", "log_tail", "pid_alive",
           "port_is_open"]


class ServiceError(RuntimeError):
    """A service did not start or is not usable; the message names it and shows its log."""


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_pair() -> int:
    """A free port p with p+1 free too (Kafka's controller listens on p+1)."""
    for _ in range(50):
        port = free_port()
        if port < 65000 and not port_is_open(port + 1):
            try:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise ServiceError("no two adjacent free ports on 127.0.0.1")


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log yet)"
    return "\n".join(text[-lines:])


def _stderr_log(message: str) -> None:
    print(f"[stack] {message}", file=sys.stderr, flush=True)


@dataclass
class ServiceProcess:
    """A named process with a log file and a pid file under ``run_dir``.

    ``ready`` is a protocol-level probe (a Mongo ping, a Kafka metadata request ...). ``log`` receives
    one line whenever the pid file names a process that is not (or cannot be shown to be) this service.
    Setting ``cancel`` ends a wait for readiness at once (the process that waits is ending): the service is
    stopped and the start fails. ``on_spawn`` receives the pid record of a process as soon as it is started.
    """

    name: str
    command: Sequence[str]
    run_dir: Path
    ready: Callable[[], bool]
    port: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    start_timeout: float = 60.0
    started_here: bool = False
    log: Callable[[str], None] = _stderr_log
    cancel: threading.Event | None = None
    on_spawn: Callable[[PidRecord], None] | None = None
    _noted: set[PidRecord] = field(default_factory=set, init=False, repr=False, compare=False)

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir.parent / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """The service's pid while the process its pid file names runs; None when it ended, or when the
        pid now belongs to another program, or the file (older format: a bare pid) cannot show whose it is."""
        record = self._own_record()
        return record.pid if record is not None else None

    def _own_record(self) -> PidRecord | None:
        """The pid file's record while it names this service's running process, as :meth:`pid` says."""
        record = read_pid_file(self.pid_file)
        if record is None:
            return None
        if is_same_process(record):
            return record
        if record not in self._noted and pid_alive(record.pid):
            self._noted.add(record)  # once per record: pid() is polled while waiting for readiness
            self.log(self._not_ours(record))
        return None

    def _not_ours(self, record: PidRecord) -> str:
        if not record.verifiable:
            return (f"{self.name}: {self.pid_file} is of the older format (a bare pid), so whether "
                    f"{describe(record.pid)} is this service cannot be verified: treated as not running and not "
                    f"signalled. If it is a leftover {self.name}, stop it yourself (kill {record.pid}).")
        return (f"{self.name}: {self.pid_file} names {describe(record.pid)}, which is another program "
                f"(start time or command differ, e.g. after a reboot): treated as not running, not signalled.")

    def running(self) -> bool:
        return self.pid() is not None

    def _probe(self) -> bool:
        try:
            return bool(self.ready())
        except Exception:  # noqa: BLE001 - a probe that fails means "not ready"
            return False

    def start(self) -> bool:
        """Start unless already running and ready; returns True when this call started it."""
        if self.pid() is not None:
            self.wait_ready()
            return False
        self.pid_file.unlink(missing_ok=True)
        if self.port is not None and port_is_open(self.port):
            raise ServiceError(
                f"{self.name}: port {self.port} on 127.0.0.1 is already used by another program. "
                f"Stop that program, or choose another port (see README 'Configuration')."
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child, closed below
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                list(self.command),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                env={**os.environ, **self.env},
                start_new_session=True,  # Ctrl-C in the terminal goes to us; we stop it in order
            )
        finally:
            log.close()
        try:
            record = write_pid_file(self.pid_file, proc.pid, self.command)
            if self.on_spawn is not None:
                self.on_spawn(record)
        except ProcessLookupError:
            pass  # it ended at once; wait_ready reports its exit code and log
        self.started_here = True
        self.wait_ready(proc)
        return True

    def wait_ready(self, proc: subprocess.Popen | None = None) -> None:
        """Wait until ``ready`` holds; on a timeout, an exit of ``proc`` or ``cancel``, stop and raise."""
        problems: list[str] = []

        def settled() -> bool:
            # An exit or a cancel settles the wait too: neither is worth waiting out the timeout for. The
            # cancel is checked first: a probe of a service still starting can take seconds (Kafka's: ~2 s).
            if self.cancelled:
                problems.append("cancelled: the process that started it is ending")
            elif self._probe():
                return True
            elif proc is not None and proc.poll() is not None:
                problems.append(f"exited with code {proc.returncode}")
            return bool(problems)

        try:
            wait_until(settled, timeout=self.start_timeout, what=f"{self.name} ready", interval=0.1)
        except WaitTimeout as exc:
            problems.append(str(exc))
        if problems:
            self.stop()
            raise ServiceError(
                f"{self.name} did not become ready ({problems[0]}).\n--- last lines of {self.log_file} ---\n"
                f"{log_tail(self.log_file)}"
            )

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop gracefully (SIGTERM, then SIGKILL after ``timeout``); harmless when not running. Only the
        process the pid file names is signalled, and only while it is verifiably that process."""
        record = self._own_record()
        if record is not None:
            self._signal(record.pid, signal.SIGTERM)
            try:
                wait_until(lambda: not still_runs(record), timeout=timeout, what=f"{self.name} stopped")
            except WaitTimeout:
                self._kill(record)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """``kill -9``, for fault drills: no chance to clean up."""
        record = self._own_record()
        if record is not None:
            self._kill(record)
        self.pid_file.unlink(missing_ok=True)

    def _kill(self, record: PidRecord) -> None:
        if still_runs(record):  # it may have ended (and the pid been reused) since it was checked
            self._signal(record.pid, signal.SIGKILL)
        wait_until(lambda: not still_runs(record), timeout=5, what=f"{self.name} killed")

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pid, sig)  # the whole session: a JVM's or python's children too
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, sig)


@contextmanager
def exclusive(path: Path, *, timeout: float, what: str, cancel: threading.Event | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (``flock``: released by the kernel if this process dies).

    Two processes that start the stack of one data folder at once (two apps, an app and ``python -m stack
    up``) would both find it down and race for its ports; with the lock the second waits, then finds the
    first one's services running and reuses them. A ``cancel`` ends the wait (the body is then run unlocked,
    and is expected to check ``cancel`` itself)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        def locked() -> bool:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return cancel is not None and cancel.is_set()

        try:
            wait_until(locked, timeout=timeout, what=what, interval=0.2)
        except WaitTimeout as exc:
            raise ServiceError(f"{exc}: another process holds {path} (it is starting the same local stack)") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
