"""A paced trade load: random-walk trades inserted at a set rate, each insert's return time recorded
per symbol so the freshness probe can tell when every trade became visible.

``LoadProcess`` runs it in a process of its own, as traders' inserts come from outside the app: at 10,000
trades/s the load took a quarter of the bench process's interpreter lock, which the queries' Python side
(the live feed, the record's batches) needs.

The load must never be what limits the bench. It inserts once a tick (5 ms), everything then due in one
``insert_many``, and builds its documents without ``Trade`` objects (no Decimal, one clock reading a batch).
``python -m bench.load`` measures it alone: at 10,000 trades/s it used 48 % of a core when it inserted each
trade as soon as it was due (one round trip per trade or two); now ~10 % (10 µs a trade).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

from pymongo import MongoClient
from pymongo.collection import Collection

from simulator.trades import SIDES, RandomWalk

TICK_S = 0.005  # one insert_many per 5 ms: at 10,000/s batches of 50, and never more than a tick's delay
MAX_BATCH = 2000
# After each insert: when it returned, and per symbol (symbol, its trades inserted so far, of which in this insert).
OnInsert = Callable[[float, list[tuple[str, int, int]]], None]
QUANTITIES = (1, 5, 10, 25, 50, 100, 250, 500)  # as RandomWalk.next_trade picks them


@dataclass(frozen=True)
class LoadRun:
    rate_per_s: int
    duration_s: float
    inserted: int
    started_at: float
    ended_at: float
    cpu_s: float = 0.0  # of the thread that inserted

    @property
    def achieved_per_s(self) -> float:
        return self.inserted / max(1e-9, self.ended_at - self.started_at)


class PacedLoad:
    """``on_insert(returned_at, [(symbol, inserted_so_far, n), ...])`` is called after each insert. With
    ``distinct_times`` no two trades of a symbol share a trade time (each a millisecond after the symbol's
    previous one at least), so the latest trade, and NAV, are unambiguous whatever breaks ties."""

    def __init__(self, transactions: Collection, start_prices: dict[str, float],
                 on_insert: OnInsert, seed: int = 1, distinct_times: bool = False) -> None:
        self.transactions = transactions
        self.walk = RandomWalk(start_prices, volatility_pct=0.2, seed=seed)
        self.symbols: Sequence[str] = sorted(start_prices)
        self.on_insert = on_insert
        self.sent: dict[str, int] = dict.fromkeys(self.symbols, 0)
        self.latest: dict[str, datetime] | None = {} if distinct_times else None

    def documents(self, count: int, trade_time: datetime) -> list[dict]:
        """``count`` trades of the random walk as documents (prices rounded to paise, as ``Trade`` has them)."""
        random, prices, volatility = self.walk.random, self.walk.prices, self.walk.volatility
        documents = []
        for symbol in random.choices(self.symbols, k=count):
            price = max(0.05, prices[symbol] * (1 + random.gauss(0, volatility)))
            prices[symbol] = price
            documents.append({"symbol": symbol, "side": random.choice(SIDES), "price": round(price, 2),
                              "quantity": random.choice(QUANTITIES), "trade_time": self._time(symbol, trade_time)})
        return documents

    def _time(self, symbol: str, now: datetime) -> datetime:
        if self.latest is None:
            return now
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # what BSON keeps of it
        previous = self.latest.get(symbol)
        when = self.latest[symbol] = now if previous is None or previous < now else previous + timedelta(milliseconds=1)
        return when

    def run(self, rate_per_s: int, duration_s: float, stop: threading.Event | None = None) -> LoadRun:
        """Insert for ``duration_s`` at ``rate_per_s`` (behind schedule: larger batches, not a slower clock)."""
        total = int(rate_per_s * duration_s)
        started, cpu = time.time(), time.thread_time()
        inserted, tick = 0, 0
        while inserted < total and not (stop and stop.is_set()):
            tick += 1
            pause = started + tick * TICK_S - time.time()
            if pause > 0:
                time.sleep(pause)
            due = min(total, int((time.time() - started) * rate_per_s))
            count = min(MAX_BATCH, due - inserted)
            if count <= 0:
                continue
            documents = self.documents(count, datetime.now(timezone.utc))
            self.transactions.insert_many(documents, ordered=True)
            returned = time.time()
            counts: dict[str, int] = {}
            for document in documents:
                counts[document["symbol"]] = counts.get(document["symbol"], 0) + 1
            for symbol, n in counts.items():
                self.sent[symbol] += n
            self.on_insert(returned, [(symbol, self.sent[symbol], n) for symbol, n in counts.items()])
            inserted += count
        return LoadRun(rate_per_s, duration_s, inserted, started, time.time(), time.thread_time() - cpu)


class LoadProcess:
    """A :class:`PacedLoad` in a process of its own (the same arguments, a MongoDB URI for the collection);
    ``on_insert`` is called here, in the thread that calls :meth:`run`, as each insert's report arrives."""

    def __init__(self, mongo_uri: str, database: str, start_prices: dict[str, float], on_insert: OnInsert,
                 seed: int = 1, distinct_times: bool = False) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process that runs a JVM bridge and threads
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, name="bench-load", daemon=True,
                                        args=(child, mongo_uri, database, start_prices, seed, distinct_times))
        self._process.start()
        child.close()
        self.on_insert = on_insert

    @property
    def pid(self) -> int:
        assert self._process.pid is not None  # started in __init__
        return self._process.pid

    def run(self, rate_per_s: int, duration_s: float) -> LoadRun:
        self._conn.send((rate_per_s, duration_s))
        while not isinstance(report := self._conn.recv(), LoadRun):
            self.on_insert(*report)
        return report

    def close(self) -> None:
        try:
            self._conn.send(None)
        except OSError:
            pass  # it is gone already
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
        self._conn.close()


def _serve(conn, mongo_uri: str, database: str, start_prices: dict[str, float], seed: int,
           distinct_times: bool) -> None:
    """The load process: one run per (rate, seconds) received, each insert reported; ``None`` ends it."""
    client: MongoClient = MongoClient(mongo_uri)
    with client:
        load = PacedLoad(client[database]["transaction"], start_prices, lambda *report: conn.send(report), seed=seed,
                         distinct_times=distinct_times)
        while (job := conn.recv()) is not None:
            conn.send(load.run(*job))


def main(argv: list[str] | None = None) -> int:
    """The load alone: ``python -m bench.load MONGO_URI DATABASE RATE SECONDS`` prints one JSON line
    (achieved rate, CPU of the load in % of a core)."""
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=main.__doc__)
    parser.add_argument("mongo_uri")
    parser.add_argument("database")
    parser.add_argument("rate", type=int)
    parser.add_argument("seconds", type=float)
    args = parser.parse_args(argv)
    from pipeline.domain.stocks import NSE_STOCKS

    client: MongoClient = MongoClient(args.mongo_uri)
    with client:
        load = PacedLoad(client[args.database]["transaction"], {s.symbol: s.reference_price for s in NSE_STOCKS},
                         lambda *_: None)
        cpu = time.process_time()
        run = load.run(args.rate, args.seconds)
        cpu = time.process_time() - cpu  # every thread: pymongo's monitors too
    wall = run.ended_at - run.started_at
    print(json.dumps({**asdict(run), "achieved_per_s": round(run.achieved_per_s, 1), "wall_s": round(wall, 3),
                      "cpu_pct": round(cpu / wall * 100, 1), "cpu_us_per_trade": round(cpu / max(1, run.inserted) * 1e6, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
