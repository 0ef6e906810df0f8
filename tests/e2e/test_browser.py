"""The app in a real browser: Debian's Chromium driven by Playwright against ``streamlit run`` on a
free port, with its own Spark query, CDC relay, database and topic on the session's MongoDB and Kafka.

A trade entered on Simulator shows on Market and on its Stock page; a scenario runs to its verdict;
every page is screenshotted into ``test-artifacts/screenshots`` (the README's
pictures come from there); and the browser console stays free of errors.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect, sync_playwright

from pipeline.domain.days import session_of, session_start_s
from pipeline.settings import Settings
from pipeline.sinks import mongo
from pipeline.waits import wait_until
from simulator.trades import RandomWalk, insert_many
from stack.process import free_port
from tests.children import isolated, relay_started, start, stop

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Streamlit's frontend, opened on a page's own URL, first probes /<page>/_stcore/health and
# host-config and gets 404 before it finds the server root (streamlit/streamlit#7074). Only those.
KNOWN_PROBE_404 = re.compile(r"/[a-z]+/_stcore/(health|host-config)$")
SPARK_READY_S = 180  # Spark starts inside the app on its first page view
# Deadlines of waits, not speed claims: how fast a trade reaches the screen is measured by `make bench`.
DEADLINE_S = 60
HISTORY = timedelta(minutes=30)  # of INFY's trades, before the screenshots: candles to draw and to zoom into
ZOOMED_HISTORY = timedelta(minutes=25)  # of it the zoom test needs today: its whole chart spans 20 minutes


@pytest.fixture(scope="module")
def app_settings(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return isolated(stack, tmp_path_factory.mktemp("browser"), "ui")


@pytest.fixture(scope="module")
def app_url(app_settings: Settings) -> Iterator[str]:
    env = {**app_settings.service_env(), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    port = free_port()
    logs = app_settings.data_dir
    relay = start(["pipeline.services.relay"], env, logs / "relay.log")
    relay_started(app_settings)
    archive = start(["pipeline.services.archive", "run"], env, logs / "archive.log")
    app = start(["streamlit", "run", "app.py", "--server.headless", "true", "--server.address", "127.0.0.1",
                 "--server.port", str(port)], env, logs / "streamlit.log")
    url = f"http://127.0.0.1:{port}"
    try:
        def healthy() -> bool:
            assert app.poll() is None, (logs / "streamlit.log").read_text()[-3000:]
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                return response.status == 200

        wait_until(healthy, timeout=60, what="streamlit run answering", interval=0.2)
        yield url
    finally:
        stop(app, relay, archive)


@pytest.fixture(scope="module")
def browser_page(app_url: str) -> Iterator[Page]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: `make test` installs it (apt-get install chromium); "
                    "or run `scripts/bootstrap.sh --browser` once")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.console_problems = []  # what the console and the network reported as errors

        def on_console(message) -> None:
            url = (message.location or {}).get("url", "")
            if message.type == "error" and not KNOWN_PROBE_404.search(url):
                page.console_problems.append(f"console: {message.text} ({url})")

        def on_response(response) -> None:
            if response.status >= 400 and not KNOWN_PROBE_404.search(response.url):
                page.console_problems.append(f"HTTP {response.status} {response.url}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: page.console_problems.append(f"page error: {error}"))
        page.on("response", on_response)
        page.goto(app_url)
        yield page
        browser.close()


@pytest.fixture(scope="module")
def screenshots(artifacts_dir: Path) -> Path:
    folder = artifacts_dir / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder


PAGE_PATHS = {"Market": "/", "Stock": "/stock", "Simulator": "/simulator", "Pipeline": "/pipeline"}


def open_page(page: Page, name: str) -> None:
    """Through the sidebar, as a person would (no reload)."""
    page.get_by_role("link", name=name).click()
    expect(page).to_have_url(re.compile(re.escape(PAGE_PATHS[name]) + r"(\?.*)?$"), timeout=30_000)
    expect(page.get_by_role("heading", level=1)).to_be_visible(timeout=30_000)


def market_text(page: Page, pattern: str, timeout_s: float) -> None:
    open_page(page, "Market")
    set_as_text_open(page, True, timeout_s)
    expect(page.get_by_text(re.compile(pattern))).to_be_visible(timeout=timeout_s * 1000)


def screenshot(page: Page, path: Path) -> None:
    heading = page.get_by_role("heading", level=1)
    heading.scroll_into_view_if_needed()
    expect(heading).to_be_in_viewport(timeout=10_000)  # the scroll has landed
    page.screenshot(path=path)


def choose(page: Page, label: str, option: str) -> None:
    """Pick an option of a select box by typing it and choosing it from the filtered list (pressing Enter
    before the list has filtered would leave the typed text in the box without selecting anything)."""
    box = page.get_by_role("combobox", name=label)
    box.click()
    box.fill(option)
    page.get_by_role("option", name=option, exact=True).click(timeout=10_000)
    expect(box).to_have_value(option, timeout=10_000)


def set_as_text_open(page: Page, open_: bool, timeout_s: float = 30) -> None:
    """Open or close the Market page's "As text" expander (a <details> element)."""
    details = page.locator("details").filter(has_text="As text")
    expect(details).to_be_visible(timeout=timeout_s * 1000)
    if (details.get_attribute("open") is not None) != open_:
        details.locator("summary").click()
    if open_:
        expect(details).to_have_attribute("open", re.compile(".*"), timeout=10_000)
    else:
        expect(details).not_to_have_attribute("open", re.compile(".*"), timeout=10_000)


def drawn_chart(page: Page) -> Locator:
    """A chart Vega has drawn. While a page redraws, the element of the chart it replaces can be there
    beside it for a moment, empty (two elements, where a bare locator of the test id must find one)."""
    return page.locator("[data-testid='stVegaLiteChart'][role='graphics-document']").first


def figure(page: Page, label: str) -> Locator:
    """One of the Stock page's figures (pushed by the server, ``ui/push.js``), by its label."""
    return page.get_by_test_id("liveFigure").filter(has=page.get_by_text(label, exact=True))


def no_console_errors(page: Page) -> None:
    problems, page.console_problems[:] = list(page.console_problems), []
    assert not problems, "\n".join(problems)


def test_the_first_visit_of_a_fresh_server_to_a_stock_page_has_the_apps_navigation(app_url: str):
    """The module's server has served no page yet (this test runs first and opens its own browser): a first
    visitor who opens a Stock page's link gets the app's pages, not the ``pages/`` directory's files."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"{app_url}/stock?symbol=TCS")
            expect(page.get_by_role("heading", level=1)).to_contain_text("TCS", timeout=60_000)
            navigation = page.get_by_test_id("stSidebarNav")
            expect(navigation).to_contain_text("Market", timeout=10_000)
            expect(navigation).not_to_contain_text("simulator")  # a file's name (the page is "Simulator")
        finally:
            browser.close()


def test_a_trade_entered_in_the_browser_shows_on_market_and_stock_pages(browser_page: Page, app_settings: Settings):
    page = browser_page
    expect(page.get_by_text("No trade has arrived yet")).to_be_visible(timeout=60_000)  # a new database
    open_page(page, "Pipeline")
    expect(page.get_by_text(re.compile(r"🟢\s*Spark query"))).to_be_visible(timeout=SPARK_READY_S * 1000)
    # The query's first batch pays for code generation: warm it up with a trade of another stock.
    client = mongo.client(app_settings)
    client[app_settings.database]["transaction"].insert_one({"symbol": "TCS", "price": 3500.0, "quantity": 1})
    client.close()
    market_text(page, r"TCS: last 3500\.00", timeout_s=60)

    open_page(page, "Simulator")
    page.get_by_label("Price (₹)").fill("1234.50")
    page.get_by_label("Quantity").fill("7")
    page.get_by_role("button", name="Insert trade").click()
    expect(page.get_by_text("Inserted buy 7 × ASIANPAINT @ ₹1234.50")).to_be_visible(timeout=15_000)
    market_text(page, r"ASIANPAINT: last 1234\.50 change [-+][\d.]+ \([-+][\d.]+%\) high 1234\.50 low 1234\.50 "
                      r"trades today 1\b", timeout_s=DEADLINE_S)

    open_page(page, "Stock")  # the first listed stock, ASIANPAINT
    expect(figure(page, "Last")).to_contain_text("₹1,234.50", timeout=DEADLINE_S * 1000)
    expect(drawn_chart(page)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/stock\?symbol=ASIANPAINT$"))
    no_console_errors(page)


def test_a_deep_link_opens_the_stock_page(browser_page: Page, app_url: str):
    page = browser_page
    page.goto(f"{app_url}/stock?symbol=TCS")
    expect(page.get_by_role("heading", level=1)).to_contain_text("TCS · Tata Consultancy Services", timeout=30_000)
    expect(figure(page, "Last")).to_contain_text("₹3,500.00", timeout=30_000)
    no_console_errors(page)


def test_a_scenario_runs_to_its_verdict_in_the_browser(browser_page: Page):
    page = browser_page
    open_page(page, "Simulator")
    choose(page, "Scenario", "Out of order")
    page.get_by_role("button", name="Run “Out of order”").click()
    expect(page.get_by_text("The dashboard shows exactly what the scenario must produce")).to_be_visible(timeout=60_000)
    no_console_errors(page)


def todays_history_start(now: datetime) -> datetime:
    """Half an hour back, but not before today's IST session began: a trade of an earlier session is set aside
    as late (``earlier_session``), so a run just after midnight IST gets less history."""
    return max(now - HISTORY, datetime.fromtimestamp(session_start_s(session_of(now)), tz=timezone.utc))


def test_every_page_is_screenshotted_with_live_data(browser_page: Page, app_settings: Settings, screenshots: Path):
    page = browser_page
    # Half an hour of INFY history, so its page has candles to draw; then the generator for live movement.
    client = mongo.client(app_settings)
    walk = RandomWalk({"INFY": 1540.0}, volatility_pct=0.3, seed=7)
    now = datetime.now(timezone.utc)
    start_at = todays_history_start(now)
    insert_many(client[app_settings.database]["transaction"],
                [walk.next_trade("INFY", start_at + timedelta(seconds=10 * i))
                 for i in range(int((now - start_at).total_seconds()) // 10)])
    client.close()
    open_page(page, "Simulator")
    page.get_by_role("button", name="Start").click()
    # Prices must have moved before the pictures: the sparklines and movers need a few hundred trades.
    expect(page.get_by_text(re.compile(r"(running|finished): ([5-9]\d\d|\d,\d{3}) of 3,000 trades"))).to_be_visible(
        timeout=DEADLINE_S * 1000)
    screenshot(page, screenshots / "simulator.png")

    market_text(page, r"INFY: last", timeout_s=30)
    set_as_text_open(page, False)
    expect(page.get_by_test_id("liveMarket")).to_be_visible(timeout=30_000)  # the table, not the text
    screenshot(page, screenshots / "market.png")

    open_page(page, "Stock")
    choose(page, "Symbol", "INFY")
    expect(page.get_by_role("heading", level=1)).to_contain_text("INFY", timeout=30_000)
    expect(drawn_chart(page)).to_be_visible(timeout=30_000)  # the candles
    expect(figure(page, "Last")).to_contain_text("₹", timeout=30_000)
    screenshot(page, screenshots / "stock.png")

    open_page(page, "Pipeline")
    expect(page.get_by_text(re.compile(r"🟢\s*Spark query"))).to_be_visible(timeout=30_000)
    expect(page.locator("[data-testid='stVegaLiteChart']").first).to_be_visible(timeout=30_000)  # the batch chart
    screenshot(page, screenshots / "pipeline.png")
    print(f"\nscreenshots: {screenshots}")
    for name in ("market", "stock", "simulator", "pipeline"):
        assert (screenshots / f"{name}.png").stat().st_size > 10_000
    no_console_errors(page)



def axis_span_minutes(chart, missing: int | None = None) -> int:
    """Minutes between the first and the last HH:MM label on a chart's axes (within one day); ``missing``
    if it has none yet (by default that fails)."""
    times = [t for t in chart.locator("g.role-axis-label text").all_text_contents() if HH_MM.match(t)]
    minutes = [int(t[:2]) * 60 + int(t[3:]) for t in times]
    if not minutes and missing is not None:
        return missing
    assert minutes, "no HH:MM axis label"
    return max(minutes) - min(minutes)


def test_a_zoom_of_the_candles_survives_redraws_and_the_crosshair_shows_a_candle(browser_page: Page,
                                                                                 app_settings: Settings):
    page = browser_page
    now = datetime.now(timezone.utc)
    # Just after midnight IST the chart holds only today's few minutes (earlier ones are another session's): the
    # zoom is still made, kept through a redraw and undone, but spans are compared only with 20 minutes to zoom into.
    wanted = 20 if now - todays_history_start(now) >= ZOOMED_HISTORY else 0
    open_page(page, "Stock")
    choose(page, "Symbol", "INFY")  # half an hour of candles (the screenshot test)
    expect(page.get_by_role("heading", level=1)).to_contain_text("INFY", timeout=30_000)
    chart = page.locator("[data-testid='stVegaLiteChart']").first
    expect(chart).to_be_visible(timeout=30_000)
    expect(page.get_by_text("wheel or drag to zoom")).to_be_visible(timeout=30_000)
    # The page may still show the symbol it opened with (a minute of the generator's candles) until INFY's
    # chart replaces it: a zoom of that chart would go with it.
    whole = wait_until(lambda: (span := axis_span_minutes(chart, missing=-1)) >= wanted and (span,), timeout=30,
                       what="INFY's candles on the chart")[0]
    box = chart.bounding_box()
    assert box is not None
    # The crosshair reads out the nearest candle's figures at the top of its rule. A redraw whose price range
    # moved builds the chart anew, and the crosshair comes back with the pointer's next move (as a person's
    # hand moves): the pointer keeps moving over the chart until the readout is there.
    readout = chart.locator("g.mark-text text").filter(has_text=re.compile(r"O [\d,.]+  H"))
    nudges = iter(range(1_000))

    def pointed_at_a_candle() -> bool:
        page.mouse.move(box["x"] + box["width"] / 2 + next(nudges) % 7, box["y"] + box["height"] / 3)
        return readout.count() > 0

    wait_until(pointed_at_a_candle, timeout=10, interval=0.2, what="the crosshair's readout of a candle")
    for _ in range(5):
        page.mouse.wheel(0, -300)
    expect(page.get_by_text("zoomed: double-click the chart")).to_be_visible(timeout=30_000)  # the server has it
    zoomed = axis_span_minutes(chart)
    assert zoomed < whole * 0.6 or not wanted, (zoomed, whole)

    trades = figure(page, "Trades")
    before = trades.inner_text()
    client = mongo.client(app_settings)  # trades redraw the page (the generator's may still be coming too)
    client[app_settings.database]["transaction"].insert_many(
        [{"symbol": "INFY", "price": 1500.0 + i, "quantity": 3} for i in range(3)])
    client.close()
    expect(trades).not_to_have_text(before, timeout=DEADLINE_S * 1000)  # redrawn with new figures
    expect(page.get_by_text("zoomed: double-click the chart")).to_be_visible()
    assert axis_span_minutes(chart) < whole * 0.6 or not wanted

    chart.dblclick(position={"x": box["width"] / 2, "y": box["height"] / 3})
    expect(page.get_by_text("wheel or drag to zoom")).to_be_visible(timeout=30_000)
    no_console_errors(page)

HH_MM = re.compile(r"^\d{2}:\d{2}$")


def minutes_apart(label: str, moment: datetime) -> int:
    """Distance on a 24-hour clock between an ``HH:MM`` label and a moment's wall clock."""
    hours, minutes = map(int, label.split(":"))
    gap = abs(hours * 60 + minutes - (moment.hour * 60 + moment.minute))
    return min(gap, 24 * 60 - gap)


def test_market_at_1440_links_to_stock_keeps_the_watchlist_and_charts_in_ist(browser_page: Page, app_url: str,
                                                                             screenshots: Path):
    """In a browser whose zone is New York (10 h 30 min behind India) at 1440x1000: the Market page has no
    horizontal scroll, a watchlist in the URL survives a reload, a symbol opens its Stock page, and the
    candle chart's axis labels are IST on a 24-hour clock (the server converts; the browser's zone is moot)."""
    context = browser_page.context.browser.new_context(viewport={"width": 1440, "height": 1000},
                                                       timezone_id="America/New_York")
    page = context.new_page()
    try:
        page.goto(f"{app_url}/?watch=INFY,TCS")
        table = page.get_by_test_id("liveMarket")
        expect(table).to_be_visible(timeout=60_000)
        watchlist = page.get_by_test_id("stMultiSelect").filter(has_text="Watchlist")
        expect(watchlist).to_contain_text("INFY", timeout=10_000)
        expect(watchlist).to_contain_text("TCS")
        expect(page.get_by_text("times in IST").first).to_be_visible()
        expect(page.get_by_text(re.compile(r"NSE (open|closed)"))).to_be_visible()
        page.screenshot(path=screenshots / "market-1440.png")
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        # Nor does the table scroll sideways inside itself (it sits in a scroller for narrow screens).
        scroller = page.locator(".sd-scroll").filter(has=table)
        assert scroller.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), scroller.evaluate(
            "e => [e.scrollWidth, e.clientWidth]")

        page.reload()
        expect(page).to_have_url(re.compile(r"[?&]watch=INFY(%2C|,)TCS"), timeout=30_000)
        expect(page.get_by_test_id("stMultiSelect").filter(has_text="Watchlist")).to_contain_text("TCS",
                                                                                                   timeout=30_000)

        # Only INFY in the table; its symbol is a link to its Stock page.
        page.goto(f"{app_url}/?watch=INFY&only=watchlist")
        expect(page.get_by_role("switch", name="Watchlist only")).to_be_checked(timeout=60_000)
        table = page.get_by_test_id("liveMarket")
        expect(table.locator("tbody tr")).to_have_count(1, timeout=30_000)
        table.get_by_role("link", name="INFY").click()
        stock = page
        expect(stock).to_have_url(re.compile(r"/stock\?symbol=INFY$"), timeout=30_000)
        expect(stock.get_by_role("heading", level=1)).to_contain_text("INFY", timeout=30_000)

        chart = stock.locator("[data-testid='stVegaLiteChart']").first
        expect(chart).to_be_visible(timeout=30_000)
        expect(chart.locator("g.role-axis-title text").filter(has_text="IST").first).to_be_attached(timeout=30_000)
        labels = chart.locator("g.role-axis-label text")
        expect(labels.filter(has_text=HH_MM).first).to_be_attached(timeout=30_000)
        times = [t for t in labels.all_text_contents() if HH_MM.match(t)]
        now_ist = datetime.now(timezone(timedelta(hours=5, minutes=30)))
        now_browser = datetime.now(timezone(timedelta(hours=-5)))  # New York in November (EST)
        # The candles span the last hour or so: every label is near India's clock, none near New York's or UTC's.
        assert times and all(minutes_apart(t, now_ist) <= 90 for t in times), (times, now_ist)
        assert not any(minutes_apart(t, now_browser) <= 90 for t in times), times
        assert not any(re.search(r"[AP]M", t) for t in labels.all_text_contents())
        stock.screenshot(path=screenshots / "stock-ist.png")
        print(f"\nIST axis labels: {times}")
    finally:
        context.close()


def test_every_page_fits_a_phone_and_a_desktop(browser_page: Page, app_url: str, screenshots: Path):
    """At a phone's width (390 px) and a desktop's (1440 px) no page scrolls sideways (wide tables scroll
    inside themselves on a phone), and each page is screenshotted at both widths for the README."""
    for width, height in ((390, 844), (1440, 1000)):
        context = browser_page.context.browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        try:
            for name, path in PAGE_PATHS.items():
                page.goto(f"{app_url}{path}{'?symbol=INFY' if name == 'Stock' else ''}")
                expect(page.get_by_role("heading", level=1)).to_be_visible(timeout=60_000)
                if name == "Market":  # the table, pushed
                    expect(page.get_by_test_id("liveMarket")).to_be_visible(timeout=60_000)
                if name == "Stock":  # the latest trades, pushed
                    expect(page.get_by_test_id("liveTrades")).to_be_visible(timeout=60_000)
                screenshot(page, screenshots / f"{name.lower()}-{width}.png")
                assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth"), (
                    name, width, page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]"))
        finally:
            context.close()


def test_switching_pages_while_trades_flow_never_leaves_a_page_blank(browser_page: Page):
    """A live fragment of the page being left can ask for a rerun just after the click on another page;
    that used to blank the new page for good about one switch in five (see ui/page_switch.py)."""
    page = browser_page
    open_page(page, "Simulator")
    page.get_by_role("button", name="Start").click()  # 50 trades/s for a minute: every fragment keeps firing
    expect(page.get_by_text(re.compile(r"running: [\d,]+ of"))).to_be_visible(timeout=DEADLINE_S * 1000)
    for _ in range(10):
        open_page(page, "Simulator")
        expect(page.get_by_text(re.compile(r"(running|finished): [\d,]+ of"))).to_be_visible(timeout=30_000)
        page.get_by_role("link", name="Market").click()
        expect(page.locator("details").filter(has_text="As text")).to_be_visible(timeout=30_000)
    no_console_errors(page)


def test_the_market_figures_fit_a_1366_px_laptop_with_eight_digit_counts(browser_page: Page, app_url: str,
                                                                        app_settings: Settings):
    """Six figures share the Market page's row beside the sidebar: at 1366 px "Trades today" at 4,350,095 ended in
    an ellipsis. Each value is given ten characters here (a busy day's count), and none may be cut."""
    client = mongo.client(app_settings)
    client[app_settings.database]["transaction"].insert_one({"symbol": "INFY", "price": 1500.0, "quantity": 1})
    client.close()
    context = browser_page.context.browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    try:
        page.goto(app_url)
        expect(page.get_by_test_id("liveMarket")).to_be_visible(timeout=60_000)
        values = page.locator(".sd-figures.sd-six .sd-value")
        expect(values.first).to_be_visible(timeout=60_000)
        cut = values.evaluate_all("els => els.map(e => { e.textContent = '12,345,678'; return [e.scrollWidth, e.clientWidth]; })"
                                  ".filter(([scroll, client]) => scroll > client)")
        assert values.count() == 6 and cut == [], cut
    finally:
        context.close()
