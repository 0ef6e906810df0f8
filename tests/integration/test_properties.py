"""Property: whatever the order, the batch boundaries and the replays, the streaming job's numbers
equal the oracle's. Runs the job's real stream (parse -> drop replays -> batch handler -> merge)
over a file stream with one micro-batch per file."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.domain.state import MarketState
from pipeline.spark.batch import BatchHandler
from pipeline.spark.microbatch import market_stream
from tests.events import KAFKA_SCHEMA, change_event, trade_doc
from tests.oracle import OracleTick, expected_candles, expected_metrics, metric_values

pytestmark = pytest.mark.spark
KNOWN = ("INFY", "TCS", "ITC")
T0 = datetime(2025, 11, 24, 9, 15, tzinfo=timezone.utc)
_runs = itertools.count()
LATENESS_S = 120

tick_strategy = st.builds(
    lambda symbol, cents, quantity, side, second: (symbol, Decimal(cents) / 100, quantity, side,
                                                   T0 + timedelta(seconds=second)),
    st.sampled_from(KNOWN),
    st.integers(1, 10_000_000),
    st.integers(1, 5_000),
    st.sampled_from(("buy", "sell")),
    # Ten minutes, in steps of 7 s: ties are common (broken by event id), windows are crossed, and with
    # a lateness of 2 minutes some ticks arrive late.
    st.integers(0, 85).map(lambda step: step * 7),
)


@st.composite
def deliveries(draw):
    """Unique ticks, then what the pipeline receives: shuffled, with replays, cut into batches."""
    raw = draw(st.lists(tick_strategy, min_size=1, max_size=30))
    ticks = [OracleTick(f"ev{i:04d}", s, p, q, t, side) for i, (s, p, q, side, t) in enumerate(raw)]
    replayed = draw(st.lists(st.sampled_from(ticks), max_size=8))
    delivered = draw(st.permutations(ticks + replayed))
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(delivered) - 1)), max_size=3))))
    batches = [delivered[a:b] for a, b in zip([0, *cuts], [*cuts, len(delivered)], strict=True) if delivered[a:b]]
    return ticks, batches


def message(tick: OracleTick) -> bytes:
    return change_event(tick.event_id, trade_doc(tick.symbol, str(tick.price), tick.quantity, side=tick.side,
                                                 when=tick.trade_time.isoformat().replace("+00:00", "Z"))).encode()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=deliveries())
def test_stream_results_equal_the_oracle(spark, tmp_path_factory, case):
    ticks, batches = case
    folder = tmp_path_factory.mktemp(f"stream{next(_runs)}")
    (folder / "in").mkdir()
    offset = itertools.count()
    for number, batch in enumerate(batches):
        frame = pd.DataFrame({"value": [message(t) for t in batch], "topic": "t", "partition": 0,
                              "offset": [next(offset) for _ in batch],
                              "timestamp": pd.Timestamp("2025-11-24 16:00:01", tz="UTC")})
        frame["partition"] = frame["partition"].astype("int32")
        frame.to_parquet(folder / "in" / f"{number:03d}.parquet")
    state = MarketState()
    source = spark.readStream.schema(KAFKA_SCHEMA).option("maxFilesPerTrigger", 1).parquet(str(folder / "in"))
    query = (market_stream(source, dedupe_horizon_s=3600).writeStream
             .foreachBatch(BatchHandler(state, lambda: KNOWN, lateness_s=LATENESS_S))
             .option("checkpointLocation", str(folder / "checkpoint"))
             .trigger(availableNow=True).start())
    query.awaitTermination(timeout=300)
    assert query.exception() is None
    snapshot = state.snapshot()
    assert {symbol: metric_values(a) for symbol, a in snapshot.stocks.items()} == expected_metrics(ticks)
    candles, late = expected_candles(batches, LATENESS_S)
    actual_candles = {candle.key: {**metric_values(candle.metrics), "revised": candle.revised}
                      for series in snapshot.candles.values() for candle in series}
    assert actual_candles == candles
    by_id = {t.event_id: t for t in ticks}
    assert dict(snapshot.late_by_symbol) == dict(Counter(by_id[event_id].symbol for event_id in late))
