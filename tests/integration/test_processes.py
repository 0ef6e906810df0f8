"""Children of the tests are stopped with their whole process group, and the end-of-session check finds
the session's leftovers, and only those (never another program from the same checkout)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.settings import PROJECT_ROOT
from pipeline.waits import wait_until
from stack import proc
from tests.children import SESSION_VARIABLE, kill_leftovers, running, session_leftovers, spawn, stop

# A leader that starts a child of its own, as spark-submit's JVM starts the job's Python; the child's pid
# goes to the file named by the first argument.
PARENT_WITH_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[2]])
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(300)
"""
SLEEPER = "import time; time.sleep(300)"
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"


@pytest.fixture
def pids() -> Iterator[list[int]]:
    """Pids this test started outside :mod:`tests.children`, killed at its end whatever happens."""
    started: list[int] = []
    yield started
    for pid in started:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def without_session(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k != SESSION_VARIABLE}, **(extra or {})}


def detached(script: str, env: dict[str, str]) -> int:
    """Start ``script`` (sh) in the background of a shell that exits at once: an orphan, not our descendant."""
    shell = subprocess.run(["sh", "-c", f"{script} >/dev/null 2>&1 & echo $!"], env=env, capture_output=True,
                           text=True, check=True, timeout=30)
    return int(shell.stdout)


def grandchild_of(tmp_path: Path, child_code: str) -> tuple[subprocess.Popen, int]:
    pid_path = tmp_path / "child.pid"
    leader = spawn([sys.executable, "-c", PARENT_WITH_CHILD, str(pid_path), child_code], {}, tmp_path / "leader.log")
    grandchild = wait_until(lambda: pid_path.exists() and int(pid_path.read_text() or 0), timeout=30,
                            what="the leader's child started")
    return leader, grandchild


def test_stop_ends_the_childs_whole_process_group(tmp_path):
    leader, grandchild = grandchild_of(tmp_path, SLEEPER)
    stop(leader)
    assert leader.returncode is not None
    assert not proc.pid_alive(grandchild), "the leader's own child outlived it (it would be re-parented to pid 1)"


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    leader, grandchild = grandchild_of(tmp_path, STUBBORN)
    stop(leader, grace=1.0)
    assert not proc.pid_alive(grandchild)


def test_the_with_launcher_stops_the_group_on_an_error(tmp_path):
    with pytest.raises(RuntimeError), running(spawn([sys.executable, "-c", SLEEPER], {}, tmp_path / "x.log")) as child:
        raise RuntimeError("a failing test body")
    assert child.returncode is not None


def test_an_orphan_of_the_session_is_found_by_its_environment(tmp_path, pids):
    token = os.environ[SESSION_VARIABLE]
    orphan = detached("sleep 300", os.environ.copy())  # re-parented: found only by the inherited token
    pids.append(orphan)
    assert orphan in {info.pid for info in session_leftovers(token, tmp_path)}
    kill_leftovers([info for info in session_leftovers(token, tmp_path) if info.pid == orphan])
    assert not proc.pid_alive(orphan)


def test_another_program_from_this_checkout_is_never_reported(tmp_path, pids):
    """An engineer's app or job from the same checkout: neither our descendant nor carrying our token."""
    mimic = f"{sys.executable} -c '{SLEEPER}' -m pipeline -m stack {PROJECT_ROOT}/pipeline/submit_job.py"
    other = detached(mimic, without_session())
    pids.append(other)
    wait_until(lambda: (info := proc.read(other)) is not None and "-m pipeline" in " ".join(info.cmdline),
               timeout=10, what="the other program started")
    assert other not in {info.pid for info in session_leftovers(os.environ[SESSION_VARIABLE], tmp_path)}


def test_descendants_are_reported_when_they_look_like_ours_and_ignored_otherwise(tmp_path):
    ours = spawn([sys.executable, "-c", SLEEPER, "-m", "stack"], without_session(), tmp_path / "ours.log")
    helper = spawn([sys.executable, "-c", SLEEPER], without_session(), tmp_path / "helper.log")
    try:
        reported = {info.pid for info in session_leftovers("no-such-token", tmp_path)}
        assert ours.pid in reported and helper.pid not in reported
    finally:
        stop(ours, helper)
