"""Child processes of integration tests (relay, job, app) on the session's services, with their own
database, topic and data folder so they never share state with the session's own job."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.sinks import mongo, topics
from pipeline.sinks.mongo import seed_stocks


def spawn(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """``command`` in a new session (so kill -9 reaches only it), output to ``log_path``."""
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(command, env={**os.environ, **env}, cwd=PROJECT_ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def start(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """``python -m <args>`` (this interpreter), as :func:`spawn` does."""
    return spawn([sys.executable, "-m", *args], env, log_path)


def stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=60)


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
