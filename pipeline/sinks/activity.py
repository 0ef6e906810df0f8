"""What the Stock and Pipeline pages show besides the figures, persisted so that an app in reading mode
(or one that just restarted) shows it too: each symbol's latest trades (``recent_trades``, one document
per symbol holding its latest :data:`TRADES_KEPT`) and each batch's report with its freshness samples
(``batch_reports``).

Bounded: one trades document per symbol; reports older than :data:`KEPT_S` are deleted (a TTL index on
``written_at`` does it on a real MongoDB; the job also deletes them itself, about once a minute, for
servers without TTL monitors). Idempotent per batch: documents are replaced, by symbol and by batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timezone

from bson.decimal128 import Decimal128
from pymongo import ReplaceOne
from pymongo.database import Database
from pymongo.errors import PyMongoError

from pipeline.domain.snapshot import Activity, BatchReport, Tick
from pipeline.sinks.store import utc_collection

log = logging.getLogger("stockdash.activity")

TRADES, REPORTS = "recent_trades", "batch_reports"
KEPT_S = 3600
PRUNE_EVERY_S = 60.0
SAMPLES_PER_REPORT = 100  # freshness samples kept per batch: enough for percentiles, bounded per document
TRADES_KEPT = 50  # per symbol


def since_kept() -> datetime:
    """The oldest time a kept document may have been written at."""
    return datetime.fromtimestamp(time.time() - KEPT_S, timezone.utc)


def _trade(tick: Tick) -> dict:
    return {"event_id": tick.event_id, "trade_time": tick.trade_time, "trade_id": tick.trade_id,
            "price": Decimal128(str(tick.price)), "quantity": tick.quantity, "side": tick.side,
            "ingest_time": tick.ingest_time}


def _tick(symbol: str, trade: dict) -> Tick:
    return Tick(symbol=symbol, trade_time=trade["trade_time"], event_id=trade["event_id"], trade_id=trade.get("trade_id"),
                price=trade["price"].to_decimal(), quantity=trade["quantity"], side=trade.get("side"),
                ingest_time=trade.get("ingest_time"))


class ActivityStore:
    """``recent_trades`` and ``batch_reports``: written by the job each batch, read by readers."""

    def __init__(self, db: Database, lineage: str = "") -> None:
        self.trades = utc_collection(db, TRADES)
        self.reports = utc_collection(db, REPORTS)
        self.lineage = lineage
        self._pruned_at = 0.0
        try:
            self.reports.create_index("written_at", expireAfterSeconds=KEPT_S)
        except PyMongoError as exc:  # a server without TTL indexes: the job prunes by itself
            log.info("no TTL index on %s (%s); pruning it every %.0f s", REPORTS, exc, PRUNE_EVERY_S)

    def save(self, batch_id: int, recent: Mapping[str, Sequence[Tick]], report: BatchReport | None,
             delays: Iterable[float]) -> None:
        """``recent``: the latest trades of each symbol the batch changed (the newest last)."""
        written_at = datetime.now(timezone.utc)
        if recent:
            self.trades.bulk_write([ReplaceOne({"_id": symbol}, {"trades": [_trade(t) for t in ticks[-TRADES_KEPT:]],
                                                                 "written_at": written_at}, upsert=True)
                                    for symbol, ticks in recent.items()], ordered=False)
        if report is not None:
            document = {**asdict(report), "delays": list(delays)[:SAMPLES_PER_REPORT], "written_at": written_at,
                        "lineage": self.lineage}
            self.reports.replace_one({"_id": f"{self.lineage}|{batch_id}"}, document, upsert=True)
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
            self._pruned_at = time.monotonic()
            self.reports.delete_many({"written_at": {"$lt": since_kept()}})

    def load(self, since: datetime) -> Activity:
        """Trades and reports written after ``since`` (oldest first), and when the newest was written."""
        newest = since
        ticks: list[Tick] = []
        for doc in self.trades.find({"written_at": {"$gt": since}}):
            ticks.extend(_tick(doc["_id"], trade) for trade in doc.get("trades", []))
            newest = max(newest, doc["written_at"])
        reports = []
        for doc in self.reports.find({"written_at": {"$gt": since}}).sort("finished_at", 1):
            fields = {name: doc[name] for name in BatchReport.__dataclass_fields__}
            reports.append((BatchReport(**fields), tuple(float(delay) for delay in doc.get("delays", []))))
            newest = max(newest, doc["written_at"])
        return Activity(tuple(ticks), tuple(reports), newest)
