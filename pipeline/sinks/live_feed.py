"""The live ticks into MarketState: the topic the live-ticks query writes (``pipeline.spark.realtime``),
read from its end, in a thread of its own.

Only symbols listed in ``stockmarket.stock`` are taken (the micro-batch query sets the others aside as
``unknown_symbol``), so an unlisted symbol never shows, not even for a moment. A message that is not what
the query writes is skipped and logged; the feed never dies on one.

The consumer is librdkafka's (``confluent-kafka``, as the relay's producer): it fetches in C threads, outside the
app's interpreter lock, which the page pushes and reruns need. Measured 2026-11-27 on the stack's broker, 1,000
messages a second arriving in 200 small batches: kafka-python's consumer took 55-70 % of a core (its I/O loop, in
Python, runs per fetch), librdkafka's 7-8 %.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Collection
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, Message, TopicPartition

from pipeline.domain.live import LiveTick
from pipeline.domain.live_rejects import LiveReject
from pipeline.domain.reasons import SHAPE_REASONS
from pipeline.domain.snapshot import Tick
from pipeline.domain.state import MarketState
from pipeline.domain.status import QueryStatus
from pipeline.settings import Settings
from pipeline.sinks import codec, topics
from pipeline.sinks.mongo import ListedSymbols

log = logging.getLogger("stockdash.live_feed")

POLL_MS = 500  # a poll returns as soon as a message is there; this only bounds an idle wait
MAX_POLLED = 500
# librdkafka reports every failed reconnect; the feed says it once, in its error (the Pipeline page shows it).
CLIENT_LOG = logging.getLogger("stockdash.live_feed.librdkafka")
CLIENT_LOG.setLevel(logging.CRITICAL)
RETRY_S = 2.0
UNLISTED_KEPT = 1_000  # names come from untrusted input: remember (and log) a bounded number


def live_tick(value: bytes | None) -> LiveTick | LiveReject:
    """One message of the live-ticks topic; raises ValueError/KeyError/TypeError on anything else."""
    if value is None:
        raise ValueError("a message without a value (a tombstone)")
    fields = json.loads(value.decode())  # from text: json.loads of bytes first sniffs their encoding, each time
    if "reject" in fields:
        symbol = fields.get("symbol")
        return LiveReject(str(fields["reject"]), None if symbol is None else str(symbol), str(fields["event_id"]),
                          int(fields["partition"]), int(fields["offset"]))
    tick = Tick(symbol=str(fields["symbol"]), trade_time=codec.utc_from_micros(int(fields["trade_time_us"])),
                event_id=str(fields["event_id"]), trade_id=fields.get("trade_id"), price=Decimal(fields["price"]),
                quantity=int(fields["quantity"]), side=fields.get("side"),
                ingest_time=codec.utc_from_micros(int(fields["ingest_us"])) if fields.get("ingest_us") else None)
    return LiveTick(tick, int(fields["partition"]), int(fields["offset"]))


def reject_of(live: LiveTick, reason: str) -> LiveReject:
    return LiveReject(reason, live.tick.symbol, live.tick.event_id, live.partition, live.offset)


def as_recorded(reject: LiveReject, listed: Collection[str]) -> LiveReject:
    """The reason the record gives: an unlisted symbol ranks after the message's shape, before the rest
    (``pipeline.spark.parse``'s symbol check, which the real-time query leaves to this feed)."""
    if reject.reason in SHAPE_REASONS or reject.symbol in listed:
        return reject
    return replace(reject, reason="unknown_symbol")


class LiveFeed:
    """Reads the live-ticks topic into MarketState until :meth:`stop`."""

    def __init__(self, settings: Settings, state: MarketState, *, ledgers: bool = True) -> None:
        self.settings = settings
        self.state = state
        self.ledgers = ledgers  # rejects and late ticks into the ledger counts (only beside the record's query)
        self.rejects = 0  # rejects read
        self.error: str | None = None
        self.skipped = 0  # malformed messages, logged and left out
        self.received = 0  # live ticks read
        self.skipped_ahead = 0  # dated too far ahead of this clock (the record sets them aside)
        self.unlisted: set[str] = set()  # symbols seen that are not listed: never shown
        self.listed = ListedSymbols(settings)
        self.read_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-feed", daemon=True)

    def start_in_background(self) -> LiveFeed:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                topics.ensure_topics(self.settings)
                self._follow()
            except Exception as exc:  # noqa: BLE001 - the feed must not die: say why, read again
                cause = "Kafka is unavailable" if isinstance(exc, KafkaException) else "reading failed"
                self.error = f"{cause} ({type(exc).__name__}); reading again in {RETRY_S:g} s"
                log.error("live feed: %s: %s", self.error, exc)
                self._stop.wait(RETRY_S)

    def _follow(self) -> None:
        consumer = Consumer({
            "bootstrap.servers": self.settings.effective_kafka_bootstrap, "client.id": "stockdash-live-feed",
            "group.id": "stockdash-live-feed",  # librdkafka wants one; partitions are assigned, nothing is committed
            "enable.auto.commit": False, "enable.auto.offset.store": False,
            "fetch.wait.max.ms": POLL_MS, "fetch.min.bytes": 1, "logger": CLIENT_LOG, "error_cb": self._client_error,
        })
        try:
            topic = self.settings.live_topic
            metadata = consumer.list_topics(topic, timeout=10).topics[topic]
            if metadata.error is not None:
                raise KafkaException(metadata.error)
            consumer.assign([TopicPartition(topic, partition, OFFSET_END) for partition in sorted(metadata.partitions)])
            # A new reader may have missed ticks: the state shows a symbol's live ticks again once the record
            # is past the first one read here.
            self.state.reset_live()
            while not self._stop.is_set():
                # consume() would wait for all MAX_POLLED: wait for the first, then take what is already fetched.
                first = consumer.poll(POLL_MS / 1000)
                polled = [] if first is None else [first, *consumer.consume(MAX_POLLED - 1, timeout=0)]
                self.read_at = time.time()
                if polled:
                    self._install(polled)
                elif self.error is not None:
                    self._check_back(consumer)
        finally:
            consumer.close()

    def _client_error(self, error: KafkaError) -> None:
        """Every broker gone: the client reconnects by itself; the status says why meanwhile. (One connection
        closed or refused is the client's to retry, and says nothing yet.)"""
        if error.fatal():
            raise KafkaException(error)  # this consumer is done for: _run starts another
        if error.code() != KafkaError._ALL_BROKERS_DOWN:
            return
        message = f"Kafka is unavailable ({error.str()}); reading on as soon as it is back"
        if message != self.error:
            log.error("live feed: %s", message)
        self.error = message

    def _check_back(self, consumer: Consumer) -> None:
        """On a quiet market no message says Kafka is back: ask it."""
        try:
            consumer.list_topics(self.settings.live_topic, timeout=1)
        except KafkaException:
            return
        log.info("live feed: Kafka is reachable again")
        self.error = None

    def _install(self, messages: list[Message]) -> None:
        ticks: list[LiveTick] = []
        rejects: list[LiveReject] = []
        for message in messages:
            error = message.error()
            if error is not None:  # not a message: the client's word on a partition; it goes on by itself
                log.warning("live feed: %s", error.str())
                continue
            self.error = None
            try:
                read = live_tick(message.value())
                if isinstance(read, LiveReject):
                    rejects.append(read)
                else:
                    ticks.append(read)
            except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
                self.skipped += 1
                log.error("live feed: skipped a malformed message at %s/%s offset %s (%s: %s)", message.topic(),
                          message.partition(), message.offset(), type(exc).__name__, str(exc)[:200])
        self.received += len(ticks)
        self.rejects += len(rejects)
        # A trade dated ahead of this clock by more than the skew the record allows is one the record will
        # reject (``absurd_trade_time``): never on screen, not even for a moment; in the ledger at once.
        latest_allowed = datetime.now(timezone.utc) + timedelta(seconds=self.settings.max_clock_skew_s)
        ahead = [live for live in ticks if live.tick.trade_time > latest_allowed]
        if ahead:
            self.skipped_ahead += len(ahead)
            ticks = [live for live in ticks if live.tick.trade_time <= latest_allowed]
        listed = self.listed()
        unlisted = {live.tick.symbol for live in ticks} - listed - self.unlisted
        if unlisted:
            log.warning("live feed: left out symbols not listed in %s.stock: %s", self.settings.database,
                        ", ".join(sorted(symbol[:40] for symbol in unlisted)[:20]))
            self.unlisted |= set(sorted(unlisted)[:max(0, UNLISTED_KEPT - len(self.unlisted))])
        rejects += [reject_of(live, "absurd_trade_time") for live in ahead]
        rejects += [reject_of(live, "unknown_symbol") for live in ticks if live.tick.symbol not in listed]
        self.state.apply_live([live for live in ticks if live.tick.symbol in listed], self.settings.candle_lateness_s,
                              [as_recorded(reject, listed) for reject in rejects], ledgers=self.ledgers)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


class ReaderWithLiveTicks:
    """Reading mode in the default stream mode: what a job elsewhere persists, with its live ticks on top."""

    def __init__(self, reader: Any, settings: Settings, state: MarketState) -> None:
        self.reader = reader  # an AggregateReader
        # The record's ledger counts come from MongoDB here, at their own pace and with no Kafka offsets to
        # confirm a live reject by: counted live too, a reject would count twice for a while.
        self.feed = LiveFeed(settings, state, ledgers=False)

    def start_in_background(self) -> ReaderWithLiveTicks:
        self.reader.start_in_background()
        self.feed.start_in_background()
        return self

    def status(self) -> QueryStatus:
        status = self.reader.status()
        return replace(status, mode="realtime", live=f"live ticks: {self.feed.error or 'reading'}")

    def stop(self) -> None:
        self.feed.stop()
        self.reader.stop()
