"""Stopping the job while a micro-batch runs (Ctrl-C or SIGTERM of the app) ends it quietly: no JVM trace.

Spark decides whether a ``foreachBatch`` error is the stop's by matching its whole text against a pattern that
recurses once per character; the long Py4J error of an interrupted batch overflowed the stream thread's stack
there, and the JVM printed a StackOverflowError at every stop mid-batch (``pipeline.spark.batch.StoppedMidBatch``).
"""

from __future__ import annotations

import pytest

from pipeline.settings import Settings
from tests.children import isolated, start, stop

pytestmark = pytest.mark.integration


def test_a_stop_mid_batch_prints_no_jvm_trace(stack: Settings, tmp_path):
    settings = isolated(stack, tmp_path, "stopmid")
    log_path = tmp_path / "child.log"
    child = start(["tests.stop_mid_batch"], settings.service_env(), log_path)
    try:
        child.wait(timeout=300)
    finally:
        stop(child)
    output = log_path.read_text(errors="replace")
    assert "STOPPED" in output, output[-3000:]
    assert "StackOverflowError" not in output and "Exception in thread" not in output, output[-3000:]
