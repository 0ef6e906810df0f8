"""Fault drills under a steady load: each fault mid-stream, then, once the stored figures have stopped
changing (a quiet period, with a deadline), what the job persisted is judged whatever it is: "lost" and
"counted twice" per symbol from `stock_aggregates` against an aggregation run by MongoDB itself over
`transaction`, the 1-minute candles against the trades' own times, and the late and rejected ledgers.
Nothing lost, nothing counted twice. (Waiting for "counted == inserted" instead would make both 0 by
construction and turn a loss into a timeout.)

The drills run on a local stack of their own (own ports and folder): they stop and kill its services.
The streaming job runs as its own process (``python -m pipeline job``), supervised: a query that
fails because Kafka or MongoDB went away restarts from its checkpoint by itself.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from pymongo.errors import PyMongoError

from pipeline.settings import Settings
from pipeline.sinks import mongo
from pipeline.waits import wait_until
from simulator.trades import RandomWalk
from stack.local import LocalStack
from stack.process import free_port, free_port_pair
from tests.children import start, stop

pytestmark = [pytest.mark.integration, pytest.mark.drill]
SYMBOLS = ["INFY", "TCS", "ITC", "SBIN", "WIPRO"]
OUTAGE_TRADES = 750  # a stopped service stays down while the load makes this many trades (~5 s)
QUIET_S = 10.0  # stored figures unchanged this long: the job is done (longer than a batch and a restart's first pause)
RESULTS: dict[str, dict] = {}


class DrillStack:
    """A LocalStack whose services a drill may stop, kill and start again, plus the job process."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.local = LocalStack(settings)
        self.logs = logs
        self.settings = self.local.start()
        self.job = self.start_job()

    def start_job(self) -> subprocess.Popen:
        return start(["pipeline", "job"], self.settings.service_env(), self.logs / "job.log")

    def close(self) -> None:
        stop(self.job)
        self.local.stop()


@pytest.fixture(scope="module")
def drill_stack(base_settings: Settings, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
                ) -> Iterator[DrillStack]:
    data_dir = tmp_path_factory.mktemp("drills")
    settings = base_settings.with_changes(data_dir=data_dir, local_mongo_port=free_port(),
                                          local_kafka_port=free_port_pair(), trades_topic="drills.transaction")
    stack = DrillStack(settings, data_dir)
    yield stack
    stack.close()
    (artifacts_dir / "drills.json").write_text(json.dumps(RESULTS, indent=2))


class SteadyLoad:
    """~150 trades/s in the background; inserts that fail while MongoDB is down are simply not made
    (the truth is what MongoDB holds)."""

    def __init__(self, settings: Settings) -> None:
        self.client = mongo.client(settings, timeout_ms=1000)
        self.transactions = self.client[settings.database]["transaction"]
        self.walk = RandomWalk({s: 100.0 for s in SYMBOLS}, volatility_pct=1)
        self.clock = datetime.now(timezone.utc)
        self.inserted = 0
        self.failed_inserts = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.done.wait(0.1):
            trades = []
            for _ in range(15):
                self.clock += timedelta(milliseconds=1)  # distinct trade times: NAV is unambiguous
                trades.append(self.walk.next_trade(self.walk.random.choice(SYMBOLS), trade_time=self.clock))
            try:
                self.transactions.insert_many([t.to_document() for t in trades])
                self.inserted += len(trades)
            except PyMongoError:
                self.failed_inserts += 1

    def __enter__(self) -> SteadyLoad:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.done.set()
        self.thread.join(timeout=30)
        self.client.close()


def counted(db) -> int:
    return sum(doc["trades"] for doc in db["stock_aggregates"].find({}, {"trades": 1}))


def truth_and_result(db) -> tuple[dict, dict]:
    """MongoDB's own aggregation over `transaction`, and what the job stored."""
    pipeline = [
        {"$sort": {"trade_time": 1}},
        {"$group": {"_id": "$symbol", "trades": {"$sum": 1}, "low": {"$min": "$price"}, "high": {"$max": "$price"},
                    "nav": {"$last": "$price"}, "volume": {"$sum": "$quantity"}}},
    ]
    truth = {}
    for doc in db["transaction"].aggregate(pipeline):
        values = {k: doc[k] for k in ("trades", "volume")}
        values.update({k: Decimal(str(doc[k])).quantize(Decimal("0.0001")) for k in ("low", "high", "nav")})
        truth[doc["_id"]] = values
    stored = {doc["_id"]: {"trades": doc["trades"], "volume": doc["volume"],
                           **{k: doc[k].to_decimal() for k in ("low", "high", "nav")}}
              for doc in db["stock_aggregates"].find({})}
    return truth, stored


def stored_figures(db) -> tuple:
    """Everything the job persists, in a comparable form: aggregates (with their batch ids), 1-minute
    candles and both ledgers. The quiet period waits until this stops changing."""
    aggregates = sorted((d["_id"], d["trades"], d["batch_id"]) for d in db["stock_aggregates"].find({}))
    candles = sorted((d["_id"], d["trades"]) for d in db["candles"].find({"interval_s": 60}, {"trades": 1}))
    return aggregates, candles, db["late_ticks"].count_documents({}), db["rejected"].count_documents({})


def settled(db, what: str) -> None:
    """Wait until the stored figures stay the same for QUIET_S (with a deadline), whatever they are:
    the job has then done what it will do with the input, and the figures can be judged."""
    seen = {"figures": None, "since": time.monotonic()}

    def quiet() -> bool:
        figures, now = stored_figures(db), time.monotonic()
        if figures != seen["figures"]:
            seen.update(figures=figures, since=now)
        return now - seen["since"] >= QUIET_S

    wait_until(quiet, timeout=300, interval=0.5, what=f"{what}: stored figures unchanged for {QUIET_S:g} s",
               describe=lambda: f"last change {time.monotonic() - seen['since']:.1f} s ago")


def expected_candle_trades(db, lateness_s: int) -> tuple[Counter, Counter]:
    """Plain Python over `transaction`: trades per (symbol, 1-minute window) of the on-time trades, and
    late trades per symbol. A symbol's trades reach the job in insertion order (its change events share a
    key, so a partition), so a trade is late when it is older than the latest trade time inserted before
    it, less the lateness."""
    latest: dict[str, datetime] = {}
    windows: Counter = Counter()
    late: Counter = Counter()
    for doc in db["transaction"].find({}, {"symbol": 1, "trade_time": 1}).sort("_id", 1):
        symbol, when = doc["symbol"], doc["trade_time"].replace(tzinfo=timezone.utc)
        if symbol in latest and when < latest[symbol] - timedelta(seconds=lateness_s):
            late[symbol] += 1
            continue
        latest[symbol] = max(when, latest.get(symbol, when))
        windows[f"{symbol}|60|{int(when.timestamp()) // 60 * 60}"] += 1
    return windows, late


def judge(db, lateness_s: int) -> dict:
    """Lost, doubled, candle and ledger differences, computed from what the job stored (not assumed)."""
    truth, stored = truth_and_result(db)
    symbols = set(truth) | set(stored)
    lost = sum(max(0, truth.get(s, {}).get("trades", 0) - stored.get(s, {}).get("trades", 0)) for s in symbols)
    doubled = sum(max(0, stored.get(s, {}).get("trades", 0) - truth.get(s, {}).get("trades", 0)) for s in symbols)
    windows, late = expected_candle_trades(db, lateness_s)
    candles = Counter({d["_id"]: d["trades"] for d in db["candles"].find({"interval_s": 60}, {"trades": 1})})
    per_symbol = [{"$group": {"_id": "$symbol", "n": {"$sum": 1}}}]
    late_stored = Counter({d["_id"]: d["n"] for d in db["late_ticks"].aggregate(per_symbol)})
    candle_trades: Counter = Counter()
    for key, trades in candles.items():
        candle_trades[key.split("|")[0]] += trades
    return {"truth": truth, "stored": stored, "lost": lost, "doubled": doubled, "windows": windows, "candles": candles,
            "on_time": {s: truth[s]["trades"] - late_stored[s] for s in truth}, "candle_trades": dict(candle_trades),
            "late": late, "late_stored": late_stored, "rejected": db["rejected"].count_documents({})}


def run_drill(name: str, drills: DrillStack, fault: Callable[[], None], restore: Callable[[], None],
              outage: Callable[[SteadyLoad], None] = lambda load: None) -> None:
    client = mongo.client(drills.settings)
    db = client[drills.settings.database]
    try:
        stored_before = db["transaction"].count_documents({})
        with SteadyLoad(drills.settings) as load:
            mark = counted(db)
            wait_until(lambda: counted(db) >= mark + 300, timeout=180, what=f"{name}: trades flowing")
            # Every trade in MongoDB when the fault strikes, and those the load makes until the restore.
            in_db, made = db["transaction"].count_documents({}), load.inserted
            fault()
            outage(load)
            restoring, until_restore = time.monotonic(), in_db + load.inserted - made
            restore()
            # Recovery: from restarting the service until trades made up to then, and one more, are counted.
            wait_until(lambda: counted(db) > until_restore, timeout=240, what=f"{name}: counting trades made up to the restore",
                       describe=lambda: f"{counted(db)} counted, {until_restore} made")
            recovery_s = time.monotonic() - restoring
            # More load after recovery: trades made while the pipeline is settling back must count too.
            recovered_at = load.inserted
            wait_until(lambda: load.inserted >= recovered_at + 300, timeout=60, what=f"{name}: load after recovery")
        # Every insert MongoDB acknowledged is still there (one refused mid-fault may be there too).
        acknowledged_missing = max(0, stored_before + load.inserted - db["transaction"].count_documents({}))
        settled(db, name)
        found = judge(db, drills.settings.candle_lateness_s)
        RESULTS[name] = {"inserted": sum(t["trades"] for t in found["truth"].values()),
                         "counted": sum(t["trades"] for t in found["stored"].values()),
                         "lost": found["lost"], "doubled": found["doubled"], "late": sum(found["late_stored"].values()),
                         "rejected": found["rejected"], "recovery_s": round(recovery_s, 1),
                         "inserts_refused_during_fault": load.failed_inserts * 15,
                         "acknowledged_missing": acknowledged_missing}
        print(f"\ndrill {name}: {RESULTS[name]}")
        assert acknowledged_missing == 0, RESULTS[name]
        assert (found["lost"], found["doubled"]) == (0, 0), RESULTS[name]
        assert found["stored"] == found["truth"]
        # Candles: per symbol, the 1-minute candles hold exactly the on-time trades; per window, as MongoDB's own
        # documents say. The ledgers: late ticks as the documents' times say; the load writes no bad trade.
        assert found["candle_trades"] == found["on_time"]
        assert found["candles"] == found["windows"]
        assert (found["late_stored"], found["rejected"]) == (found["late"], 0)
    finally:
        client.close()


def trades_made_meanwhile(load: SteadyLoad) -> None:
    """Keep the service down until the load has made OUTAGE_TRADES trades: a backlog for the recovery."""
    start_at = load.inserted
    wait_until(lambda: load.inserted >= start_at + OUTAGE_TRADES, timeout=60, what=f"{OUTAGE_TRADES} trades during the outage")


def inserts_refused(load: SteadyLoad) -> None:
    """Keep MongoDB down until the load's inserts have been refused a few times: the writers saw the outage."""
    start_at = load.failed_inserts
    wait_until(lambda: load.failed_inserts >= start_at + 3, timeout=60, what="inserts refused during the outage")


def test_kill_9_of_the_query_process(drill_stack: DrillStack):
    def fault() -> None:
        drill_stack.job.send_signal(signal.SIGKILL)  # mid-stream, no chance to clean up
        drill_stack.job.wait(timeout=30)

    def restore() -> None:
        drill_stack.job = drill_stack.start_job()

    run_drill("kill -9 of the query process", drill_stack, fault, restore, trades_made_meanwhile)


def test_kafka_broker_stopped_and_restarted(drill_stack: DrillStack):
    kafka = drill_stack.local.services["kafka"]
    run_drill("Kafka broker stopped and restarted", drill_stack, kafka.stop, kafka.start, trades_made_meanwhile)


def test_cdc_relay_killed_and_restarted(drill_stack: DrillStack):
    relay = drill_stack.local.services["cdc-relay"]
    run_drill("CDC relay killed (kill -9) and restarted", drill_stack, relay.kill, relay.start, trades_made_meanwhile)


def test_mongodb_stopped_and_restarted(drill_stack: DrillStack):
    stand_in = drill_stack.local.services["mongo"]
    run_drill("MongoDB stand-in stopped and restarted", drill_stack, stand_in.stop, stand_in.start, inserts_refused)


def test_mongodb_killed_9_and_restarted(drill_stack: DrillStack):
    """The stand-in acknowledges a write once it is in its data file: a kill -9 loses none of them."""
    stand_in = drill_stack.local.services["mongo"]
    run_drill("MongoDB stand-in killed (kill -9) and restarted", drill_stack, stand_in.kill, stand_in.start,
              inserts_refused)
