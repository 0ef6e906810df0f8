"""Pid files name a process by pid, start time and command: a pid that is not the service's is never
taken for it and never signalled (after a reboot the number belongs to someone else)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.waits import wait_until
from stack import proc
from stack.process import ServiceProcess


@pytest.fixture
def signals(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    """Every real signal ``stack.process`` would send, recorded instead of sent (``kill(pid, 0)`` probes pass)."""
    sent: list[tuple[str, int, int]] = []
    real_kill = os.kill

    def kill(pid: int, sig: int) -> None:
        if sig == 0:
            return real_kill(pid, 0)
        sent.append(("kill", pid, sig))

    monkeypatch.setattr(os, "kill", kill)
    monkeypatch.setattr(os, "killpg", lambda pgid, sig: sent.append(("killpg", pgid, sig)))
    return sent


def service(run_dir: Path, messages: list[str], command: list[str] | None = None) -> ServiceProcess:
    return ServiceProcess(name="svc", command=command or [sys.executable, "-c", "pass"], run_dir=run_dir,
                          ready=lambda: True, log=messages.append)


def write_record(run_dir: Path, pid: int, start_time: int, command: list[str] | tuple[str, ...]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "svc.pid"
    path.write_text(json.dumps({"pid": pid, "start_time": start_time, "command": list(command)}))
    return path


def this_process() -> proc.ProcInfo:
    info = proc.read(os.getpid())
    assert info is not None
    return info


def test_stat_fields_are_counted_from_the_last_parenthesis():
    fields = [str(n) for n in range(3, 53)]  # fields 3..52 of /proc/<pid>/stat
    fields[0], fields[19] = "S", "987654"  # state (field 3), starttime (field 22)
    assert proc.parse_stat(f"4242 (we (ird) na me) {' '.join(fields)}\n") == ("S", 4, 5, 987654)
    me = this_process()
    assert (me.ppid, me.pgid, me.state) == (os.getppid(), os.getpgid(0), "R")


def test_this_process_with_a_wrong_start_time_is_not_the_service_and_is_never_signalled(tmp_path, signals):
    me, messages = this_process(), []
    pid_file = write_record(tmp_path, os.getpid(), me.start_time - 1, me.cmdline)
    svc = service(tmp_path, messages)
    assert svc.pid() is None and not svc.running()
    svc.stop()
    svc.kill()
    assert signals == []
    assert not pid_file.exists()
    assert len(messages) == 1 and "another program" in messages[0] and str(os.getpid()) in messages[0]


def test_this_process_with_another_command_is_not_the_service(tmp_path, signals):
    write_record(tmp_path, os.getpid(), this_process().start_time, ["/usr/bin/kafka", "--not", "pytest"])
    svc = service(tmp_path, [])
    assert svc.pid() is None
    svc.stop()
    assert signals == []


def test_matching_pid_start_time_and_command_is_recognised(tmp_path):
    me = this_process()
    write_record(tmp_path, os.getpid(), me.start_time, me.cmdline)
    assert service(tmp_path, []).pid() == os.getpid()  # (not stopped: that would be this test run)


def test_a_dead_pid_is_not_running_and_is_not_signalled(tmp_path, signals):
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    tmp_path.mkdir(exist_ok=True)
    record = proc.write_pid_file(tmp_path / "svc.pid", child.pid, child.args)  # type: ignore[arg-type]
    assert proc.is_same_process(record)  # write_pid_file waited for the child to run its own command
    assert child.stdin is not None
    child.stdin.close()
    child.wait(timeout=30)
    messages: list[str] = []
    svc = service(tmp_path, messages)
    assert svc.pid() is None
    svc.stop()
    assert signals == [] and messages == []  # an ended service is the ordinary case: nothing to report


def test_an_older_pid_file_is_read_but_never_signalled_and_the_log_says_why(tmp_path, signals):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "svc.pid").write_text(f"{os.getpid()}\n")
    assert proc.read_pid_file(tmp_path / "svc.pid") == proc.PidRecord(os.getpid())
    messages: list[str] = []
    svc = service(tmp_path, messages)
    assert svc.pid() is None
    svc.stop()
    assert signals == []
    assert len(messages) == 1 and "older format" in messages[0] and "cannot be verified" in messages[0]
    assert f"kill {os.getpid()}" in messages[0]


def test_a_pid_file_of_neither_format_is_ignored(tmp_path):
    (tmp_path / "svc.pid").write_text("not a pid\n")
    assert proc.read_pid_file(tmp_path / "svc.pid") is None
    assert service(tmp_path, []).pid() is None


def test_a_started_service_is_recognised_and_stopped(tmp_path):
    svc = service(tmp_path / "run", [], [sys.executable, "-c", "import time; time.sleep(120)"])
    assert svc.start()
    pid = svc.pid()
    try:
        assert pid is not None and proc.read_pid_file(svc.pid_file).verifiable  # type: ignore[union-attr]
    finally:
        svc.stop()
    assert not proc.pid_alive(pid) and not svc.pid_file.exists()


def test_a_launcher_script_that_execs_its_program_is_still_recognised(tmp_path):
    """As pyspark's spark-class does: ``bash spark-class ARGS`` becomes ``java ... ARGS``."""
    launcher = tmp_path / "launcher"
    launcher.write_text('#!/bin/sh\nexec sleep "$@"\n')
    launcher.chmod(0o755)
    svc = service(tmp_path / "run", [], [str(launcher), "120"])
    assert svc.start()
    pid = svc.pid()
    try:
        assert pid is not None
        wait_until(lambda: (info := proc.read(pid)) is not None and info.cmdline[:1] == ("sleep",), timeout=30,
                   what="the launcher exec'd sleep")
        assert svc.pid() == pid
    finally:
        svc.stop()  # a failed check must not leave its child running
    assert not proc.pid_alive(pid)
