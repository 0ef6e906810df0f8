"""The local stack launcher: reuse, clear errors, idempotent stop, the relay's stored position."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys

import pytest

from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.sinks import mongo, topics
from stack import proc
from stack.connect import connector_config
from stack.local import LocalStack, StackError, kafka_cluster_id
from stack.process import free_port


@pytest.mark.integration
def test_starting_twice_reuses_what_runs_and_stops_nothing_it_did_not_start(stack: Settings, base_settings):
    again = LocalStack(base_settings)
    ready = again.start()
    assert ready.effective_mongo_uri == stack.effective_mongo_uri
    assert not any(service.started_here for service in again.services.values())
    again.stop()
    again.stop()  # idempotent
    assert mongo.ping(mongo.client(stack))
    assert topics.kafka_ready(stack.effective_kafka_bootstrap)


def test_a_port_used_by_another_program_is_named(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        settings = Settings.from_env({"STOCKDASH_DATA_DIR": str(tmp_path), "LOCAL_MONGO_PORT": str(port),
                                      "LOCAL_KAFKA_PORT": str(free_port())})
        with pytest.raises(StackError) as error:
            LocalStack(settings).start()
    assert f"port {port}" in str(error.value) and "already used by another program" in str(error.value)


def test_connect_mode_without_the_connector_jar_says_how_to_fix_it(tmp_path):
    settings = Settings.from_env({"STOCKDASH_DATA_DIR": str(tmp_path), "CDC_MODE": "connect",
                                  "MONGO_URI": "mongodb://db:27017/?replicaSet=rs0", "KAFKA_BOOTSTRAP_SERVERS": "k:9092"})
    with pytest.raises(StackError) as error:
        LocalStack(settings)
    assert "mongo-kafka-connect" in str(error.value)
    assert str(settings.effective_connect_plugin_path) in str(error.value)


def test_connector_config_publishes_full_change_events_to_our_topic():
    settings = Settings.from_env({"CDC_MODE": "connect", "MONGO_URI": "mongodb://db:27017/?replicaSet=rs0",
                                  "TRADES_TOPIC": "trades.x"})
    name, config = connector_config(settings)
    assert name == "mongo-transaction-source"
    assert config["connection.uri"] == "mongodb://db:27017/?replicaSet=rs0"
    assert config["publish.full.document.only"] == "false"
    assert json.loads(config["topic.namespace.map"]) == {"stockmarket.transaction": "trades.x"}


def test_debezium_config_captures_the_collection_into_our_topic_from_the_replica_set():
    settings = Settings.from_env({"CDC_MODE": "debezium", "LOCAL_MONGO_PORT": "27999", "TRADES_TOPIC": "trades.x",
                                  "MONGO_DATABASE": "market"})
    name, config = connector_config(settings)
    assert name == "debezium-transaction-source"
    assert config["connector.class"] == "io.debezium.connector.mongodb.MongoDbConnector"
    assert config["mongodb.connection.string"] == "mongodb://127.0.0.1:27999/?replicaSet=rs0"
    assert (config["capture.scope"], config["capture.target"]) == ("collection", "market.transaction")
    assert (config["capture.mode"], config["snapshot.mode"]) == ("change_streams_update_full", "no_data")
    assert config["tombstones.on.delete"] == "false"  # a null value would be set aside as not_json
    # Debezium names its topic <topic.prefix>.<db>.<collection>; the router renames that one to ours, nothing else.
    route = re.compile(config["transforms.toTradesTopic.regex"])
    assert route.fullmatch(f"{config['topic.prefix']}.market.transaction")
    assert not route.fullmatch(f"__debezium-heartbeat.{config['topic.prefix']}")
    assert config["transforms.toTradesTopic.replacement"] == "trades.x"


def test_kafka_cluster_ids_never_look_like_an_option():
    """One id in 64 would start with "-" and fail the storage tool's argument parsing (seen in CI)."""
    assert not any(kafka_cluster_id().startswith("-") for _ in range(2000))


@pytest.mark.integration
def test_stack_up_prints_only_what_it_provides_quoted_for_eval(stack: Settings, base_settings: Settings):
    """Run against the session's stack (reused, so nothing is started or stopped): the output ``eval``s to
    the stack's addresses; SPARK_JARS, set by the caller, is not repeated."""
    ours = {"STOCKDASH_DATA_DIR": str(base_settings.data_dir), "LOCAL_MONGO_PORT": str(base_settings.local_mongo_port),
            "LOCAL_KAFKA_PORT": str(base_settings.local_kafka_port), "TRADES_TOPIC": base_settings.trades_topic,
            "SPARK_JARS": base_settings.spark_jars or ""}
    inherited = {k: v for k, v in os.environ.items() if k not in base_settings.service_env() and not k.startswith("LOCAL_")}
    up = subprocess.run([sys.executable, "-m", "stack", "up"], env={**inherited, **ours}, cwd=PROJECT_ROOT,
                        capture_output=True, text=True, timeout=180)
    assert up.returncode == 0, up.stderr
    assert "mongo: already running, reused" in up.stderr  # the pid files' processes were recognised as ours
    shown = subprocess.run(["sh", "-c", 'eval "$(cat)"; printf "%s\\n" "$MONGO_URI" "$KAFKA_BOOTSTRAP_SERVERS" '
                            '"${SPARK_JARS-(unset)}"'], input=up.stdout, env={"PATH": "/usr/bin:/bin"},
                           capture_output=True, text=True, check=True)
    assert shown.stdout.splitlines() == [stack.effective_mongo_uri, stack.effective_kafka_bootstrap, "(unset)"]
    assert sorted(line.split("=")[0] for line in up.stdout.splitlines()) == [
        "export KAFKA_BOOTSTRAP_SERVERS", "export MONGO_URI"]


@pytest.mark.integration
def test_pid_files_naming_other_processes_are_neither_reused_nor_signalled(tmp_path, monkeypatch):
    """After a reboot a pid file's number belongs to someone else: here, to this very test process."""
    settings = Settings.from_env({"STOCKDASH_DATA_DIR": str(tmp_path), "LOCAL_MONGO_PORT": str(free_port()),
                                  "LOCAL_KAFKA_PORT": str(free_port())})
    messages: list[str] = []
    local = LocalStack(settings, log=messages.append)
    local.run_dir.mkdir(parents=True)
    me = proc.read(os.getpid())
    assert me is not None
    (local.run_dir / "mongo.pid").write_text(f"{os.getpid()}\n")  # the older format: a bare pid
    (local.run_dir / "kafka.pid").write_text(json.dumps(
        {"pid": os.getpid(), "start_time": me.start_time + 1, "command": local.services["kafka"].command}))
    (local.run_dir / "cdc-relay.pid").write_text(json.dumps(
        {"pid": os.getpid(), "start_time": me.start_time, "command": local.services["cdc-relay"].command}))
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "killpg", lambda pgid, sig: sent.append((pgid, sig)))
    assert not any(service.running() for service in local.services.values())
    local.stop_all()
    for name in ("mongo", "kafka", "cdc-relay"):
        local.services[name].stop()
    assert sent == []
    assert len(messages) == 3 and sum("older format" in m for m in messages) == 1, messages


def test_stack_run_stopped_by_sigterm_exits_0_and_stops_nothing_it_reused(stack: Settings, base_settings: Settings):
    """``make run`` stopped as asked (SIGTERM, Ctrl-C) ends with status 0: make printed "Error 241" every time."""
    ours = {"STOCKDASH_DATA_DIR": str(base_settings.data_dir), "LOCAL_MONGO_PORT": str(base_settings.local_mongo_port),
            "LOCAL_KAFKA_PORT": str(base_settings.local_kafka_port), "TRADES_TOPIC": base_settings.trades_topic,
            "SPARK_JARS": base_settings.spark_jars or ""}
    inherited = {k: v for k, v in os.environ.items() if k not in base_settings.service_env() and not k.startswith("LOCAL_")}
    app = "print('ready', flush=True); import threading; threading.Event().wait(120)"
    run = subprocess.Popen([sys.executable, "-m", "stack", "run", "--", sys.executable, "-c", app],
                           env={**inherited, **ours}, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        assert run.stdout is not None and run.stdout.readline() == "ready\n"
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == 0
    finally:
        run.kill()
        run.communicate(timeout=10)
    assert mongo.ping(mongo.client(stack))  # the session's services, reused, still run
    assert topics.kafka_ready(stack.effective_kafka_bootstrap)
