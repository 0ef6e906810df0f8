"""A batch that ``query.stop()`` interrupts ends with a short error in the words Spark takes for a stop
(``pipeline.spark.batch``): its long Py4J error overflowed the stack of Spark's own match and printed a JVM trace."""

import re

import pytest

from pipeline.domain.state import MarketState
from pipeline.spark.batch import BatchHandler, StoppedMidBatch

# Spark 4's StreamExecution.PROXY_ERROR, which decides whether a foreachBatch error is a stop.
SPARK_STOP = re.compile(r"py4j\.protocol\.Py4JJavaError: An error occurred while calling((.|\r\n|\r|\n)*)"
                        r"(java\.lang\.InterruptedException|java\.io\.InterruptedIOException|"
                        r"java\.nio\.channels\.ClosedByInterruptException)")


class InterruptedBatch:
    """What a batch's DataFrame does once the query is being stopped: its next call into Spark fails."""

    def coalesce(self, _partitions: int) -> None:
        raise RuntimeError("An error occurred while calling o123.collect.\n" + "\tat org.apache.spark...\n" * 5_000)


def test_a_failing_batch_fails_as_it_is_while_the_query_runs():
    with pytest.raises(RuntimeError, match="o123.collect"):
        BatchHandler(MarketState(), lambda: ["TCS"])(InterruptedBatch(), 7)  # type: ignore[arg-type]


def test_a_batch_the_stop_interrupts_says_so_briefly_in_sparks_words():
    handler = BatchHandler(MarketState(), lambda: ["TCS"])
    handler.stopping.set()
    with pytest.raises(StoppedMidBatch) as raised:
        handler(InterruptedBatch(), 7)  # type: ignore[arg-type]
    message = str(raised.value)
    assert SPARK_STOP.search(message) and len(message) < 300
    assert raised.value.__suppress_context__  # the long error is not in its traceback either
