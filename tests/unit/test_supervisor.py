"""The supervisor's reading of Spark's progress reports: events a watermark dropped are counted once."""

from pipeline.spark.supervisor import dropped_as_old, error_summary


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
