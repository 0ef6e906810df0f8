// The browser half of ui/live.py: rerun this fragment when the market state's version passed the one drawn.
//
// Streamlit calls the default export again at every rerun of the fragment (its data carries a fresh
// `run`), and calls only the cleanup of the last call when the component unmounts; so one Watcher per
// mounted component lives in this module (imported once per page) and each call reports a draw to it.
const watchers = new Map();
// A rerun asked for and never drawn (the session reconnected, say) must not stop the page's updates.
const STUCK_MS = 10000;
const MAX_BACKOFF_MS = 10000;

class Watcher {
  constructor(path) {
    this.path = path;
    this.generation = 0;
    this.latest = -1;
    this.lastFire = 0;
    this.firedAt = 0;
    this.backoff = 250;
    this.timers = {};
    this.closed = false;
  }

  // A draw of the fragment at `data.version`: forget the pending rerun, re-arm the idle tick.
  drew(data, trigger) {
    this.trigger = trigger;
    this.drawn = data.version;
    this.gapMs = data.gap_ms;
    // A heavy page rests at least as long as its last redraw took (fire -> the component, drawn last):
    // at most half a core per page while changes flow.
    if (this.pending) this.gapMs = Math.max(this.gapMs, Date.now() - this.firedAt);
    this.pending = false;
    if (data.idle_ms) this.later("idle", () => this.fire(false), data.idle_ms);
    else clearTimeout(this.timers.idle);
    if (!this.socket) this.connect();
    this.schedule();
  }

  connect() {
    if (this.closed) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}${this.path}?since=${this.drawn}`);
    socket.onopen = () => { this.backoff = 250; };
    socket.onmessage = (event) => {
      this.latest = Number(event.data);
      this.schedule();
    };
    socket.onclose = () => {
      if (this.socket !== socket || this.closed) return;
      this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
      this.later("connect", () => this.connect(), this.backoff);
    };
    this.socket = socket;
  }

  schedule() {
    if (this.closed || this.pending || !(this.latest > this.drawn)) return;
    const wait = this.lastFire + this.gapMs - Date.now();
    if (wait > 0) this.later("gap", () => this.schedule(), wait);
    else this.fire(true);
  }

  // Only redraws for changes count toward the gap: a change just after an idle tick is drawn at once.
  fire(forChange) {
    if (this.closed || !this.trigger) return;
    this.pending = true;
    this.firedAt = Date.now();
    if (forChange) this.lastFire = this.firedAt;
    this.later("stuck", () => { this.pending = false; this.schedule(); }, STUCK_MS);
    this.trigger("changed", this.latest);
  }

  later(name, action, ms) {
    clearTimeout(this.timers[name]);
    this.timers[name] = setTimeout(action, Math.max(0, ms));
  }

  close() {
    this.closed = true;
    Object.values(this.timers).forEach(clearTimeout);
    this.socket?.close();
  }
}

export default function (component) {
  const { data, key, setTriggerValue } = component;
  let watcher = watchers.get(key);
  if (!watcher) {
    watcher = new Watcher(data.path);
    watchers.set(key, watcher);
  }
  const generation = ++watcher.generation;
  watcher.drew(data, setTriggerValue);
  // Only the cleanup of the latest call closes the watcher (an older one can run late, after a newer call).
  return () => {
    if (watcher.generation !== generation) return;
    watcher.close();
    watchers.delete(key);
  };
}
