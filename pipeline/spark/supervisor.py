"""One supervisor for both streaming modes: keeps a query running, restarts a failed one, says where it is.

A query that fails (Kafka or MongoDB gone, say) is restarted from its checkpoint after the pauses of
:data:`RESTART_BACKOFF_S`, the last one repeating, until :meth:`SupervisedQuery.stop`. Exactly once
still holds across restarts: the checkpoint, and idempotent writes per batch. Each failure is logged in
one line and shown in the state and the typed :class:`QueryStatus`, never as a trace.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.domain.state import MarketState
from pipeline.domain.status import QueryState, QueryStatus
from pipeline.settings import Settings, StreamMode

if TYPE_CHECKING:
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger("stockdash.supervisor")

RESTART_BACKOFF_S = (2.0, 5.0, 10.0, 30.0)
WATCH_EVERY_S = 1.0


def error_summary(error_text: str) -> str:
    """One line of a Spark/py4j error: the innermost exception message, not a trace."""
    lines = [line.strip().removeprefix("Caused by: ") for line in error_text.splitlines()
             if line.strip() and not line.strip().startswith("at ")]
    for line in reversed(lines):
        if "Error" in line.split(":")[0] or "Exception" in line.split(":")[0]:
            return line[:500]
    return (lines[0] if lines else "unknown error")[:500]


def dropped_as_old(progress: Sequence[Mapping[str, Any]], after_batch: int) -> tuple[int, int]:
    """(events dropped by a watermark in the batches after ``after_batch``, the last batch id reported)."""
    dropped, last = 0, after_batch
    for report in progress:
        batch = int(report.get("batchId", -1))
        if batch > after_batch:
            dropped += sum(int(op.get("numRowsDroppedByWatermark", 0)) for op in report.get("stateOperators", []))
            last = max(last, batch)
    return dropped, last


class SupervisedQuery:
    """A streaming query with its supervisor. Subclasses start the query (:meth:`_start_query`), release
    what a start opened (:meth:`_release`) and close what lives as long as the object (:meth:`_close`)."""

    mode: StreamMode = "microbatch"

    def __init__(self, settings: Settings, state: MarketState | None) -> None:
        self.settings = settings
        self.state = state
        self.query: StreamingQuery | None = None
        self.error: str | None = None  # why the query is down, while it is
        self.restarts = 0
        self._started = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress_seen = -1  # the last batch whose progress report was read
        # The supervisor's last look at a running query. Pages ask for the status at every redraw, and each
        # look is three calls into the JVM (~0.1 s on a loaded machine): they get this one, at most
        # WATCH_EVERY_S old.
        self._watched: QueryStatus | None = None

    # -- what a mode provides --------------------------------------------------------------------
    def _start_query(self) -> StreamingQuery:
        raise NotImplementedError

    def _release(self) -> None:
        """Close what :meth:`_start_query` opened (before a restart, and at stop)."""

    def _close(self) -> None:
        """Close what lives as long as this object (at stop)."""

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> SupervisedQuery:
        """Start synchronously, unsupervised; raises on failure."""
        self.query = self._start_query()
        self._started.set()
        return self

    def start_in_background(self) -> SupervisedQuery:
        """Start in a thread that then keeps the query running (the app must not wait ~10 s for Spark)."""
        self._thread = threading.Thread(target=self._supervise, name=f"{self.mode}-query", daemon=True)
        self._thread.start()
        return self

    def wait_started(self, timeout: float) -> bool:
        return self._started.wait(timeout)

    def _supervise(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            problem = self._problem()
            if problem is None:
                attempt = 0
                self._watched = self._running_status()
                self._note_dropped_as_old()
                self._stopping.wait(WATCH_EVERY_S)
                continue
            if self.query is not None or self.error is not None:  # a failure, not the first start
                delay = RESTART_BACKOFF_S[min(attempt, len(RESTART_BACKOFF_S) - 1)]
                self.error = problem
                log.error("%s query is down: %s; restarting in %.0f s (attempt %d)", self.mode, problem, delay, attempt + 1)
                if self.state is not None:
                    self.state.record_error(f"{problem} (restarting in {delay:.0f} s)")
                if self._stopping.wait(delay):
                    break
                attempt += 1
            self._restart()

    def _restart(self) -> None:
        failed_before = self.error is not None
        try:
            self._stop_query()
            self._release()
            self.start()
        except Exception as exc:  # noqa: BLE001 - logged, shown on the page and retried, never a trace
            self.query = None
            self.error = error_summary(f"{type(exc).__name__}: {exc}")
            return
        if failed_before:
            self.restarts += 1
            log.info("%s query restarted (%d restarts)", self.mode, self.restarts)
        self.error = None

    def _note_dropped_as_old(self) -> None:
        """Say it when the replay filter dropped events as older than its horizon (Spark reports them per batch
        in its progress): taken for replays, they are not counted, and that must never go unnoticed."""
        if self.query is None or self.state is None:
            return
        dropped, self._progress_seen = dropped_as_old(self.query.recentProgress, self._progress_seen)
        if dropped:
            log.error("%d change events were older than the replay horizon (DEDUPE_HORIZON_S) and were dropped as "
                      "replays", dropped)
            self.state.record_dropped_as_old(dropped)

    def _problem(self) -> str | None:
        """Why the query is not running, or None when it is."""
        if self.query is None:
            return self.error or "not started yet"
        exception = self.query.exception()
        if exception is not None:
            return error_summary(str(exception))
        return None if self.query.isActive else "the query stopped"

    def status(self) -> QueryStatus:
        """Where the query stands, with Spark's last progress report while it runs."""
        if self._stopping.is_set():
            return QueryStatus(QueryState.STOPPED, self.mode)
        if self.error is not None:
            return QueryStatus(QueryState.RESTARTING, self.mode, self.error, self.restarts)
        if self.query is None:
            return QueryStatus(QueryState.STARTING, self.mode)
        if self._thread is not None:
            return self._watched or QueryStatus(QueryState.STARTING, self.mode)
        exception = self.query.exception()
        if exception is not None:
            return QueryStatus(QueryState.FAILED, self.mode, error_summary(str(exception)), self.restarts)
        return self._running_status()

    def _running_status(self) -> QueryStatus:
        assert self.query is not None
        return QueryStatus(QueryState.RUNNING if self.query.isActive else QueryState.STOPPED, self.mode,
                           restarts=self.restarts, progress=self.query.lastProgress or {})

    def _stop_query(self) -> None:
        if self.query is None:
            return
        try:
            self.query.stop()
        except Exception:  # noqa: BLE001 - stopping a dead query must not hide the real problem
            log.debug("stopping the %s query failed", self.mode, exc_info=True)
        self.query = None

    def stop(self) -> None:
        """Stop the supervisor, the query and what it holds; harmless when called twice."""
        self._stopping.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=60)
        self._stop_query()
        self._release()
        self._close()

    def __enter__(self) -> SupervisedQuery:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
