"""MarketState: the live per-symbol analytics the app reads, owned behind one lock.

The Spark ``foreachBatch`` thread writes through :meth:`MarketState.apply_batch`; Streamlit's script
threads read :meth:`MarketState.snapshot`, an immutable copy taken under the lock, never the live dicts.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from types import MappingProxyType

from pipeline.domain.book import CandleBook
from pipeline.domain.candles import CANDLE_HISTORY_S, Candle, merge_candle
from pipeline.domain.days import session_start_s
from pipeline.domain.live import LiveTick, LiveTicks
from pipeline.domain.live_rejects import LiveReject, LiveRejects
from pipeline.domain.metrics import StockAggregate, merge
from pipeline.domain.recent import RecentTicks
from pipeline.domain.snapshot import Activity, BatchReport, BatchResult, Freshness, MarketSnapshot, Persisted, Tick

RECENT_TICKS_KEPT = 500
CANDLES_KEPT = CANDLE_HISTORY_S // 60  # per symbol and interval: 12 hours of 1-minute candles
FRESHNESS_SAMPLES_KEPT = 50_000
BATCH_REPORTS_KEPT = 2_000
REJECTED_SYMBOLS_KEPT = 2_000  # per-symbol reject counts; the least frequent go first


@dataclass
class MarketState:
    """Thread-safe holder of the market; every mutation bumps ``version``."""

    recent_ticks_kept: int = RECENT_TICKS_KEPT
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stocks: dict[str, StockAggregate] = field(default_factory=dict, repr=False)
    _latest: dict[str, int] = field(default_factory=dict, repr=False)  # NAV times (epoch us), kept: read at each live poll
    _applied_batch: dict[str, int] = field(default_factory=dict, repr=False)
    _recent: RecentTicks = field(init=False, repr=False)
    _rejected: Counter = field(default_factory=Counter, repr=False)
    _late: Counter = field(default_factory=Counter, repr=False)
    _rejected_symbols: Counter = field(default_factory=Counter, repr=False)
    # (applied at, seconds from the trade's ingest time to being applied), and every batch's report
    _freshness: deque = field(default_factory=lambda: deque(maxlen=FRESHNESS_SAMPLES_KEPT), repr=False)
    _reports: deque = field(default_factory=lambda: deque(maxlen=BATCH_REPORTS_KEPT), repr=False)
    _book: CandleBook = field(default_factory=lambda: CandleBook(CANDLES_KEPT), repr=False)
    _deletes: int = 0
    _dropped_as_old: int = 0
    _version: int = 0
    _updated_at: float | None = None
    _last_batch: BatchReport | None = None
    _query_error: str | None = None
    _changed: threading.Condition = field(init=False, repr=False)
    _cached: MarketSnapshot | None = field(default=None, repr=False)
    _live: LiveTicks = field(default_factory=LiveTicks, repr=False)
    _live_rejects: LiveRejects = field(default_factory=LiveRejects, repr=False)
    _live_ledgers: bool = field(default=True, repr=False)  # whether live rejects and late ticks count in the ledgers

    def __post_init__(self) -> None:
        self._changed = threading.Condition(self._lock)
        self._recent = RecentTicks(self.recent_ticks_kept)

    def load(self, persisted: Persisted) -> None:
        """Start from (or, in reading mode, catch up with) what was persisted."""
        with self._lock:
            # Counts left out (None) stay as they are: a reader refreshes them less often than aggregates.
            if persisted.rejected_by_reason is not None:
                self._rejected = Counter(persisted.rejected_by_reason)
            if persisted.late_by_symbol is not None:
                self._late = Counter(persisted.late_by_symbol)
            if persisted.rejected_by_symbol is not None:
                self._rejected_symbols = Counter(persisted.rejected_by_symbol)
            if persisted.activity is not None:
                self._load_activity(persisted.activity)
            for candle in persisted.closes:
                self._book.days.on_close(candle)
            for candle, batch_id in persisted.candles:
                self._book.put(candle, batch_id)
            if persisted.candles:
                self._book.prune()
            for symbol, (aggregate, batch_id) in persisted.aggregates.items():
                self._put_stock(symbol, aggregate, batch_id)
            self._fold_live()
            self._live.confirm(persisted.offsets, self._latest)
            self._version += 1
            self._updated_at = time.time() if persisted.aggregates else self._updated_at
            self._changed.notify_all()

    def _load_activity(self, activity: Activity) -> None:
        for tick in activity.ticks:
            self._recent.add(tick)
        for report, delays in activity.reports:
            self._reports.append(report)
            self._last_batch = report
            self._freshness.extend((report.finished_at, delay) for delay in delays)

    def merged_with(self, batch_id: int, aggregates: Iterable[StockAggregate]) -> list[StockAggregate]:
        """Each batch aggregate merged into what is known, leaving out symbols that already have
        this batch (a batch Spark re-runs after a crash must not count twice)."""
        with self._lock:
            return [
                merge(self._stocks.get(aggregate.symbol), aggregate)
                for aggregate in aggregates
                if self._applied_batch.get(aggregate.symbol, -1) < batch_id
            ]

    def latest_trade_us(self) -> dict[str, int]:
        """Per symbol, the greatest event time the record holds (epoch microseconds)."""
        with self._lock:
            return dict(self._latest)

    def _put_stock(self, symbol: str, aggregate: StockAggregate, batch_id: int) -> None:
        self._stocks[symbol] = aggregate
        self._latest[symbol] = int(aggregate.nav_time.timestamp() * 1_000_000)
        self._applied_batch[symbol] = batch_id

    def session_start_us(self) -> int | None:
        """The start of the trading day the record holds (``pipeline.domain.days``), epoch microseconds."""
        with self._lock:
            return self._session_start_us()

    def _session_start_us(self) -> int | None:
        day = self._book.days.trading_day()
        return None if day is None else session_start_s(day) * 1_000_000

    def apply_live(self, ticks: Iterable[LiveTick], lateness_s: int, rejects: Iterable[LiveReject] = (), *,
                   ledgers: bool = True) -> None:
        """Trades and rejects the real-time query passed on (``pipeline.domain.live``, ``live_rejects``): on
        screen and, with ``ledgers``, in the rejected and late counts until the record has them (only a record
        applied here confirms them by offset). The trades are queued and folded in at the next read."""
        applied_at = time.time()
        ticks = list(ticks)
        with self._lock:
            self._live_ledgers = ledgers
            self._live.lateness_us = lateness_s * 1_000_000
            rejected = ledgers and self._live_rejects.add(rejects)
            if ticks:
                self._updated_at = applied_at
                if self._live.queue(applied_at, ticks):  # nobody reads: bound the queue
                    self._fold_live()
            if ticks or rejected:
                self._version += 1
                self._changed.notify_all()

    def _fold_live(self) -> None:
        """The queued live ticks into the live figures, by the record's late rule as it is now (every change of
        the record folds them first); the new ones into the latest trades, each a freshness sample."""
        if self._live.queued:
            self._live.session_start_us = self._session_start_us()
            added = self._live.fold(self._latest)
            for _, tick in sorted(added, key=lambda new: (new[1].trade_time, new[1].event_id)):
                self._recent.add(tick)
            self._freshness.extend((at, at - t.ingest_time.timestamp()) for at, t in added if t.ingest_time is not None)

    def reset_live(self) -> None:
        """The live feed lost its place (it reconnected): show the record alone until it is past the gap."""
        with self._lock:
            if self._live.first or self._live.queued or self._live_rejects.pending:  # it has followed the topic: afresh
                self._live.reset()
                self._live_rejects.reset()
                self._version += 1
                self._changed.notify_all()

    def merged_candles(self, batch_id: int, candles: Iterable[Candle], latest_before_us: Mapping[str, int]) -> list[Candle]:
        """Like :meth:`merged_with`, for candles; ``latest_before_us`` decides which are revised."""
        with self._lock:
            return [
                merge_candle(self._book.candles.get(c.key), c, latest_before_us.get(c.symbol))
                for c in candles
                if self._book.batch_of(c.key) < batch_id
            ]

    def apply_batch(self, result: BatchResult) -> None:
        """Install the results of one batch (its aggregates come from :meth:`merged_with`; only the query's
        batch thread writes, so nothing changed in between). Its ticks' ingest times become freshness samples."""
        ticks = sorted(result.ticks, key=lambda tick: (tick.trade_time, tick.event_id))
        applied_at = time.time()
        with self._lock:
            self._fold_live()  # by the late rule the live ticks came under
            for aggregate in result.aggregates:
                self._put_stock(aggregate.symbol, aggregate, result.batch_id)
            for tick in ticks:
                self._recent.add(tick)
            for candle in result.candles:
                self._book.put(candle, result.batch_id)
            if result.candles:
                self._book.prune()
            if result.set_aside is not None:
                self._rejected.update(result.set_aside.rejected_by_reason)
                self._rejected_symbols.update(result.set_aside.rejected_by_symbol)
                if len(self._rejected_symbols) > REJECTED_SYMBOLS_KEPT:  # keyed by untrusted input: bounded
                    self._rejected_symbols = Counter(dict(self._rejected_symbols.most_common(REJECTED_SYMBOLS_KEPT // 2)))
                self._late.update(result.set_aside.late_by_symbol)
            self._deletes += result.deletes
            if result.report is not None:
                self._last_batch = result.report
                self._reports.append(result.report)
            # A trade the live ticks brought was sampled then (copying the ids into a set here took ~3.5 ms a batch)
            self._freshness.extend((applied_at, applied_at - t.ingest_time.timestamp())
                                   for t in ticks if t.ingest_time is not None and not self._live.saw(t.event_id))
            self._live.session_start_us = self._session_start_us()
            self._live.confirm({a.symbol: result.offsets for a in result.aggregates}, self._latest)
            if self._live_rejects.confirm(result.offsets) or result.changes_market:
                self._version += 1
                self._updated_at = applied_at
            self._query_error = None
            self._changed.notify_all()

    def record_dropped_as_old(self, count: int) -> None:
        """Change events the replay filter dropped as older than its horizon (taken for replays)."""
        with self._lock:
            self._dropped_as_old += count
            self._version += 1
            self._changed.notify_all()

    def record_error(self, message: str | None) -> None:
        with self._lock:
            self._query_error = message
            self._version += 1
            self._changed.notify_all()

    def snapshot(self) -> MarketSnapshot:
        """An immutable view; the same object until something changes (readers poll it often)."""
        with self._lock:
            if self._cached is not None and self._cached.version == self._version:
                return self._cached
            self._fold_live()
            candles = self._book.series()
            stocks: Mapping[str, StockAggregate] = self._stocks
            if self._live.symbols():
                stocks = self._live.stocks_with_live(stocks)
                candles = self._live.candles_with_live(candles, self._latest)
            live_days = self._live.minutes_by_day()
            trading_day = self._book.days.trading_day({s: max(days) for s, days in live_days.items()})
            self._cached = MarketSnapshot(
                stocks=MappingProxyType(dict(stocks)),
                recent_ticks=MappingProxyType(self._recent.by_symbol()),
                rejected_by_reason=MappingProxyType(dict(self._rejected + self._live_rejects.by_reason())),
                late_by_symbol=MappingProxyType(dict(self._late + self._live.late_by_symbol() if self._live_ledgers
                                                     else self._late)),
                rejected_by_symbol=MappingProxyType(dict(self._rejected_symbols + self._live_rejects.by_symbol())),
                candles=MappingProxyType(candles),
                deletes=self._deletes,
                version=self._version,
                updated_at=self._updated_at,
                last_batch=self._last_batch,
                query_error=self._query_error,
                dropped_as_old=self._dropped_as_old,
                live_ticks=self._live.shown(),
                trading_day=trading_day,
                day_figures=MappingProxyType(self._book.days.figures(trading_day, {
                    symbol: days[trading_day] for symbol, days in live_days.items() if trading_day in days}))
                if trading_day else MappingProxyType({}),
            )
            return self._cached

    def freshness(self, window_s: float = 60.0, now: float | None = None, newest: int | None = None) -> Freshness:
        """Ingest-to-state delay of the trades applied in the last ``window_s`` seconds; of the ``newest`` of them
        only, if given (a look at the current delay that costs no scan of every sample under the lock)."""
        since = (now or time.time()) - window_s
        with self._lock:
            self._fold_live()
            delays = sorted(delay for applied_at, delay in islice(reversed(self._freshness), newest) if applied_at >= since)
        return Freshness.of(delays)

    def batch_reports(self, window_s: float = 600.0, now: float | None = None) -> list[BatchReport]:
        since = (now or time.time()) - window_s
        with self._lock:
            return [report for report in self._reports if report.finished_at >= since]

    @property
    def version(self) -> int:
        """The version a snapshot taken now would have, without building one (a snapshot folds every series)."""
        with self._lock:
            return self._version

    def recent_ticks_of(self, symbols: Iterable[str]) -> dict[str, tuple[Tick, ...]]:
        with self._lock:
            self._fold_live()
            return {symbol: self._recent.of(symbol) for symbol in symbols}

    def wait_for_change(self, after_version: int, timeout: float) -> int:
        """Block until ``version`` exceeds ``after_version`` (or timeout); returns the version."""
        with self._lock:
            self._changed.wait_for(lambda: self._version > after_version, timeout=timeout)
            return self._version
