"""Kafka Connect as the CDC path: a worker and one MongoDB source connector on it.

Two connectors, one per ``CDC_MODE``, each a JSON file beside this module:
- ``debezium`` (``debezium-source.json``): Debezium's MongoDB connector. Maven fetches it with the worker (pom.xml
  profile ``debezium``), so the embedded stack runs it as it is. Its envelope is parsed beside our change events
  (:mod:`pipeline.spark.parse`).
- ``connect`` (``mongo-source.json``): the official MongoDB Kafka Connector, publishing change events in our own
  shape. Its jar (``org.mongodb.kafka:mongo-kafka-connect``) is not served by any registry our machines reach, so
  the user supplies it in ``CONNECT_PLUGIN_PATH``.
"""

from __future__ import annotations

import json
import string
import urllib.error
import urllib.request
from pathlib import Path

from pipeline.settings import Settings
from pipeline.sinks.topics import TRADES_MAX_MESSAGE_BYTES
from pipeline.waits import wait_until
from stack import jvm
from stack.process import ServiceError, ServiceProcess

HERE = Path(__file__).resolve().parent
CONNECTOR_FILES = {"connect": HERE / "mongo-source.json", "debezium": HERE / "debezium-source.json"}


def connector_config(settings: Settings) -> tuple[str, dict[str, str]]:
    """(name, config) of this CDC mode's source connector, with this deployment's addresses filled in."""
    if not settings.uses_connect:
        raise ValueError(f"CDC_MODE={settings.cdc_mode} runs no Kafka Connect connector")
    spec = json.loads(CONNECTOR_FILES[settings.cdc_mode].read_text())
    uri = settings.debezium_mongo_uri if settings.cdc_mode == "debezium" else settings.effective_mongo_uri
    values = {"MONGO_URI": uri, "MONGO_DATABASE": settings.database, "TRADES_TOPIC": settings.trades_topic,
              # As the relay's producer: a request holds one message as large as the trades topic takes, and its batch.
              "MAX_REQUEST_BYTES": str(TRADES_MAX_MESSAGE_BYTES + 64 * 1024)}
    # Filled in after parsing, value by value: an address with a quote or backslash cannot break the JSON.
    return spec["name"], {key: string.Template(value).substitute(values) for key, value in spec["config"].items()}


def _plugin_jars(plugin_path: Path) -> list[Path]:
    return sorted(plugin_path.rglob("mongo-kafka-connect*.jar")) if plugin_path.exists() else []


def connect_service(settings: Settings, run_dir: Path) -> ServiceProcess:
    """The embedded Connect worker (standalone mode) of this CDC mode."""
    plugin_path = settings.effective_connect_plugin_path
    if settings.cdc_mode == "connect" and not _plugin_jars(plugin_path):
        raise ServiceError(
            f"CDC_MODE=connect needs the MongoDB Kafka Connector: put mongo-kafka-connect-1.16.x-all.jar "
            f"(Maven Central, org.mongodb.kafka:mongo-kafka-connect, classifier 'all') into {plugin_path}, "
            "or use CDC_MODE=debezium (fetched for you) or unset CDC_MODE to use the built-in relay."
        )
    connect_dir = settings.data_dir / "connect"
    connect_dir.mkdir(parents=True, exist_ok=True)
    worker = connect_dir / "worker.properties"
    properties = (HERE / "worker.properties.template").read_text().format(
        bootstrap=settings.effective_kafka_bootstrap, port=settings.local_connect_port,
        offsets_file=connect_dir / "offsets",
    )
    if settings.cdc_mode == "connect":
        properties += f"plugin.path={plugin_path}\n"
    worker.write_text(properties)
    return ServiceProcess(
        name="kafka-connect",
        # Timestamps in its log: when the change stream opened against when a change was made is the question there.
        command=[jvm.java_executable(), "-Xmx512m", "-Dorg.slf4j.simpleLogger.showDateTime=true",
                 "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ",
                 # pom.xml's profile of the mode's name: Debezium's comes with its connector, `connect` without one.
                 "-cp", jvm.classpath(settings.cdc_mode),
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


def _send(settings: Settings, method: str, path: str, body: dict | None = None) -> None:
    base = settings.effective_connect_url
    request = urllib.request.Request(f"{base}{path}", data=None if body is None else json.dumps(body).encode(),
                                     method=method, headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=30).close()
    except urllib.error.HTTPError as exc:
        raise ServiceError(f"Kafka Connect at {base} refused {method} {path}: {exc.read().decode()[:500]}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ServiceError(f"Kafka Connect at {base} is not reachable ({exc}); check CONNECT_URL") from None


def connector_status(settings: Settings) -> dict:
    """The connector's status as the REST API reports it ({} when the worker does not answer)."""
    name, _ = connector_config(settings)
    return _get(f"{settings.effective_connect_url}/connectors/{name}/status") or {}


def _task_trace(status: dict) -> str:
    # A failed task's Java stack trace names what the connector lacked; its first lines are enough to say.
    traces = [task["trace"] for task in status.get("tasks", []) if task.get("state") == "FAILED" and task.get("trace")]
    return f"; first failure: {traces[0][:1500]}" if traces else ""


def wait_connector_state(settings: Settings, state: str, timeout: float = 60) -> None:
    """Wait until the connector and (unless ``state`` is STOPPED, when it has none) each of its tasks is in ``state``;
    a failed task ends the wait at once, with its trace."""
    name, _ = connector_config(settings)

    def settled() -> dict:
        status = connector_status(settings)
        tasks = status.get("tasks", [])
        if any(task.get("state") == "FAILED" for task in tasks):
            return status
        reached = status.get("connector", {}).get("state") == state and (
            state == "STOPPED" or (bool(tasks) and all(task.get("state") == state for task in tasks)))
        return status if reached else {}

    status = wait_until(settled, timeout=timeout, what=f"connector {name} {state}",
                        describe=lambda: json.dumps(connector_status(settings))[:2000])
    if _task_trace(status):
        raise ServiceError(f"connector {name} failed (see the kafka-connect log){_task_trace(status)}")


def register_connector(settings: Settings, timeout: float = 60) -> None:
    """Create or update the source connector through the REST API and wait until it runs (Debezium's: until
    it has committed a position, i.e. its change stream is open)."""
    name, config = connector_config(settings)
    _send(settings, "PUT", f"/connectors/{name}/config", config)
    wait_connector_state(settings, "RUNNING", timeout)
    if settings.cdc_mode == "debezium":
        # A task is RUNNING seconds before its change stream opens, and with snapshot.mode=no_data a change
        # made in between is never captured; the first heartbeat (1 s) commits the stream's first position.
        wait_until(lambda: connector_offsets(settings), timeout=timeout, what=f"connector {name} streaming",
                   describe=lambda: json.dumps(connector_status(settings))[:2000])


def connector_offsets(settings: Settings) -> list[dict]:
    """The connector's committed source offsets (``GET /connectors/<name>/offsets``): where a restart resumes."""
    name, _ = connector_config(settings)
    return (_get(f"{settings.effective_connect_url}/connectors/{name}/offsets") or {}).get("offsets", [])


def rewind_connector(settings: Settings, offsets: list[dict], timeout: float = 60) -> None:
    """Stop the connector, set its committed offsets to ``offsets`` (taken earlier by :func:`connector_offsets`)
    and resume it: it re-sends what followed them, as after a crash between publishing and committing."""
    name, _ = connector_config(settings)
    _send(settings, "PUT", f"/connectors/{name}/stop")
    wait_connector_state(settings, "STOPPED", timeout)
    _send(settings, "PATCH", f"/connectors/{name}/offsets", {"offsets": offsets})
    _send(settings, "PUT", f"/connectors/{name}/resume")
    wait_connector_state(settings, "RUNNING", timeout)
