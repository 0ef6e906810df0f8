"""The app's process-wide runtime: settings, MarketState, the Spark query and a MongoDB client.

Made once per process by ``st.cache_resource`` (never at import). ``streamlit run app.py`` with no address
configured and no local stack running starts the local stack itself (:mod:`stack.embedded`), then the
query; both start in the background so the first page renders at once and shows "starting" until they
are up. What the runtime started is stopped when the process ends.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, cast

import streamlit as st
from pymongo import MongoClient

from pipeline.domain.state import MarketState
from pipeline.domain.status import QueryState, QueryStatus
from pipeline.domain.stocks import NSE_STOCKS, Stock, StockList, stock_of
from pipeline.settings import Settings
from pipeline.sinks import mongo
from pipeline.sinks.live_feed import ReaderWithLiveTicks
from pipeline.sinks.reader import AggregateReader
from pipeline.spark.jobs import StreamingJobs
from simulator.generator import TradeGenerator
from stack.embedded import EmbeddedStack, Phase, Plan, StackStatus
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
    stack: EmbeddedStack | None = None  # the local stack this app starts (None: made by a test or a host)
    health: ServiceHealth = field(init=False)
    generator: TradeGenerator = field(init=False)
    _stopped: threading.Event = field(default_factory=threading.Event)
    _job_lock: threading.Lock = field(default_factory=threading.Lock)
    _feed_error: str | None = None
    _views: dict[str, tuple[object, object]] = field(default_factory=dict)
    _views_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.health = ServiceHealth(self.settings, self.mongo, stack=self.stack)
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

    def feed(self, ready: Settings) -> None:
        """Start what feeds the state, with ``ready``: the settings the services answer at (the local stack's
        addresses and Spark's jars filled in). Called by the stack's thread once they are up."""
        try:
            job = _streaming_job(ready, self.state).start_in_background()
        except Exception as exc:  # noqa: BLE001 - shown as words on the page; the trace goes to the log
            log.exception("the streaming query could not start")
            self._feed_error = f"it could not start ({type(exc).__name__}: {exc})"
            return
        _leave_out_of_full_collections()
        with self._job_lock:
            if not self._stopped.is_set():
                self.job = job
                return
        job.stop()  # the app ended while the job was being made

    def stop(self) -> None:
        """Stop the job, then the local stack it reads from (what this runtime started only); safe twice."""
        with self._job_lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
        self.generator.stop()
        self.health.stop()
        if self.job is not None:
            self.job.stop()
        self.mongo.close()
        if self.stack is not None:
            self.stack.stop()

    def stack_status(self) -> StackStatus | None:
        return self.stack.status() if self.stack is not None else None

    def query_status(self) -> QueryStatus:
        if self.job is not None:
            return self.job.status()
        if self._feed_error is not None:
            return QueryStatus(QueryState.FAILED, error=self._feed_error)
        stack = self.stack_status()
        if stack is None:
            return QueryStatus(QueryState.READING)
        if stack.phase is Phase.FAILED:
            return QueryStatus(QueryState.FAILED, error="not started, as the services it reads from did not start")
        return QueryStatus(QueryState.STOPPED if stack.phase is Phase.STOPPED else QueryState.STARTING)


_installed: AppRuntime | None = None


def _leave_out_of_full_collections() -> None:
    """What the imports and the start made (~160,000 objects: modules, functions, types) lives as long as the
    process, yet every full collection of Python's cyclic collector walked it, holding the interpreter lock the
    live feed and the pushes wait for: 0.3-0.5 s every ~10 s at 1,000 trades/s. Frozen, it is left out; young
    and middle collections are as before (docs/benchmarks.md, "The collector's pauses")."""
    gc.collect()
    gc.freeze()
    log.info("%d objects left out of the collector's full collections", gc.get_freeze_count())


def install(runtime: AppRuntime | None) -> None:
    """Use a runtime made by the embedding process (a test, or a host running the job itself)."""
    global _installed
    _installed = runtime


_created: list[AppRuntime] = []  # what _create_runtime made in this process, for lifespan() to stop


# A cleared cache would otherwise leave its runtime's query and stack running beside the next one.
@st.cache_resource(show_spinner=False, on_release=lambda runtime: runtime.stop())
def _create_runtime() -> AppRuntime:
    runtime = start_runtime(Settings.from_env())
    _created.append(runtime)
    atexit.register(runtime.stop)  # a plain interpreter exit (Ctrl-C ends Streamlit's server that way)
    return runtime


@asynccontextmanager
async def lifespan(_app: object) -> AsyncIterator[None]:
    """For ``st.App(..., lifespan=lifespan)``: stops the runtime, its query first, then its local stack, when the
    server shuts down. Needed for SIGTERM: Streamlit's server (uvicorn) re-raises it with the default action
    once shut down, which ends the process before atexit handlers run (a guard process then stops the stack,
    see :mod:`stack.watchdog`, but the query gets no orderly stop)."""
    try:
        yield
    finally:
        for runtime in list(_created):
            await asyncio.to_thread(runtime.stop)


def start_runtime(settings: Settings) -> AppRuntime:
    """The app's runtime, returned at once: the local stack (when this app starts it, see
    :mod:`stack.embedded`) and then the streaming job start in a background thread. ``stop()`` ends both."""
    # kafka-python logs each reconnect attempt as an error; the pages and our own log lines say it once.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    stack = EmbeddedStack(settings)
    # The stack's addresses are those ``settings`` name (LOCAL_*_PORT), so the client works from the start.
    runtime = AppRuntime(settings, MarketState(), None, mongo.client(settings), stack=stack)
    stack.start_in_background(then=runtime.feed)
    return runtime


def _streaming_job(settings: Settings, state: MarketState) -> StreamingJobs | AggregateReader | ReaderWithLiveTicks:
    """What feeds the state: the queries themselves, or (reading mode) what a job elsewhere persists."""
    if settings.app_mode != "reader":
        return StreamingJobs(settings, state)
    if settings.stream_mode != "realtime":
        return AggregateReader(settings, state)
    return ReaderWithLiveTicks(AggregateReader(settings, state, persisted_freshness=False), settings, state)


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
    stack = runtime.stack_status()
    if stack is not None and stack.plan is not Plan.CONFIGURED and stack.phase is not Phase.READY:
        # The app's own MongoDB is not up (yet): asking would hold every page for the client's timeout.
        return [], ()
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
