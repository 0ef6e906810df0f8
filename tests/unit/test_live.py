"""The push route's wait logic without a browser: the change feed wakes its listeners when the state moves
and only then, the WebSocket sends each new version once, and a client that leaves frees its listener.
And the fallback: without the route, live fragments rerun on a timer as before."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from starlette.applications import Starlette
from websockets.sync.client import connect

from pipeline.domain.state import MarketState
from pipeline.waits import wait_until
from stack.process import free_port
from ui import live

WAKE_S = 0.2  # the feed's idle wake, short so that each test's thread ends soon after it


@pytest.fixture
def feed() -> Iterator[live.ChangeFeed]:
    feed = live.ChangeFeed(MarketState(), wake_s=WAKE_S)
    yield feed
    feed.close()


def later(seconds: float, action) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def test_a_listener_behind_the_state_returns_at_once(feed):
    assert asyncio.run(feed.wait_past(-1, timeout=5)) == feed.version


def test_a_change_wakes_every_listener_within_milliseconds(feed):
    since = feed.version

    async def listen() -> tuple[list[int], float]:
        started = time.monotonic()
        timer = later(0.1, lambda: feed.state.record_error("boom"))  # any mutation bumps the version
        try:
            versions = await asyncio.gather(*(feed.wait_past(since, timeout=10) for _ in range(20)))
        finally:
            timer.join()
        return list(versions), time.monotonic() - started

    versions, took = asyncio.run(listen())
    assert versions == [since + 1] * 20
    assert took < 1.0, f"woken {took:.3f} s after start (the change came after 0.1 s)"


def test_without_a_change_a_listener_times_out_with_the_same_version(feed):
    since = feed.version
    started = time.monotonic()
    assert asyncio.run(feed.wait_past(since, timeout=0.3)) == since
    assert time.monotonic() - started >= 0.3
    assert not feed._waiters  # a listener that gave up is not kept


def test_the_feed_follows_a_replaced_state(monkeypatch):
    monkeypatch.setattr(live, "_feed", None)
    first, second = MarketState(), MarketState()
    feed = live.feed_for(first)
    assert feed.state is first and live.feed_for(first) is feed
    replaced = live.feed_for(second)
    assert replaced.state is second and feed._closed.is_set()
    replaced.close()


class FakeSocket:
    """What :func:`live.send_changes` uses of a Starlette WebSocket: texts sent, and a client that leaves."""

    def __init__(self) -> None:
        self.sent: asyncio.Queue[str] = asyncio.Queue()
        self.left = asyncio.Event()

    async def send_text(self, text: str) -> None:
        await self.sent.put(text)

    async def receive(self) -> dict:
        await self.left.wait()
        return {"type": "websocket.disconnect"}


def test_the_socket_sends_each_new_version_once_and_ends_when_the_client_leaves(feed):
    async def converse() -> list[str]:
        socket = FakeSocket()
        sending = asyncio.create_task(live.send_changes(socket, feed, since=feed.version, round_s=0.1))  # type: ignore[arg-type]
        await asyncio.sleep(0.3)  # three rounds without a change: nothing is sent
        assert socket.sent.empty()
        heard = []
        for _ in range(2):
            feed.state.record_error(None)
            heard.append(await asyncio.wait_for(socket.sent.get(), timeout=5))
        socket.left.set()
        await asyncio.wait_for(sending, timeout=5)
        assert socket.sent.empty()
        return heard

    assert asyncio.run(converse()) == [str(feed.version - 1), str(feed.version)]
    assert not feed._waiters


def test_a_page_that_drew_another_version_hears_the_current_one_at_once(feed):
    async def first_message(since: int) -> str:
        socket = FakeSocket()
        sending = asyncio.create_task(live.send_changes(socket, feed, since=since))  # type: ignore[arg-type]
        try:
            return await asyncio.wait_for(socket.sent.get(), timeout=5)
        finally:
            socket.left.set()
            await sending

    assert asyncio.run(first_message(feed.version - 1)) == str(feed.version)
    assert asyncio.run(first_message(feed.version + 50)) == str(feed.version)  # the state was replaced


@contextmanager
def serving(routes: list) -> Iterator[str]:
    """``routes`` on a real uvicorn server (as st.App serves them): yields ``ws://host:port``."""
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=routes), host="127.0.0.1", port=free_port(),
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=10, what="uvicorn serving the routes")
        yield f"ws://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def served(feed: live.ChangeFeed, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The route on a real uvicorn server, on ``feed``'s state."""
    monkeypatch.setattr(live, "runtime_feed", lambda: feed)
    try:
        with serving(live.routes()) as base:
            yield f"{base}{live.CHANGES_PATH}"
    finally:
        live.route_served().clear()  # process-wide: AppTest pages run later in this process must poll


def test_the_route_pushes_a_change_over_a_real_websocket(served, feed):
    assert live.route_served().is_set()  # routes() turns the live fragments to push
    with connect(f"{served}?since={feed.version}", open_timeout=5) as client:
        started = time.monotonic()
        later(0.05, lambda: feed.state.record_error("x"))
        assert client.recv(timeout=5) == str(feed.version)
        assert time.monotonic() - started < 1.0
    wait_until(lambda: not feed._waiters, timeout=5, what="the listener of a closed socket dropped")


def test_a_bad_since_counts_as_none(served, feed):
    with connect(f"{served}?since=nonsense", open_timeout=5) as client:
        assert client.recv(timeout=5) == str(feed.version)


def test_live_fragments_fall_back_to_a_timer_without_the_route(monkeypatch):
    calls = []
    assert not live.route_served().is_set()
    monkeypatch.setattr(live.st, "fragment", lambda body=None, **options: calls.append(options) or body)

    class Runtime:
        settings = type("Settings", (), {"dashboard_refresh_ms": 500})()
        state = MarketState()

    def body() -> None: ...

    assert live.fragment(Runtime(), idle_s=5)(body) is body  # type: ignore[arg-type]
    assert calls == [{"run_every": 0.5}]


def test_a_page_with_pushed_parts_reruns_for_changes_at_its_longer_gap(monkeypatch):
    """The browser's component hears the gap: DASHBOARD_REFRESH_MS, or the fragment's gap_s if longer."""
    heard = []
    monkeypatch.setattr(live.st, "fragment", lambda body=None, **options: body)
    monkeypatch.setattr(live, "watch", lambda name, version, idle, gap: heard.append((name, idle, gap)))
    live.route_served().set()
    try:
        class Runtime:
            settings = type("Settings", (), {"dashboard_refresh_ms": 500})()
            state = MarketState()

        def pushed() -> None: ...

        def plain() -> None: ...

        live.fragment(Runtime(), idle_s=5, gap_s=2.0)(pushed)()  # type: ignore[arg-type]
        live.fragment(Runtime(), idle_s=5, gap_s=0.1)(plain)()  # type: ignore[arg-type]
    finally:
        live.route_served().clear()
    assert heard == [("pushed", 5, 2.0), ("plain", 5, 0.5)]
