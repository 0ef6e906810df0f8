"""Fault drills under a steady load: each fault mid-stream, then the final aggregates are compared
with an aggregation run by MongoDB itself over `transaction`. Nothing lost, nothing counted twice.

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
DOWN_FOR_S = 5.0  # how long a stopped service stays down: an outage of a set length, not a wait
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


def run_drill(name: str, drills: DrillStack, fault: Callable[[], None], restore: Callable[[], None]) -> None:
    client = mongo.client(drills.settings)
    db = client[drills.settings.database]
    try:
        with SteadyLoad(drills.settings) as load:
            wait_until(lambda: counted(db) > 0, timeout=180, what="the job counting trades")
            mark = counted(db)
            wait_until(lambda: counted(db) >= mark + 300, timeout=120, what="trades flowing")
            fault()
            # Recovery: from restarting the service until trades inserted after the fault are counted.
            at_fault, restoring = load.inserted, time.monotonic()
            restore()
            wait_until(lambda: counted(db) > at_fault, timeout=240, what=f"{name}: counting trades made after the fault")
            recovery_s = time.monotonic() - restoring
            # More load after recovery: trades made while the pipeline is settling back must count too.
            recovered_at = load.inserted
            wait_until(lambda: load.inserted >= recovered_at + 300, timeout=60, what=f"{name}: load after recovery")
        total = db["transaction"].count_documents({})
        final = wait_until(lambda: counted(db) == total and total, timeout=180, what=f"{name}: every trade counted",
                           describe=lambda: f"{counted(db)} of {total}")
        truth, stored = truth_and_result(db)
        RESULTS[name] = {"inserted": total, "counted": final, "lost": max(0, total - final),
                         "doubled": max(0, final - total), "recovery_s": round(recovery_s, 1),
                         "inserts_refused_during_fault": load.failed_inserts * 15}
        print(f"\ndrill {name}: {RESULTS[name]}")
        assert stored == truth
    finally:
        client.close()


def test_kill_9_of_the_query_process(drill_stack: DrillStack):
    def fault() -> None:
        drill_stack.job.send_signal(signal.SIGKILL)  # mid-stream, no chance to clean up
        drill_stack.job.wait(timeout=30)

    def restore() -> None:
        drill_stack.job = drill_stack.start_job()

    run_drill("kill -9 of the query process", drill_stack, fault, restore)


def test_kafka_broker_stopped_and_restarted(drill_stack: DrillStack):
    kafka = drill_stack.local.services["kafka"]
    run_drill("Kafka broker stopped and restarted", drill_stack,
              lambda: (kafka.stop(), time.sleep(DOWN_FOR_S)), kafka.start)


def test_cdc_relay_killed_and_restarted(drill_stack: DrillStack):
    relay = drill_stack.local.services["cdc-relay"]
    run_drill("CDC relay killed (kill -9) and restarted", drill_stack,
              lambda: (relay.kill(), time.sleep(DOWN_FOR_S)), relay.start)


def test_mongodb_stopped_and_restarted(drill_stack: DrillStack):
    stand_in = drill_stack.local.services["mongo"]
    run_drill("MongoDB stand-in stopped and restarted", drill_stack,
              lambda: (stand_in.stop(), time.sleep(DOWN_FOR_S)), stand_in.start)
