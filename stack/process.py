"""One background service process: started detached, found again by its pid file, stopped idempotently."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.waits import WaitTimeout, wait_until


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


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


@dataclass
class ServiceProcess:
    """A named process with a log file and a pid file under ``run_dir``.

    ``ready`` is a protocol-level probe (a Mongo ping, a Kafka metadata request ...).
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

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir.parent / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

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
        self.pid_file.write_text(f"{proc.pid}\n")
        self.started_here = True
        self.wait_ready(proc)
        return True

    def wait_ready(self, proc: subprocess.Popen | None = None) -> None:
        def probe() -> bool:
            if proc is not None and proc.poll() is not None:
                raise ServiceError(f"exited with code {proc.returncode}")
            return self._probe()

        try:
            wait_until(probe, timeout=self.start_timeout, what=f"{self.name} ready", interval=0.1)
        except (WaitTimeout, ServiceError) as exc:
            self.stop()
            raise ServiceError(
                f"{self.name} did not become ready ({exc}).\n--- last lines of {self.log_file} ---\n"
                f"{log_tail(self.log_file)}"
            ) from None

    def stop(self, timeout: float = 15.0) -> None:
        """Stop gracefully (SIGTERM, then SIGKILL after ``timeout``); harmless when not running."""
        pid = self.pid()
        if pid is not None:
            self._signal(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid_alive(pid):
                self._signal(pid, signal.SIGKILL)
                wait_until(lambda: not pid_alive(pid), timeout=5, what=f"{self.name} killed")
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """``kill -9``, for fault drills: no chance to clean up."""
        pid = self.pid()
        if pid is not None:
            self._signal(pid, signal.SIGKILL)
            wait_until(lambda: not pid_alive(pid), timeout=5, what=f"{self.name} killed")
        self.pid_file.unlink(missing_ok=True)

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pid, sig)  # the whole session: a JVM's or python's children too
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, sig)
