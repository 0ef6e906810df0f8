"""Where whatever feeds MarketState stands: one typed status, read by every page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pipeline.settings import StreamMode


class QueryState(Enum):
    STARTING = "starting"
    RUNNING = "running"  # the query runs in this process
    READING = "reading"  # the query runs elsewhere; this process reads what it writes
    RESTARTING = "restarting"  # it failed and is being restarted (``error`` says why)
    FAILED = "failed"  # it failed and nothing restarts it (a query started without its supervisor)
    STOPPED = "stopped"

    @property
    def healthy(self) -> bool | None:
        """True when figures flow, None while starting, False otherwise."""
        return {QueryState.RUNNING: True, QueryState.READING: True, QueryState.STARTING: None}.get(self, False)


@dataclass(frozen=True)
class QueryStatus:
    """A snapshot of the streaming query's health, as the Pipeline page and the banners show it."""

    state: QueryState
    mode: StreamMode = "microbatch"
    error: str | None = None
    restarts: int = 0
    progress: Mapping[str, Any] = field(default_factory=dict)  # Spark's last progress report
    read_at: float | None = None  # reading mode: when the writer's output was last read
    last_batch: int | None = None  # reading mode: the newest batch read
    live: str | None = None  # the default mode's live-ticks path: where it stands, or why it is down

    def describe(self) -> str:
        """One line for a status card."""
        text = f"{self.state.value}: {self.error}" if self.error else self.state.value
        if self.state is QueryState.READING:
            text = f"runs elsewhere; this app reads what it writes (batch {self.last_batch})"
        elif self.state is QueryState.RUNNING:
            text = "running: micro-batch record with live ticks" if self.mode == "realtime" else "running in micro-batch mode"
            if self.live and not self.live.endswith("running"):
                text += f" ({self.live})"
        if self.restarts:
            text += f" · restarted {self.restarts} time(s)"
        return text
