"""MongoDB access shared by the relay, the simulator and the app.

The same code runs on a real replica set and on the embedded stand-in, which answers as a one-member
replica set (``stack/mongo``; what it does and does not do: ``../shared/notes/mongo-stand-in.md``). A
change stream always starts from a known position, a stored resume token or start time
(:func:`open_change_stream`): the relay's delivery guarantee rests on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from bson import Timestamp
from pymongo import MongoClient, UpdateOne
from pymongo.change_stream import CollectionChangeStream
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import PyMongoError

from pipeline.domain.stocks import NSE_STOCKS, StockList
from pipeline.settings import Settings

log = logging.getLogger("stockdash.mongo")


class MongoUnavailable(RuntimeError):
    """MongoDB cannot be reached or used; the message says how to fix it."""


def client(settings: Settings, timeout_ms: int = 3000, **kwargs: Any) -> MongoClient:
    return MongoClient(
        settings.effective_mongo_uri,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        appname="stockdash",
        **kwargs,
    )


def describe_address(settings: Settings) -> str:
    """Where MongoDB is, without credentials (never show a connection string)."""
    if settings.embedded_mongo:
        return f"the embedded MongoDB stand-in at 127.0.0.1:{settings.local_mongo_port}"
    from pymongo.uri_parser import parse_uri

    try:
        hosts = ",".join(f"{host}:{port}" for host, port in parse_uri(settings.mongo_uri or "")["nodelist"])
    except Exception:  # noqa: BLE001 - an unparsable URI still must not be echoed
        hosts = "the MONGO_URI host"
    return f"MongoDB at {hosts}"


def ping(mongo: MongoClient) -> bool:
    return bool(mongo.admin.command("ping").get("ok"))


def check_reachable(settings: Settings, mongo: MongoClient) -> None:
    try:
        ping(mongo)
    except PyMongoError as exc:
        hint = (
            "start the local stack with `python -m stack up` (it starts only what is missing)"
            if settings.embedded_mongo
            else "check MONGO_URI, and that the server runs as a replica set (README 'Real services')"
        )
        raise MongoUnavailable(f"{describe_address(settings)} is not reachable ({type(exc).__name__}); {hint}") from None


def initial_operation_time(mongo: MongoClient) -> Timestamp:
    """The server's "now", to start a change stream from when no resume token is stored yet.

    A replica set (and the stand-in) reports it as ``operationTime`` of any command; a server that does
    not gets the wall clock, a little earlier to be safe (duplicates are dropped downstream).
    """
    try:
        with mongo.start_session(causal_consistency=False) as session:
            mongo.admin.command("ping", session=session)
            if session.operation_time is not None:
                return session.operation_time
    except PyMongoError:
        pass  # a server without sessions
    return Timestamp(int(time.time()) - 2, 0)


def open_change_stream(
    collection: Collection,
    resume_token: Mapping[str, Any] | None,
    start_at: Timestamp | None = None,
    batch_size: int = 1000,
    max_await_time_ms: int | None = None,
) -> CollectionChangeStream:
    """A change stream on one collection from a known position, with the full document of updates. An empty
    getMore waits up to ``max_await_time_ms`` for the next write (the server's default, 1 s, if None)."""
    options: dict[str, Any] = {"full_document": "updateLookup", "batch_size": batch_size,
                               "max_await_time_ms": max_await_time_ms}
    if resume_token is not None:
        options["resume_after"] = resume_token
    else:
        options["start_at_operation_time"] = start_at or initial_operation_time(collection.database.client)
    return collection.watch(**options)


def has_buffered(stream: CollectionChangeStream) -> bool:
    """Whether the stream holds events of its last getMore not yet taken (``try_next`` then returns one without
    asking the server). pymongo has no public call for it; if its cursor changes, True (ask the server)."""
    has_next = getattr(getattr(stream, "_cursor", None), "_has_next", None)
    return bool(has_next()) if callable(has_next) else True


def seed_stocks(db: Database) -> int:
    """Upsert the reference stocks; running it again changes nothing. Returns how many were new."""
    ops = [
        UpdateOne(
            {"_id": stock.symbol},
            {"$setOnInsert": {"symbol": stock.symbol, "company": stock.company,
                              "sector": stock.sector, "reference_price": stock.reference_price}},
            upsert=True,
        )
        for stock in NSE_STOCKS
    ]
    result = db["stock"].bulk_write(ops, ordered=False)
    return result.upserted_count


class ListedSymbols:
    """The symbols of ``stockmarket.stock``, re-read every few seconds (stocks can be listed while running).

    A document in any reasonable shape lists its symbol (see ``domain.stocks.listed_symbol``); one that
    names no usable symbol is skipped and logged once. If MongoDB cannot be read, the last list stands.
    """

    def __init__(self, settings: Settings, refresh_s: float = 10.0) -> None:
        self.settings = settings
        self.refresh_s = refresh_s
        self.listing = StockList(frozenset(), ())
        self._read_at: float | None = None

    def __call__(self) -> frozenset[str]:
        if self._read_at is None or time.monotonic() - self._read_at > self.refresh_s:
            try:
                self._refresh()
            except PyMongoError:
                if self._read_at is None:
                    raise  # nothing to stand on yet: the query fails and its supervisor retries
                log.warning("could not re-read %s.stock; using the last list", self.settings.database)
            self._read_at = time.monotonic()
        return self.listing.symbols

    def _refresh(self) -> None:
        mongo = client(self.settings)
        try:
            listing = read_stock_list(mongo[self.settings.database])
        finally:
            mongo.close()
        for document_id, reason in set(listing.skipped) - set(self.listing.skipped):
            log.warning("stock document %s lists no usable symbol (%s): skipped", document_id, reason)
        self.listing = listing


def read_stock_list(db: Database) -> StockList:
    """The listed symbols of ``db.stock`` and the documents skipped, with their reasons."""
    return StockList.of(db["stock"].find({}, {"_id": 1, "symbol": 1, "stock": 1}))
