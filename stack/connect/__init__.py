"""Kafka Connect + the MongoDB Kafka Connector, for real deployments (``CDC_MODE=connect``).

Not the embedded default: the connector jar (``org.mongodb.kafka:mongo-kafka-connect``) is not served
by any registry our machines reach, so the user supplies it in ``CONNECT_PLUGIN_PATH``.
"""

from __future__ import annotations

import json
import string
import urllib.error
import urllib.request
from pathlib import Path

from pipeline.settings import Settings
from pipeline.waits import wait_until
from stack import jvm
from stack.process import ServiceError, ServiceProcess

HERE = Path(__file__).resolve().parent
CONNECTOR_FILE = HERE / "mongo-source.json"


def connector_config(settings: Settings) -> tuple[str, dict[str, str]]:
    """(name, config) of the source connector, with this deployment's addresses filled in."""
    text = string.Template(CONNECTOR_FILE.read_text()).substitute(
        MONGO_URI=settings.effective_mongo_uri, MONGO_DATABASE=settings.database, TRADES_TOPIC=settings.trades_topic
    )
    spec = json.loads(text)
    return spec["name"], spec["config"]


def _plugin_jars(plugin_path: Path) -> list[Path]:
    return sorted(plugin_path.rglob("mongo-kafka-connect*.jar")) if plugin_path.exists() else []


def connect_service(settings: Settings, run_dir: Path) -> ServiceProcess:
    plugin_path = settings.effective_connect_plugin_path
    if not _plugin_jars(plugin_path):
        raise ServiceError(
            f"CDC_MODE=connect needs the MongoDB Kafka Connector: put mongo-kafka-connect-1.16.x-all.jar "
            f"(Maven Central, org.mongodb.kafka:mongo-kafka-connect, classifier 'all') into {plugin_path}, "
            "or unset CDC_MODE to use the built-in relay."
        )
    connect_dir = settings.data_dir / "connect"
    connect_dir.mkdir(parents=True, exist_ok=True)
    worker = connect_dir / "worker.properties"
    worker.write_text((HERE / "worker.properties.template").read_text().format(
        bootstrap=settings.effective_kafka_bootstrap, port=settings.local_connect_port,
        plugin_path=plugin_path, offsets_file=connect_dir / "offsets",
    ))
    return ServiceProcess(
        name="kafka-connect",
        command=[jvm.java_executable(), "-Xmx512m", "-cp", jvm.classpath("connect"),
                 "org.apache.kafka.connect.cli.ConnectStandalone", str(worker)],
        run_dir=run_dir,
        port=settings.local_connect_port,
        ready=lambda: _get(f"{settings.effective_connect_url}/") is not None,
        start_timeout=120,
    )


def _get(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def register_connector(settings: Settings, timeout: float = 60) -> None:
    """Create or update the source connector through the REST API and wait until it runs."""
    name, config = connector_config(settings)
    base = settings.effective_connect_url
    request = urllib.request.Request(f"{base}/connectors/{name}/config", data=json.dumps(config).encode(),
                                     method="PUT", headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=10).close()
    except urllib.error.HTTPError as exc:
        raise ServiceError(f"Kafka Connect at {base} refused the connector: {exc.read().decode()[:500]}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ServiceError(f"Kafka Connect at {base} is not reachable ({exc}); check CONNECT_URL") from None

    def running() -> bool:
        status = _get(f"{base}/connectors/{name}/status") or {}
        tasks = status.get("tasks", [])
        return status.get("connector", {}).get("state") == "RUNNING" and bool(tasks) and all(
            task.get("state") == "RUNNING" for task in tasks)

    wait_until(running, timeout=timeout, what=f"connector {name} running",
               describe=lambda: json.dumps(_get(f"{base}/connectors/{name}/status")))
