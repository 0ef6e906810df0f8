"""Trade validation for the form, and the random walk."""

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from simulator.trades import MAX_PRICE, InvalidTrade, RandomWalk, Trade, price_text, validate_price, validate_trade

KNOWN = {"INFY", "TCS"}


def test_a_good_trade_is_normalised():
    trade = validate_trade(" infy ", "BUY", " 1523.456 ", "10", KNOWN)
    assert (trade.symbol, trade.side, trade.price, trade.quantity) == ("INFY", "buy", Decimal("1523.4560"), 10)
    assert trade.price.as_tuple().exponent == -4  # the pipeline's DECIMAL(18,4), not paise
    assert trade.trade_time.tzinfo is not None


@pytest.mark.parametrize(
    ("symbol", "side", "price", "quantity", "message"),
    [
        ("", "buy", "1", 1, "Choose a symbol."),
        ("XYZ", "buy", "1", 1, "XYZ is not a listed stock."),
        ("INFY", "hold", "1", 1, "Side must be buy or sell."),
        ("INFY", "buy", "abc", 1, "Price must be a number"),
        ("INFY", "buy", "-3", 1, "Price must be a positive number."),
        ("INFY", "buy", "nan", 1, "Price must be a positive number."),
        ("INFY", "buy", "sNaN", 1, "Price must be a positive number."),
        ("INFY", "buy", "1", 0, "Quantity must be a whole number of shares, at least 1."),
        ("INFY", "buy", "1", 2.5, "Quantity must be a whole number"),
        ("INFY", "buy", "1", "x", "Quantity must be a whole number of shares."),
    ],
)
def test_bad_trades_are_explained_in_words(symbol, side, price, quantity, message):
    with pytest.raises(InvalidTrade) as error:
        validate_trade(symbol, side, price, quantity, KNOWN)
    assert message in str(error.value)


@pytest.mark.parametrize("price", ["0.00004", "0.000049999", "1e-999999", "1E-9999999", "0e5"])
def test_a_price_that_rounds_to_zero_is_refused_before_insert(price):
    """The pipeline rejects a price of 0 (``invalid_price``): the form must not say "Inserted" for it."""
    with pytest.raises(InvalidTrade) as error:
        validate_trade("INFY", "buy", price, 1, KNOWN)
    message = str(error.value)
    if price == "0e5":
        assert message == "Price must be a positive number."
    else:
        assert "rounds to ₹0 at 4 decimal places" in message and "enter at least ₹0.0001" in message  # the fix, in words


def test_a_refused_price_is_echoed_as_parsed_and_short():
    with pytest.raises(InvalidTrade) as error:
        validate_price("9" * 200)
    assert str(error.value) == "Price must be below ₹1,00,00,000; 99999999999999999999… is implausibly high."


@pytest.mark.parametrize("price", ["9999999.99995", "9999999.99999", "10000000", "10000000.00", "1e999999", "1e7"])
def test_the_cap_applies_to_the_price_as_kept(price):
    """9,999,999.99995 is kept as 1,00,00,000.0000 (half up, 4 places): checked after rounding, it is refused."""
    with pytest.raises(InvalidTrade) as error:
        validate_trade("INFY", "buy", price, 1, KNOWN)
    assert "must be below ₹1,00,00,000" in str(error.value)


@pytest.mark.parametrize(
    ("typed", "kept"),
    [("0.001", "0.0010"), ("0.00005", "0.0001"), ("9999999.995", "9999999.9950"), ("9999999.99994", "9999999.9999"),
     ("1523.45675", "1523.4568"), ("1_000", "1000.0000"), ("2.5e2", "250.0000")],
)
def test_an_accepted_price_is_the_one_the_pipeline_keeps(typed, kept):
    """Rounded half up to 4 places as Spark's cast to DECIMAL(18,4) does; below the cap; and the double
    the document carries reads back as the same decimal (what the relay's JSON gives the parser)."""
    price = validate_price(typed)
    assert price == Decimal(kept) and price.as_tuple().exponent == -4
    assert 0 < price < MAX_PRICE
    document_price = Trade("INFY", "buy", price, 1, datetime.now(timezone.utc)).to_document()["price"]
    assert Decimal(repr(document_price)) == price  # the relay writes the double's shortest repr


def test_prices_are_shown_as_written():
    assert [price_text(Decimal(p)) for p in ("1234.5000", "0.0010", "1523.4568", "7.0000")] == \
        ["1234.50", "0.001", "1523.4568", "7.00"]


def test_random_walk_is_reproducible_and_positive():
    a = RandomWalk({"INFY": 100.0, "TCS": 50.0}, volatility_pct=5, seed=42).burst(500)
    b = RandomWalk({"INFY": 100.0, "TCS": 50.0}, volatility_pct=5, seed=42).burst(500)
    assert [(t.symbol, t.price) for t in a] == [(t.symbol, t.price) for t in b]
    assert all(t.price > 0 and t.quantity > 0 for t in a)
    assert {t.symbol for t in a} == {"INFY", "TCS"}
