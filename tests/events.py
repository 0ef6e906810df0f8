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


def debezium_event(document: dict | str | None, op: str = "c", ts_ms: int | None = CLUSTER_SECONDS * 1000, ord_: int = 1,
                   update_description: dict | None = None) -> str:
    """A Debezium MongoDB connector (3.x) envelope as its JsonConverter writes it without schemas: ``after`` is the
    document as JSON text (a str given is used as that text, for bodies JSON cannot hold); ``source.ts_ms`` the
    change's wall time and ``ord`` its cluster time's increment."""
    after = document if isinstance(document, str) or document is None else json.dumps(document)
    return json.dumps({
        "before": None,
        "after": after,
        "updateDescription": update_description,
        "source": {"version": "3.6.1.Final", "connector": "mongodb", "name": "stockdash", "ts_ms": ts_ms,
                   "snapshot": "false", "db": "stockmarket", "sequence": None, "ts_us": None if ts_ms is None else ts_ms * 1000,
                   "ts_ns": None if ts_ms is None else ts_ms * 1_000_000, "collection": "transaction", "ord": ord_,
                   "lsid": None, "txnNumber": None, "wallTime": ts_ms},
        "op": op,
        "ts_ms": CLUSTER_SECONDS * 1000 + 250,
        "transaction": None,
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
