// Installed in every viewer page before Streamlit's own scripts (bench/browser.py, add_init_script).
// Notes, in wall-clock ms (Date.now(): the same clock as the bench's time.time()), when each probe price
// first reached the screen, per kind of element. Probe prices are ₹10.00-₹99.99, two decimals, and no
// other symbol trades there, so a price on screen is one probe trade and nothing else.
(() => {
  const PRICE = /^₹(\d{2}\.\d\d)$/;
  const CHART = '[data-testid="stVegaLiteChart"]';
  // Only the chart's own message carries this (a column of ui/charts.py's candlestick data).
  const CHART_MARK = new TextEncoder().encode("Readout");
  const CLOSE = /Close: (\d{2}(?:\.\d{1,2})?)(?:;|$)/;
  // price text -> first ms, per kind of element
  const seen = { metric: {}, chart: {}, svg: {}, trades: {}, strip: {}, market: {}, rejected: {}, late: {} };
  // The parts the server pushes (ui/push.js) mark their texts: figure values, trade prices, candles.
  const PUSHED = { figure: "metric", trade: "trades", market: "market" };
  // The Pipeline page's ledger counts, by their metric's label: count (zero-padded, so that a later count
  // sorts after an earlier one as probe prices do) -> first ms.
  const LEDGERS = { "Rejected (dead letter)": "rejected", "Late ticks": "late" };
  const first = (map, key, at) => { if (!(key in map)) map[key] = at; };

  // The chart's data on its way, to split the chart's time: Arrow (little-endian float64 columns) inside
  // Streamlit's protobuf message, so the candle's close is the exact double of a probe price in the
  // chart's message (in the browser, not drawn yet).
  const contains = (bytes, mark) => {
    outer: for (let i = 0; i + mark.length <= bytes.length; i++) {
      if (bytes[i] !== mark[0]) continue;
      for (let j = 1; j < mark.length; j++) if (bytes[i + j] !== mark[j]) continue outer;
      return true;
    }
    return false;
  };
  const chartPrices = (buffer, at) => {
    const bytes = new Uint8Array(buffer);
    if (!contains(bytes, CHART_MARK)) return;
    const view = new DataView(buffer);
    for (let i = 0; i + 8 <= bytes.length; i++) {
      // A double in [8, 128) has 0x40 as its top byte and 0x2-0x5 as the next one's high nibble.
      if (bytes[i + 7] !== 0x40) continue;
      const nibble = bytes[i + 6] >> 4;
      if (nibble < 2 || nibble > 5) continue;
      const value = view.getFloat64(i, true);
      if (value < 10 || value >= 100) continue;
      const key = value.toFixed(2);
      if (Number(key) === value) first(seen.chart, key, at);
    }
  };
  const NativeSocket = window.WebSocket;
  window.WebSocket = class extends NativeSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => {
        if (event.data instanceof ArrayBuffer) chartPrices(event.data, Date.now());
      });
    }
  };

  // The figures (st.metric) are DOM text; the chart is SVG (Vega's renderer for small charts) whose
  // marks carry their fields in aria-label ("…; Open: 11; Close: 11.95; …"): noted when a mutation
  // puts a probe price there (the frame after it, the pixels).
  // A figure, as st.metric draws it or as ui/push.js does: its selector, its label's and its value's.
  const FIGURES = [['[data-testid="stMetric"]', '[data-testid="stMetricLabel"]', '[data-testid="stMetricValue"]'],
                   ['[data-testid="liveFigure"]', ".sd-label", ".sd-value"]];
  const metrics = (at) => {
    for (const [figure, label, value] of FIGURES) {
      for (const metric of document.querySelectorAll(figure)) {
        const ledger = LEDGERS[metric.querySelector(label)?.textContent.trim()];
        const count = metric.querySelector(value)?.textContent.trim().replace(/,/g, "");
        if (ledger && /^\d+$/.test(count)) first(seen[ledger], count.padStart(9, "0"), at);
      }
    }
    for (const element of document.querySelectorAll('[data-testid="stMetricValue"]')) {
      const match = PRICE.exec(element.textContent.trim().replace(/,/g, ""));
      if (match) first(seen.metric, match[1], at);
    }
  };
  const pushed = (at) => {
    for (const element of document.querySelectorAll("[data-live]")) {
      if (element.dataset.live === "candle") {
        const match = CLOSE.exec(element.getAttribute("aria-label"));
        if (match) first(seen.strip, Number(match[1]).toFixed(2), at);
        continue;
      }
      const match = PRICE.exec(element.textContent.trim().replace(/,/g, ""));
      if (match && PUSHED[element.dataset.live]) first(seen[PUSHED[element.dataset.live]], match[1], at);
    }
  };
  const candles = (at) => {
    for (const mark of document.querySelectorAll(`${CHART} svg [aria-label]`)) {
      const match = CLOSE.exec(mark.getAttribute("aria-label"));
      if (match) first(seen.svg, Number(match[1]).toFixed(2), at);
    }
  };
  new MutationObserver((records) => {
    const at = Date.now();
    const chart = (node) => node.closest?.(CHART) || node.querySelector?.(CHART);
    if (records.some((record) => record.target.closest?.(CHART) || Array.from(record.addedNodes).some(chart))) {
      candles(at);
    }
    metrics(at);
    pushed(at);
  }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true,
                         attributeFilter: ["aria-label"] });

  window.__benchPixel = { take: () => seen };
})();
