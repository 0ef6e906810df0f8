"""Scale-out: the streaming job submitted with spark-submit to a Spark standalone cluster (master and one
worker, started with pyspark's own spark-class) against the real stack, and the app in reading mode
showing what that job writes. Its own database, topic and relay; final numbers checked against MongoDB."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pipeline.domain.state import MarketState
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.sinks import mongo
from pipeline.sinks.reader import AggregateReader
from pipeline.waits import wait_until
from stack.jvm import spark_jars
from stack.proc import pid_alive
from stack.spark_cluster import SparkStandalone
from tests.children import group_members, isolated, relay_started, running, spawn, start
from tests.oracle import assert_figures_match, trade_documents
from ui import runtime as ui_runtime

pytestmark = [pytest.mark.integration, pytest.mark.spark]
SYMBOLS = ("INFY", "TCS", "ITC")


def test_job_on_a_standalone_cluster_feeds_an_app_in_reading_mode(stack: Settings, tmp_path):
    settings = isolated(stack, tmp_path, "cluster")
    with SparkStandalone(tmp_path / "spark") as master:
        # The micro-batch query alone: the worker has one core, and the live-ticks query would need a slot per
        # trades partition beside it (the default mode is covered across processes in test_realtime.py).
        settings = settings.with_changes(spark_master=master, app_mode="reader", stream_mode="microbatch")
        # spark-submit finds pyspark through $PYSPARK_PYTHON (else the system python3): this interpreter.
        env = {**settings.service_env(), "PYSPARK_PYTHON": sys.executable}
        submit = [str(Path(sys.executable).parent / "spark-submit"), "--master", master, "--jars", spark_jars(),
                  str(PROJECT_ROOT / "pipeline" / "submit_job.py")]
        # Leaving the block stops the job's whole process group: spark-submit's JVM and the job's Python.
        with running(start(["pipeline.services.relay"], env, tmp_path / "relay.log")), \
                running(spawn(submit, env, tmp_path / "job.log")) as job:
            relay_started(settings)
            check_reading_app(settings, tmp_path)
            # spark-submit's JVM runs the job's Python as a child of its own: the one a stop of the JVM alone left.
            drivers = [member.pid for member in group_members(job.pid) if member.cmdline[:1] == (sys.executable,)]
            assert drivers, [" ".join(member.cmdline)[:200] for member in group_members(job.pid)]
        assert not group_members(job.pid), "the job's process group outlived its stop"
        assert not any(pid_alive(pid) for pid in drivers), "the job's Python outlived spark-submit"


def check_reading_app(settings: Settings, tmp_path: Path) -> None:
    """Trades inserted reach the cluster job's aggregates, which an app in reading mode shows."""
    client = mongo.client(settings)
    db = client[settings.database]
    state = MarketState()
    reader = AggregateReader(settings, state).start_in_background()
    try:
        trades = trade_documents(SYMBOLS, 0, 300)
        db["transaction"].insert_many(trades)

        def counted() -> int:
            return sum(a.trades for a in state.snapshot().stocks.values())

        wait_until(lambda: counted() == 300, timeout=240, what="the cluster job's aggregates read by the app",
                   describe=lambda: f"{counted()} of 300; job log: {(tmp_path / 'job.log').read_text()[-1500:]}")
        assert_figures_match(state.snapshot().stocks, trades)
        # Reading mode is complete: the latest trades and the batch reports with their freshness come from MongoDB.
        wait_until(lambda: len(state.snapshot().recent_ticks.get("INFY", ())) >= 50 and state.batch_reports()
                   and state.freshness(window_s=3600).samples > 0, timeout=60, what="latest trades and batch reports read")

        # The app in reading mode: the same figures on the Market page, the query shown as running elsewhere.
        runtime = ui_runtime.AppRuntime(settings, state, reader, client)
        ui_runtime.install(runtime)
        try:
            at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60).run()
            assert not at.exception, at.exception
            table = at.dataframe[0].value.set_index("Symbol")
            assert table.loc["INFY", "Trades"] == 100
            at.switch_page("pages/pipeline.py").run()
            assert any("runs elsewhere" in c.value for c in at.caption)
        finally:
            ui_runtime.install(None)
    finally:
        reader.stop()
        client.close()
