// The browser half of ui/push.py: draw a part of a page (the Market figures, table and movers; a Stock page's
// figures and candle strip, or its latest trades; the Pipeline page's ledgers) from the view its run passed,
// then from every newer view the server pushes, without a rerun. Texts come final from the server and are
// only ever placed as text (textContent, attributes), never parsed as HTML.
//
// Streamlit calls the default export at every rerun of the fragment and only the cleanup of the last call
// when the component unmounts; the module is loaded once per page. So the parts (by component key) and the
// sockets they share (one per view) live in this module.
const feeds = new Map(); // socket path -> Feed
const parts = new Map(); // component key -> Part
const MAX_BACKOFF_MS = 10000;
const SVG = "http://www.w3.org/2000/svg";
const STRIP = { width: 300, height: 90, slot: 10, pad: 4 };

class Feed {
  constructor(path) {
    this.path = path;
    this.listeners = new Set();
    this.backoff = 250;
    this.connect();
  }

  connect() {
    if (this.closed) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}${this.path}`);
    socket.onopen = () => { this.backoff = 250; };
    socket.onmessage = (event) => {
      const view = JSON.parse(event.data);
      this.listeners.forEach((listener) => listener(view));
    };
    socket.onclose = () => {
      if (this.socket !== socket || this.closed) return;
      this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
      this.timer = setTimeout(() => this.connect(), this.backoff);
    };
    this.socket = socket;
  }

  remove(listener) {
    this.listeners.delete(listener);
    if (this.listeners.size) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.socket?.close();
    feeds.delete(this.path);
  }
}

const element = (tag, className, parent) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  parent?.appendChild(node);
  return node;
};
// Only a changed text is written: no mutation, no layout for what did not move.
const setText = (node, text) => { if (node.textContent !== text) node.textContent = text ?? ""; };

function drawFigures(root, view) {
  if (!root.firstChild) {
    element("div", "sd-figures", root);
    element("div", "sd-caption", root);
    const candle = element("div", "sd-candle", root);
    element("div", "sd-candle-title", candle);
    element("div", "sd-candle-figures", candle);
    const strip = candle.appendChild(document.createElementNS(SVG, "svg"));
    strip.setAttribute("viewBox", `0 0 ${STRIP.width} ${STRIP.height}`);
    strip.setAttribute("preserveAspectRatio", "none");
    strip.setAttribute("role", "img");
    strip.dataset.testid = "liveCandles";
  }
  const [grid, caption, candle] = root.children;
  drawGrid(grid, view.figures);
  setText(caption, view.caption);
  drawCandle(candle, view.candle);
}

function drawGrid(grid, figures) {
  figures.forEach((figure, i) => {
    let cell = grid.children[i];
    if (!cell) {
      cell = element("div", "sd-figure", grid);
      cell.dataset.testid = "liveFigure";
      element("div", "sd-label", cell);
      element("div", "sd-value", cell).dataset.live = "figure";
      element("div", "sd-delta", cell);
    }
    const [label, value, delta] = cell.children;
    setText(label, figure.label);
    setAttributes(label, { title: figure.help || "" });
    setText(value, figure.value);
    const sign = figure.tone === "off" ? "off" : figure.delta?.startsWith("-") ? "down" : "up";
    setText(delta, figure.delta ? `${sign === "off" ? "" : sign === "up" ? "▲ " : "▼ "}${figure.delta}` : "");
    setAttributes(delta, { class: `sd-delta sd-${sign}` });
  });
}

function drawCandle(box, candle) {
  box.hidden = !candle;
  if (!candle) return;
  const [title, figures, strip] = box.children;
  setText(title, candle.title);
  setText(figures, candle.figures);
  setAttributes(strip, { "aria-label": `the last ${candle.strip.length} 1-minute candles` });
  const low = Math.min(...candle.strip.map((c) => c.low));
  const high = Math.max(...candle.strip.map((c) => c.high));
  const y = (price) => high === low ? STRIP.height / 2
    : STRIP.pad + (high - price) / (high - low) * (STRIP.height - 2 * STRIP.pad);
  // The bars are kept and only their changed attributes written: most pushes move the last one only.
  candle.strip.forEach((c, i) => {
    const x = (STRIP.width / STRIP.slot - candle.strip.length + i) * STRIP.slot;
    const bar = strip.children[i] || strip.appendChild(candleBar());
    const [title, wick, body] = bar.children;
    const top = y(Math.max(c.open, c.close));
    setAttributes(bar, { class: c.close >= c.open ? "sd-bar sd-up" : "sd-bar sd-down", "aria-label": c.label });
    setText(title, c.label);
    setAttributes(wick, { x1: x + STRIP.slot / 2, x2: x + STRIP.slot / 2, y1: y(c.high), y2: y(c.low) });
    setAttributes(body, { x: x + 2, width: STRIP.slot - 4, y: top,
                          height: Math.max(1, y(Math.min(c.open, c.close)) - top) });
  });
  while (strip.children.length > candle.strip.length) strip.lastChild.remove();
}

function candleBar() {
  const bar = document.createElementNS(SVG, "g");
  bar.dataset.live = "candle";
  for (const tag of ["title", "line", "rect"]) bar.appendChild(document.createElementNS(SVG, tag));
  return bar;
}

function setAttributes(node, values) {
  for (const [name, value] of Object.entries(values)) {
    const text = typeof value === "number" ? value.toFixed(2) : value;
    if (node.getAttribute(name) !== text) node.setAttribute(name, text);
  }
}

function drawTrades(root, view, part) {
  if (!root.firstChild) {
    element("div", "sd-caption", root);
    const table = element("table", "sd-table", element("div", "sd-scroll", root));
    table.dataset.testid = "liveTrades";
    element("tr", "", element("thead", "", table));
    element("tbody", "", table);
  }
  const [caption, scroll] = root.children;
  const trades = view.trades;
  setText(caption, trades.length ? "" : "Trades received since the app started are listed here.");
  scroll.hidden = !trades.length;
  if (!trades.length) return;
  const table = scroll.firstChild;
  const columns = Object.keys(trades[0]);
  const head = table.tHead.rows[0];
  if (head.cells.length !== columns.length) {
    head.replaceChildren(...columns.map((name) => { const th = element("th"); th.textContent = name; return th; }));
  }
  // Rows are kept by trade (its event id): a push adds the new trades on top and drops the oldest.
  const body = table.tBodies[0];
  const rows = part.rows || (part.rows = new Map());
  const kept = new Set();
  trades.forEach((trade, position) => {
    const id = trade["Event id"];
    let row = rows.get(id);
    if (!row) {
      rows.set(id, row = element("tr"));
      for (const name of columns) {
        const cell = element("td", "", row);
        cell.textContent = trade[name];
        if (name === "Price") cell.dataset.live = "trade";
      }
    }
    if (body.children[position] !== row) body.insertBefore(row, body.children[position] || null);
    kept.add(id);
  });
  for (const [id, row] of rows) {
    if (!kept.has(id)) { row.remove(); rows.delete(id); }
  }
}

const NUMERIC = new Set(["price", "signed", "percent", "compact", "share"]);
const NONE_MATCH = "No traded stock matches the sector filter and watchlist.";

// The Market page: its figures, then one row per traded stock, kept (by symbol) from view to view so that
// only the texts that moved are written; filtered as the page's controls say, sorted by a header's click;
// then the movers.
function drawMarket(root, view, part) {
  if (!root.firstChild) {
    element("div", "sd-figures sd-six", root);
    element("div", "sd-caption", root);
    element("div", "sd-caption", root);
    const table = element("table", "sd-table sd-sortable", element("div", "sd-scroll sd-tall", root));
    table.dataset.testid = "liveMarket";
    element("tr", "", element("thead", "", table));
    element("tbody", "", table);
    element("div", "sd-movers", root);
    part.rows = new Map();
  }
  const [grid, caption, none, scroll, movers] = root.children;
  drawMovers(movers, view.movers);
  drawGrid(grid, view.figures);
  setText(caption, view.caption);
  const table = scroll.firstChild;
  drawHeader(table.tHead.rows[0], view.columns, part);
  const filter = part.filter || {};
  const visible = view.rows.filter((row) => (!filter.sectors?.length || filter.sectors.includes(row.sector))
    && (!filter.only || (filter.watch || []).includes(row.symbol)));
  setText(none, visible.length ? "" : NONE_MATCH);
  scroll.hidden = !visible.length;
  sortRows(visible, part.sort);
  const body = table.tBodies[0];
  const kept = new Set();
  visible.forEach((row, position) => {
    let tr = part.rows.get(row.symbol);
    if (!tr) part.rows.set(row.symbol, tr = marketRow(view.columns, row.symbol));
    fillRow(tr, view.columns, row);
    if (body.children[position] !== tr) body.insertBefore(tr, body.children[position] || null);
    kept.add(row.symbol);
  });
  for (const [symbol, tr] of part.rows) {
    if (!kept.has(symbol)) { tr.remove(); part.rows.delete(symbol); }
  }
}

function drawHeader(head, columns, part) {
  if (head.cells.length !== columns.length) {
    head.replaceChildren(...columns.map((column, i) => {
      const th = element("th", NUMERIC.has(column.kind) ? "sd-num" : "");
      th.title = `${column.help} (click to sort)`;
      th.onclick = () => part.sortBy(i);
      return th;
    }));
  }
  columns.forEach((column, i) => {
    const mark = part.sort?.index === i ? (part.sort.descending ? " ↓" : " ↑") : "";
    setText(head.cells[i], column.header + mark);
  });
}

function sortRows(rows, sort) {
  if (!sort) return;
  const { index, descending } = sort;
  rows.sort((a, b) => {
    const [x, y] = [a.sort[index], b.sort[index]];
    if (x === null || y === null) return x === y ? 0 : x === null ? 1 : -1; // nothing last, either way
    const order = x < y ? -1 : x > y ? 1 : 0;
    return descending ? -order : order;
  });
}

function marketRow(columns, symbol) {
  const tr = element("tr");
  columns.forEach((column, i) => {
    const cell = element("td", NUMERIC.has(column.kind) ? "sd-num" : "", tr);
    if (i === 0) {
      const link = element("a", "", cell);
      link.href = `stock?symbol=${encodeURIComponent(symbol)}`;
      link.target = "_self";
    } else if (column.kind === "trend") {
      const line = cell.appendChild(document.createElementNS(SVG, "svg"));
      line.setAttribute("viewBox", "0 0 60 20");
      line.setAttribute("preserveAspectRatio", "none");
      line.setAttribute("class", "sd-trend");
      line.appendChild(document.createElementNS(SVG, "polyline"));
    }
    if (column.header === "Sector") cell.className = "sd-clip"; // its full text in the cell's tooltip
    if (column.header === "Last") cell.dataset.live = "market"; // the price the bench times
  });
  return tr;
}

function fillRow(tr, columns, row) {
  columns.forEach((column, i) => {
    const cell = tr.cells[i];
    if (i === 0) setText(cell.firstChild, row.cells[i]);
    else if (column.kind === "trend") drawTrend(cell.firstChild, row.trend);
    else setText(cell, row.cells[i]);
    if (cell.className === "sd-clip") setAttributes(cell, { title: row.cells[i] });
    if (column.kind === "signed" || column.kind === "percent") {
      const tone = row.tone ? `sd-num sd-${row.tone}` : "sd-num";
      if (cell.className !== tone) cell.className = tone;
    }
  });
}

function drawTrend(svg, prices) {
  const line = svg.firstChild;
  if (prices.length < 2) { line.setAttribute("points", ""); return; }
  const low = Math.min(...prices), high = Math.max(...prices);
  const points = prices.map((price, i) => `${(i / (prices.length - 1) * 60).toFixed(1)},`
    + `${(high === low ? 10 : 18 - (price - low) / (high - low) * 16).toFixed(1)}`).join(" ");
  if (line.getAttribute("points") !== points) line.setAttribute("points", points);
  setAttributes(svg, { class: prices.at(-1) >= prices[0] ? "sd-trend sd-up" : "sd-trend sd-down" });
}

// A small table (the movers, the ledgers) in a scroll box, filled by fillTable.
function smallTable(parent, testid) {
  const table = element("table", "sd-table", element("div", "sd-scroll", parent));
  if (testid) table.dataset.testid = testid;
  element("tr", "", element("thead", "", table));
  element("tbody", "", table);
  return table;
}

// Written in place, row by row by position: only the texts that moved change. ``classes``: per column, its
// cells' class ("sd-num": right-aligned; "sd-wrap": long text that wraps).
function fillTable(table, columns, rows, classes) {
  const head = table.tHead.rows[0];
  if (head.cells.length !== columns.length) {
    head.replaceChildren(...columns.map((name, c) => {
      const th = element("th", classes[c] === "sd-num" ? "sd-num" : "");
      th.textContent = name;
      return th;
    }));
  }
  const body = table.tBodies[0];
  rows.forEach((cells, r) => {
    const tr = body.children[r] || element("tr", "", body);
    cells.forEach((text, c) => setText(tr.cells[c] || element("td", classes[c], tr), text));
  });
  while (body.children.length > rows.length) body.lastChild.remove();
  return body;
}

// The Pipeline page's ledgers: per ledger its count and a small table (a few reasons, at most one row per
// symbol).
const LEDGER_CLASS = { text: "", count: "sd-num", wrap: "sd-wrap" };

function drawLedgers(root, view) {
  if (!root.firstChild) element("div", "sd-ledgers", root);
  const grid = root.firstChild;
  view.ledgers.forEach((ledger, i) => {
    const column = grid.children[i] || ledgerColumn(grid);
    const [figure, empty, scroll] = column.children;
    setText(figure.children[0], ledger.label);
    setText(figure.children[1], ledger.value);
    setText(empty, ledger.rows.length ? "" : ledger.empty);
    scroll.hidden = !ledger.rows.length;
    fillTable(scroll.firstChild, ledger.columns, ledger.rows, ledger.kinds.map((kind) => LEDGER_CLASS[kind]));
  });
}

function ledgerColumn(grid) {
  const column = element("div", "sd-ledger", grid);
  const figure = element("div", "sd-figure", column);
  figure.dataset.testid = "liveFigure";
  element("div", "sd-label", figure);
  element("div", "sd-value", figure).dataset.live = "ledger";
  element("div", "sd-caption", column);
  smallTable(column, "liveLedger");
  return column;
}

// The Market page's top gainers and losers (of the whole market, whatever the filters).
const MOVERS = [["gainers", "🚀 Top gainers", "No stock is up yet."],
                ["losers", "🔻 Top losers", "No stock is down yet."]];

function drawMovers(box, movers) {
  if (!box.firstChild) {
    for (const [name, title] of MOVERS) {
      const column = element("div", "sd-mover", box);
      element("h3", "", column).textContent = title;
      element("div", "sd-caption", column);
      smallTable(column, `liveMovers-${name}`);
    }
  }
  MOVERS.forEach(([name, , empty], i) => {
    const [, caption, scroll] = box.children[i].children;
    const rows = movers[name];
    setText(caption, rows.length ? "" : empty);
    scroll.hidden = !rows.length;
    const body = fillTable(scroll.firstChild, ["Symbol", "Last", "Change %"], rows.map((row) => row.cells),
                           ["", "sd-num", "sd-num"]);
    rows.forEach((row, r) => setAttributes(body.children[r].cells[2], { class: `sd-num sd-${row.tone}` }));
  });
}

const DRAW = { figures: drawFigures, trades: drawTrades, market: drawMarket, ledgers: drawLedgers };

class Part {
  constructor(name, path) {
    this.name = name;
    this.version = -1;
    this.root = element("div", `sd-push sd-part-${name}`);
    this.listener = (view) => this.show(view);
    this.feed = feeds.get(path) || new Feed(path);
    feeds.set(path, this.feed);
    this.feed.listeners.add(this.listener);
  }

  // A view older than the one on screen (a rerun's, after a push) is not drawn.
  show(view) {
    if (!view || view.version < this.version) return;
    this.version = view.version;
    this.view = view;
    DRAW[this.name](this.root, view, this);
  }

  // A header's click: ascending, then descending, then the server's order (by symbol).
  sortBy(index) {
    if (this.sort?.index !== index) this.sort = { index, descending: false };
    else this.sort = this.sort.descending ? undefined : { index, descending: true };
    if (this.view) DRAW[this.name](this.root, this.view, this);
  }

  close() {
    this.feed.remove(this.listener);
    this.root.remove();
  }
}

export default function (component) {
  const { data, key, parentElement } = component;
  let part = parts.get(key);
  if (part && (part.name !== data.part || part.feed.path !== data.path)) {
    part.close(); // another symbol: its own socket
    part = undefined;
  }
  if (!part) {
    part = new Part(data.part, data.path);
    parts.set(key, part);
  }
  if (part.root.parentNode !== parentElement) parentElement.appendChild(part.root);
  part.filter = data.filter;
  part.show(data.view);
  const generation = part.generation = (part.generation || 0) + 1;
  // Only the cleanup of the latest call ends the part (an older one can run late, after a newer call).
  return () => {
    if (parts.get(key) !== part || part.generation !== generation) return;
    part.close();
    parts.delete(key);
  };
}
