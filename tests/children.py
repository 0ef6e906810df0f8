"""Child processes of integration tests (relay, job, app) on the session's services, with their own
database, topic and data folder so they never share state with the session's own job; and the check
that a test session leaves no process of its own behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.services.paths import relay_paths
from pipeline.services.relay import ChangeRelay
from pipeline.services.resume_tokens import ResumeTokenStore
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.sinks import mongo, topics
from pipeline.sinks.mongo import seed_stocks
from pipeline.waits import WaitTimeout, wait_until
from stack import proc

# Set (to a random token) in the test session's environment: every process the tests start inherits it,
# so a leftover is recognised as this session's even after its parent died and it was re-parented.
SESSION_VARIABLE = "STOCKDASH_TEST_SESSION"


def spawn(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """``command`` in a new session and process group (so kill -9 reaches only it, and :func:`stop` all
    it started), output to ``log_path``."""
    with open(log_path, "ab") as log:  # the child has its own copy of the descriptor
        return subprocess.Popen(command, env={**os.environ, **env}, cwd=PROJECT_ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def start(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """``python -m <args>`` (this interpreter), as :func:`spawn` does."""
    return spawn([sys.executable, "-m", *args], env, log_path)


def stop(*processes: subprocess.Popen, grace: float = 60.0) -> None:
    """Stop each child's whole process group: SIGTERM to every group, wait until each group is empty
    (``grace`` seconds in all), then SIGKILL what is left. A group, not only the child: spark-submit's
    JVM starts the job's Python as its own child, which outlives a stopped parent."""
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace  # one grace for all: the groups stop in parallel
    for process in processes:
        _await_group(process, deadline)


@contextmanager
def running(process: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """``with running(start(...)) as child:``: the child's process group is stopped on leaving."""
    try:
        yield process
    finally:
        stop(process)


def group_members(pgid: int) -> list[proc.ProcInfo]:
    """The processes of group ``pgid`` that still run (zombies have ended, whoever reaps them)."""
    return [info for info in proc.processes() if info.pgid == pgid and info.state != "Z"]


def _group_ended(process: subprocess.Popen) -> bool:
    return process.poll() is not None and not group_members(process.pid)


def _signal_group(process: subprocess.Popen, sig: signal.Signals) -> None:
    # Once the child is reaped and its group empty, the number may name a stranger's new group: a
    # process with that pid means exactly this (a group's number is not reused while it has members).
    if process.poll() is not None and proc.read(process.pid) is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def _await_group(process: subprocess.Popen, deadline: float) -> None:
    what = f"process group {process.pid} ({' '.join(map(str, process.args))[:120]}) ended"  # type: ignore[arg-type]
    try:
        wait_until(lambda: _group_ended(process), timeout=max(0.1, deadline - time.monotonic()), what=what,
                   interval=0.1)
    except WaitTimeout:
        _signal_group(process, signal.SIGKILL)
        wait_until(lambda: _group_ended(process), timeout=10, what=f"{what} after SIGKILL", interval=0.1,
                   describe=lambda: "; ".join(proc.describe(m.pid) for m in group_members(process.pid)))


def session_leftovers(token: str, session_tmp: Path, spared: Collection[int] = ()) -> list[proc.ProcInfo]:
    """The processes of this test session that still run.

    A process is the session's when it descends from this (pytest's) process, carries ``token`` in its
    environment as :data:`SESSION_VARIABLE` (every child of the session inherits it, re-parented orphans
    too) or names ``session_tmp`` in its arguments. Of those, reported are the ones carrying the token and
    those whose arguments name this checkout, ``session_tmp``, ``-m pipeline``, ``-m stack`` or
    ``submit_job.py``. Never reported: this process, its ancestors, zombies, and the process trees of
    ``spared`` (those end with this process). Another program from the same checkout (an engineer's app,
    another test session) is neither descendant nor token carrier, so it is never reported.
    """
    infos = {info.pid: info for info in proc.processes()}
    excluded = _ancestry(infos, os.getpid()) | _tree(infos, set(spared))
    descendants = _tree(infos, {os.getpid()})
    tmp_mark = f"{session_tmp}{os.sep}"
    marks = (f"{PROJECT_ROOT}{os.sep}", tmp_mark, "-m pipeline", "-m stack", "submit_job.py")
    entry = f"{SESSION_VARIABLE}={token}".encode()
    left = []
    for info in infos.values():
        if info.pid in excluded or info.state == "Z":
            continue
        arguments = " ".join(info.cmdline[1:])  # not the program: every venv Python lives in the checkout
        carries = _environment_has(info.pid, entry)
        if (carries or info.pid in descendants or tmp_mark in arguments) and \
                (carries or any(mark in arguments for mark in marks)):
            left.append(info)
    return left


def kill_leftovers(leftovers: Collection[proc.ProcInfo], timeout: float = 10.0) -> None:
    """SIGKILL each leftover that is still the same process (same start time), and wait until they ended."""
    records = [proc.PidRecord(info.pid, info.start_time, info.cmdline) for info in leftovers]
    for record in records:
        if proc.still_runs(record):
            try:
                os.kill(record.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    wait_until(lambda: not any(proc.still_runs(record) for record in records), timeout=timeout,
               what="leftover processes killed")


def pyspark_gateways() -> list[int]:
    """The pid of pyspark's JVM when this process started one: it is stopped when this process ends (it
    watches its stdin), so it and its workers are no leftovers while pytest still runs."""
    context = sys.modules.get("pyspark.context")
    gateway = getattr(getattr(context, "SparkContext", None), "_gateway", None)
    process = getattr(gateway, "proc", None)
    return [process.pid] if process is not None else []


def _tree(infos: dict[int, proc.ProcInfo], roots: set[int]) -> set[int]:
    """``roots`` and all their descendants."""
    children: dict[int, list[int]] = {}
    for info in infos.values():
        children.setdefault(info.ppid, []).append(info.pid)
    tree, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo.extend(children.get(pid, []))
    return tree


def _ancestry(infos: dict[int, proc.ProcInfo], pid: int) -> set[int]:
    """``pid`` and its ancestors."""
    line: set[int] = set()
    while pid in infos and pid not in line:
        line.add(pid)
        pid = infos[pid].ppid
    return line


def _environment_has(pid: int, entry: bytes) -> bool:
    try:
        return entry in (proc.PROC / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return False  # ended, or another user's: not ours either way


def isolated(stack: Settings, data_dir: Path, prefix: str) -> Settings:
    """Settings of a pipeline of its own: database (seeded with the NSE stocks) and topic."""
    name = f"{prefix}{uuid.uuid4().hex[:6]}"
    settings = stack.with_changes(database=name, trades_topic=f"{name}.transaction", data_dir=data_dir)
    client = mongo.client(settings)
    try:
        seed_stocks(client[name])
    finally:
        client.close()
    topics.ensure_topics(settings)
    return settings


class RunningRelay:
    """A ChangeRelay in a thread of this process, so a test can give it a short delivery timeout, preset its
    state and read its status as it goes."""

    def __init__(self, settings: Settings, delivery_timeout_s: float = 10.0) -> None:
        self.relay = ChangeRelay(settings, delivery_timeout_s=delivery_timeout_s)
        self.thread = threading.Thread(target=self.relay.run, name="test-relay", daemon=True)

    def __enter__(self) -> ChangeRelay:
        self.thread.start()
        return self.relay

    def __exit__(self, *exc_info: object) -> None:
        self.relay.stop.set()
        self.thread.join(timeout=self.relay.delivery_timeout_s + 60)
        assert not self.thread.is_alive(), "the relay did not stop"


def relay_started(settings: Settings, timeout: float = 60) -> None:
    """Wait until a relay started on a fresh pipeline has fixed where its change stream starts: a change made
    before then is not its to relay (it starts at the server's operation time, as on a replica set)."""
    token_path, _ = relay_paths(settings)
    wait_until(lambda: ResumeTokenStore(token_path).load() != (None, None), timeout=timeout,
               what="the relay's start position stored")
