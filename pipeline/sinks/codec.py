"""One codec for aggregates wherever they leave or enter the process: BSON documents, JSON messages,
and the rows Spark hands over. Which fields are decimals and times comes from the metric registry.

- BSON: decimals as Decimal128 (exact), times as BSON dates (UTC);
- JSON: decimals as strings (exact), times as ISO-8601 (published topics) or epoch microseconds
  (what Spark writes: pyspark would turn timestamps into naive local times);
- Spark rows: times as epoch microseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Context, Decimal
from typing import Any, overload

from bson.decimal128 import Decimal128

from pipeline.domain.candles import Candle
from pipeline.domain.metrics import DECIMAL_FIELDS, FIELD_NAMES, TIME_FIELDS, StockAggregate


@overload
def utc_from_micros(micros: int) -> datetime: ...
@overload
def utc_from_micros(micros: None) -> None: ...
def utc_from_micros(micros: int | None) -> datetime | None:
    """Epoch microseconds (from Spark) as an aware UTC datetime."""
    return None if micros is None else datetime.fromtimestamp(micros / 1_000_000, tz=timezone.utc)


def _decimal(value: Any) -> Decimal:
    return value.to_decimal() if isinstance(value, Decimal128) else Decimal(value)


# Decimal128 holds 34 digits and refuses to round; the pipeline's bounds keep sums far below that, and
# rounding (instead of failing every write of the batch, for ever) is the safe side if they ever do not.
_DECIMAL128 = Context(prec=34)


def to_bson(aggregate: StockAggregate) -> dict[str, Any]:
    """The aggregate's fields as a MongoDB document's (without ``_id``)."""
    document: dict[str, Any] = {"symbol": aggregate.symbol, **aggregate.fields()}
    for name in DECIMAL_FIELDS:
        document[name] = Decimal128(_DECIMAL128.create_decimal(document[name]))
    return document


def from_bson(document: Mapping[str, Any]) -> StockAggregate:
    values = {name: document[name] for name in FIELD_NAMES}
    for name in DECIMAL_FIELDS:
        values[name] = _decimal(values[name])
    return StockAggregate(document["symbol"], **values)


def candle_from_bson(document: Mapping[str, Any]) -> Candle:
    return Candle(document["symbol"], document["interval_s"], document["start_s"], from_bson(document),
                  document["revised"])


def to_json(aggregate: StockAggregate) -> dict[str, Any]:
    """The aggregate as a JSON object: exact decimals as strings, times in ISO-8601, and its VWAP."""
    values: dict[str, Any] = {"symbol": aggregate.symbol, **aggregate.fields()}
    for name in DECIMAL_FIELDS:
        values[name] = str(values[name])
    for name in TIME_FIELDS:
        values[name] = values[name].isoformat()
    values["vwap"] = str(aggregate.vwap) if aggregate.vwap is not None else None
    return values


def candle_to_json(candle: Candle) -> dict[str, Any]:
    """A candle: its window, OHLC (``close`` is the metrics' NAV) and every metric."""
    metrics = to_json(candle.metrics)
    return {**metrics, "interval_s": candle.interval_s, "start_s": candle.start_s, "close": metrics["nav"],
            "revised": candle.revised}


def from_spark(row: Mapping[str, Any]) -> StockAggregate:
    """From a Spark row's dict (``Row.asDict()``) whose times are epoch microseconds."""
    values = {name: row[name] for name in FIELD_NAMES}
    for name in TIME_FIELDS:
        values[name] = utc_from_micros(values[name])
    return StockAggregate(row["symbol"], **values)
