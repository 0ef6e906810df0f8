"""Small files our long-running services share with the stack and the Pipeline page: a status file
with a heartbeat, and atomic replacement of a file's contents."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

HEARTBEAT_S = 0.5
SILENT_AFTER_S = 5.0  # a status older than this means the service is not running


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: readers see the old or the new contents, never a mix."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


class ServiceStatus:
    """Heartbeat and counters in a JSON file, rewritten at most every ``HEARTBEAT_S`` unless forced."""

    def __init__(self, path: Path, **initial: Any) -> None:
        self.path = path
        self.values: dict[str, Any] = {"pid": os.getpid(), "state": "starting", "started_at": time.time(),
                                       "last_error": None, **initial}
        self._written = 0.0

    def update(self, force: bool = False, **values: Any) -> None:
        self.values.update(values)
        now = time.time()
        if force or now - self._written >= HEARTBEAT_S:
            self.values["heartbeat_at"] = now
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, json.dumps(self.values))
            self._written = now


def read_status(path: Path, pid: int | None = None, now: float | None = None) -> dict[str, Any] | None:
    """The status of a running service (its heartbeat fresh, and its pid if given), else None."""
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    fresh = (now or time.time()) - float(status.get("heartbeat_at") or 0) < SILENT_AFTER_S
    return status if fresh and (pid is None or status.get("pid") == pid) else None
