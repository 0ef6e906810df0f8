"""The supervisor's reading of Spark's progress reports: events a watermark dropped are counted once."""

from pipeline.domain.status import QueryState
from pipeline.settings import Settings
from pipeline.spark.supervisor import SupervisedQuery, dropped_as_old, error_summary
from pipeline.waits import wait_until


def test_events_dropped_by_a_watermark_are_counted_once_per_batch():
    progress = [{"batchId": 3, "stateOperators": [{"numRowsDroppedByWatermark": 2}]},
                {"batchId": 4, "stateOperators": [{"numRowsDroppedByWatermark": 0}, {"numRowsDroppedByWatermark": 5}]},
                {"batchId": 5}]
    assert dropped_as_old(progress, after_batch=-1) == (7, 5)
    assert dropped_as_old(progress, after_batch=3) == (5, 5)
    assert dropped_as_old(progress, after_batch=5) == (0, 5)


def test_a_spark_error_becomes_one_line():
    trace = ("py4j.protocol.Py4JJavaError: An error occurred\n"
             "org.apache.spark.SparkException: Job aborted.\n\tat org.apache.spark.Foo.bar(Foo.scala:1)\n"
             "Caused by: java.net.ConnectException: Connection refused\n\tat sun.nio.Net.connect(Net.java:1)")
    assert error_summary(trace) == "java.net.ConnectException: Connection refused"


class _CountingQuery:
    """Stands in for a StreamingQuery: counts the looks into it (each one a call into the JVM)."""

    def __init__(self) -> None:
        self.looks = 0

    def exception(self) -> None:
        self.looks += 1

    @property
    def isActive(self) -> bool:  # noqa: N802 - PySpark's name
        self.looks += 1
        return True

    @property
    def lastProgress(self) -> dict:  # noqa: N802 - PySpark's name
        self.looks += 1
        return {"batchId": 7}

    recentProgress: list = []  # noqa: RUF012 - read by the supervisor's watermark check

    def stop(self) -> None:
        pass


def test_a_supervised_query_s_status_is_the_supervisor_s_last_look_not_a_call_into_spark_per_redraw():
    query = _CountingQuery()

    class Supervised(SupervisedQuery):
        def _start_query(self):
            return query

    supervised = Supervised(Settings.from_env({}), None).start_in_background()
    try:
        wait_until(lambda: supervised.status().state is QueryState.RUNNING, timeout=10, what="the first look")
        looks = query.looks
        statuses = [supervised.status() for _ in range(100)]  # a hundred redraws
        assert query.looks - looks < 10  # the supervisor's own looks (one a second) at most
        assert all(s.state is QueryState.RUNNING and s.progress == {"batchId": 7} for s in statuses)
    finally:
        supervised.stop()
