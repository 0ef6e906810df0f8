"""The streaming job as a file for ``spark-submit`` (client mode), against any Spark master::

    SPARK_MASTER=spark://host:7077 .venv/bin/spark-submit --master spark://host:7077 \\
        --jars "$(.venv/bin/python -m stack.jvm spark-jars)" pipeline/submit_job.py

The Kafka source's jars must be given with ``--jars``: under spark-submit the driver's JVM is running
before any of our code, so the ``spark.jars`` that ``python -m pipeline job`` sets would come too late.
Addresses come from the environment, as for every other entry point.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # spark-submit puts only pipeline/ on the path

from pipeline.__main__ import main  # noqa: E402 - after the path is set

if __name__ == "__main__":
    sys.exit(main(["job", "--submitted"]))
