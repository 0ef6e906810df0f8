"""Trade validation for the form, and the random walk."""

from decimal import Decimal

import pytest

from simulator.trades import InvalidTrade, RandomWalk, validate_trade

KNOWN = {"INFY", "TCS"}


def test_a_good_trade_is_normalised():
    trade = validate_trade(" infy ", "BUY", " 1523.456 ", "10", KNOWN)
    assert (trade.symbol, trade.side, trade.price, trade.quantity) == ("INFY", "buy", Decimal("1523.46"), 10)
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
        ("INFY", "buy", "1", 0, "Quantity must be a whole number of shares, at least 1."),
        ("INFY", "buy", "1", 2.5, "Quantity must be a whole number"),
        ("INFY", "buy", "1", "x", "Quantity must be a whole number of shares."),
    ],
)
def test_bad_trades_are_explained_in_words(symbol, side, price, quantity, message):
    with pytest.raises(InvalidTrade) as error:
        validate_trade(symbol, side, price, quantity, KNOWN)
    assert message in str(error.value)


def test_random_walk_is_reproducible_and_positive():
    a = RandomWalk({"INFY": 100.0, "TCS": 50.0}, volatility_pct=5, seed=42).burst(500)
    b = RandomWalk({"INFY": 100.0, "TCS": 50.0}, volatility_pct=5, seed=42).burst(500)
    assert [(t.symbol, t.price) for t in a] == [(t.symbol, t.price) for t in b]
    assert all(t.price > 0 and t.quantity > 0 for t in a)
    assert {t.symbol for t in a} == {"INFY", "TCS"}
