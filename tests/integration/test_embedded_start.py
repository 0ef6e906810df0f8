"""``streamlit run app.py`` on its own: with no address configured and nothing running, the app's runtime
starts the local stack, a trade inserted with pymongo reaches its MarketState, and when the process ends
(SIGTERM, as Streamlit ends) no process of the stack is left.

The runtime runs in a child process made as the pages make it (``ui.runtime.get_runtime``): its streaming
job owns a SparkSession, which must not be this test session's shared one.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pipeline.domain.stocks import NSE_STOCKS
from pipeline.settings import Settings
from pipeline.sinks import mongo
from pipeline.waits import wait_until
from stack import proc
from stack.embedded import running_services
from stack.local import LocalStack
from stack.process import free_port, free_port_pair
from tests.children import group_members, spawn, stop

pytestmark = [pytest.mark.integration, pytest.mark.spark]

# The app's process, without Streamlit: the runtime as a page gets it, a status line every half second,
# and on SIGTERM a normal exit, whose atexit handler (registered by the runtime) stops what it started.
APP_PROCESS = """
import json, signal, sys, threading
from ui import runtime as ui_runtime

ending = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: ending.set())
runtime = ui_runtime.get_runtime()
while not ending.wait(0.5):
    stack, snapshot = runtime.stack_status(), runtime.state.snapshot()
    print("STATUS " + json.dumps({"phase": stack.phase.value, "plan": stack.plan.value, "error": stack.error,
                                  "started": list(stack.started), "query": runtime.query_status().state.value,
                                  "trades": {symbol: a.trades for symbol, a in snapshot.stocks.items()}}), flush=True)
"""
ADDRESSES = ("MONGO_URI", "KAFKA_BOOTSTRAP_SERVERS", "CONNECT_URL", "CDC_MODE", "APP_MODE")


def latest_status(log: Path) -> dict:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("STATUS ")]
    return json.loads(lines[-1].removeprefix("STATUS ")) if lines else {}


def settled(log: Path, holds: Callable[[dict], bool]) -> dict:
    """The latest status once ``holds`` it (else {}); a failed start fails the test at once, with its reason."""
    status = latest_status(log)
    assert status.get("phase") != "failed", f"the local stack did not start: {status.get('error')}"
    return status if status and holds(status) else {}


def is_ready(status: dict) -> bool:
    return status.get("phase") == "ready"


@pytest.fixture
def app_env(tmp_path: Path) -> dict[str, str]:
    """No address configured; a data folder, ports and a topic of its own."""
    inherited = {name: value for name, value in os.environ.items() if name not in ADDRESSES}
    return {**inherited, "STOCKDASH_DATA_DIR": str(tmp_path / "data"), "LOCAL_MONGO_PORT": str(free_port()),
            "LOCAL_KAFKA_PORT": str(free_port_pair()), "TRADES_TOPIC": f"embedded.{uuid.uuid4().hex[:8]}.transaction"}


def test_the_app_starts_its_own_stack_feeds_the_state_and_stops_the_stack_at_exit(app_env, tmp_path):
    settings = Settings.from_env(app_env)
    log = tmp_path / "app.log"
    app = spawn([sys.executable, "-c", APP_PROCESS], app_env, log)
    try:
        status = wait_until(lambda: settled(log, is_ready), timeout=300,
                            what="the app's local stack ready", describe=lambda: log.read_text()[-3000:])
        assert status["plan"] == "local" and set(status["started"]) == {"mongo", "kafka", "cdc-relay", "archive"}
        run_dir = settings.data_dir / "run"
        assert running_services(run_dir) == sorted(status["started"])
        records = [record for path in run_dir.glob("*.pid") if (record := proc.read_pid_file(path)) is not None]
        symbol = NSE_STOCKS[0].symbol
        client = mongo.client(settings)
        try:
            client[settings.database]["transaction"].insert_one(
                {"symbol": symbol, "price": 1234.5, "quantity": 2, "trade_time": datetime.now(timezone.utc)})
        finally:
            client.close()
        wait_until(lambda: settled(log, lambda status: status["trades"].get(symbol) == 1), timeout=240,
                   what=f"the trade of {symbol} in the app's MarketState", describe=lambda: log.read_text()[-3000:])
        app.send_signal(signal.SIGTERM)
        assert app.wait(timeout=180) == 0, log.read_text()[-3000:]
        wait_until(lambda: not group_members(app.pid), timeout=30, what="the app's own children ended")
        assert [record.pid for record in records if proc.still_runs(record)] == []
        assert running_services(run_dir) == []
        assert "cdc-relay: stopped" in log.read_text() and "mongo: stopped" in log.read_text()
    finally:
        stop(app)
        LocalStack(settings).stop_all()  # a failed test leaves no service behind either


def test_with_an_address_configured_the_app_starts_nothing(app_env, tmp_path):
    """``make run`` hands the app its stack's addresses: the app finds them configured and starts nothing."""
    env = {**app_env, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "APP_MODE": "reader"}
    log = tmp_path / "app.log"
    app = spawn([sys.executable, "-c", APP_PROCESS], env, log)
    try:
        status = wait_until(lambda: settled(log, is_ready), timeout=60,
                            what="the app's start-up settled", describe=lambda: log.read_text()[-3000:])
        assert status["plan"] == "configured" and status["started"] == []
        assert not (Path(app_env["STOCKDASH_DATA_DIR"]) / "run").exists()
        app.send_signal(signal.SIGTERM)
        assert app.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        stop(app)


def test_when_the_app_is_killed_its_guard_stops_what_it_started(app_env, tmp_path):
    """kill -9, a closed terminal, or Streamlit re-raising SIGTERM after its shutdown: no atexit handler runs.
    Reading mode keeps Spark out of it: the stack is what is checked here."""
    env = {**app_env, "APP_MODE": "reader"}
    settings = Settings.from_env(env)
    log = tmp_path / "app.log"
    app = spawn([sys.executable, "-c", APP_PROCESS], env, log)
    try:
        status = wait_until(lambda: settled(log, is_ready), timeout=300,
                            what="the app's local stack ready", describe=lambda: log.read_text()[-3000:])
        assert set(status["started"]) == {"mongo", "kafka", "cdc-relay", "archive"}
        run_dir = settings.data_dir / "run"
        records = [record for path in run_dir.glob("*.pid") if (record := proc.read_pid_file(path)) is not None]
        app.kill()
        app.wait(timeout=30)
        # The guard removes the app's owner file once it has stopped the last service.
        wait_until(lambda: not any(proc.still_runs(record) for record in records) and not list(run_dir.glob("owner-*")),
                   timeout=120, what="the guard stopped the killed app's services",
                   describe=lambda: (settings.data_dir / "logs" / "watchdog.log").read_text(errors="replace"))
        assert running_services(run_dir) == []
        # The guard says what it stopped after it removed the owner file: its lines are whole once it ended.
        wait_until(lambda: not [p for p in proc.processes() if "stack.watchdog" in p.cmdline and str(app.pid) in p.cmdline],
                   timeout=30, what="the guard ended")
        assert (settings.data_dir / "logs" / "watchdog.log").read_text().count("stopped (the app") == 4
    finally:
        stop(app)
        LocalStack(settings).stop_all()
