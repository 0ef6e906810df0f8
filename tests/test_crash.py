"""kill -9 of the process running the Spark query, mid-stream, then a restart: nothing lost, nothing twice.

The job and a CDC relay run as their own processes on the session's MongoDB and Kafka, with their own
database and topic; the final aggregates are compared with an aggregation run in MongoDB.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from pipeline import mongo
from pipeline.settings import Settings
from pipeline.waits import wait_until
from simulator.trades import RandomWalk
from tests.children import isolated, start, stop

pytestmark = pytest.mark.integration
SYMBOLS = ["INFY", "TCS", "ITC", "SBIN", "WIPRO"]


def expected_from_mongo(db) -> dict[str, dict]:
    """The truth: an aggregation over `transaction` in MongoDB itself."""
    pipeline = [
        {"$sort": {"trade_time": 1}},
        {"$group": {"_id": "$symbol", "trades": {"$sum": 1}, "low": {"$min": "$price"}, "high": {"$max": "$price"},
                    "nav": {"$last": "$price"}, "volume": {"$sum": "$quantity"}}},
    ]
    return {doc["_id"]: {k: doc[k] for k in ("trades", "low", "high", "nav", "volume")}
            for doc in db["transaction"].aggregate(pipeline)}


def test_kill_9_of_the_query_process_loses_and_doubles_nothing(stack: Settings, tmp_path):
    settings = isolated(stack, tmp_path, "crash")
    env = settings.service_env()
    client = mongo.client(settings)
    db = client[settings.database]
    relay = start(["pipeline.relay"], env, tmp_path / "relay.log")
    job = start(["pipeline", "job"], env, tmp_path / "job-1.log")
    walk = RandomWalk({s: 100.0 for s in SYMBOLS}, volatility_pct=1, seed=5)
    clock = datetime.now(timezone.utc)
    inserted = 0
    done = threading.Event()

    def writer() -> None:
        nonlocal inserted, clock
        try:
            while not done.is_set() and inserted < 20_000:
                trades = []
                for _ in range(20):
                    clock += timedelta(milliseconds=1)  # distinct trade times: NAV is unambiguous
                    trades.append(walk.next_trade(walk.random.choice(SYMBOLS), trade_time=clock))
                db["transaction"].insert_many([t.to_document() for t in trades])
                inserted += len(trades)
                done.wait(0.1)  # ~150 trades/s: the stream is busy when the job dies
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    try:
        stored = db["stock_aggregates"]
        thread.start()
        wait_until(lambda: stored.count_documents({}) > 0, timeout=120, what="first aggregates from the job")
        mark = inserted
        wait_until(lambda: inserted >= mark + 300, timeout=120, what="trades flowing")

        def counted() -> int:
            return sum(doc["trades"] for doc in stored.find({}, {"trades": 1}))

        job.send_signal(signal.SIGKILL)  # mid-stream, no chance to clean up
        job.wait(timeout=30)
        killed_at, counted_at_kill = inserted, counted()
        job = start(["pipeline", "job"], env, tmp_path / "job-2.log")
        started = time.monotonic()
        # Keep trading until the restarted job has caught up past the crash, then stop.
        wait_until(lambda: counted() > killed_at, timeout=180, what="the restarted job counting new trades")
        recovery_s = time.monotonic() - started
        done.set()
        thread.join(timeout=60)
        total = db["transaction"].count_documents({})

        recovered = wait_until(lambda: counted() == total and counted(), timeout=180, what="all trades counted",
                               describe=lambda: f"{counted()} of {total}")
        expected = expected_from_mongo(db)
        actual = {doc["_id"]: {"trades": doc["trades"], "low": doc["low"].to_decimal(), "high": doc["high"].to_decimal(),
                               "nav": doc["nav"].to_decimal(), "volume": doc["volume"]} for doc in stored.find({})}
        for values in expected.values():
            for key in ("low", "high", "nav"):
                values[key] = Decimal(str(values[key])).quantize(Decimal("0.0001"))
        print(f"\ncrash drill: inserted {total}, killed with {killed_at} inserted and {counted_at_kill} counted, "
              f"counted {recovered}, lost {max(0, total - recovered)}, doubled {max(0, recovered - total)}, "
              f"restart to caught-up {recovery_s:.1f}s")
        assert actual == expected
    finally:
        done.set()
        stop(job, relay)
        client.close()
