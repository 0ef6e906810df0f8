"""The app as ``make run`` serves it (``streamlit run app.py``, same flags) on a free port against the bench's
stack, in a process group of its own, with its MarketState instrumented (:mod:`bench.app_probe`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil

from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.waits import wait_until
from stack.process import free_port

READY_S = 120  # `streamlit run` answering (imports, the stack's checks)
STOP_S = 60  # Spark's shutdown included


class AppServer:
    def __init__(self, settings: Settings, data_dir: Path, probe_symbol: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state_log = data_dir / "app-state.log"
        self.log = data_dir / "logs" / "streamlit.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.state_log.write_text("")
        command = [sys.executable, "-m", "bench.app_probe", probe_symbol, str(self.state_log),
                   "run", "app.py", "--server.headless", "true", "--server.address", "127.0.0.1",
                   "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
                   "--server.port", str(self.port)]
        env = {**os.environ, **settings.service_env(), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
        with open(self.log, "ab") as log:  # the child has its own copy of the descriptor
            # A session of its own: stop() ends the app and the Spark JVM it started, nothing else.
            self.process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self) -> None:
        def healthy() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"the app ended:\n{self.log.read_text()[-3000:]}")
            with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                return response.status == 200

        wait_until(healthy, timeout=READY_S, interval=0.2, what="streamlit run answering")

    def jvm_pids(self) -> list[int]:
        """The Spark JVM(s) the app started (there once the first page view started its queries)."""
        try:
            return [child.pid for child in psutil.Process(self.pid).children(recursive=True) if "java" in child.name()]
        except psutil.Error:
            return []

    def state_seen(self) -> dict[str, tuple[float, str]]:
        """Probe price -> (when the app's state took it, epoch s; "live" or "record")."""
        seen: dict[str, tuple[float, str]] = {}
        for line in self.state_log.read_text().splitlines():
            parts = line.split()
            if len(parts) in (3, 6):
                seen.setdefault(parts[2], (float(parts[0]), parts[1]))
        return seen

    def live_stages(self) -> dict[str, tuple[float, ...]]:
        """Probe price -> (Kafka appended the trade, and its live tick; the app's feed polled the tick; the
        state took it), epoch s; for the probes that came by the live ticks."""
        stages: dict[str, tuple[float, ...]] = {}
        for line in self.state_log.read_text().splitlines():
            parts = line.split()
            if len(parts) == 6:
                stages.setdefault(parts[2], (float(parts[3]), float(parts[4]), float(parts[5]), float(parts[0])))
        return stages

    def stop(self) -> None:
        """SIGTERM to the app (Streamlit then stops its runtime and Spark), to its descendants too if it is
        gone already; SIGKILL after ``STOP_S`` to any of them left. Each by its pid."""
        try:
            app = psutil.Process(self.pid)
            members = [app, *app.children(recursive=True)]
        except psutil.NoSuchProcess:
            members = []
        for process in members if self.process.poll() is not None else members[:1]:
            _signal(process, signal.SIGTERM)
        _, alive = psutil.wait_procs(members, timeout=STOP_S)
        for process in alive:
            _signal(process, signal.SIGKILL)
        self.process.wait(timeout=10)


def _signal(process: psutil.Process, sig: signal.Signals) -> None:
    try:
        process.send_signal(sig)
    except psutil.NoSuchProcess:
        pass
