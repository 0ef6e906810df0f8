"""Trades written into MongoDB: one validated trade from the form, and random-walk bursts.

Writers only insert (the stand-in emits no change event for find_one_and_update).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from pymongo.collection import Collection

SIDES = ("buy", "sell")
MAX_QUANTITY = 10_000_000
# The pipeline keeps prices as DECIMAL(18,4) and rounds half up when it casts them
# (pipeline/spark/parse.py): the form rounds the same way, then checks what will actually be kept.
PRICE_STEP = Decimal("0.0001")
# Exclusive: ₹1,00,00,000 or more is not a plausible share price (a typo, most likely). A check of the
# form only, stricter than anything the pipeline refuses.
MAX_PRICE = Decimal("10000000")


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
    price_value = validate_price(price)
    try:
        quantity_value = float(str(quantity).strip())
    except ValueError:
        raise InvalidTrade("Quantity must be a whole number of shares.") from None
    if not math.isfinite(quantity_value) or quantity_value != int(quantity_value) or quantity_value <= 0:
        raise InvalidTrade("Quantity must be a whole number of shares, at least 1.")
    if quantity_value > MAX_QUANTITY:
        raise InvalidTrade(f"Quantity must be at most {MAX_QUANTITY:,}.")
    return Trade(symbol, side, price_value, int(quantity_value), trade_time or datetime.now(timezone.utc))


def validate_price(price: object) -> Decimal:
    """The price the pipeline will keep for ``price`` (4 places, half up), or InvalidTrade in words.

    Checked after rounding: a price that rounds to 0 (0.00004, 1e-999999) would be rejected by the
    pipeline after the form had said "Inserted", and one that rounds up to the cap would pass it.
    """
    try:
        value = Decimal(str(price).strip())
    except (InvalidOperation, ValueError):
        raise InvalidTrade("Price must be a number, like 1523.45.") from None
    if not value.is_finite() or value <= 0:
        raise InvalidTrade("Price must be a positive number.")
    if value >= MAX_PRICE:  # before rounding too: 1e999999 cannot even be rounded to 4 places
        raise InvalidTrade(f"Price must be below {_rupees(MAX_PRICE)}; {_echo(value)} is implausibly high.")
    kept = value.quantize(PRICE_STEP, rounding=ROUND_HALF_UP)
    if kept == 0:
        raise InvalidTrade(f"Price {_echo(value)} rounds to ₹0 at 4 decimal places, the precision the "
                           f"pipeline keeps; enter at least ₹{PRICE_STEP}.")
    if kept >= MAX_PRICE:
        raise InvalidTrade(f"Price {_echo(value)} rounds up to {_rupees(kept)} at 4 decimal places; it must "
                           f"be below {_rupees(MAX_PRICE)}.")
    return kept


def _echo(value: Decimal) -> str:
    """The number typed, as parsed (digits, point, exponent only: nothing Markdown could act on), kept short."""
    text = str(value)
    return text if len(text) <= 24 else f"{text[:20]}…"


def price_text(price: Decimal) -> str:
    """A kept price as people write it: paise always (1234.50), the 3rd and 4th places only when set."""
    return f"{price:.2f}" if price == price.quantize(Decimal("0.01")) else f"{price.normalize():f}"


def _rupees(value: Decimal) -> str:
    """Indian digit grouping (1,00,00,000), as a rupee amount is written; whole rupees unless paise are set."""
    whole, _, fraction = price_text(value).partition(".")
    head, tail = whole[:-3], whole[-3:]
    groups = [head[max(0, i - 2):i] for i in range(len(head), 0, -2)][::-1]
    text = ",".join([*groups, tail]) if head else tail
    return f"₹{text}" + (f".{fraction}" if fraction.strip("0") else "")


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
