"""The app's process-wide runtime: settings, MarketState, the Spark query and a MongoDB client.

Made once per process by ``st.cache_resource`` (never at import); the query starts in the background
so the first page renders at once and shows "starting" until Spark is up.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, cast

import streamlit as st
from pymongo import MongoClient

from pipeline.domain.state import MarketState
from pipeline.domain.status import QueryState, QueryStatus
from pipeline.domain.stocks import NSE_STOCKS, Stock, StockList, stock_of
from pipeline.settings import Settings
from pipeline.sinks import mongo
from pipeline.sinks.reader import AggregateReader
from pipeline.sinks.realtime_feed import RealtimeFeed
from pipeline.spark.microbatch import MarketJob
from pipeline.spark.realtime import RealtimeJob
from simulator.generator import TradeGenerator
from stack import jvm
from ui.health import ServiceHealth

log = logging.getLogger("stockdash.app")
T = TypeVar("T")


class StateFeeder(Protocol):
    """Whatever keeps the state up to date: a query in this process, or a reader of one elsewhere."""

    def status(self) -> QueryStatus: ...

    def stop(self) -> None: ...


@dataclass
class AppRuntime:
    """Everything a page needs, made once per process: settings, the market state and what feeds it,
    a MongoDB client, the service prober and the trade generator."""

    settings: Settings
    state: MarketState
    job: StateFeeder | None
    mongo: MongoClient
    health: ServiceHealth = field(init=False)
    generator: TradeGenerator = field(init=False)
    _stopped: threading.Event = field(default_factory=threading.Event)
    _views: dict[str, tuple[object, object]] = field(default_factory=dict)
    _views_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.health = ServiceHealth(self.settings, self.mongo)
        self.generator = TradeGenerator(self.mongo[self.settings.database]["transaction"])

    def view(self, name: str, key: object, build: Callable[[], T]) -> T:
        """``build()``, reused for every session and redraw while ``key`` (e.g. a snapshot version) holds:
        a page redraws twice a second, and nothing is recomputed unless its input changed."""
        with self._views_lock:
            cached = self._views.get(name)
            if cached is not None and cached[0] == key:
                return cast(T, cached[1])
        value = build()
        with self._views_lock:
            self._views[name] = (key, value)
        return value

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.generator.stop()
        self.health.stop()
        if self.job is not None:
            self.job.stop()
        self.mongo.close()

    def query_status(self) -> QueryStatus:
        return self.job.status() if self.job is not None else QueryStatus(QueryState.READING)


_installed: AppRuntime | None = None


def install(runtime: AppRuntime | None) -> None:
    """Use a runtime made by the embedding process (a test, or a host running the job itself)."""
    global _installed
    _installed = runtime


@st.cache_resource(show_spinner=False)
def _create_runtime() -> AppRuntime:
    settings = Settings.from_env()
    if settings.app_mode == "embedded" and not settings.spark_jars:
        settings = settings.with_changes(spark_jars=jvm.spark_jars())
    # kafka-python logs each reconnect attempt as an error; the pages and our own log lines say it once.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    state = MarketState()
    job = _streaming_job(settings, state).start_in_background()
    runtime = AppRuntime(settings, state, job, mongo.client(settings))
    atexit.register(runtime.stop)
    return runtime


def _streaming_job(settings: Settings, state: MarketState) -> MarketJob | AggregateReader | RealtimeJob | RealtimeFeed:
    """What feeds the state: the query itself, or (reading mode) what a job elsewhere writes."""
    reader = settings.app_mode == "reader"
    if settings.stream_mode == "realtime":
        return RealtimeFeed(settings, state) if reader else RealtimeJob(settings, state)
    return AggregateReader(settings, state) if reader else MarketJob(settings, state)


def get_runtime() -> AppRuntime:
    return _installed or _create_runtime()


@st.cache_data(ttl=30, show_spinner=False)
def _stocks_from_db(runtime_key: str, database: str) -> tuple[list[Stock], tuple[tuple[str, str], ...]]:
    # runtime_key only separates cache entries of different runtimes (an installed one in tests).
    documents = list(get_runtime().mongo[database]["stock"].find({}))
    stocks = [stock for stock in map(stock_of, documents) if stock is not None]
    return sorted(stocks), StockList.of(documents).skipped


def _stock_documents() -> tuple[list[Stock], tuple[tuple[str, str], ...]]:
    runtime = get_runtime()
    try:
        return _stocks_from_db(str(id(runtime)), runtime.settings.database)
    except Exception:  # noqa: BLE001 - the banner on the page reports MongoDB being down
        return [], ()


def listed_stocks() -> dict[str, Stock]:
    """Symbol -> reference data, from ``stockmarket.stock`` (the built-in list if MongoDB is down)."""
    stocks, _ = _stock_documents()
    return {stock.symbol: stock for stock in stocks} or {stock.symbol: stock for stock in NSE_STOCKS}


def skipped_stock_documents() -> tuple[tuple[str, str], ...]:
    """``stock`` documents that list no usable symbol: (``_id``, why), for the Pipeline page."""
    return _stock_documents()[1]
