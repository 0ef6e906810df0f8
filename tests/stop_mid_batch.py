"""``python -m tests.stop_mid_batch``: the micro-batch query stopped while a batch runs, in a process of its
own so that the Spark JVM's own output can be read (test_stop_mid_batch).

The batch is held at its listed-symbol lookup until the stop has begun, then goes on into Spark, as a batch
does when Ctrl-C comes halfway through it. Prints ``STOPPED`` once the query stopped.
"""

from __future__ import annotations

import threading

from kafka import KafkaProducer

from pipeline.settings import Settings
from pipeline.spark.microbatch import MarketJob
from tests.events import change_event, trade_doc

STOP_TO_SPARK_S = 1.0  # the batch goes on this long after the stop began: the stop has interrupted the query by then


def main() -> None:
    settings = Settings.from_env()
    job = MarketJob(settings, persist=False)
    in_batch, stop_begun = threading.Event(), threading.Event()

    def held_listed_symbols() -> list[str]:
        in_batch.set()
        stop_begun.wait(timeout=60)
        threading.Event().wait(STOP_TO_SPARK_S)  # the stop's interruption, not our clock, is what is awaited
        return ["TCS"]

    job.listed = held_listed_symbols  # type: ignore[assignment]
    job.start()
    producer = KafkaProducer(bootstrap_servers=settings.effective_kafka_bootstrap)
    producer.send(settings.trades_topic, change_event("stop-1", trade_doc("TCS", 100)).encode()).get(timeout=30)
    producer.close()
    if not in_batch.wait(timeout=120):
        raise SystemExit("no batch started within 120 s")
    stop_begun.set()
    job.stop()
    print("STOPPED", flush=True)


if __name__ == "__main__":
    main()
