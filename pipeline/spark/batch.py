"""The micro-batch handler (``foreachBatch``): summarise -> classify -> persist -> apply.

One Spark job per batch summarises the parsed change events (``spark.summary``); its few rows are sorted
by outcome into per-symbol aggregates, candles, recent ticks, deletes and set-aside messages, merged with
what is known, written to the sinks, and only then installed in MarketState. A crash in between
re-runs the batch, and every write is idempotent per batch (per-key batch ids, or upserts by event id).

Event-time watermark for candles, per symbol: the symbol's latest trade time seen before the batch minus
the allowed lateness. Ticks older than that are *late*: counted in the since-start figures, left out
of candles, written to the late ledger.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import PyMongoError
from pyspark.sql import DataFrame

from pipeline.domain.candles import Candle, candles_of_minute, merge_candle
from pipeline.domain.metrics import StockAggregate, merge
from pipeline.domain.replay import ReplayClock, advanced, replay_floors
from pipeline.domain.snapshot import BatchReport, BatchResult, SetAside, Tick
from pipeline.domain.state import MarketState
from pipeline.sinks import codec
from pipeline.sinks.activity import ActivityStore
from pipeline.sinks.ledger import Ledger, late_record, rejected_record
from pipeline.sinks.publish import AggregatePublisher
from pipeline.sinks.store import AggregateStore, CandleStore, ReplayClockStore
from pipeline.spark.parse import check_symbols
from pipeline.spark.summary import summarize_batch

log = logging.getLogger("stockdash.batch")


@dataclass
class BatchSinks:
    """Where a batch's results are written before the in-memory state changes (each optional)."""

    aggregates: AggregateStore | None = None
    candles: CandleStore | None = None
    rejected: Ledger | None = None
    late: Ledger | None = None
    published: AggregatePublisher | None = None
    activity: ActivityStore | None = None
    clock: ReplayClockStore | None = None

    def close(self) -> None:
        for sink in (self.rejected, self.late, self.published):
            if sink is not None:
                sink.close()


@dataclass
class Classified:
    """One batch's summary rows sorted by outcome (``late_rows``/``rejected_rows``: Spark rows)."""

    aggregates: dict[str, StockAggregate] = field(default_factory=dict)
    candles: dict[tuple[str, int, int], Candle] = field(default_factory=dict)
    ticks: list[Tick] = field(default_factory=list)
    rejected_rows: list[Any] = field(default_factory=list)
    late_rows: list[Any] = field(default_factory=list)
    deletes: int = 0
    messages: int = 0
    offsets: dict[int, int] = field(default_factory=dict)  # per partition, the greatest offset in the batch
    newest_db_us: dict[int, int] = field(default_factory=dict)  # per partition, the newest database time


def _tick(symbol: str, row: Any) -> Tick:
    return Tick(symbol=symbol, trade_time=codec.utc_from_micros(row.trade_time_us), event_id=row.event_id,
                trade_id=row.trade_id, price=row.price, quantity=row.quantity, side=row.side,
                ingest_time=codec.utc_from_micros(row.ingest_time_us))


def classify(rows: Iterable[Any]) -> Classified:
    """Sort the rows of :func:`summarize_batch` by outcome, merging a symbol's minutes into one aggregate."""
    found = Classified()
    for row in rows:
        found.messages += row.messages
        found.offsets[row.partition] = max(row.max_offset, found.offsets.get(row.partition, -1))
        found.newest_db_us[row.partition] = max(row.max_db_time_us, found.newest_db_us.get(row.partition, 0))
        if row.outcome in ("tick", "late"):
            aggregate = codec.from_spark(row.asDict())
            found.aggregates[row.symbol] = merge(found.aggregates.get(row.symbol), aggregate)
            found.ticks.extend(_tick(row.symbol, tick) for tick in row.recent)
            found.late_rows.extend(row.set_aside)
            if row.outcome == "tick":
                for candle in candles_of_minute(row.symbol, row.window_start_s, aggregate):
                    found.candles[candle.key] = merge_candle(found.candles.get(candle.key), candle, None)
        elif row.outcome == "delete":
            found.deletes += row.messages
        else:
            found.rejected_rows.extend(row.set_aside)
    return found


class StoppedMidBatch(Exception):
    """The query was stopped while this batch ran; it was not committed, and runs again at the next start."""


# What Spark takes for a foreachBatch function interrupted by ``query.stop()`` (``StreamExecution.PROXY_ERROR``,
# matched against the error's whole text by a pattern that recurses once per character): said in those words
# and short. The long Py4J error a stop otherwise raises (a Python traceback holding the Java one) overflowed
# the stream thread's stack in that match, and the JVM printed a StackOverflowError at every stop mid-batch.
STOPPED_MID_BATCH = ("py4j.protocol.Py4JJavaError: An error occurred while calling the batch handler: "
                     "java.lang.InterruptedException (the query was stopped mid-batch; it runs again at the next start)")


class BatchHandler:
    """The ``foreachBatch`` function: collects one small result and hands it to the sinks, then the state."""

    def __init__(self, state: MarketState, known_symbols: Callable[[], Iterable[str]], sinks: BatchSinks | None = None,
                 lateness_s: int = 120, replay_horizon_s: int = 600) -> None:
        self.state = state
        self.known_symbols = known_symbols
        self.sinks = sinks or BatchSinks()
        self.lateness_us = lateness_s * 1_000_000
        self.replay_horizon_s = replay_horizon_s
        self.clock: ReplayClock | None = self.sinks.clock.load() if self.sinks.clock is not None else None
        self.stopping = threading.Event()  # set before the query is stopped

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        try:
            self._handle(batch, batch_id)
        except Exception:
            if not self.stopping.is_set():
                raise
            raise StoppedMidBatch(STOPPED_MID_BATCH) from None

    def _handle(self, batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        latest_before = self.state.latest_trade_us()
        watermarks = {symbol: latest - self.lateness_us for symbol, latest in latest_before.items()}
        session_start_us = self.state.session_start_us()
        # One partition: a micro-batch is small, and one task without a shuffle beats two stages.
        rows = summarize_batch(check_symbols(batch.coalesce(1), self.known_symbols()), watermarks,
                               session_start_us=session_start_us,
                               replay_floors_us=replay_floors(self.clock, batch_id, self.replay_horizon_s)).collect()
        collected = time.monotonic()
        if not rows:
            return
        found = classify(rows)
        aggregates = self.state.merged_with(batch_id, found.aggregates.values())
        candles = self.state.merged_candles(batch_id, found.candles.values(), latest_before)
        clock = advanced(self.clock, batch_id, found.newest_db_us)
        if self.sinks.clock is not None:
            self.sinks.clock.save(clock)  # first: a re-run of this batch must find the floor it ran with
        set_aside = self._persist(batch_id, aggregates, candles, found, (watermarks, latest_before, session_start_us))
        self.clock = clock
        now = time.monotonic()
        report = BatchReport(batch_id, time.time(), now - started, found.messages,
                             sum(a.trades for a in found.aggregates.values()), collected - started, now - collected)
        self.state.apply_batch(BatchResult(batch_id, tuple(aggregates), tuple(candles), tuple(found.ticks),
                                           found.deletes, set_aside, report, found.offsets))
        self._save_activity(batch_id, found.ticks, report)

    def _save_activity(self, batch_id: int, ticks: Sequence[Tick], report: BatchReport) -> None:
        """What readers show besides the figures; not the record, so a failure is logged, not retried."""
        if self.sinks.activity is None:
            return
        now = time.time()
        recent = self.state.recent_ticks_of({t.symbol for t in ticks})
        try:
            self.sinks.activity.save(batch_id, recent, report,
                                     (now - t.ingest_time.timestamp() for t in ticks if t.ingest_time is not None))
        except PyMongoError as exc:
            log.error("batch %d: latest trades and report not persisted (%s: %s)", batch_id, type(exc).__name__,
                      str(exc)[:200])

    def _persist(self, batch_id: int, aggregates: Sequence[StockAggregate], candles: Sequence[Candle],
                 found: Classified, clocks: tuple[Mapping[str, int], Mapping[str, int], int | None]) -> SetAside:
        """Durable writes, before the state changes; returns what to count as newly set aside: without a
        ledger every set-aside row, with one the records it had not stored before (the counts loaded at
        start come from the ledger, so they stay exact after re-runs)."""
        sinks = self.sinks
        rejected = [rejected_record(row, batch_id) for row in found.rejected_rows]
        watermarks, latest_before, session_start_us = clocks
        late = [late_record(row, batch_id, watermarks.get(row.symbol), latest_before.get(row.symbol), session_start_us)
                for row in found.late_rows]
        if sinks.rejected is not None:
            rejected = sinks.rejected.write(rejected)
        if sinks.late is not None:
            late = sinks.late.write(late)
        if sinks.candles is not None:
            sinks.candles.save(batch_id, candles)
        if sinks.aggregates is not None:
            sinks.aggregates.save(batch_id, aggregates, found.offsets)
        if sinks.published is not None:
            sinks.published.publish(aggregates, candles)
        return SetAside.of(rejected, late)
