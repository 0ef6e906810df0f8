"""Kinds of hostile input, each with what the pipeline must do with it: a reject reason (set aside, counted
per reason), "counted" (a valid trade, however odd), or "refused" (MongoDB itself refuses the insert).

Documents go through MongoDB and the CDC relay; raw messages straight onto the trades topic, as a
forged or broken producer would send them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from bson import Decimal128, Int64, ObjectId
from bson.datetime_ms import DatetimeMS

COUNTED, REFUSED = "counted", "refused"


@dataclass(frozen=True)
class Hostile:
    kind: str
    expect: str  # a reject reason, COUNTED or REFUSED
    document: dict | None = None  # inserted into stockmarket.transaction
    raw: bytes | None = None  # produced straight to the trades topic
    key: bytes | None = None
    price: Decimal | None = None  # for COUNTED: the trade's price and quantity, for the oracle
    quantity: int = 1


def documents(symbol: str, at: Callable[[], datetime]) -> list[Hostile]:
    """Hostile trade documents; ``at()`` gives each a fresh trade time (a listed ``symbol`` unless the kind
    is about the symbol, so that the intended reason is the one given)."""
    def trade(**fields: Any) -> dict:
        return {"symbol": symbol, "price": 100.25, "quantity": 1, "side": "buy", "trade_time": at(), **fields}

    def without(name: str) -> dict:
        document = trade()
        document.pop(name)
        return document

    return [
        Hostile("price missing", "missing_price", without("price")),
        Hostile("price text", "invalid_price", trade(price="abc")),
        Hostile("price negative", "invalid_price", trade(price=-5)),
        Hostile("price zero", "invalid_price", trade(price=0)),
        Hostile("price NaN", "invalid_price", trade(price=float("nan"))),
        Hostile("price infinite", "invalid_price", trade(price=float("inf"))),
        Hostile("price 1e300", "invalid_price", trade(price=1e300)),
        Hostile("price over the cap", "invalid_price", trade(price=2_000_000_000)),
        Hostile("price that rounds to 0", "invalid_price", trade(price=Decimal128("1E-6176"))),
        Hostile("price object", "invalid_price", trade(price={"$gt": 0})),
        Hostile("price array", "invalid_price", trade(price=[1, 2])),
        Hostile("price boolean", "invalid_price", trade(price=True)),
        Hostile("price as Decimal128", COUNTED, trade(price=Decimal128("101.1234")), price=Decimal("101.1234")),
        Hostile("price as numeric text (original design)", COUNTED, trade(price="102.5"), price=Decimal("102.5")),
        Hostile("quantity zero", "invalid_quantity", trade(quantity=0)),
        Hostile("quantity negative", "invalid_quantity", trade(quantity=-3)),
        Hostile("quantity fractional", "invalid_quantity", trade(quantity=1.5)),
        Hostile("quantity over the cap", "invalid_quantity", trade(quantity=Int64(10**12))),
        Hostile("quantity text", "invalid_quantity", trade(quantity="ten")),
        Hostile("side hold", "invalid_side", trade(side="hold")),
        Hostile("side number", "invalid_side", trade(side=5)),
        Hostile("symbol missing", "missing_symbol", without("symbol")),
        Hostile("symbol empty", "missing_symbol", trade(symbol="")),
        Hostile("symbol not listed", "unknown_symbol", trade(symbol="NOSUCH")),
        Hostile("symbol markup", "unknown_symbol", trade(symbol="<script>alert(1)</script>")),
        Hostile("symbol operator object", "unknown_symbol", trade(symbol={"$gt": ""})),
        Hostile("symbol unicode", "unknown_symbol", trade(symbol="ИНФОСИС")),
        Hostile("symbol with NUL and controls", "unknown_symbol", trade(symbol=f"{symbol}\x00\x07")),
        Hostile("symbol of 1 MB", "unknown_symbol", trade(symbol="Z" * 1_000_000)),
        Hostile("trade time text", "invalid_trade_time", trade(trade_time="yesterday")),
        Hostile("trade time a day ahead", "absurd_trade_time", trade(trade_time=at() + timedelta(hours=23))),
        Hostile("trade time in 1999", "absurd_trade_time", trade(trade_time=datetime(1999, 12, 31, tzinfo=timezone.utc))),
        Hostile("trade time epoch 1e20", "invalid_trade_time", trade(trade_time=Int64(10**18))),
        Hostile("trade time beyond Python's dates", "invalid_trade_time", trade(trade_time=DatetimeMS(2**62))),
        Hostile("trade time before year 1", "invalid_trade_time", trade(trade_time=DatetimeMS(-(2**62)))),
        Hostile("nested 90 levels", COUNTED, trade(deep=_nested(90), price=104.5, quantity=2), price=Decimal("104.5"),
                quantity=2),
        Hostile("unicode and control characters", COUNTED, trade(note="\u202e\x00\x1b[31m🚀" * 100, price=105.0),
                price=Decimal("105")),
        Hostile("3 MB extra field", COUNTED, trade(blob="x" * 3_000_000, price=106.0), price=Decimal("106")),
        Hostile("400 KB of quotes, rejected", "invalid_price", trade(price='"' * 400_000)),
        Hostile("JSON over the topic's limit", "event_too_large", trade(blob="\x01" * 4_000_000)),
        Hostile("document over 16 MB", REFUSED, trade(blob="y" * 17_000_000)),
    ]


def _nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth):
        value = {"n": value}
    return value


def _event(event_id: str, document: dict | None, cluster_s: int, op: str = "insert") -> bytes:
    return json.dumps({"_id": {"_data": event_id}, "operationType": op,
                       "clusterTime": {"$timestamp": {"t": cluster_s, "i": 1}}, "fullDocument": document}).encode()


def raw_messages(symbol: str, at: Callable[[], datetime], run: str) -> list[Hostile]:
    """Hostile Kafka messages: broken, forged, or valid in odd ways."""
    now_s = int(datetime.now(timezone.utc).timestamp())

    def doc(price: float = 110.0, **fields: Any) -> dict:
        return {"_id": {"$oid": str(ObjectId())}, "symbol": symbol, "price": price, "quantity": 1,
                "trade_time": {"$date": at().isoformat().replace("+00:00", "Z")}, **fields}

    return [
        Hostile("not JSON", "not_json", raw=b"garbage \xff\xfe"),
        Hostile("JSON array", "not_json", raw=b"[1, 2, 3]"),
        Hostile("empty message", "not_json", raw=b""),
        Hostile("JSON nested 5,000 levels", "not_json", raw=b'{"a":' * 5000 + b"1" + b"}" * 5000),
        Hostile("operation drop", "unsupported_operation", raw=_event(f"{run}-drop", None, now_s, op="drop")),
        Hostile("operation missing", "unsupported_operation", raw=json.dumps({"_id": {"_data": f"{run}-noop"}}).encode()),
        Hostile("no fullDocument", "missing_document", raw=_event(f"{run}-nodoc", None, now_s)),
        Hostile("forged cluster time in year 9000", COUNTED, raw=_event(f"{run}-future", doc(111.0), 221845392000),
                price=Decimal("111")),
        Hostile("cluster time negative", COUNTED, raw=_event(f"{run}-negative", doc(112.0), -5), price=Decimal("112")),
        Hostile("forged oversize marker", "event_too_large",
                raw=json.dumps({**json.loads(_event(f"{run}-stub", doc(), now_s)),
                                "stockdashOversize": {"bytes": 1, "limit": 0}}).encode()),
        Hostile("event id of 1 MB", COUNTED, raw=_event(f"{run}-" + "E" * 1_000_000, doc(113.0), now_s), price=Decimal("113")),
        Hostile("key of 100 KB", COUNTED, raw=_event(f"{run}-bigkey", doc(114.0), now_s), key=b"K" * 100_000,
                price=Decimal("114")),
        # Duplicate keys as a forged producer writes them (MongoDB clients do not send such documents): the
        # first value is read, whatever the second says.
        Hostile("duplicate keys", COUNTED, raw=_event(f"{run}-dupkeys", doc(103.0), now_s).replace(
            b'"price": 103.0', b'"price": 103.0, "price": "junk"'), price=Decimal("103")),
        Hostile("replayed event id", COUNTED, raw=_event(f"{run}-twice", doc(115.0), now_s), price=Decimal("115")),
        Hostile("replayed event id, again", "replay", raw=_event(f"{run}-twice", doc(115.0), now_s)),
    ]


def tombstone() -> Hostile:
    return Hostile("tombstone (null value)", "not_json", raw=None, key=b"tombstone")
