"""Reading mode: the app shows aggregates that a streaming job running elsewhere (``python -m pipeline
job``, ``spark-submit``, a Spark cluster) writes to MongoDB, instead of hosting the query itself.

``AggregateReader`` polls ``stock_aggregates`` and ``candles`` for documents of a newer batch, and the
set-aside ledgers for their counts, and loads them into a MarketState; several app replicas can read
one set of aggregates. It offers the same ``status()``/``stop()`` as MarketJob, so pages need not care.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from pymongo.errors import PyMongoError

from pipeline.domain.candles import CANDLE_HISTORY_S, Candle
from pipeline.domain.snapshot import Persisted
from pipeline.domain.state import MarketState
from pipeline.domain.status import QueryState, QueryStatus
from pipeline.settings import Settings
from pipeline.sinks import codec, mongo
from pipeline.sinks.activity import ActivityStore, since_kept
from pipeline.sinks.ledger import Ledger, dead_letters, late_ledger
from pipeline.sinks.store import AggregateStore, CandleStore, stored_offsets

log = logging.getLogger("stockdash.reader")
T = TypeVar("T")

POLL_S = 0.5
COUNTS_EVERY_S = 5.0


class AggregateReader:
    """Keeps a MarketState up to date with what a job elsewhere writes to MongoDB (reading mode)."""

    def __init__(self, settings: Settings, state: MarketState, poll_s: float = POLL_S, *,
                 persisted_freshness: bool = True) -> None:
        self.settings = settings
        self.state = state
        self.poll_s = poll_s
        # With the live ticks read too, freshness is measured here, as they arrive; the job's own samples
        # (persisted with its batch reports) would mix in its delay, not this app's.
        self.persisted_freshness = persisted_freshness
        self._activity_since = since_kept()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_batch = -1
        self._seen: dict[str, tuple[int, int]] = {}
        self._counts_at = 0.0
        self._ledger_sizes: tuple[int, int] | None = None
        self._error: str | None = None
        self._read_at: float | None = None

    def start_in_background(self) -> AggregateReader:
        self._thread = threading.Thread(target=self._run, name="aggregate-reader", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        client = mongo.client(self.settings)
        try:
            db = client[self.settings.database]
            # The lineage is the writer's business: a reader never deletes what it did not write.
            aggregates, candles = AggregateStore(db, lineage=""), CandleStore(db, lineage="")
            ledgers = dead_letters(self.settings, db), late_ledger(self.settings, db)
            activity = ActivityStore(db)
            while not self._stop.is_set():
                try:
                    self.read_once(aggregates, candles, *ledgers)
                    self._read_activity(activity)
                    self._error = None
                except Exception as exc:  # noqa: BLE001 - the reader must not die: say why, read again
                    cause = "MongoDB is unavailable" if isinstance(exc, PyMongoError) else "reading failed"
                    self._error = f"{cause} ({type(exc).__name__})"
                    log.error("aggregate reader: %s: %s", self._error, str(exc)[:300])
                    self.state.record_error(self._error)
                self._stop.wait(self.poll_s)
        finally:
            client.close()

    def read_once(self, aggregates: AggregateStore, candles: CandleStore, rejected: Ledger, late: Ledger) -> bool:
        """Load what changed since the last read; True if anything did.

        Documents of the newest batch seen are read again each time: a batch's writes are not atomic
        (one bulk write per collection), so a read may have caught only part of them.
        """
        newest = aggregates.collection.find_one({}, {"batch_id": 1}, sort=[("batch_id", -1)])
        if newest is not None and newest["batch_id"] < self._last_batch:
            self._last_batch, self._seen = -1, {}  # the writer started a new checkpoint: batch ids restart
        recent = {"batch_id": {"$gte": self._last_batch}}
        since_s, closes = self._window(candles)
        stored = [doc for doc in aggregates.collection.find(recent) if self._is_new(doc)]
        candle_docs = [doc for doc in candles.collection.find({**recent, "start_s": {"$gte": since_s}}) if self._is_new(doc)]
        counts_due = time.monotonic() - self._counts_at > COUNTS_EVERY_S and self._ledgers_grew(rejected, late)
        self._read_at = time.time()
        if not stored and not candle_docs and not counts_due:
            return False
        decoded = {doc["_id"]: (aggregate, doc) for doc in stored if (aggregate := _decoded(codec.from_bson, doc)) is not None}
        self.state.load(Persisted(
            aggregates={symbol: (aggregate, doc["batch_id"]) for symbol, (aggregate, doc) in decoded.items()},
            offsets={symbol: offsets for symbol, (_, doc) in decoded.items() if (offsets := _decoded(stored_offsets, doc))},
            candles=tuple((candle, doc["batch_id"]) for doc in candle_docs
                          if (candle := _decoded(codec.candle_from_bson, doc)) is not None), closes=tuple(closes),
            rejected_by_reason=rejected.counts() if counts_due else None,
            late_by_symbol=late.counts() if counts_due else None,
            rejected_by_symbol=rejected.counts(by="symbol") if counts_due else None))
        if counts_due:
            self._counts_at = time.monotonic()
        self._last_batch = max([self._last_batch, *(doc["batch_id"] for doc in stored + candle_docs)])
        return True

    def _ledgers_grew(self, rejected: Ledger, late: Ledger) -> bool:
        """Whether a ledger has new records since the counts were last read (records are never deleted): the
        counts scan every record, the sizes are metadata, so a quiet ledger costs nothing."""
        sizes = (rejected.size(), late.size())
        if sizes == self._ledger_sizes:
            self._counts_at = time.monotonic()
            return False
        self._ledger_sizes = sizes
        return True

    def _read_activity(self, activity: ActivityStore) -> None:
        """The latest trades and batch reports the job persisted since the last read."""
        read = activity.load(self._activity_since)
        if read.newest is None or read.newest <= self._activity_since:
            return
        self._activity_since = read.newest
        if not self.persisted_freshness:
            read = replace(read, reports=tuple((report, ()) for report, _ in read.reports))
        self.state.load(Persisted(activity=read))

    def _window(self, candles: CandleStore) -> tuple[int, list[Candle]]:
        """Where candles are read from: at the first read, the whole trading day too, with the previous
        closes; after it, the last CANDLE_HISTORY_S (only newer batches are read)."""
        since_s = int(time.time()) - CANDLE_HISTORY_S
        if self._last_batch >= 0:
            return since_s, []
        day_start = candles.session_start_s()
        return (since_s, []) if day_start is None else (min(since_s, day_start), candles.closes(day_start))

    def _is_new(self, doc: dict) -> bool:
        """Whether this version of a document (by id, batch and trade count) was not loaded yet."""
        version = (doc["batch_id"], doc["trades"])
        if self._seen.get(doc["_id"]) == version:
            return False
        self._seen[doc["_id"]] = version
        return True

    def status(self) -> QueryStatus:
        if self._stop.is_set():
            return QueryStatus(QueryState.STOPPED)
        if self._error:
            return QueryStatus(QueryState.RESTARTING, error=f"{self._error}; reading again every {self.poll_s:g} s")
        return QueryStatus(QueryState.READING, read_at=self._read_at, last_batch=self._last_batch)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _decoded(decode: Callable[[dict], T], document: dict) -> T | None:
    """``decode(document)``, or None (logged) for a document not in the writer's shape: one odd document
    must not stop the reader (a writer of an older version, or a hand edit)."""
    try:
        return decode(document)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        log.error("aggregate reader: skipped document %s (%s: %s)", str(document.get("_id"))[:80],
                  type(exc).__name__, str(exc)[:200])
        return None
