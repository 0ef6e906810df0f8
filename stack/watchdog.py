"""A guard for the services an app started: a small process that outlives the app and stops them when the
app ends without doing so itself.

An app stops what it started on a normal exit, but not when it is killed, when its terminal closes (SIGHUP),
or when Streamlit's server (uvicorn) re-raises SIGTERM with the default action after its own shutdown, which
ends the process before any ``atexit`` handler runs. The app names its services in an owner file
(``<run dir>/owner-<pid>.json``: each one's pid record, written as it is spawned); the guard waits for the app
to end, then stops every service whose pid file still names that same process, newest first. An app that
stops its services itself calls :meth:`Guard.release`, which removes the file and ends the guard.

``python -m stack.watchdog OWNER_PID OWNER_START_TIME OWNER_FILE``
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
from pathlib import Path

from pipeline.settings import PROJECT_ROOT
from stack import proc
from stack.proc import PidRecord, read_pid_file, still_runs
from stack.process import ServiceProcess

STOP_WAIT_S = 10.0  # how long release() waits for the guard to end


class Guard:
    """The app's side: spawns the guard with the first service and keeps the owner file up to date."""

    def __init__(self, run_dir: Path) -> None:
        self.owner_file = run_dir / f"owner-{os.getpid()}.json"
        self._records: dict[str, PidRecord] = {}
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def record(self, name: str, record: PidRecord) -> None:
        """A service was just spawned by this process: guard it from now on."""
        with self._lock:
            if self._process is None:
                self._process = _spawn_guard(self.owner_file)
            self._records[name] = record
            data = {service: {"pid": r.pid, "start_time": r.start_time, "command": list(r.command or ())}
                    for service, r in self._records.items()}
            tmp = self.owner_file.with_name(self.owner_file.name + ".tmp")
            tmp.write_text(json.dumps(data) + "\n")
            tmp.replace(self.owner_file)  # atomic: the guard never reads half a file

    def release(self) -> None:
        """This process stopped its services itself: the guard is not needed any more. Safe to call twice."""
        with self._lock:
            self.owner_file.unlink(missing_ok=True)
            self._records.clear()
            process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_WAIT_S)


def _spawn_guard(owner_file: Path) -> subprocess.Popen:
    me = proc.read(os.getpid())
    if me is None:
        raise RuntimeError("this process is not readable in /proc")
    owner_file.parent.mkdir(parents=True, exist_ok=True)
    log = owner_file.parent.parent / "logs" / "watchdog.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:  # the child has its own copy of the descriptor
        # A session of its own: Ctrl-C and a closing terminal, which end the app, must not end its guard.
        return subprocess.Popen([sys.executable, "-m", "stack.watchdog", str(me.pid), str(me.start_time), str(owner_file)],
                                cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True)


def wait_for_end(owner: PidRecord) -> None:
    """Return once ``owner`` has ended (no deadline: the guard lives as long as the app)."""
    try:
        handle = os.pidfd_open(owner.pid)
    except OSError:  # ended already, or no pidfd (Linux before 5.3): poll instead
        handle = None
    try:
        while still_runs(owner):
            if handle is not None:
                select.select([handle], [], [])  # a pidfd turns readable when its process ends
            else:
                threading.Event().wait(1.0)
    finally:
        if handle is not None:
            os.close(handle)


def stop_recorded(owner_file: Path) -> list[str]:
    """Stop, newest first, each service of ``owner_file`` whose pid file still names the recorded process (one
    restarted by someone else since is left alone); returns the names stopped and removes the file."""
    try:
        data = json.loads(owner_file.read_text())
    except (OSError, ValueError):
        return []  # released, or never written
    stopped = []
    for name, fields in reversed(list(data.items())):
        record = PidRecord(int(fields["pid"]), int(fields["start_time"]), tuple(str(part) for part in fields["command"]))
        if read_pid_file(owner_file.parent / f"{name}.pid") == record:
            ServiceProcess(name=name, command=record.command or (), run_dir=owner_file.parent, ready=lambda: True).stop()
            stopped.append(name)
    owner_file.unlink(missing_ok=True)
    return stopped


def main(argv: list[str]) -> int:
    owner_pid, owner_start, owner_file = int(argv[0]), int(argv[1]), Path(argv[2])
    wait_for_end(PidRecord(owner_pid, owner_start))
    for name in stop_recorded(owner_file):
        print(f"[watchdog] {name}: stopped (the app {owner_pid} that started it ended without stopping it)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
