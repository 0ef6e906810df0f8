"""The default mode across processes, on real parts: the job (micro-batch record and real-time live-ticks
query) in a process of its own, read by an app in reading mode that shows the record with the live ticks
on top. Its own database, topic and relay; a replayed change event and a kill -9 of the job must not
change the numbers, an unlisted symbol never shows, and the app's pages show the figures."""

from __future__ import annotations

import signal
import time

import psutil
import pytest
from kafka import KafkaConsumer, KafkaProducer
from streamlit.testing.v1 import AppTest

from pipeline.domain.state import MarketState
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.sinks import mongo
from pipeline.sinks.live_feed import ReaderWithLiveTicks
from pipeline.sinks.reader import AggregateReader
from pipeline.spark.realtime import checkpoint_dir
from pipeline.waits import wait_until
from tests.children import isolated, relay_started, start, stop
from tests.oracle import assert_figures_match, trade_documents
from ui import runtime as ui_runtime

pytestmark = [pytest.mark.integration, pytest.mark.spark]
SYMBOLS = ("INFY", "TCS", "ITC")


def replay_first_event(settings: Settings) -> None:
    """Send the topic's first change event again, as a CDC restart would."""
    consumer = KafkaConsumer(settings.trades_topic, bootstrap_servers=settings.effective_kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    try:
        first = next(iter(consumer))
    finally:
        consumer.close()
    producer = KafkaProducer(bootstrap_servers=settings.effective_kafka_bootstrap)
    producer.send(settings.trades_topic, key=first.key, value=first.value)
    producer.close()


def test_the_default_mode_gives_exact_figures_through_a_replay_and_a_kill_9(stack: Settings, tmp_path):
    settings = isolated(stack, tmp_path, "realtime").with_changes(stream_mode="realtime", realtime_checkpoint_s=5)
    env = settings.service_env()
    relay = start(["pipeline.services.relay"], env, tmp_path / "relay.log")
    relay_started(settings)
    job = start(["pipeline", "job"], env, tmp_path / "job.log")
    client = mongo.client(settings)
    state = MarketState()
    # What an app with APP_MODE=reader runs in the default stream mode: the queries are elsewhere.
    reader = ReaderWithLiveTicks(AggregateReader(settings, state), settings, state).start_in_background()
    inserted: list[dict] = []

    def insert(batch: list[dict]) -> None:
        client[settings.database]["transaction"].insert_many(batch)
        inserted.extend(batch)

    def counted() -> int:
        return sum(a.trades for a in state.snapshot().stocks.values())

    def all_counted(what: str) -> None:
        wait_until(lambda: counted() == len(inserted), timeout=180, what=what,
                   describe=lambda: f"{counted()} of {len(inserted)}; job log: {(tmp_path / 'job.log').read_text()[-1500:]}")

    try:
        insert(trade_documents(SYMBOLS, 0, 300))
        all_counted("real-time aggregates of 300 trades")
        replay_first_event(settings)
        insert(trade_documents(SYMBOLS, 300, 30))
        all_counted("the replayed event dropped, 30 more trades counted")

        commits = checkpoint_dir(settings) / "commits"
        wait_until(lambda: any(commits.glob("[0-9]*")), timeout=60, what="a real-time checkpoint")
        insert(trade_documents(SYMBOLS, 330, 60))  # after the checkpoint: replayed by the restarted record, counted once
        all_counted("trades after the checkpoint")
        spark_jvm = psutil.Process(job.pid).children(recursive=True)
        job.send_signal(signal.SIGKILL)  # mid-stream: the record resumes from its last checkpoint and replays
        job.wait(timeout=30)
        # Spark's JVM outlives its killed driver for a moment, its queries still running.
        wait_until(lambda: not any(child.is_running() for child in spark_jvm), timeout=60, what="the killed job's JVM gone")
        insert(trade_documents(SYMBOLS, 390, 60))
        # Written while no job runs: the restarted record's to catch up with. A new process's live-ticks query starts
        # at the topic's end, so this trade of an unlisted symbol never comes as a live tick (checked below).
        client[settings.database]["transaction"].insert_one({**trade_documents(SYMBOLS, 0, 1)[0], "symbol": "BACKLOG"})
        job = start(["pipeline", "job"], env, tmp_path / "job.log")
        insert(trade_documents(SYMBOLS, 450, 60))
        all_counted("every trade after a kill -9 of the real-time job")

        assert_figures_match(state.snapshot().stocks, inserted)

        def unlisted_trade_read() -> bool:
            # A symbol that is not listed: the live-ticks query passes it on, the app never shows it as a stock.
            client[settings.database]["transaction"].insert_one({**trade_documents(SYMBOLS, 0, 1)[0], "symbol": "NOSUCH"})
            assert "NOSUCH" not in state.snapshot().stocks
            return "NOSUCH" in reader.feed.unlisted

        wait_until(unlisted_trade_read, timeout=60, interval=0.5, what="the unlisted symbol's live tick read")
        assert "NOSUCH" not in state.snapshot().stocks and reader.feed.received > 0
        assert "BACKLOG" not in reader.feed.unlisted
        assert state.freshness(window_s=600).samples > 0

        runtime = ui_runtime.AppRuntime(settings, state, reader, client)
        ui_runtime.install(runtime)
        try:
            at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60).run()
            assert not at.exception, at.exception
            assert at.dataframe[0].value.set_index("Symbol").loc["INFY", "Trades"] == state.snapshot().stocks[
                "INFY"].trades
            at.switch_page("pages/pipeline.py").run()
            assert not at.exception, at.exception
        finally:
            ui_runtime.install(None)
    finally:
        reader.stop()
        stop(job, relay)
        client.close()


def test_live_ticks_keep_coming_longer_into_a_real_time_batch_than_the_clock_skew(stack: Settings, tmp_path):
    """A real-time batch lasts minutes and Spark's ``current_timestamp()`` is its start: a trade-time bound on
    it would set aside every trade once the batch is older than MAX_CLOCK_SKEW_S (the live ticks stopped,
    silently, ~60 s into each batch). Here the skew is 2 s and trades keep coming for 10 s."""
    settings = isolated(stack, tmp_path, "skew").with_changes(max_clock_skew_s=2, realtime_checkpoint_s=300)
    env = settings.service_env()
    relay = start(["pipeline.services.relay"], env, tmp_path / "relay.log")
    relay_started(settings)
    job = start(["pipeline", "job"], env, tmp_path / "job.log")
    client = mongo.client(settings)
    state = MarketState()
    reader = ReaderWithLiveTicks(AggregateReader(settings, state), settings, state).start_in_background()
    try:
        transactions = client[settings.database]["transaction"]

        def a_live_tick_read() -> bool:
            transactions.insert_many(trade_documents(SYMBOLS, 0, 3))
            return reader.feed.received > 0

        wait_until(a_live_tick_read, timeout=180, interval=0.5, what="the first live tick")
        first_seen = time.monotonic()
        wait_until(lambda: time.monotonic() - first_seen > 10, timeout=30, interval=0.5,
                   what="ten seconds of trades", describe=lambda: "")
        received = reader.feed.received
        wait_until(lambda: transactions.insert_many(trade_documents(SYMBOLS, 0, 3)) and reader.feed.received > received,
                   timeout=30, interval=0.5, what="live ticks more than MAX_CLOCK_SKEW_S into the batch")
        assert reader.feed.skipped_ahead == 0
    finally:
        reader.stop()
        stop(job, relay)
        client.close()
