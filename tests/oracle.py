"""An independent oracle: the per-symbol metrics computed in plain Python over a list of ticks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True)
class OracleTick:
    event_id: str
    symbol: str
    price: Decimal
    quantity: int
    trade_time: datetime


def expected_metrics(ticks: list[OracleTick]) -> dict[str, dict]:
    result: dict[str, dict] = {}
    for symbol in sorted({t.symbol for t in ticks}):
        mine = [t for t in ticks if t.symbol == symbol]
        latest = max(mine, key=lambda t: (t.trade_time, t.event_id))
        earliest = min(mine, key=lambda t: (t.trade_time, t.event_id))
        result[symbol] = {
            "trades": len(mine),
            "low": min(t.price for t in mine),
            "high": max(t.price for t in mine),
            "nav": latest.price,
            "open": earliest.price,
            "volume": sum(t.quantity for t in mine),
            "turnover": sum(t.price * t.quantity for t in mine),
        }
    return result
