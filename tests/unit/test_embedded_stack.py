"""What ``streamlit run app.py`` does about the local stack: start it when no address is configured and
nothing runs, start nothing otherwise, say what went wrong, and give fixes that are true for how it runs."""

from __future__ import annotations

import functools
import json
import os
import socket
import sys
import threading
import time

import pytest

from pipeline.domain.state import MarketState
from pipeline.domain.status import QueryState
from pipeline.settings import Settings
from pipeline.sinks import mongo
from pipeline.waits import wait_until
from stack import proc
from stack.embedded import EmbeddedStack, Phase, Plan, StackStatus, choose_plan, configured_addresses, running_services
from stack.process import ServiceError, ServiceProcess, exclusive, free_port
from stack.watchdog import Guard, stop_recorded
from ui.health import service_fix, stack_report
from ui.runtime import AppRuntime

JARS = {"SPARK_JARS": "/nowhere/spark-sql-kafka.jar"}  # set, so that no test here runs Maven


def settings_of(tmp_path, **env: str) -> Settings:
    return Settings.from_env({"STOCKDASH_DATA_DIR": str(tmp_path), "LOCAL_MONGO_PORT": str(free_port()),
                              "LOCAL_KAFKA_PORT": str(free_port()), **env})


def test_any_address_counts_as_configured(tmp_path):
    assert configured_addresses(settings_of(tmp_path)) == []
    assert configured_addresses(settings_of(tmp_path, MONGO_URI="mongodb://db:27017/?replicaSet=rs0")) == ["MONGO_URI"]
    assert configured_addresses(settings_of(tmp_path, KAFKA_BOOTSTRAP_SERVERS="k:9092")) == ["KAFKA_BOOTSTRAP_SERVERS"]
    # CONNECT_URL names a service only where one is used.
    assert configured_addresses(settings_of(tmp_path, CONNECT_URL="http://c:8083")) == []
    assert configured_addresses(settings_of(tmp_path, CDC_MODE="connect", CONNECT_URL="http://c:8083")) == ["CONNECT_URL"]
    assert configured_addresses(settings_of(tmp_path, CDC_MODE="debezium", CONNECT_URL="http://c:8083")) == ["CONNECT_URL"]


def test_the_plan_starts_only_with_nothing_configured_and_no_stranger_on_the_ports(tmp_path):
    embedded, configured = settings_of(tmp_path), settings_of(tmp_path, KAFKA_BOOTSTRAP_SERVERS="k:9092")
    assert choose_plan(embedded, running=[], open_ports=[]) is Plan.LOCAL
    assert choose_plan(embedded, running=["mongo", "kafka"], open_ports=[27017, 9092]) is Plan.LOCAL  # reused
    assert choose_plan(embedded, running=[], open_ports=[27017]) is Plan.ELSEWHERE
    for running, ports in (([], []), (["mongo"], [27017])):
        assert choose_plan(configured, running=running, open_ports=ports) is Plan.CONFIGURED


def test_running_services_are_read_from_pid_files_that_name_a_live_process(tmp_path):
    me = proc.read(os.getpid())
    assert me is not None
    (tmp_path / "mongo.pid").write_text(json.dumps({"pid": os.getpid(), "start_time": me.start_time,
                                                    "command": list(me.cmdline)}))
    (tmp_path / "kafka.pid").write_text('{"pid": 1, "start_time": 1, "command": ["java", "kafka.Kafka"]}')
    (tmp_path / "start.lock").write_text("")
    assert running_services(tmp_path) == ["mongo"]
    assert running_services(tmp_path / "missing") == []


def test_with_addresses_configured_nothing_starts_and_the_settings_are_kept(tmp_path):
    settings = settings_of(tmp_path, MONGO_URI="mongodb://db:27017/?replicaSet=rs0", **JARS)
    stack = EmbeddedStack(settings, log=lambda _: None)
    assert stack.status().plan is Plan.CONFIGURED and stack.status().phase is Phase.STARTING
    assert stack.start() == settings
    status = stack.status()
    assert (status.phase, status.started) == (Phase.READY, ())
    assert "MONGO_URI" in status.detail and "starts nothing" in status.detail
    assert not (tmp_path / "run").exists()


def test_a_stack_answering_on_the_ports_from_elsewhere_is_used_as_it_is(tmp_path):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        settings = settings_of(tmp_path, LOCAL_MONGO_PORT=str(port), **JARS)
        stack = EmbeddedStack(settings, log=lambda _: None)
        ready = stack.start()
    assert stack.status().plan is Plan.ELSEWHERE and stack.status().started == ()
    assert ready.mongo_uri == settings.effective_mongo_uri and ready.kafka_bootstrap_servers == settings.effective_kafka_bootstrap
    assert str(port) in stack.status().detail


def test_a_failed_start_says_what_is_wrong_and_the_job_is_not_made(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no java, no mvn
    printed: list[str] = []
    stack = EmbeddedStack(settings_of(tmp_path, **JARS), log=printed.append)
    made: list[Settings] = []
    stack.start_in_background(then=made.append)
    wait_until(lambda: stack.status().phase is not Phase.STARTING, timeout=30, what="the start settled")
    status = stack.status()
    assert status.phase is Phase.FAILED and status.plan is Plan.LOCAL and made == []
    assert status.error is not None and "Java 17+ is needed" in status.error and "\n" not in status.error
    assert any(line.startswith("start-up failed: Java 17+ is needed") for line in printed)
    stack.stop()
    assert stack.status().phase is Phase.FAILED  # stays visible; stop() is harmless after a failure


def test_fixes_never_send_an_app_user_to_make_run(tmp_path):
    embedded, configured = settings_of(tmp_path), settings_of(tmp_path, KAFKA_BOOTSTRAP_SERVERS="k:9092")
    own = service_fix(embedded, StackStatus(Plan.LOCAL, Phase.READY, "up"))
    assert "python -m stack up" in own and "restart the app" in own
    assert service_fix(embedded) == own  # a runtime made by a test or a host: the addresses decide
    assert "restart the app" not in service_fix(configured, StackStatus(Plan.CONFIGURED, Phase.READY, "-"))
    assert "STOCKDASH_DATA_DIR" in service_fix(embedded, StackStatus(Plan.ELSEWHERE, Phase.READY, "-"))
    for settings in (embedded, configured):
        assert "make run" not in service_fix(settings)


def test_while_the_stack_starts_or_after_it_failed_every_service_says_so():
    starting = stack_report(StackStatus(Plan.LOCAL, Phase.STARTING, "kafka: starting …"))
    assert starting.problems == [] and all(check.ok is None and "kafka: starting" in check.detail
                                           for check in (starting.mongo, starting.kafka, starting.cdc, starting.archive))
    failed = stack_report(StackStatus(Plan.LOCAL, Phase.FAILED, "-", error="Java 17+ is needed"))
    assert len(failed.problems) == 3 and "Java 17+ is needed" in failed.cdc.detail


def test_the_query_status_follows_the_start_up(tmp_path):
    settings = settings_of(tmp_path, **JARS)
    stack = EmbeddedStack(settings, log=lambda _: None)
    runtime = AppRuntime(settings, MarketState(), None, mongo.client(settings, timeout_ms=100), stack=stack)
    try:
        assert runtime.query_status().state is QueryState.STARTING
        stack._update(phase=Phase.FAILED, error="Java 17+ is needed")
        assert runtime.query_status().state is QueryState.FAILED
    finally:
        runtime.stop()


def sleeper(tmp_path, name: str = "svc", **fields: object) -> ServiceProcess:
    return ServiceProcess(name=name, command=[sys.executable, "-c", "import time; time.sleep(300)"],
                          run_dir=tmp_path / "run", log=lambda _: None, **fields)  # type: ignore[arg-type]


def test_a_cancel_ends_the_wait_for_readiness_and_stops_the_service(tmp_path):
    cancel = threading.Event()
    service = sleeper(tmp_path, ready=lambda: False, cancel=cancel, start_timeout=120)
    threading.Timer(0.5, cancel.set).start()
    began = time.monotonic()
    with pytest.raises(ServiceError, match="cancelled"):
        service.start()
    assert time.monotonic() - began < 30 and not service.running() and not service.pid_file.exists()


def test_a_service_that_exits_fails_at_once_not_after_its_timeout(tmp_path):
    service = ServiceProcess(name="svc", command=[sys.executable, "-c", "raise SystemExit(3)"], run_dir=tmp_path / "run",
                             ready=lambda: False, start_timeout=120, log=lambda _: None)
    began = time.monotonic()
    with pytest.raises(ServiceError, match="exited with code 3"):
        service.start()
    assert time.monotonic() - began < 30


def test_one_start_at_a_time_per_data_folder(tmp_path):
    lock = tmp_path / "run" / "start.lock"
    with exclusive(lock, timeout=1, what="free"):
        result: list[str] = []

        def second() -> None:
            try:
                with exclusive(lock, timeout=0.5, what="free"):
                    result.append("entered")
            except ServiceError as exc:
                result.append(str(exc))

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(10)
        assert len(result) == 1 and "another process holds" in result[0]
    with exclusive(lock, timeout=1, what="free"):
        pass  # released on leaving


def test_the_guard_stops_only_the_recorded_processes_and_ends_when_released(tmp_path):
    guard = Guard(tmp_path / "run")
    first, second = (sleeper(tmp_path, name, ready=lambda: True, on_spawn=functools.partial(guard.record, name))
                     for name in ("svc", "other"))
    other_record = None
    try:
        first.start()
        second.start()
        watchdog = guard._process
        assert watchdog is not None and watchdog.poll() is None  # spawned with the first service
        other_record = proc.read_pid_file(second.pid_file)
        assert other_record is not None
        # "other" was restarted by someone else since: its pid file names another process, which is left alone.
        second.pid_file.write_text(json.dumps({"pid": os.getpid(), "start_time": 1, "command": ["x"]}))
        assert stop_recorded(guard.owner_file) == ["svc"]
        assert not first.running() and proc.still_runs(other_record) and not guard.owner_file.exists()
    finally:
        guard.release()
        first.stop()
        if other_record is not None and proc.still_runs(other_record):
            os.kill(other_record.pid, 9)
    assert watchdog.poll() is not None
