"""``python -m pipeline job``: run the streaming job on its own, until SIGTERM or Ctrl-C.

Aggregates go to MongoDB (``stock_aggregates``) as they do when the app hosts the job; in the default
``STREAM_MODE=realtime``, valid trades also go to the live-ticks topic (see ``pipeline.spark.realtime``). Addresses
come from the environment (see README "Configuration"). A query that fails (Kafka or MongoDB gone)
is restarted from its checkpoint with backoff; each failure is logged in one line.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from pipeline.settings import Settings, SettingsError
from pipeline.spark.jobs import StreamingJobs

MISSING_JARS = ("SPARK_JARS is not set: Spark's Kafka source needs its jars. Run\n"
                "  SPARK_JARS=\"$(python -m stack.jvm spark-jars)\" python -m pipeline job\n"
                "(the local stack sets it for what it starts; under spark-submit pass them with --jars)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    parser.add_argument("command", choices=["job"])
    parser.add_argument("--submitted", action="store_true", help=argparse.SUPPRESS)  # spark-submit gave --jars
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python logs every reconnect attempt as an error; our own one-line messages say what matters.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        settings = Settings.from_env()
        if not settings.spark_jars and not args.submitted:
            raise SettingsError(MISSING_JARS)
        job = StreamingJobs(settings).start_in_background()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        print("streaming job starting", flush=True)
        stop.wait()
    finally:
        job.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
