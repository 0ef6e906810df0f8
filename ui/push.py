"""Values pushed into an open page without a rerun: the Market page's figures and table, the Stock page's
figures, forming candle and latest trades, the Pipeline page's ledgers.

A rerun redraws every element of a fragment (~125 ms of the browser's main thread for a Stock page on this
VM), so a page that reruns for each change follows the market at most about twice a second. What moves with
every trade is instead sent to the page as data at each change of the state (at most every ``PUSH_GAP_S``)
over a WebSocket at ``/_stockdash/view?of=<view>``, and the page's component (``ui/push.js``) writes the
new texts into the elements it drew: a trade is on screen a few tens of milliseconds after the state took
it. The fragment still reruns (``ui/live.py``) for the rest of the page: the candle chart, the movers.

Where the route is not served (``AppTest``), :func:`route_served` is false and the page draws the same data
with Streamlit's own elements.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import streamlit as st
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket

from ui import live

if TYPE_CHECKING:
    from pipeline.domain.snapshot import MarketSnapshot
    from pipeline.domain.state import MarketState

VIEW_PATH = "/_stockdash/view"
PUSH_GAP_S = 0.05  # at most 20 pushes a second to one page: more is not seen, and costs the browser
# While trades flow, the rest of a page with pushed parts (the candle chart, the movers) redraws at most this
# often: a rerun costs the browser ~125 ms of its main thread and the server a run of the page, and five
# open pages redrawing twice a second took the 2 cores from the pushes (measured in docs/benchmarks.md).
REST_OF_PAGE_S = 2.0
_JS, _CSS = Path(__file__).with_suffix(".js"), Path(__file__).with_suffix(".css")
Build = Callable[["MarketSnapshot"], "dict[str, object] | None"]


class PushedViews:
    """The views pages may follow, by name ("market", "stock:TCS"), each with how to build it from a
    snapshot: only a view a page has drawn is served (never a symbol that is not listed). One message per
    view and state version, for every open page."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._builds: dict[str, Build] = {}
        self._messages: dict[str, tuple[int, tuple[str, str] | None]] = {}

    def allow(self, name: str, build: Build) -> None:
        with self._lock:
            self._builds[name] = build

    def allowed(self, name: str) -> bool:
        with self._lock:
            return name in self._builds

    def message(self, state: MarketState, name: str) -> tuple[str, str] | None:
        """The view: what it shows (to tell a change) and the JSON to send; None while there is nothing to show."""
        version = state.version
        with self._lock:
            cached = self._messages.get(name)
            build = self._builds[name]
        if cached is not None and cached[0] == version:
            return cached[1]
        snapshot = state.snapshot()  # one per version for the whole app (the state keeps it)
        view = build(snapshot)
        message = None
        if view is not None:
            shown = {key: value for key, value in view.items() if key != "version"}
            message = json.dumps(shown, separators=(",", ":")), json.dumps(view, separators=(",", ":"))
        with self._lock:
            self._messages[name] = (snapshot.version, message)
        return message


@st.cache_resource(show_spinner=False)
def pushed_views() -> PushedViews:
    """One per process, kept across Streamlit's re-imports of the project's modules."""
    return PushedViews()


async def view_socket(socket: WebSocket) -> None:
    name = socket.query_params.get("of", "")
    views = pushed_views()
    if not views.allowed(name):
        await socket.close(code=1008)  # refused (HTTP 403): only a view a page has drawn is served
        return
    await socket.accept()
    feed = await asyncio.to_thread(live.runtime_feed)  # may take the state's lock: off the event loop
    sent: list[str | None] = [None]  # what the page shows: a version that changed nothing of it is not sent

    async def changed_view(_version: int) -> str | None:
        message = await asyncio.to_thread(views.message, feed.state, name)
        if message is None or message[0] == sent[0]:
            return None
        sent[0] = message[0]
        return message[1]

    await live.follow(socket, feed, -1, changed_view, gap_s=PUSH_GAP_S)


def routes() -> list[BaseRoute]:
    """The push route, served beside the app (``st.App(..., routes=...)``)."""
    return [WebSocketRoute(live.served_path(VIEW_PATH), view_socket)]


@functools.cache
def _component() -> Callable[..., object]:
    # Not isolated in a shadow root: the page's fonts and colours apply, and the texts are in the document.
    return st.components.v2.component("stockdash_push", js=_JS.read_text(), css=_CSS.read_text(),
                                      isolate_styles=False)


def pushed(part: str, name: str, build: Build, view: dict[str, object], **options: object) -> None:
    """One part of a page ("figures" and "trades" of a Stock page, "market", "ledgers"), drawn now from ``view`` and then
    from each newer view of ``name`` the server pushes; ``options`` go to the browser as they are."""
    pushed_views().allow(name, build)
    _component()(key=f"stockdash_push_{part}", height="content", data={
        "part": part, "path": f"{live.served_path(VIEW_PATH)}?of={quote(name)}", "view": view, **options})


def route_served() -> bool:
    return live.route_served().is_set()


def metrics(figures: list[dict], per_row: int) -> None:
    """A view's figures with Streamlit's own st.metric, where the route is not served."""
    for start in range(0, len(figures), per_row):
        for column, figure in zip(st.columns(per_row), figures[start:start + per_row], strict=False):
            column.metric(figure["label"], figure["value"], figure["delta"], help=figure["help"],
                          delta_color="off" if figure["tone"] == "off" else "normal",
                          delta_arrow="off" if figure["tone"] == "off" else "auto")
