"""Keep a page switch from being undone by a late rerun of a fragment of the page being left.

A live fragment asks for its own rerun whenever the market moves (:mod:`ui.live`). The browser stamps that
request with the page it believes is open, and it believes so until the new page's run has started. So a
fragment of the Simulator page that fires a few milliseconds after a click on Market reaches the server
*after* the page switch, stamped with the Simulator page. Streamlit (1.67) queues it behind the Market
run, finds no such fragment any more, yet starts a run of the Simulator page for it: the browser clears
Market's elements for that "page" and draws nothing, and with no live fragment left on screen the page
stays blank until a reload. Measured: one switch in five while trades flowed.

The fix: the session remembers the page the last full run was asked for, and for a few seconds drops a
fragment rerun stamped with another page (that fragment belongs to the page being left). Only for a few
seconds: a run may end up on another page than asked (a first load names none; a script may switch
pages), and a page's own fragments must never be silenced for long. Streamlit internals, hence one
function here, installed once by ``app.py``, and a test that fails if the wrapped method changes shape.
Beside it, :func:`navigation_only`: the first visit of a fresh server to a page other than Market must
open the app, not the ``pages/`` file alone.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

from streamlit.runtime.app_session import AppSession
from streamlit.runtime.pages_manager import PagesManager

log = logging.getLogger("stockdash.app")
# Longer than a page switch takes to reach the browser (the run's start, then one message).
SWITCH_WINDOW_S = 5.0
_ASKED = "_stockdash_page_asked"  # (page script hash, monotonic time) of the last full rerun request


def is_stray(asked: tuple[str, float] | None, page_script_hash: str, now: float) -> bool:
    """A fragment rerun stamped with another page than the full run asked for just before (when both pages
    are known: a first load names its page by URL only)."""
    if asked is None or not page_script_hash:
        return False
    page, at = asked
    return page_script_hash != page and now - at < SWITCH_WINDOW_S


def install() -> None:
    """Wrap ``AppSession.request_rerun`` once per process (idempotent)."""
    original = AppSession.request_rerun
    if getattr(original, "_stockdash_guard", False):
        return

    @functools.wraps(original)
    def request_rerun(self: AppSession, client_state: Any) -> None:
        if client_state is not None:
            now = time.monotonic()
            if not client_state.fragment_id:
                setattr(self, _ASKED, (client_state.page_script_hash, now) if client_state.page_script_hash else None)
            elif is_stray(getattr(self, _ASKED, None), client_state.page_script_hash, now):
                log.debug("dropped a rerun of fragment %s of the page being left", client_state.fragment_id)
                return
        original(self, client_state)

    request_rerun._stockdash_guard = True  # type: ignore[attr-defined]
    AppSession.request_rerun = request_rerun  # type: ignore[method-assign]


def navigation_only() -> None:
    """Declare up front that the app's pages come from ``st.navigation`` (``app.py``), not from the
    ``pages/`` directory beside it. Streamlit (1.67) decides that at the first run of the process: until some
    run has called ``st.navigation`` it takes an app with a ``pages/`` directory for an old-style multipage
    app, so the first visitor of a fresh server who opened ``/stock`` got ``pages/stock.py`` run alone
    (narrow layout, the files' names as navigation, "app" among them)."""
    PagesManager.uses_pages_directory = False
