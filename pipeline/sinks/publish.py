"""The latest aggregate of every symbol and every candle on compacted Kafka topics, for readers that
do not host the query (other app replicas, other services).

``<topic>.aggregates`` is keyed by symbol, ``<topic>.candles`` by ``SYMBOL|interval_s|start_s``:
compaction keeps the latest version of each.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from kafka import KafkaProducer

from pipeline.domain.candles import Candle
from pipeline.domain.metrics import StockAggregate
from pipeline.settings import Settings
from pipeline.sinks import codec
from pipeline.sinks.topics import send_all


class AggregatePublisher:
    """Sends changed aggregates and candles to their compacted topics (JSON, see ``sinks.codec``)."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.aggregates_topic
        self.candles_topic = settings.candles_topic
        self.producer = KafkaProducer(bootstrap_servers=settings.effective_kafka_bootstrap,
                                      client_id="stockdash-aggregates", acks="all", linger_ms=0)

    def publish(self, aggregates: Iterable[StockAggregate], candles: Iterable[Candle] = ()) -> None:
        """Send and wait for every acknowledgement (a failure fails the batch, which is then re-run)."""
        messages = [(self.topic, aggregate.symbol.encode(), json.dumps(codec.to_json(aggregate)).encode())
                    for aggregate in aggregates]
        messages += [(self.candles_topic, candle.storage_key.encode(), json.dumps(codec.candle_to_json(candle)).encode())
                     for candle in candles]
        send_all(self.producer, messages)

    def close(self) -> None:
        self.producer.close(timeout=5)
