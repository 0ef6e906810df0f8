"""Scenarios that prove the pipeline's semantics live: each writes real input (MongoDB inserts, or a
change event delivered to Kafka again) for one symbol and says what the dashboard must show after it.

The expected figures are computed from the figures before the run and the trades written, so the
Simulator page can put "expected" beside "shown" and tick each line when the two agree. The verdict is
computed anew from the figures shown *now* every time it is asked for (:func:`verdict`), never
latched: figures that agreed once and then moved (a redelivered copy counted after all, another
writer on the stock) turn it back to "differ".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from pymongo.collection import Collection

from pipeline.domain.snapshot import MarketSnapshot
from pipeline.settings import Settings
from pipeline.waits import wait_until
from simulator.trades import RandomWalk, Trade, insert_many

BURST_SIZE = 1000
OUT_OF_ORDER_SIZE = 20
EXTRA_DELIVERIES = 2


@dataclass(frozen=True)
class Figures:
    """What the dashboard shows for one symbol (and the total set aside)."""

    trades: int = 0
    nav: Decimal | None = None
    nav_time: datetime | None = None
    low: Decimal | None = None
    high: Decimal | None = None
    late: int = 0
    rejected: int = 0
    set_aside_total: int = 0

    @classmethod
    def of(cls, snapshot: MarketSnapshot, symbol: str) -> Figures:
        total = sum(snapshot.rejected_by_reason.values()) + sum(snapshot.late_by_symbol.values())
        agg = snapshot.stocks.get(symbol)
        late, rejected = snapshot.late_by_symbol.get(symbol, 0), snapshot.rejected_by_symbol.get(symbol, 0)
        if agg is None:
            return cls(late=late, rejected=rejected, set_aside_total=total)
        return cls(agg.trades, agg.nav, agg.nav_time, agg.low, agg.high, late, rejected, total)

    def with_trades(self, trades: list[Trade], late: int = 0) -> Figures:
        """These figures after ``trades`` were counted (``late`` of them late: counted, set aside too)."""
        if not trades:
            return self
        prices = [t.price for t in trades]
        newest = max(trades, key=lambda t: t.trade_time)
        nav, nav_time = self.nav, self.nav_time
        if nav_time is None or newest.trade_time > nav_time:
            nav, nav_time = newest.price, newest.trade_time
        return replace(
            self, trades=self.trades + len(trades), nav=nav, nav_time=nav_time,
            low=min(prices + ([self.low] if self.low is not None else [])),
            high=max(prices + ([self.high] if self.high is not None else [])),
            late=self.late + late, set_aside_total=self.set_aside_total + late,
        )


COMPARED = (("Transactions", "trades"), ("NAV", "nav"), ("Low", "low"), ("High", "high"),
            ("Late ticks", "late"), ("Rejected (this symbol)", "rejected"), ("Set aside (all)", "set_aside_total"))


def comparison(before: Figures, expected: Figures, shown: Figures) -> list[dict]:
    """Rows of the expected-vs-shown table; every row has a verdict."""
    return [{"Figure": label, "Before": _text(getattr(before, name)), "Expected": _text(getattr(expected, name)),
             "Shown": _text(getattr(shown, name)), "Agree": getattr(expected, name) == getattr(shown, name)}
            for label, name in COMPARED]


def _text(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, Decimal):
        return f"₹{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    what: str  # what it writes
    expect: str  # what the dashboard must show, in words


SCENARIOS = {
    s.key: s
    for s in (
        Scenario("burst", "Burst", f"{BURST_SIZE:,} random-walk trades in one insert",
                 f"Transactions up by exactly {BURST_SIZE:,}; NAV = the newest trade's price; low/high cover all of them."),
        Scenario("out_of_order", "Out of order", f"{OUT_OF_ORDER_SIZE} trades one second apart, inserted newest first",
                 "NAV = the price of the trade with the latest trade time, not of the last one inserted."),
        Scenario("late", "Late trade", "a trade now, then one stamped well before the candle lateness allows",
                 "Both counted in the since-start figures; the old one set aside as late (late ticks +1), left out "
                 "of candles; NAV stays at the newer trade's price."),
        Scenario("duplicate", "Duplicate delivery", f"one trade, whose change event is then delivered to Kafka "
                 f"{EXTRA_DELIVERIES} more times (what a CDC restart does)",
                 "Transactions up by exactly 1: replays of a change event are dropped by its id."),
        Scenario("malformed", "Malformed trades", "7 bad documents: negative price, price as words, zero quantity, "
                 "side 'hold', an unreadable time, an unlisted symbol, no symbol",
                 "No figure of the stock moves; 5 rejected for this symbol, 7 set aside in all, each with its reason."),
    )
}


@dataclass(frozen=True)
class ScenarioRun:
    scenario: Scenario
    symbol: str
    before: Figures
    expected: Figures
    started_at: float


@dataclass(frozen=True)
class Verdict:
    """The comparison of one moment: its rows, whether every row agrees, and how long since the input was written."""

    rows: list[dict]
    agreed: bool
    waited_s: float
    timed_out: bool  # still differing after ``timeout_s``: worth telling the user, not worth waiting on


def verdict(run: ScenarioRun, shown: Figures, timeout_s: float, now: float | None = None) -> Verdict:
    """Expected vs ``shown`` (the figures on screen now); nothing from an earlier call is reused."""
    rows = comparison(run.before, run.expected, shown)
    agreed = all(row["Agree"] for row in rows)
    waited = (time.time() if now is None else now) - run.started_at
    return Verdict(rows, agreed, waited, not agreed and waited >= timeout_s)


def _trade(symbol: str, price: Decimal, when: datetime) -> Trade:
    return Trade(symbol, "buy", price.quantize(Decimal("0.01")), 1, when)


def run(key: str, symbol: str, reference_price: float, transactions: Collection, settings: Settings,
        observe: Callable[[], Figures]) -> ScenarioRun:
    """Write the scenario's input now; returns what the dashboard must show once it is processed."""
    scenario = SCENARIOS[key]
    before = observe()
    now = datetime.now(timezone.utc)
    price = before.nav if before.nav is not None else Decimal(str(reference_price))
    if key == "burst":
        walk = RandomWalk({symbol: float(price)})
        trades = [walk.next_trade(symbol, now + timedelta(milliseconds=i)) for i in range(BURST_SIZE)]
        insert_many(transactions, trades)
        expected = before.with_trades(trades)
    elif key == "out_of_order":
        trades = [_trade(symbol, price * (1 + Decimal(i) / 1000), now - timedelta(seconds=OUT_OF_ORDER_SIZE - 1 - i))
                  for i in range(OUT_OF_ORDER_SIZE)]
        for trade in reversed(trades):  # newest first, one insert each: separate change events
            insert_many(transactions, [trade])
        expected = before.with_trades(trades)
    elif key == "late":
        current = _trade(symbol, price, now)
        insert_many(transactions, [current])
        # The late check compares with the newest trade seen *before* a batch: wait for this one.
        wait_until(lambda: observe().trades > before.trades, timeout=30, what=f"the current {symbol} trade")
        old = _trade(symbol, price * Decimal("0.9"), now - timedelta(seconds=settings.candle_lateness_s + 60))
        insert_many(transactions, [old])
        expected = before.with_trades([current]).with_trades([old], late=1)
    elif key == "duplicate":
        trade = _trade(symbol, price, now)
        redeliver_change_event(settings, transactions.insert_one(trade.to_document()).inserted_id, EXTRA_DELIVERIES)
        expected = before.with_trades([trade])
    elif key == "malformed":
        insert_many_raw(transactions, malformed_documents(symbol))
        expected = replace(before, rejected=before.rejected + 5, set_aside_total=before.set_aside_total + 7)
    else:
        raise KeyError(key)
    return ScenarioRun(scenario, symbol, before, expected, time.time())


def malformed_documents(symbol: str) -> list[dict]:
    when = datetime.now(timezone.utc)
    return [
        {"symbol": symbol, "price": -12.5, "quantity": 1, "trade_time": when},
        {"symbol": symbol, "price": "twelve", "quantity": 1, "trade_time": when},
        {"symbol": symbol, "price": 100.0, "quantity": 0, "trade_time": when},
        {"symbol": symbol, "price": 100.0, "quantity": 1, "side": "hold", "trade_time": when},
        {"symbol": symbol, "price": 100.0, "quantity": 1, "trade_time": "the day before yesterday"},
        {"symbol": "NOT-LISTED", "price": 100.0, "quantity": 1, "trade_time": when},
        {"price": 100.0, "quantity": 1, "trade_time": when},
    ]


def insert_many_raw(transactions: Collection, documents: list[dict]) -> None:
    transactions.insert_many(documents, ordered=True)


def redeliver_change_event(settings: Settings, trade_id: object, times: int, timeout_s: float = 30) -> None:
    """Find the change event of ``trade_id`` on the trades topic and produce it ``times`` more times,
    byte for byte, as a CDC component does when it restarts from an older position."""
    needle = str(trade_id).encode()
    consumer = KafkaConsumer(bootstrap_servers=settings.effective_kafka_bootstrap, client_id="stockdash-scenario",
                             bootstrap_timeout_ms=5000, enable_auto_commit=False, consumer_timeout_ms=500)
    try:
        partitions = [TopicPartition(settings.trades_topic, p)
                      for p in sorted(consumer.partitions_for_topic(settings.trades_topic) or ())]
        consumer.assign(partitions)
        # The event was written moments ago: search the last few thousand messages of each partition.
        for tp, end in consumer.end_offsets(partitions).items():
            consumer.seek(tp, max(0, end - 5000))
        found = None
        deadline = time.monotonic() + timeout_s
        while found is None and time.monotonic() < deadline:
            found = next((m for m in consumer if needle in m.value), None)
    finally:
        consumer.close()
    if found is None:
        raise TimeoutError(f"the change event of trade {trade_id} did not reach Kafka within {timeout_s:g} s")
    producer = KafkaProducer(bootstrap_servers=settings.effective_kafka_bootstrap, client_id="stockdash-scenario",
                             bootstrap_timeout_ms=5000)
    try:
        for _ in range(times):
            producer.send(settings.trades_topic, key=found.key, value=found.value)
        producer.flush()
    finally:
        producer.close(timeout=5)
