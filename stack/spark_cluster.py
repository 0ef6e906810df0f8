"""A Spark standalone cluster on this machine, from pyspark's own launcher (``spark-class``): one master
and one worker on free loopback ports, for running the streaming job as a cluster would.

>>> with SparkStandalone(work_dir) as master_url:      # doctest: +SKIP
...     print(master_url)                              # spark://127.0.0.1:<port>
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.request
from pathlib import Path

from stack.process import ServiceProcess, free_port, port_is_open


def _spark_class() -> str:
    found = shutil.which("spark-class", path=str(Path(sys.executable).parent))
    if not found:
        raise FileNotFoundError("spark-class is missing next to this Python; install requirements.txt (pyspark)")
    return found


class SparkStandalone:
    def __init__(self, work_dir: Path, worker_cores: int = 1, worker_memory: str = "1g") -> None:
        self.work_dir = work_dir
        self.port, self.ui_port, self.worker_ui_port = free_port(), free_port(), free_port()
        # pyspark's launcher finds its Spark home with $PYSPARK_PYTHON (else the system python3, which has
        # no pyspark), and the worker runs Python tasks with it: this interpreter, the venv's.
        env = {"SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(work_dir / "logs"),
               "SPARK_WORKER_DIR": str(work_dir / "worker"), "SPARK_NO_DAEMONIZE": "1",
               "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
        run_dir = work_dir / "run"
        self.master = ServiceProcess(
            name="spark-master", run_dir=run_dir, env=env, port=self.port,
            command=[_spark_class(), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                     "--port", str(self.port), "--webui-port", str(self.ui_port)],
            ready=lambda: port_is_open(self.port) and port_is_open(self.ui_port),
        )
        self.worker = ServiceProcess(
            name="spark-worker", run_dir=run_dir, env=env,
            command=[_spark_class(), "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                     "--cores", str(worker_cores), "--memory", worker_memory, "--webui-port", str(self.worker_ui_port),
                     self.url],
            ready=lambda: self.alive_workers() >= 1,
        )

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def alive_workers(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=2) as response:
            state = json.loads(response.read())
        return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")

    def __enter__(self) -> str:
        self.master.start()
        try:
            self.worker.start()
        except BaseException:
            self.master.stop()
            raise
        return self.url

    def __exit__(self, *exc_info: object) -> None:
        self.worker.stop()
        self.master.stop()
