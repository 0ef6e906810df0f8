"""Building change events and Kafka-shaped rows for tests of the pure transformations."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from pyspark.sql import DataFrame, SparkSession

KAFKA_SCHEMA = "value binary, topic string, partition int, offset long, timestamp timestamp"
CLUSTER_SECONDS = 1_764_000_000  # 2025-11-24 16:00:00 UTC


def change_event(event_id: str, document: dict | None, op: str = "insert", cluster_seconds: int = CLUSTER_SECONDS) -> str:
    return json.dumps({
        "_id": {"_data": event_id},
        "operationType": op,
        "clusterTime": {"$timestamp": {"t": cluster_seconds, "i": 1}},
        "fullDocument": document,
    })


def trade_doc(symbol: str, price, quantity=1, when: str | None = "2025-11-24T10:00:00Z", side: str = "buy",
              **extra) -> dict:
    doc = {"symbol": symbol, "price": price, "quantity": quantity, "side": side, **extra}
    if when is not None:
        doc["trade_time"] = {"$date": when}
    return doc


def kafka_rows(spark: SparkSession, messages: list[str | bytes]) -> DataFrame:
    now = datetime(2025, 11, 24, 16, 0, 1, tzinfo=timezone.utc)
    rows = [(m if isinstance(m, bytes) else m.encode(), "t", 0, offset, now) for offset, m in enumerate(messages)]
    return spark.createDataFrame(rows, KAFKA_SCHEMA)
