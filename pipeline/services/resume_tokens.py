"""Where the CDC relay's change stream goes on from, stored in one small file, and how a position reads."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timezone
from pathlib import Path
from typing import Any

from bson import Timestamp, json_util

from pipeline.services.heartbeat import write_atomically


class ResumeTokenStore:
    """Where the change stream goes on from, in one small file: the last resume token whose events are
    safely in Kafka, or, before the first of them, the operation time the relay first started at (so a
    relay that could not deliver its first events starts again before them, not at a new "now")."""

    START = "startAtOperationTime"

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> tuple[Mapping[str, Any] | None, Timestamp | None]:
        """(resume token, start time): one of them, or neither before the very first start."""
        try:
            stored = json_util.loads(self.path.read_text())
        except FileNotFoundError:
            return None, None
        return (None, stored[self.START]) if self.START in stored else (stored, None)

    def save(self, token: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, json_util.dumps(token))

    def save_start(self, start_at: Timestamp) -> None:
        self.save({self.START: start_at})


def describe_position(token: Mapping[str, Any] | None, start_at: Timestamp | None) -> str:
    """A stored position as a time when it can be read as one (a start time, or a token's cluster time)."""
    if token is not None:
        data = str(token.get("_data", ""))
        # a replica set's (and the stand-in's) token is a KeyString 0x82 + the seconds; an earlier stand-in's the bare timestamp
        hex_seconds = data[2:10] if data.startswith("82") else data[:8] if len(data) == 16 else ""
        try:
            start_at = Timestamp(int(hex_seconds, 16), 0)
        except ValueError:
            return f"resume token {data[:40]}"
    if start_at is None:
        return "an unknown position"
    return f"{start_at.as_datetime().astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
