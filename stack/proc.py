"""Processes as Linux's ``/proc`` shows them, and pid files that name a process beyond its pid.

A pid alone does not name a process: after a reboot (or enough forks) the number belongs to another
program. A pid file here holds the pid, the process's start time (``/proc/<pid>/stat`` field 22, clock
ticks since boot) and the command it was started with; a pid counts as ours only while all three match.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcInfo:
    """One process: ``state`` is the one-letter state of ``stat`` ("Z" for a zombie); ``cmdline`` is empty
    for zombies and kernel threads."""

    pid: int
    ppid: int
    pgid: int
    state: str
    start_time: int
    cmdline: tuple[str, ...]


def parse_stat(text: str) -> tuple[str, int, int, int]:
    """(state, ppid, pgid, start time) from the text of ``/proc/<pid>/stat``.

    Field 2 (the command name) is in parentheses and may itself hold spaces and ")", so the fields are
    counted from the last ")": state is field 3, ppid 4, pgid 5, starttime 22.
    """
    rest = text[text.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[2]), int(rest[19])


def read(pid: int) -> ProcInfo | None:
    """The process ``pid`` now, or None when there is none (or it vanished while being read)."""
    try:
        state, ppid, pgid, start_time = parse_stat((PROC / str(pid) / "stat").read_text())
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    return ProcInfo(pid, ppid, pgid, state, start_time, tuple(part.decode(errors="replace") for part in raw.split(b"\0")[:-1]))


def processes() -> Iterator[ProcInfo]:
    """Every process readable now (those that end while being listed are skipped)."""
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (info := read(int(entry.name))) is not None:
            yield info


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie child of ours is reaped on the way and counts as ended."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        # Not our child: a zombie left for its own parent has ended all the same.
        info = read(pid)
        return info is not None and info.state != "Z"


@dataclass(frozen=True)
class PidRecord:
    """The content of a pid file. ``start_time`` and ``command`` are None in a file of the older format,
    which held only a pid: such a pid cannot be told apart from a stranger that reuses the number."""

    pid: int
    start_time: int | None = None
    command: tuple[str, ...] | None = None

    @property
    def verifiable(self) -> bool:
        return self.start_time is not None and self.command is not None


def wait_exec(pid: int, timeout: float = 10.0) -> None:
    """Wait until a child just forked from this process runs its own program: until then its command line
    is still ours, and a pid file checked against it would not match (nor could the child be stopped)."""
    own = read(os.getpid())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = read(pid)
        # An empty command line is the moment of the exec itself (or an exit): not the program's yet either.
        if info is None or own is None or info.state == "Z" or (info.cmdline and info.cmdline != own.cmdline):
            return
        time.sleep(0.005)


def write_pid_file(path: Path, pid: int, command: Sequence[str]) -> PidRecord:
    """Record ``pid``, its start time and ``command`` (atomically: a reader never sees half a file); a child
    just forked is first given the time to run its program (:func:`wait_exec`)."""
    wait_exec(pid)
    info = read(pid)
    if info is None:
        raise ProcessLookupError(f"process {pid} ended before its pid file {path} was written")
    record = PidRecord(pid, info.start_time, tuple(command))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"pid": pid, "start_time": info.start_time, "command": list(command)}) + "\n")
    tmp.replace(path)
    return record


def read_pid_file(path: Path) -> PidRecord | None:
    """The record in ``path``: the JSON of :func:`write_pid_file`, or an older file's bare pid (a record
    without start time and command); None when there is no file or it holds neither."""
    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            return PidRecord(int(data["pid"]), int(data["start_time"]), tuple(str(part) for part in data["command"]))
    except (ValueError, KeyError, TypeError):
        pass
    try:
        return PidRecord(int(text.split()[0]))
    except (ValueError, IndexError):
        return None


def is_same_process(record: PidRecord) -> bool:
    """True while the process ``record`` names runs: same pid, start time and command.

    The command matches when the running command line ends with the recorded arguments (all but the
    program): a launcher script that ``exec``s its real program (pyspark's ``spark-class`` becomes
    ``java ... <our arguments>``) keeps its arguments but not its program name.
    """
    if not record.verifiable or not pid_alive(record.pid):
        return False
    info = read(record.pid)
    if info is None or info.state == "Z" or info.start_time != record.start_time:
        return False
    arguments = (record.command or ())[1:]
    return not arguments or info.cmdline[-len(arguments):] == arguments


def still_runs(record: PidRecord) -> bool:
    """True until the process ``record`` named has ended (its pid gone, or reused: another start time).

    Unlike :func:`is_same_process` the command is not compared: a dying process's command line is
    already empty while it still runs its exit.
    """
    if not pid_alive(record.pid):
        return False
    info = read(record.pid)
    return info is not None and info.state != "Z" and info.start_time == record.start_time


def describe(pid: int) -> str:
    """``pid`` and its command line, for log lines about a pid that is not (or may not be) ours."""
    info = read(pid)
    if info is None or info.state == "Z":
        return f"pid {pid} (not running)"
    return f"pid {pid} ({' '.join(info.cmdline)[:200] or 'no command line'})"
