"""The latest aggregate of every symbol and every candle on compacted Kafka topics, for readers that
do not host the query (other app replicas, other services).

``<topic>.aggregates`` is keyed by symbol, ``<topic>.candles`` by ``SYMBOL|interval_s|start_s``:
compaction keeps the latest version of each.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from kafka import KafkaProducer

from pipeline.aggregate import Candle, StockAggregate
from pipeline.settings import Settings


def aggregate_json(aggregate: StockAggregate) -> dict:
    return {
        "symbol": aggregate.symbol, "trades": aggregate.trades, "low": str(aggregate.low), "high": str(aggregate.high),
        "nav": str(aggregate.nav), "nav_time": aggregate.nav_time.isoformat(), "open": str(aggregate.open),
        "open_time": aggregate.open_time.isoformat(), "volume": aggregate.volume, "turnover": str(aggregate.turnover),
        "vwap": str(aggregate.vwap) if aggregate.vwap is not None else None,
        "nav_event_id": aggregate.nav_event_id, "open_event_id": aggregate.open_event_id,
    }


def candle_json(candle: Candle) -> dict:
    metrics = aggregate_json(candle.metrics)
    return {"symbol": candle.symbol, "interval_s": candle.interval_s, "start_s": candle.start_s,
            "open": metrics["open"], "high": metrics["high"], "low": metrics["low"], "close": metrics["nav"],
            "trades": metrics["trades"], "volume": metrics["volume"], "vwap": metrics["vwap"], "revised": candle.revised}


class AggregatePublisher:
    def __init__(self, settings: Settings) -> None:
        self.topic = settings.aggregates_topic
        self.candles_topic = settings.candles_topic
        self.producer = KafkaProducer(bootstrap_servers=settings.effective_kafka_bootstrap,
                                      client_id="stockdash-aggregates", acks="all", linger_ms=0)

    def publish(self, aggregates: Iterable[StockAggregate], candles: Iterable[Candle] = ()) -> None:
        sent = False
        for aggregate in aggregates:
            self.producer.send(self.topic, key=aggregate.symbol.encode(), value=json.dumps(aggregate_json(aggregate)).encode())
            sent = True
        for candle in candles:
            key = f"{candle.symbol}|{candle.interval_s}|{candle.start_s}".encode()
            self.producer.send(self.candles_topic, key=key, value=json.dumps(candle_json(candle)).encode())
            sent = True
        if sent:
            self.producer.flush()

    def close(self) -> None:
        self.producer.close(timeout=5)
