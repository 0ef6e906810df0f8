"""Viewers of the app in Debian's Chromium (Playwright), each in a browser context of its own (its own
Streamlit session), with ``bench/pixel.js`` noting when each probe price first reached the screen."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PIXEL_JS = Path(__file__).with_name("pixel.js")
# Tall enough that the Stock page's figures, chart and latest trades are all inside the viewport.
VIEWPORT = {"width": 1440, "height": 1700}
OPEN_TIMEOUT_MS = 60_000

# What each kind of viewer measures: element -> where pixel.js notes it ("svg": the chart's marks;
# "chart": the chart's data arriving over the WebSocket, before it is drawn).
ELEMENTS = {
    "market": {"Market: table (price cell)": "market"},
    "stock": {"Stock: figures (price metric)": "metric", "Stock: latest trades": "trades",
              "Stock: 1-min candle (live strip)": "strip", "Stock: 1-min candle (chart)": "svg",
              "Stock: 1-min candle, data in browser": "chart"},
    # Keyed by the ledger's count on screen, not by a price (``bench.probe_trades.LedgerProbes``).
    "pipeline": {"Pipeline: rejected ledger (count)": "rejected", "Pipeline: late ledger (count)": "late"},
}


@dataclass
class Viewer:
    kind: str  # "market", "stock" or "pipeline"
    context: BrowserContext
    page: Page

    def seen(self) -> dict[str, dict[str, float]]:
        """Per element of this viewer: probe price text -> first time on screen (epoch s)."""
        raw = self.page.evaluate("window.__benchPixel.take()")
        return {element: {key: at / 1000 for key, at in raw[source].items()}
                for element, source in ELEMENTS[self.kind].items()}


class Viewers:
    """The browser and its open viewers; :meth:`close` ends them all (also after a failure)."""

    def __init__(self, url: str, probe_symbol: str) -> None:
        if not CHROMIUM.exists():
            raise RuntimeError("Chromium is missing: run `scripts/bootstrap.sh --browser` once (apt-get install chromium)")
        self.url = url
        self.paths = {"market": "/", "stock": f"/stock?symbol={probe_symbol}", "pipeline": "/pipeline"}
        self.open: list[Viewer] = []
        self._playwright: Playwright | None = sync_playwright().start()
        self._browser: Browser | None = None
        try:
            self._browser = self._playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        except BaseException:
            self.close()
            raise

    def add(self, kind: str) -> Viewer:
        assert self._browser is not None
        context = self._browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
        try:
            context.add_init_script(path=PIXEL_JS)
            page = context.new_page()
            page.goto(self.url + self.paths[kind])
            expect(page.get_by_role("heading", level=1)).to_be_visible(timeout=OPEN_TIMEOUT_MS)
        except BaseException:
            context.close()
            raise
        viewer = Viewer(kind, context, page)
        self.open.append(viewer)
        return viewer

    def set(self, kinds: list[str]) -> list[Viewer]:
        """Exactly these viewers: those open of the same kinds kept, the others closed, the rest opened."""
        keep: list[Viewer] = []
        for viewer in list(self.open):
            if sum(v.kind == viewer.kind for v in keep) < kinds.count(viewer.kind):
                keep.append(viewer)
            else:
                self._close(viewer)
        for kind in _missing(kinds, keep):
            self.add(kind)
        return list(self.open)

    def _close(self, viewer: Viewer) -> None:
        if viewer in self.open:
            self.open.remove(viewer)
        viewer.context.close()

    def close(self) -> None:
        for viewer in list(self.open):
            try:
                self._close(viewer)
            except Exception:  # noqa: BLE001 - the browser may be gone already; it is closed below
                pass
        if self._browser is not None:
            self._browser.close()
            self._browser = None
        if self._playwright is not None:
            self._playwright.stop()
            self._playwright = None


def _missing(kinds: list[str], kept: list[Viewer]) -> list[str]:
    """The kinds still to open: ``kinds`` less one of each kind already kept."""
    left = list(kinds)
    for viewer in kept:
        left.remove(viewer.kind)
    return left
