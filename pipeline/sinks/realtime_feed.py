"""Real-time mode's output into MarketState: the compacted topic of per-symbol aggregates that the
real-time query writes (``pipeline.spark.realtime``), read from its start (the latest per symbol).

A symbol's aggregate only grows in trades, so after a replay (the query restarts from its last
checkpoint) the feed keeps the one with the most: the figures never move back. Only symbols listed in
``stockmarket.stock`` become stocks: the query counts every symbol, the feed leaves the others out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaConsumer
from kafka.errors import KafkaError

from pipeline.domain.state import MarketState
from pipeline.domain.status import QueryState, QueryStatus
from pipeline.settings import Settings
from pipeline.sinks import codec, topics
from pipeline.sinks.mongo import ListedSymbols

log = logging.getLogger("stockdash.realtime_feed")

POLL_MS = 200
RETRY_S = 2.0


class RealtimeFeed:
    """Reads the real-time aggregates topic into MarketState, in a thread of its own."""

    def __init__(self, settings: Settings, state: MarketState) -> None:
        self.settings = settings
        self.state = state
        self.error: str | None = None
        self.skipped = 0  # malformed messages on the topic, logged and left out
        self.listed = ListedSymbols(settings)
        self.unlisted: set[str] = set()  # symbols the query counted that are not listed: never shown as stocks
        self._since_ms = 0
        self._read_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="realtime-feed", daemon=True)

    def start_in_background(self) -> RealtimeFeed:
        self._since_ms = int(time.time() * 1000)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                topics.ensure_topics(self.settings)
                self._follow()
            except Exception as exc:  # noqa: BLE001 - the feed must not die: say why, read again
                cause = "Kafka is unavailable" if isinstance(exc, KafkaError) else "reading failed"
                self.error = f"{cause} ({type(exc).__name__}); reading again in {RETRY_S:g} s"
                log.error("real-time feed: %s: %s", self.error, exc)
                self.state.record_error(self.error)
                self._stop.wait(RETRY_S)

    def _follow(self) -> None:
        consumer = KafkaConsumer(self.settings.realtime_topic, bootstrap_servers=self.settings.effective_kafka_bootstrap,
                                 client_id="stockdash-realtime-feed", group_id=None, auto_offset_reset="earliest",
                                 enable_auto_commit=False, fetch_max_wait_ms=10)
        try:
            while not self._stop.is_set():
                # Each message is a symbol's whole aggregate: of a poll's messages only the last per symbol
                # matters (at thousands of trades/s, decoding them all would make this thread the bottleneck).
                latest = {m.key: m for batch in consumer.poll(timeout_ms=POLL_MS).values() for m in batch}
                self._read_at = time.time()
                if latest:
                    self._install(latest.values())
                    self.error = None
        finally:
            consumer.close()

    def _install(self, messages: Iterable[Any]) -> None:
        received = []
        for message in messages:
            try:
                received.append((codec.from_spark_json(message.value), message.timestamp))
            except (ValueError, TypeError, KeyError, ArithmeticError) as exc:  # not what the query writes
                self.skipped += 1
                log.error("real-time feed: skipped a malformed message at %s/%s offset %s (%s: %s)", message.topic,
                          message.partition, message.offset, type(exc).__name__, str(exc)[:200])
        # Freshness samples only from what the query wrote since this feed started: the topic's older
        # messages (read again at every start) would count downtime as latency.
        listed = self.listed()
        unlisted = {aggregate.symbol for (aggregate, _), _ in received} - listed - self.unlisted
        if unlisted:  # the query counts every symbol; only listed ones are stocks (as in micro-batch mode)
            log.warning("real-time feed: left out symbols not listed in %s.stock: %s", self.settings.database,
                        ", ".join(sorted(symbol[:40] for symbol in unlisted)[:20]))
            self.unlisted |= unlisted
        received = [entry for entry in received if entry[0][0].symbol in listed]
        fresh = [ingested for (_, ingested), written_ms in received if written_ms >= self._since_ms and ingested]
        self.state.install_aggregates([aggregate for (aggregate, _), _ in received], fresh)

    def status(self) -> QueryStatus:
        if self._stop.is_set():
            return QueryStatus(QueryState.STOPPED, "realtime")
        if self.error:
            return QueryStatus(QueryState.RESTARTING, "realtime", self.error)
        return QueryStatus(QueryState.READING, "realtime", read_at=self._read_at)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
