"""Live ticks: what the real-time query has seen and the micro-batch query has not applied yet.

The default mode runs two queries on the trades topic. The micro-batch query is the record: it persists,
keeps the ledgers and checks every rule, but a batch costs 0.5-1 s. The real-time query passes each valid
trade through in tens of milliseconds (``pipeline.spark.realtime``). The screen shows the record plus
these live ticks, folded with the same metrics and candle rules, so a trade is on screen at once and the
figures never differ from what the record will say once its batch is applied.

Exact by Kafka position: a micro-batch applies every message of a partition up to an offset, and each
symbol's record says up to which offsets it holds the symbol's trades. A live tick is pending while its
offset is past that, and dropped once it is not. A symbol's live ticks are shown only once the record has applied past the first of
them: before that (the app just started) there may be a gap between the two, and the record alone is
shown. The late rule is the record's: a tick older than the symbol's recorded latest trade time minus
the lateness stays out of the candles.

Pure and not thread-safe: ``MarketState`` owns one under its lock.
"""

from __future__ import annotations

import bisect
import functools
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone

from pipeline.domain.candles import CANDLE_INTERVALS_S, Candle, candles_of_minutes, merge_candle, minute_aggregates
from pipeline.domain.days import session_of
from pipeline.domain.metrics import StockAggregate, aggregate_of_run, merge
from pipeline.domain.snapshot import Tick


@dataclass(frozen=True)
class LiveTick:
    """A valid trade as the real-time query passed it on, with its place on the trades topic."""

    tick: Tick
    partition: int
    offset: int


# Per symbol: a record that stopped applying (MongoDB down, say) must not make the live ticks grow without
# bound. Past this, the symbol shows the record alone until the record is past its next live tick.
PENDING_KEPT = 20_000
# Event ids of the latest live ticks: a change event the CDC sent twice (after a restart) is shown once,
# also when the record applied the first copy already. Bounded; the record drops older replays itself.
SEEN_KEPT = 100_000
# Ticks are queued and folded in at the next read (a snapshot, a record's batch), at most this many: folded per poll,
# at 10,000 a second they came one or two per symbol and run, and folding a run costs about what its ticks do.
QUEUED_MAX = 5_000
DEFAULT_LATENESS_S = 120  # CANDLE_LATENESS_S's default; the feed sets the configured one
NO_CUT_US = -(2 ** 63)  # no late rule yet (no record, no session): every tick goes into the candles


def _micros(tick: Tick) -> int:
    return int(tick.trade_time.timestamp() * 1_000_000)


def _minute(tick: Tick) -> int:
    return _micros(tick) // 60_000_000 * 60


@dataclass(frozen=True)
class _Run:
    """Live ticks of one symbol and partition that came together, folded once: their aggregate, and the
    candles of those on time by ``cut_us`` (a tick before it is late by the record's rules)."""

    partition: int
    ticks: tuple[LiveTick, ...]  # by offset
    aggregate: StockAggregate
    candles: tuple[Candle, ...]
    cut_us: int
    first_us: int  # the earliest and latest trade times of its ticks
    last_us: int
    late: int  # ticks before the cut: the record's late ledger will have them

    @classmethod
    def of(cls, partition: int, ticks: list[LiveTick], cut_us: int) -> _Run:
        ticks.sort(key=lambda live: live.offset)
        trades = [live.tick for live in ticks]
        micros = [_micros(trade) for trade in trades]
        on_time = [trade for trade, us in zip(trades, micros, strict=True) if us >= cut_us]
        minutes = minute_aggregates(on_time, _minute)
        # Usually every tick is on time and the run's aggregate is its minutes' (mostly one): folded once.
        aggregate = functools.reduce(merge, minutes.values()) if len(on_time) == len(trades) else aggregate_of_run(trades)
        return cls(partition, tuple(ticks), aggregate, tuple(candles_of_minutes(trades[0].symbol, minutes)),
                   cut_us, min(micros), max(micros), len(trades) - len(on_time))

    def moved_by(self, cut_us: int) -> bool:
        """Whether a new cut puts one of its ticks on the other side (then its candles are folded again)."""
        low, high = sorted((self.cut_us, cut_us))
        return low != high and self.last_us >= low and self.first_us < high


class LiveTicks:
    """Per symbol, the pending live ticks in runs (each folded once when it came), their aggregate and candles.

    A thousand ticks a second come in a few polls: each poll's ticks of a symbol are one run, and what a
    snapshot reads (the symbol's aggregate and candles) is the merge of its few runs. When the record
    applies a batch, runs it holds entirely are dropped and only a run it holds in part (or whose late rule
    moved) is folded again."""

    def __init__(self, lateness_s: int = DEFAULT_LATENESS_S) -> None:
        self.lateness_us = lateness_s * 1_000_000
        self.session_start_us: int | None = None  # ticks before the trading day's start stay out of candles
        self.applied: dict[str, dict[int, int]] = {}  # symbol -> partition -> the greatest offset its record holds
        self.first: dict[str, tuple[int, int]] = {}  # symbol -> (partition, offset) of its first live tick
        self.runs: dict[str, list[_Run]] = {}
        self.places: dict[str, set[tuple[int, int]]] = {}  # symbol -> (partition, offset) of its pending ticks
        self.aggregates: dict[str, StockAggregate] = {}  # symbol -> the merge of its runs
        self.candles: dict[str, dict[tuple[str, int, int], Candle]] = {}
        self.seen: OrderedDict[str, None] = OrderedDict()
        self._shown: tuple[str, ...] | None = None  # symbols(), until add, confirm or reset (a snapshot asks it five times)
        self.queued: list[tuple[float, list[LiveTick]]] = []  # (when queued, ticks), not folded in yet
        self._queued_count = 0

    def queue(self, at: float, ticks: list[LiveTick]) -> bool:
        """Ticks to fold in at the next :meth:`fold`; whether that should be now (the queue is full)."""
        self.queued.append((at, ticks))
        self._queued_count += len(ticks)
        return self._queued_count >= QUEUED_MAX

    def fold(self, recorded_latest_us: Mapping[str, int]) -> list[tuple[float, Tick]]:
        """The queued ticks, as one :meth:`add`: bigger runs. Returns the new ones with when each was queued."""
        queued, self.queued, self._queued_count = self.queued, [], 0
        added = self.add([live for _, ticks in queued for live in ticks], recorded_latest_us)
        queued_at = {id(live.tick): at for at, ticks in queued for live in ticks} if added else {}
        return [(queued_at[id(tick)], tick) for tick in added]

    def add(self, ticks: Iterable[LiveTick], recorded_latest_us: Mapping[str, int]) -> list[Tick]:
        """Take the ticks the record has not applied; returns those new here (a restarted real-time query
        passes some on again)."""
        self._shown = None
        added = []
        fresh: dict[tuple[str, int], list[LiveTick]] = {}
        for live in ticks:
            symbol, place = live.tick.symbol, (live.partition, live.offset)
            self.first.setdefault(symbol, place)
            places = self.places.setdefault(symbol, set())
            if live.offset <= self._applied(symbol, live.partition) or place in places \
                    or live.tick.event_id in self.seen:
                continue
            if len(places) >= PENDING_KEPT:  # the record is not applying: stop holding; it will catch up
                self._forget(symbol)
                fresh = {key: run for key, run in fresh.items() if key[0] != symbol}
                continue
            places.add(place)
            self.seen[live.tick.event_id] = None
            if len(self.seen) > SEEN_KEPT:
                self.seen.popitem(last=False)
            fresh.setdefault((symbol, live.partition), []).append(live)
            added.append(live.tick)
        for (symbol, partition), ticks_of_run in fresh.items():
            run = _Run.of(partition, ticks_of_run, self._cut(symbol, recorded_latest_us))
            self.runs.setdefault(symbol, []).append(run)
            self._merge_in(symbol, run)
        return added

    def confirm(self, applied: Mapping[str, Mapping[int, int]], recorded_latest_us: Mapping[str, int]) -> None:
        """The records of these symbols now hold their trades up to these offsets: drop those live ticks,
        and fold again the runs whose late rule moved with the record."""
        self._shown = None
        for symbol, offsets in applied.items():
            held = self.applied.setdefault(symbol, {})
            for partition, offset in offsets.items():
                held[partition] = max(offset, held.get(partition, -1))
        for symbol in applied.keys() & self.runs.keys():
            cut, runs = self._cut(symbol, recorded_latest_us), []
            for run in self.runs[symbol]:
                done = self._applied(symbol, run.partition)
                kept = [live for live in run.ticks if live.offset > done]
                if len(kept) < len(run.ticks):
                    self.places[symbol].difference_update((run.partition, live.offset) for live in run.ticks
                                                          if live.offset <= done)
                if kept and (len(kept) < len(run.ticks) or run.moved_by(cut)):
                    runs.append(_Run.of(run.partition, kept, cut))
                elif kept:
                    runs.append(run)
            self.runs[symbol] = runs
            self._merge_runs(symbol)

    def _cut(self, symbol: str, recorded_latest_us: Mapping[str, int]) -> int:
        recorded = recorded_latest_us.get(symbol)
        cuts = [cut for cut in (None if recorded is None else recorded - self.lateness_us, self.session_start_us)
                if cut is not None]
        return max(cuts, default=NO_CUT_US)

    def _merge_runs(self, symbol: str) -> None:
        """The symbol's aggregate and candles again from its runs (some were dropped or folded again)."""
        self.aggregates.pop(symbol, None)
        self.candles.pop(symbol, None)
        for run in self.runs.get(symbol, ()):
            self._merge_in(symbol, run)
        if not self.runs.get(symbol):
            self.runs.pop(symbol, None)

    def _merge_in(self, symbol: str, run: _Run) -> None:
        self.aggregates[symbol] = merge(self.aggregates.get(symbol), run.aggregate)
        candles = self.candles.setdefault(symbol, {})
        for candle in run.candles:
            candles[candle.key] = merge_candle(candles.get(candle.key), candle, None)

    def _applied(self, symbol: str, partition: int) -> int:
        return self.applied.get(symbol, {}).get(partition, -1)

    def _forget(self, symbol: str) -> None:
        for held in (self.first, self.runs, self.places, self.aggregates, self.candles):
            held.pop(symbol, None)

    def reset(self) -> None:
        """The feed lost its place: what it holds may have gaps; show the record alone until it is past them."""
        self._shown = None
        self.queued, self._queued_count = [], 0
        for held in (self.first, self.runs, self.places, self.aggregates, self.candles):
            held.clear()

    def saw(self, event_id: str) -> bool:
        """Whether a live tick with this event id came lately (the latest SEEN_KEPT of them)."""
        return event_id in self.seen

    def visible(self, symbol: str) -> bool:
        """Whether the symbol's live ticks follow on from the record with no gap."""
        first = self.first.get(symbol)
        return first is not None and self._applied(symbol, first[0]) >= first[1] and bool(self.runs.get(symbol))

    def shown(self) -> int:
        """How many live ticks are on screen ahead of the record."""
        return sum(len(self.places[symbol]) for symbol in self.symbols())

    def late_by_symbol(self) -> Counter:
        """Per shown symbol, its pending ticks that are late by the record's rule (the late ledger's count)."""
        return Counter({symbol: late for symbol in self.symbols()
                        if (late := sum(run.late for run in self.runs[symbol]))})

    def symbols(self) -> tuple[str, ...]:
        if self._shown is None:
            self._shown = tuple(symbol for symbol in self.runs if self.visible(symbol))
        return self._shown

    def candles_of(self, symbol: str) -> Iterable[Candle]:
        return self.candles.get(symbol, {}).values() if symbol in self.symbols() else ()

    # -- the record with the live ticks, for a snapshot -------------------------------------------
    def minutes_by_day(self) -> dict[str, dict[date, StockAggregate]]:
        """Per shown symbol and session, the merge of its live 1-minute candles (what its day figures gain)."""
        by_day: dict[str, dict[date, StockAggregate]] = {}
        for symbol in self.symbols():
            for candle in self.candles_of(symbol):
                if candle.interval_s == CANDLE_INTERVALS_S[0]:
                    days = by_day.setdefault(symbol, {})
                    day = session_of(datetime.fromtimestamp(candle.start_s, tz=timezone.utc))
                    days[day] = merge(days.get(day), candle.metrics)
        return by_day

    def stocks_with_live(self, recorded: Mapping[str, StockAggregate]) -> dict[str, StockAggregate]:
        stocks = dict(recorded)
        for symbol in self.symbols():
            stocks[symbol] = merge(recorded.get(symbol), self.aggregates[symbol])
        return stocks

    def candles_with_live(self, recorded: Mapping[tuple[str, int], tuple[Candle, ...]],
                          recorded_latest_us: Mapping[str, int]) -> dict[tuple[str, int], tuple[Candle, ...]]:
        """Each series with a live candle, merged as the record will merge it (``revised`` included). Live
        candles are the newest few: only the series' tail from the first of them is rebuilt, not its 12 hours
        (a snapshot is taken many times a second)."""
        series = dict(recorded)
        for symbol in self.symbols():
            by_series: dict[tuple[str, int], list[Candle]] = {}
            for candle in self.candles_of(symbol):
                by_series.setdefault(candle.key[:2], []).append(candle)
            for key, live in by_series.items():
                held = recorded.get(key, ())  # in time order
                cut = bisect.bisect_left(held, min(c.start_s for c in live), key=lambda c: c.start_s)
                tail = {c.start_s: c for c in held[cut:]}
                for candle in live:
                    tail[candle.start_s] = merge_candle(tail.get(candle.start_s), candle, recorded_latest_us.get(symbol))
                series[key] = held[:cut] + tuple(tail[start] for start in sorted(tail))
        return series
