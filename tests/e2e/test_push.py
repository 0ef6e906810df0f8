"""Push-based redraw in a real browser (Debian's Chromium, Playwright) against ``streamlit run app.py``: a
trade written into MongoDB is pushed onto the open Market page (the server's change feed tells the page,
the page reruns its live fragment), an idle page asks the server for next to no reruns, and a rejected trade
is pushed into the Pipeline page's ledger.

Reruns are counted on the page's Streamlit WebSocket: every rerun of the page or of one of its fragments
is a ``rerun_script`` message the browser sends there.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, WebSocket, expect, sync_playwright
from streamlit.proto.BackMsg_pb2 import BackMsg

from pipeline.settings import Settings
from pipeline.sinks import mongo
from pipeline.waits import wait_until
from tests.e2e import test_browser
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS, SPARK_READY_S, set_as_text_open
from ui.ledger_view import REJECTED
from ui.live import CHANGES_PATH
from ui.push import VIEW_PATH

pytestmark = [pytest.mark.integration, pytest.mark.browser]
# The browser tests' fixtures: `streamlit run app.py` on the session's services, with its own relay and data.
app_settings = test_browser.app_settings
app_url = test_browser.app_url

DEADLINE_S = 60  # a deadline of waits, not a speed claim
IDLE_WINDOW_S = 6
# Without a change the Market page reruns on its slow tick only (every 5 s): two in the window at most,
# one more for a tick that straddles its start. Polling every DASHBOARD_REFRESH_MS made twelve.
IDLE_RERUNS_AT_MOST = 3
QUIET_S = 2
# The Market page's "As text" lines, whatever the price is called there ("TCS: NAV 3500.00 high …").
TCS_SHOWN, INFY_SHOWN = re.compile(r"TCS: \D*3500\.00\b"), re.compile(r"INFY: \D*1540\.25\b")


class Traffic:
    """What one page's WebSockets carried: rerun requests to Streamlit, versions from the change feed."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.reruns: list[str] = []  # the fragment id of each rerun request ("" for the whole page)
        self.versions: list[int] = []
        self.pushed_at: list[float] = []  # when each version arrived (time.monotonic())
        self.listening = False
        page.on("websocket", self._opened)

    def _opened(self, socket: WebSocket) -> None:
        if socket.url.endswith("/_stcore/stream"):
            socket.on("framesent", self._sent)
        elif CHANGES_PATH in socket.url:
            self.listening = True
            socket.on("framereceived", self._pushed)

    def _pushed(self, payload: str | bytes) -> None:
        self.versions.append(int(payload))
        self.pushed_at.append(time.monotonic())

    def _sent(self, payload: str | bytes) -> None:
        if isinstance(payload, bytes) and (message := BackMsg.FromString(payload)).WhichOneof("type") == "rerun_script":
            self.reruns.append(message.rerun_script.fragment_id)

    def seen(self) -> Traffic:
        """Playwright hands over events only inside its own calls: make one, so the counts are current."""
        self.page.evaluate("0")
        return self


@pytest.fixture(scope="module")
def market(app_url: str) -> Iterator[Traffic]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: `make test` installs it (apt-get install chromium); "
                    "or run `scripts/bootstrap.sh --browser` once")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        traffic = Traffic(page)
        page.goto(app_url)
        expect(page.get_by_role("heading", level=1)).to_contain_text("Market", timeout=60_000)
        yield traffic
        browser.close()


def insert_trade(settings: Settings, symbol: str, price: float) -> None:
    client = mongo.client(settings)
    try:
        client[settings.database]["transaction"].insert_one({"symbol": symbol, "price": price, "quantity": 1})
    finally:
        client.close()


def test_a_trade_inserted_into_mongodb_is_pushed_onto_the_market_page(market: Traffic, app_settings: Settings):
    page = market.page
    wait_until(lambda: market.seen().listening, timeout=30, what="the page listening on the change feed")
    # The query's first batch pays for code generation (and Spark starts with the first page): warm it up.
    insert_trade(app_settings, "TCS", 3500.0)
    set_as_text_open(page, True, timeout_s=SPARK_READY_S)
    expect(page.get_by_text(TCS_SHOWN)).to_be_visible(timeout=DEADLINE_S * 1000)

    pushed, reruns = len(market.seen().versions), len(market.reruns)
    inserted = time.monotonic()
    insert_trade(app_settings, "INFY", 1540.25)
    expect(page.get_by_text(INFY_SHOWN)).to_be_visible(timeout=DEADLINE_S * 1000)
    shown = time.monotonic()
    market.seen()
    assert len(market.versions) > pushed, "the change feed sent no version: the trade came by the slow tick"
    last_push = max(at for at in market.pushed_at if at <= shown)
    print(f"\ninsert -> last version pushed before it showed {last_push - inserted:.3f} s -> seen on screen "
          f"{shown - inserted:.3f} s (as often as Playwright looks)")
    assert all(market.reruns[reruns:]), "a whole-page rerun: only the live fragment should have rerun"


def test_an_idle_market_page_asks_for_next_to_no_reruns(market: Traffic):
    page = market.page
    expect(page.get_by_text(TCS_SHOWN)).to_be_visible(timeout=DEADLINE_S * 1000)
    # The record (micro-batch) query may still apply the last trades the live path showed first: let it.
    wait_until(lambda: time.monotonic() - max(market.seen().pushed_at, default=0) > QUIET_S, timeout=DEADLINE_S,
               what=f"no change pushed for {QUIET_S} s")
    versions, reruns = len(market.versions), len(market.reruns)
    page.wait_for_timeout(IDLE_WINDOW_S * 1000)  # the window observed, no trade written in it
    market.seen()
    asked = market.reruns[reruns:]
    assert len(asked) <= IDLE_RERUNS_AT_MOST, f"{len(asked)} reruns in {IDLE_WINDOW_S} s without a trade " \
                                              f"({len(market.versions) - versions} versions pushed meanwhile)"


def test_a_rejected_trade_is_pushed_into_the_pipeline_pages_ledger(market: Traffic, app_url: str,
                                                                   app_settings: Settings):
    page = market.page.context.browser.new_page(viewport={"width": 1440, "height": 900})
    pushed: list[str] = []  # what the ledgers' socket carried

    def opened(socket: WebSocket) -> None:
        if f"{VIEW_PATH}?of=ledgers" in socket.url:
            socket.on("framereceived", lambda frame: pushed.append(str(frame)))

    page.on("websocket", opened)
    try:
        page.goto(f"{app_url}/pipeline")
        count = page.get_by_test_id("liveFigure").filter(has_text=REJECTED).locator(".sd-value")
        expect(count).to_have_text(re.compile(r"^[\d,]+$"), timeout=DEADLINE_S * 1000)
        before = int(count.inner_text().replace(",", ""))
        insert_trade(app_settings, "TCS", -3500.0)  # a negative price: rejected as invalid_price
        expect(count).to_have_text(f"{before + 1:,}", timeout=DEADLINE_S * 1000)
        expect(page.get_by_test_id("liveLedger").first).to_contain_text("invalid_price")
        page.evaluate("0")  # Playwright hands over the socket's frames inside its own calls
        assert any(f'"value":"{before + 1:,}"' in frame for frame in pushed), "the count came by a rerun"
    finally:
        page.close()
