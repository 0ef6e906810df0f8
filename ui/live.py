"""Push-based redraw: a page's live fragment reruns when the market state changed, not on a timer.

Served as ``st.App`` (``app.py``), the app has one more route beside Streamlit's: a WebSocket at
``/_stockdash/changes?since=<version>`` that sends the state's version each time it moves past the one
a page drew. A tiny inline component (``ui/live.js``) in each live fragment listens there and asks for a
rerun of that fragment only: a trade is on screen a few tens of milliseconds after the state took it,
and an idle page costs nothing but its optional slow tick (for "x s ago" texts and the like).

A WebSocket, not server-sent events: a browser opens at most six HTTP/1.1 connections to one host, and
each open tab would hold one of them; WebSockets are not counted there.

Where the route is not served (``AppTest``, or a server started some other way) the fragments fall back to
``st.fragment(run_every=DASHBOARD_REFRESH_MS)``, as before.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec

import streamlit as st
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

if TYPE_CHECKING:
    from pipeline.domain.state import MarketState
    from ui.runtime import AppRuntime

P = ParamSpec("P")
CHANGES_PATH = "/_stockdash/changes"
# The feed's thread wakes this often without a change, only to notice it was closed.
WAKE_S = 30.0
_JS = Path(__file__).with_suffix(".js")


class ChangeFeed:
    """The state's version for asyncio code: one thread waits on the state's condition for every
    listener (a blocked thread per open page would drain the server's worker threads)."""

    def __init__(self, state: MarketState, wake_s: float = WAKE_S) -> None:
        self.state = state
        self._wake_s = wake_s
        self._lock = threading.Lock()
        self._version = state.version
        self._waiters: set[asyncio.Future[int]] = set()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="stockdash-change-feed", daemon=True)
        self._thread.start()

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    async def wait_past(self, since: int, timeout: float) -> int:
        """The version as soon as it exceeds ``since``; after ``timeout`` s, the version then."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._version > since:
                return self._version
            self._waiters.add(future)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return self.version
        finally:
            with self._lock:
                self._waiters.discard(future)

    def close(self) -> None:
        """Stop following the state; the thread ends at its next wake (at most ``wake_s`` s)."""
        self._closed.set()

    def _follow(self) -> None:
        seen = self.version
        while not self._closed.is_set():
            version = self.state.wait_for_change(seen, timeout=self._wake_s)
            if version != seen:
                seen = version
                self._publish(version)

    def _publish(self, version: int) -> None:
        with self._lock:
            self._version = version
            waiters, self._waiters = self._waiters, set()
        for future in waiters:
            future.get_loop().call_soon_threadsafe(_resolve, future, version)


def _resolve(future: asyncio.Future[int], version: int) -> None:
    if not future.done():  # timed out or the client left meanwhile
        future.set_result(version)


_feed: ChangeFeed | None = None
_feed_lock = threading.Lock()


def feed_for(state: MarketState) -> ChangeFeed:
    """The process's feed of ``state`` (a new one if the app's state was replaced, as tests do)."""
    global _feed
    with _feed_lock:
        if _feed is None or _feed.state is not state:
            if _feed is not None:
                _feed.close()
            _feed = ChangeFeed(state)
        return _feed


def runtime_feed() -> ChangeFeed:
    from ui.runtime import get_runtime  # the runtime the pages use (made once per process, or installed)

    return feed_for(get_runtime().state)


async def send_changes(socket: WebSocket, feed: ChangeFeed, since: int, round_s: float = 25.0) -> None:
    """Send the version whenever it passes ``since`` (at once if it differs already: the page drew an
    older one, or a state that was replaced). Returns when the client leaves."""
    async def version_text(version: int) -> str:
        return str(version)

    await follow(socket, feed, since, version_text, round_s)


async def follow(socket: WebSocket, feed: ChangeFeed, since: int, message: Callable[[int], Awaitable[str | None]],
                 round_s: float = 25.0, gap_s: float = 0.0) -> None:
    """Send ``message(version)`` (unless None) whenever the version passes ``since``, at once if it differs
    already, then at most once per ``gap_s``. Returns when the client leaves. Nothing is sent while nothing
    changes (each wait lasts at most ``round_s``; uvicorn's pings keep the socket alive)."""
    receiving = asyncio.ensure_future(socket.receive())  # completes when the client disconnects
    try:
        if feed.version != since:
            since = feed.version
            await _send(socket, await message(since))
        while not receiving.done():
            if gap_s:
                await asyncio.wait({receiving}, timeout=gap_s)  # changes meanwhile are sent as one
            waiting = asyncio.ensure_future(feed.wait_past(since, round_s))
            await asyncio.wait({waiting, receiving}, return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                waiting.cancel()
                break
            if (version := waiting.result()) > since:
                since = version
                await _send(socket, await message(since))
    except (WebSocketDisconnect, WebSocketDisconnected, OSError):
        pass  # the client left while a message was on its way
    finally:
        receiving.cancel()


async def _send(socket: WebSocket, text: str | None) -> None:
    if text is not None:
        await socket.send_text(text)


async def changes(socket: WebSocket) -> None:
    try:
        since = int(socket.query_params.get("since", "-1"))
    except ValueError:
        since = -1
    await socket.accept()
    feed = await asyncio.to_thread(runtime_feed)  # may take the state's lock: off the event loop
    await send_changes(socket, feed, since)


def served_path(path: str) -> str:
    """``path`` under the server's ``baseUrlPath``, if one is set."""
    base = str(st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}{path}" if base else path


def changes_path() -> str:
    return served_path(CHANGES_PATH)


@st.cache_resource(show_spinner=False)
def route_served() -> threading.Event:
    """Set once app.py serves the route. Kept in Streamlit's resource cache, not in a module global:
    Streamlit re-imports the project's modules whenever one of its files changes, and a global would be
    forgotten then (every page falling back to the timer)."""
    return threading.Event()


def routes() -> list[BaseRoute]:
    """The routes to serve beside the app (``st.App(..., routes=routes())``); live fragments push from then on."""
    route_served().set()
    return [WebSocketRoute(changes_path(), changes)]


@functools.cache
def _component() -> Callable[..., object]:
    return st.components.v2.component("stockdash_live", js=_JS.read_text())


def fragment(runtime: AppRuntime, *, idle_s: float | Callable[[], float | None] | None = None,
             gap_s: float | None = None) -> Callable[[Callable[P, None]], Callable[P, None]]:
    """``@st.fragment`` that reruns when ``runtime.state`` moves (at most once per DASHBOARD_REFRESH_MS
    while changes flow, or per ``gap_s`` if longer: a page whose moving values are pushed, ``ui/push.py``)
    and, if ``idle_s`` is given (a number, or a function asked at each run), after that many seconds without
    a change; every DASHBOARD_REFRESH_MS where the push route is not served."""
    refresh_s = runtime.settings.dashboard_refresh_ms / 1000
    rest_s = max(refresh_s, gap_s or 0)

    def decorate(body: Callable[P, None]) -> Callable[P, None]:
        if not route_served().is_set():
            return st.fragment(body, run_every=refresh_s)

        @functools.wraps(body)
        def run(*args: P.args, **kwargs: P.kwargs) -> None:
            idle = idle_s() if callable(idle_s) else idle_s
            # The version before the body reads the state: a change while drawing is drawn once more.
            version = runtime.state.version
            try:
                body(*args, **kwargs)
            finally:  # last, so the browser hears of the draw once it is whole; even a failed one, to retry
                watch(body.__name__, version, idle, rest_s)

        return st.fragment(run)

    return decorate


def watch(name: str, version: int, idle_s: float | None, gap_s: float) -> None:
    """The listening component of one fragment (draws nothing)."""
    _component()(key=f"stockdash_live_{name}", height="content", data={
        "version": version, "path": changes_path(), "gap_ms": int(gap_s * 1000),
        "idle_ms": int(idle_s * 1000) if idle_s else 0,
        "run": time.monotonic_ns(),  # new data at every run: the browser hears of each draw
    })
