"""The candle book keeps each series sorted and pruned, and never changes a series dict it handed out."""

from decimal import Decimal

from pipeline.domain.book import CandleBook
from pipeline.domain.candles import Candle
from pipeline.domain.metrics import of_tick
from pipeline.domain.snapshot import Tick
from tests.oracle import T0


def candle(symbol: str, start_s: int, price: str = "10.5") -> Candle:
    tick = Tick(symbol, T0, f"e{start_s}", None, Decimal(price), 1, "buy", None)
    return Candle(symbol, 60, start_s, of_tick(tick))


def test_series_are_in_time_order_pruned_to_the_newest_and_handed_out_unchanged_by_later_batches():
    book = CandleBook(kept_per_series=3)
    for start in (300, 60, 240, 120, 180):
        book.put(candle("INFY", start), batch_id=1)
    book.put(candle("TCS", 60), batch_id=1)
    book.prune()
    first = book.series()
    assert [c.start_s for c in first[("INFY", 60)]] == [180, 240, 300]
    assert sorted(book.candles) == [("INFY", 60, 180), ("INFY", 60, 240), ("INFY", 60, 300), ("TCS", 60, 60)]
    assert book.series() is first  # nothing changed: the same dict

    book.put(candle("INFY", 360, price="11.5"), batch_id=2)
    book.put(candle("INFY", 240, price="12.5"), batch_id=2)
    book.prune()
    second = book.series()
    assert [c.start_s for c in second[("INFY", 60)]] == [240, 300, 360]
    assert second[("INFY", 60)][0].metrics.nav == Decimal("12.5")
    assert second[("TCS", 60)] is first[("TCS", 60)]  # an unchanged series is not rebuilt
    assert [c.start_s for c in first[("INFY", 60)]] == [180, 240, 300]  # what a snapshot holds stays as it was
    assert book.batch_of(("INFY", 60, 180)) == -1
