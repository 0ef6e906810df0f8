"""The metric registry: every per-symbol figure is declared once, here, and the rest is derived from it.

Every metric is *mergeable*: the aggregate of a batch combined with the aggregate of everything before
gives the aggregate of the union, whatever the order of ticks or the batch boundaries. A metric is one
of a few kinds, each with its merge rule:

- ``SUM``: adds up (count, volume, turnover: exact decimals, so VWAP = turnover / volume is exact);
- ``MIN`` / ``MAX``: the least / greatest value;
- ``LATEST`` / ``EARLIEST``: the value of the tick with the greatest / least (trade time, event id), kept
  with that time and id (fields ``<name>_time`` and ``<name>_event_id``): NAV and open, by event time.

From :data:`METRICS` come the Spark SQL of both streaming modes (``pipeline.spark.summary``), the
BSON and JSON codecs (``pipeline.sinks.codec``), the aggregate's fields and merge (below) and the
test oracle. Adding a metric is one line in :data:`METRICS`, plus the UI that shows it; a changed
registry starts a new checkpoint (see :data:`SCHEMA_FINGERPRINT`), so the figures are rebuilt.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal
from enum import Enum
from typing import Any

TURNOVER_TYPE = "DECIMAL(38,4)"
# Sums of decimals in Spark's precision: Python's default context (28 digits) would round a large turnover.
SUM_CONTEXT = Context(prec=38)


class Kind(Enum):
    SUM = "sum"
    MIN = "min"
    MAX = "max"
    LATEST = "latest"
    EARLIEST = "earliest"

    @property
    def by_time(self) -> bool:
        return self in (Kind.LATEST, Kind.EARLIEST)


@dataclass(frozen=True)
class Metric:
    """One mergeable figure: ``sql`` is a tick's value in Spark SQL over a parsed tick (``price``,
    ``quantity``, ``side``, ``trade_time`` …); ``of`` is the same value in Python (the test oracle)."""

    name: str
    kind: Kind
    sql: str
    of: Callable[[Any], Any]
    type: type
    label: str


METRICS: tuple[Metric, ...] = (
    Metric("trades", Kind.SUM, "1", lambda tick: 1, int, "number of ticks"),
    Metric("low", Kind.MIN, "price", lambda tick: tick.price, Decimal, "lowest price"),
    Metric("high", Kind.MAX, "price", lambda tick: tick.price, Decimal, "highest price"),
    Metric("nav", Kind.LATEST, "price", lambda tick: tick.price, Decimal, "price of the latest trade (event time)"),
    Metric("open", Kind.EARLIEST, "price", lambda tick: tick.price, Decimal, "price of the earliest trade"),
    Metric("volume", Kind.SUM, "quantity", lambda tick: tick.quantity, int, "shares traded"),
    Metric("turnover", Kind.SUM, f"CAST(price * quantity AS {TURNOVER_TYPE})",
           lambda tick: tick.price * tick.quantity, Decimal, "price × quantity, summed"),
    Metric("buy_volume", Kind.SUM, "CASE WHEN side = 'buy' THEN quantity ELSE 0 END",
           lambda tick: tick.quantity if tick.side == "buy" else 0, int, "shares bought (trades on the buy side)"),
)


@dataclass(frozen=True)
class Field:
    """One stored field of an aggregate: a metric's value, or the time and event id of a by-time metric."""

    name: str
    type: type


def _fields(metric: Metric) -> tuple[Field, ...]:
    value = Field(metric.name, metric.type)
    if not metric.kind.by_time:
        return (value,)
    return value, Field(f"{metric.name}_time", datetime), Field(f"{metric.name}_event_id", str)


FIELDS: tuple[Field, ...] = tuple(field for metric in METRICS for field in _fields(metric))
FIELD_NAMES: tuple[str, ...] = tuple(field.name for field in FIELDS)
DECIMAL_FIELDS: tuple[str, ...] = tuple(field.name for field in FIELDS if field.type is Decimal)
TIME_FIELDS: tuple[str, ...] = tuple(field.name for field in FIELDS if field.type is datetime)
SCHEMA_FINGERPRINT = hashlib.sha256(
    repr([(m.name, m.kind.value, m.sql, m.type.__name__) for m in METRICS]).encode()).hexdigest()[:8]


class StockAggregate:
    """The metrics of one symbol's ticks (since start, or of one candle); immutable, so snapshots share it.

    Fields are the registry's (:data:`FIELD_NAMES`), read as attributes: ``aggregate.nav``.
    """

    __slots__ = ("symbol", "_values")
    symbol: str
    _values: Mapping[str, Any]

    def __init__(self, symbol: str, **values: Any) -> None:
        if set(values) != set(FIELD_NAMES):
            missing, extra = set(FIELD_NAMES) - set(values), set(values) - set(FIELD_NAMES)
            raise TypeError(f"StockAggregate({symbol!r}): missing fields {sorted(missing)}, unknown {sorted(extra)}")
        object.__setattr__(self, "symbol", symbol)
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        try:
            return object.__getattribute__(self, "_values")[name]
        except (KeyError, AttributeError):
            raise AttributeError(f"StockAggregate has no field {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("StockAggregate is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StockAggregate) and (self.symbol, self._values) == (other.symbol, other._values)

    def __hash__(self) -> int:
        return hash((self.symbol, self.nav_time, self.trades))

    def __repr__(self) -> str:
        return f"StockAggregate({self.symbol!r}, {', '.join(f'{k}={v!r}' for k, v in self._values.items())})"

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (self.symbol, dict(self._values))

    @classmethod
    def of_fields(cls, symbol: str, values: dict[str, Any]) -> StockAggregate:
        """From a dict of exactly the registry's fields, taken as it is (made by this module's folds and merges:
        no check, no copy)."""
        aggregate = object.__new__(cls)
        object.__setattr__(aggregate, "symbol", symbol)
        object.__setattr__(aggregate, "_values", values)
        return aggregate

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StockAggregate:
        """From any mapping holding ``symbol`` and every field (more keys are ignored)."""
        return cls(row["symbol"], **{name: row[name] for name in FIELD_NAMES})

    def fields(self) -> dict[str, Any]:
        """Field name -> value, in registry order."""
        return {name: self._values[name] for name in FIELD_NAMES}

    @property
    def vwap(self) -> Decimal | None:
        return (self.turnover / self.volume).quantize(Decimal("0.0001")) if self.volume else None

    @property
    def change_pct(self) -> float | None:
        return float((self.nav - self.open) / self.open * 100) if self.open else None

    @property
    def last_trade_time(self) -> datetime:
        return self.nav_time


def _rebuild(symbol: str, values: dict[str, Any]) -> StockAggregate:
    return StockAggregate(symbol, **values)


# The registry's fields by kind, for the folds below: a loop per kind and no call per metric (the live path
# merges aggregates and candles thousands of times a second; a call per metric took twice as long).
_SUMS = tuple(metric.name for metric in METRICS if metric.kind is Kind.SUM)
_LEASTS = tuple(metric.name for metric in METRICS if metric.kind is Kind.MIN)
_GREATESTS = tuple(metric.name for metric in METRICS if metric.kind is Kind.MAX)
_LATESTS = tuple((f"{m.name}_time", f"{m.name}_event_id", m.name) for m in METRICS if m.kind is Kind.LATEST)
_EARLIESTS = tuple((f"{m.name}_time", f"{m.name}_event_id", m.name) for m in METRICS if m.kind is Kind.EARLIEST)
if len(_SUMS) + len(_LEASTS) + len(_GREATESTS) + len(_LATESTS) + len(_EARLIESTS) != len(METRICS):
    raise TypeError("a metric of a kind the merge below does not know: give the kind its rule there")
# Per metric: its name, its value of a tick, and for a by-time metric the names of its time and event id fields.
_TICK_FIELDS = tuple((m.name, m.of, (f"{m.name}_time", f"{m.name}_event_id") if m.kind.by_time else None) for m in METRICS)


def _merge_values(a: Mapping[str, Any], b: Mapping[str, Any], values: dict[str, Any], sums: bool = True) -> None:
    """Both aggregates' fields into ``values``: sums added (unless ``sums`` is false), extremes and by-time picks
    merged. A by-time metric takes the (time, event id, value) that sorts last (latest) or first (earliest)."""
    if sums:
        for name in _SUMS:
            x = a[name]
            values[name] = SUM_CONTEXT.add(x, b[name]) if isinstance(x, Decimal) else x + b[name]
    for name in _LEASTS:
        values[name] = min(a[name], b[name])
    for name in _GREATESTS:
        values[name] = max(a[name], b[name])
    for when, event_id, name in _LATESTS:
        x, y = (a[when], a[event_id], a[name]), (b[when], b[event_id], b[name])
        values[when], values[event_id], values[name] = x if x >= y else y
    for when, event_id, name in _EARLIESTS:
        x, y = (a[when], a[event_id], a[name]), (b[when], b[event_id], b[name])
        values[when], values[event_id], values[name] = x if x <= y else y


def merge(old: StockAggregate | None, new: StockAggregate) -> StockAggregate:
    """The aggregate of both sets of ticks. Associative and commutative."""
    if old is None:
        return new
    values: dict[str, Any] = {}
    _merge_values(old._values, new._values, values)
    return StockAggregate.of_fields(old.symbol, values)


def grown(total: StockAggregate | None, part: StockAggregate | None, bigger: StockAggregate) -> StockAggregate:
    """``total`` with one of its parts replaced by ``bigger``, an aggregate of the same ticks and more (a
    candle that grew): sums move by the difference, the other kinds merge (a superset changes nothing else)."""
    if total is None or part is None:
        return merge(total, bigger)
    values: dict[str, Any] = {}
    for name in _SUMS:
        now, before, was = bigger._values[name], part._values[name], total._values[name]
        values[name] = SUM_CONTEXT.add(was, SUM_CONTEXT.subtract(now, before)) if isinstance(now, Decimal) \
            else was + now - before
    _merge_values(total._values, bigger._values, values, sums=False)
    return StockAggregate.of_fields(total.symbol, values)


def of_tick(tick: Any) -> StockAggregate:
    """The aggregate of one tick (anything with ``symbol``, ``trade_time``, ``event_id`` and the
    attributes the metrics read): each metric's ``of``."""
    values: dict[str, Any] = {}
    for name, of, by_time in _TICK_FIELDS:
        values[name] = of(tick)
        if by_time:
            values[by_time[0]], values[by_time[1]] = tick.trade_time, tick.event_id
    return StockAggregate.of_fields(tick.symbol, values)


def aggregate_of_run(ticks: Sequence[Any]) -> StockAggregate:
    """The aggregate of a non-empty run of one symbol's ticks, equal to merging each one's :func:`of_tick`,
    in one pass per metric: no aggregate per tick (the live path folds a thousand ticks a second)."""
    if len(ticks) == 1:  # the live path's usual run: one tick of a symbol in a poll
        return of_tick(ticks[0])
    values: dict[str, Any] = {}
    for metric in METRICS:
        of, name = metric.of, metric.name
        if metric.kind.by_time:
            pick = max if metric.kind is Kind.LATEST else min
            keys = (f"{name}_time", f"{name}_event_id", name)
            values.update(zip(keys, pick((tick.trade_time, tick.event_id, of(tick)) for tick in ticks), strict=True))
        elif metric.kind is Kind.SUM:
            parts = [of(tick) for tick in ticks]
            values[name] = functools.reduce(SUM_CONTEXT.add, parts) if metric.type is Decimal else sum(parts)
        else:
            values[name] = (min if metric.kind is Kind.MIN else max)(of(tick) for tick in ticks)
    return StockAggregate.of_fields(ticks[0].symbol, values)


def aggregate_of(ticks: Iterable[Any]) -> dict[str, StockAggregate]:
    """Symbol -> the merged aggregate of the given ticks."""
    result: dict[str, StockAggregate] = {}
    for tick in ticks:
        result[tick.symbol] = merge(result.get(tick.symbol), of_tick(tick))
    return result
