"""The metric registry: merge is associative and commutative, and equals the oracle's per-kind folds."""

import random
from datetime import timedelta
from decimal import Decimal

import pytest

from pipeline.domain.metrics import FIELD_NAMES, METRICS, StockAggregate, aggregate_of, merge, of_tick
from tests.oracle import T0, OracleTick, expected_metrics, metric_values


def random_ticks(count: int, seed: int) -> list[OracleTick]:
    rng = random.Random(seed)
    return [OracleTick(f"ev{i:04d}", rng.choice(("INFY", "TCS")), Decimal(rng.randrange(100, 100_000)) / 100,
                       rng.randrange(1, 50), T0 + timedelta(seconds=rng.randrange(0, 4)), rng.choice(("buy", "sell")))
            for i in range(count)]


def test_merge_is_associative_and_commutative():
    a = of_tick(OracleTick("x", "INFY", Decimal("10"), 1, T0 + timedelta(seconds=5)))
    b = of_tick(OracleTick("y", "INFY", Decimal("12"), 1, T0 + timedelta(seconds=5)))
    c = of_tick(OracleTick("z", "INFY", Decimal("9"), 3, T0 + timedelta(seconds=1)))
    left = merge(merge(a, b), c)
    assert left == merge(a, merge(c, b)) == merge(c, merge(b, a))
    assert (left.nav, left.open, left.trades, left.low, left.high) == (Decimal("12"), Decimal("9"), 3, Decimal("9"),
                                                                      Decimal("12"))


@pytest.mark.parametrize("seed", range(5))
def test_any_order_of_merges_equals_the_oracle(seed):
    ticks = random_ticks(60, seed)
    shuffled = ticks[:]
    random.Random(seed).shuffle(shuffled)
    assert {symbol: metric_values(a) for symbol, a in aggregate_of(shuffled).items()} == expected_metrics(ticks)


def test_an_aggregate_has_exactly_the_registry_fields():
    aggregate = of_tick(OracleTick("e", "INFY", Decimal("10"), 2, T0))
    assert list(aggregate.fields()) == list(FIELD_NAMES)
    assert {metric.name for metric in METRICS} <= set(FIELD_NAMES)
    with pytest.raises(TypeError, match="missing fields"):
        StockAggregate("INFY", trades=1)
    with pytest.raises(AttributeError):
        aggregate.nav = Decimal(1)  # type: ignore[misc]
