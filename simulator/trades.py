"""Trades written into MongoDB: one validated trade from the form, and random-walk bursts.

Writers only insert (the stand-in emits no change event for find_one_and_update).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

from pymongo.collection import Collection

SIDES = ("buy", "sell")
MAX_QUANTITY = 10_000_000


class InvalidTrade(ValueError):
    """A trade the form must not insert; the message is shown to the user as it is."""


@dataclass(frozen=True)
class Trade:
    symbol: str
    side: str
    price: Decimal
    quantity: int
    trade_time: datetime

    def to_document(self) -> dict:
        # Price as a double: what a typical producer writes; the pipeline keeps 4 decimals exactly.
        return {"symbol": self.symbol, "side": self.side, "price": float(self.price),
                "quantity": self.quantity, "trade_time": self.trade_time}


def validate_trade(
    symbol: str, side: str, price: object, quantity: object, known_symbols: Mapping[str, object] | set[str],
    trade_time: datetime | None = None,
) -> Trade:
    """Check a trade entered by a person; raise InvalidTrade with a message in words."""
    symbol = (symbol or "").strip().upper()
    if not symbol:
        raise InvalidTrade("Choose a symbol.")
    if symbol not in known_symbols:
        raise InvalidTrade(f"{symbol} is not a listed stock.")
    side = (side or "").strip().lower()
    if side not in SIDES:
        raise InvalidTrade("Side must be buy or sell.")
    try:
        price_value = Decimal(str(price).strip())
    except (InvalidOperation, ValueError):
        raise InvalidTrade("Price must be a number, like 1523.45.") from None
    if not price_value.is_finite() or price_value <= 0:
        raise InvalidTrade("Price must be a positive number.")
    if price_value > Decimal("10000000"):
        raise InvalidTrade("Price is implausibly high (over ₹1,00,00,000).")
    price_value = price_value.quantize(Decimal("0.01"))
    try:
        quantity_value = float(str(quantity).strip())
    except ValueError:
        raise InvalidTrade("Quantity must be a whole number of shares.") from None
    if not math.isfinite(quantity_value) or quantity_value != int(quantity_value) or quantity_value <= 0:
        raise InvalidTrade("Quantity must be a whole number of shares, at least 1.")
    if quantity_value > MAX_QUANTITY:
        raise InvalidTrade(f"Quantity must be at most {MAX_QUANTITY:,}.")
    return Trade(symbol, side, price_value, int(quantity_value), trade_time or datetime.now(timezone.utc))


def insert_trade(collection: Collection, trade: Trade) -> str:
    return str(collection.insert_one(trade.to_document()).inserted_id)


class RandomWalk:
    """Prices that wander like a market: each step moves a symbol by a random percentage."""

    def __init__(self, start_prices: Mapping[str, float], volatility_pct: float = 0.2, seed: int | None = None):
        self.prices = {symbol: float(price) for symbol, price in start_prices.items()}
        self.volatility = volatility_pct / 100
        self.random = random.Random(seed)

    def next_trade(self, symbol: str | None = None, trade_time: datetime | None = None) -> Trade:
        symbol = symbol or self.random.choice(sorted(self.prices))
        price = max(0.05, self.prices[symbol] * (1 + self.random.gauss(0, self.volatility)))
        self.prices[symbol] = price
        return Trade(
            symbol=symbol,
            side=self.random.choice(SIDES),
            price=Decimal(f"{price:.2f}"),
            quantity=self.random.choice((1, 5, 10, 25, 50, 100, 250, 500)),
            trade_time=trade_time or datetime.now(timezone.utc),
        )

    def burst(self, count: int) -> list[Trade]:
        return [self.next_trade() for _ in range(count)]


def insert_many(collection: Collection, trades: list[Trade]) -> int:
    if not trades:
        return 0
    return len(collection.insert_many([trade.to_document() for trade in trades], ordered=True).inserted_ids)
