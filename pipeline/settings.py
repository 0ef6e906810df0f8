"""The one settings object: every knob of the project, read from the environment in one place.

Build it with ``Settings.from_env()`` when it is needed (never at import), so a test can set
variables and build another. An address left unset means "use the embedded local stack", whose
services ``stack`` starts on 127.0.0.1; an address that is set is used as it is and nothing
is started for it (a real MongoDB replica set, a Kafka cluster, a Spark master).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

StreamMode = Literal["microbatch", "realtime"]
STREAM_MODES: tuple[StreamMode, ...] = ("realtime", "microbatch")  # the first is the default
AppMode = Literal["embedded", "reader"]
CdcMode = Literal["relay", "connect", "debezium"]
CDC_MODES: tuple[CdcMode, ...] = ("relay", "connect", "debezium")  # the first is the default
MongoStorage = Literal["disk", "memory"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable and the fix."""


# (variable, default, meaning) — the README's configuration table is this list (`python -m pipeline.settings`).
DOCUMENTED_VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("MONGO_URI", "(embedded stand-in)", "MongoDB to use; a real deployment must be a replica set"),
    ("KAFKA_BOOTSTRAP_SERVERS", "(embedded broker)", "Kafka brokers, host:port[,host:port]"),
    ("SPARK_MASTER", "local[2]", "Spark master URL for the streaming query"),
    ("SPARK_JARS", "(set by the stack and the app)", "comma-separated jars of Spark's Kafka source "
                                                    "(`python -m stack.jvm spark-jars` prints them)"),
    ("TRIGGER_INTERVAL_MS", "0", "micro-batch trigger; 0 starts the next batch as soon as one ends"),
    ("STREAM_MODE", "realtime", "`realtime`: the micro-batch query plus a real-time query that puts each trade on screen "
                                "within tens of ms; `microbatch`: the micro-batch query alone (screen ~1 s behind, "
                                "less CPU); see docs/semantics.md, \"Live ticks\""),
    ("REALTIME_CHECKPOINT_S", "300", "real-time query: seconds between checkpoints (what a restart replays; each "
                                     "checkpoint pauses the live ticks ~2 s)"),
    ("STOCKDASH_DATA_DIR", ".local", "where the local stack keeps data, logs and checkpoints"),
    ("CHECKPOINT_DIR", "$STOCKDASH_DATA_DIR/checkpoints", "Spark checkpoint folder"),
    ("MONGO_DATABASE", "stockmarket", "database holding `stock` and `transaction`"),
    ("TRADES_TOPIC", "stockmarket.transaction", "Kafka topic of change events"),
    ("KAFKA_TOPIC_PARTITIONS", "2", "partitions of topics the project creates"),
    ("CDC_MODE", "relay", "`relay` (our change-stream relay), `debezium` (Debezium's MongoDB connector on Kafka "
                          "Connect, fetched by Maven) or `connect` (MongoDB Kafka Connector, jar supplied by you)"),
    ("CONNECT_URL", "(embedded worker)", "Kafka Connect REST URL when CDC_MODE=connect or debezium"),
    ("CONNECT_PLUGIN_PATH", "$STOCKDASH_DATA_DIR/connect-plugins", "folder holding mongo-kafka-connect (CDC_MODE=connect)"),
    ("LOCAL_MONGO_PORT", "27017", "port of the embedded MongoDB stand-in"),
    ("LOCAL_KAFKA_PORT", "9092", "port of the embedded Kafka broker (controller: +1)"),
    ("LOCAL_CONNECT_PORT", "8083", "REST port of the embedded Kafka Connect worker"),
    ("LOCAL_MONGO_STORAGE", "disk", "`disk` (H2 file, survives restarts) or `memory` (faster, for benchmarks) for the stand-in"),
    ("LOCAL_MONGO_OPLOG_ENTRIES", "20000", "change events the stand-in keeps for CDC to resume from (oldest trimmed)"),
    ("LOCAL_MONGO_HEAP_MB", "512", "JVM heap of the stand-in (`memory` storage keeps every document on it)"),
    ("ARCHIVE_DIR", "$STOCKDASH_DATA_DIR/archive", "raw change events, one JSON Lines file per day and partition"),
    ("ARCHIVE_RETENTION_DAYS", "7", "archive days kept; older day folders are purged"),
    ("MAX_CLOCK_SKEW_S", "60", "a trade dated further ahead of the database clock is set aside (`absurd_trade_time`)"),
    ("DEDUPE_HORIZON_S", "600", "how long (the query's time) a change event id is remembered to drop replays; "
                                "an event further behind the newest database time is set aside"),
    ("CANDLE_LATENESS_S", "120", "event-time lateness accepted into candles; older ticks go to the late ledger"),
    ("APP_MODE", "embedded", "`embedded`: the app hosts the streaming query; `reader`: it reads the aggregates a job "
                             "elsewhere writes to MongoDB"),
    ("DASHBOARD_REFRESH_MS", "500", "at most how often a page redraws while trades flow (a single change is drawn at "
                                    "once); the redraw interval where push is unavailable"),
    ("STALE_AFTER_S", "60", "a stock's badge turns \"stale\" when its last trade is older than this"),
)


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number; unset it to use {default}") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be at least {minimum}; unset it to use {default}")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (the first is the default), case-insensitive."""
    value = env.get(name, "").strip().lower() or choices[0]
    if value not in choices:
        others = " or ".join(repr(choice) for choice in choices[1:])
        raise SettingsError(f"{name}={value!r} is unknown; use {choices[0]!r} (default) or {others}")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default, minimum=1)
    if value > 65535:
        raise SettingsError(f"{name}={value} is not a TCP port (1-65535)")
    return value


@dataclass(frozen=True)
class Settings:
    """Every knob, frozen: build it with :meth:`from_env`; derived addresses and topic names are properties."""

    mongo_uri: str | None = None
    kafka_bootstrap_servers: str | None = None
    spark_master: str = "local[2]"
    spark_jars: str | None = None
    trigger_interval_ms: int = 0
    stream_mode: StreamMode = "realtime"
    realtime_checkpoint_s: int = 300
    data_dir: Path = PROJECT_ROOT / ".local"
    checkpoint_dir: Path | None = None
    database: str = "stockmarket"
    trades_topic: str = "stockmarket.transaction"
    topic_partitions: int = 2
    cdc_mode: CdcMode = "relay"
    connect_url: str | None = None
    connect_plugin_path: Path | None = None
    local_mongo_port: int = 27017
    local_kafka_port: int = 9092
    local_connect_port: int = 8083
    local_mongo_storage: MongoStorage = "disk"
    local_mongo_oplog_entries: int = 20_000
    local_mongo_heap_mb: int = 512
    dashboard_refresh_ms: int = 500
    dedupe_horizon_s: int = 600
    max_clock_skew_s: int = 60
    candle_lateness_s: int = 120
    stale_after_s: int = 60
    archive_dir: Path | None = None
    archive_retention_days: int = 7
    app_mode: AppMode = "embedded"
    extra: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("STOCKDASH_DATA_DIR") or PROJECT_ROOT / ".local").resolve()
        mongo_uri = env.get("MONGO_URI", "").strip() or None
        if mongo_uri and not mongo_uri.startswith(("mongodb://", "mongodb+srv://")):
            raise SettingsError("MONGO_URI must start with mongodb:// or mongodb+srv://")
        return cls(
            mongo_uri=mongo_uri,
            kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip() or None,
            spark_master=env.get("SPARK_MASTER", "").strip() or "local[2]",
            spark_jars=env.get("SPARK_JARS", "").strip() or None,
            trigger_interval_ms=_int(env, "TRIGGER_INTERVAL_MS", 0),
            stream_mode=cast(StreamMode, _choice(env, "STREAM_MODE", STREAM_MODES)),
            realtime_checkpoint_s=_int(env, "REALTIME_CHECKPOINT_S", 300, minimum=1),
            data_dir=data_dir,
            checkpoint_dir=Path(env["CHECKPOINT_DIR"]).resolve() if env.get("CHECKPOINT_DIR") else None,
            database=env.get("MONGO_DATABASE", "").strip() or "stockmarket",
            trades_topic=env.get("TRADES_TOPIC", "").strip() or "stockmarket.transaction",
            topic_partitions=_int(env, "KAFKA_TOPIC_PARTITIONS", 2, minimum=1),
            cdc_mode=cast(CdcMode, _choice(env, "CDC_MODE", CDC_MODES)),
            connect_url=env.get("CONNECT_URL", "").strip() or None,
            connect_plugin_path=Path(env["CONNECT_PLUGIN_PATH"]) if env.get("CONNECT_PLUGIN_PATH") else None,
            local_mongo_port=_port(env, "LOCAL_MONGO_PORT", 27017),
            local_kafka_port=_port(env, "LOCAL_KAFKA_PORT", 9092),
            local_connect_port=_port(env, "LOCAL_CONNECT_PORT", 8083),
            local_mongo_storage=cast(MongoStorage, _choice(env, "LOCAL_MONGO_STORAGE", ("disk", "memory"))),
            local_mongo_oplog_entries=_int(env, "LOCAL_MONGO_OPLOG_ENTRIES", 20_000, minimum=100),
            local_mongo_heap_mb=_int(env, "LOCAL_MONGO_HEAP_MB", 512, minimum=128),
            dashboard_refresh_ms=_int(env, "DASHBOARD_REFRESH_MS", 500, minimum=200),
            dedupe_horizon_s=_int(env, "DEDUPE_HORIZON_S", 600, minimum=1),
            max_clock_skew_s=_int(env, "MAX_CLOCK_SKEW_S", 60),
            candle_lateness_s=_int(env, "CANDLE_LATENESS_S", 120),
            stale_after_s=_int(env, "STALE_AFTER_S", 60, minimum=1),
            archive_dir=Path(env["ARCHIVE_DIR"]).resolve() if env.get("ARCHIVE_DIR") else None,
            archive_retention_days=_int(env, "ARCHIVE_RETENTION_DAYS", 7, minimum=1),
            app_mode=cast(AppMode, _choice(env, "APP_MODE", ("embedded", "reader"))),
        )

    def with_changes(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    # Derived addresses: what every component connects to.
    @property
    def effective_mongo_uri(self) -> str:
        # A direct connection: no replica-set discovery for our own clients. The stand-in now answers as the one
        # member of rs0 too (see debezium_mongo_uri), but a direct connection needs nothing of that.
        return self.mongo_uri or f"mongodb://127.0.0.1:{self.local_mongo_port}/?directConnection=true"

    @property
    def debezium_mongo_uri(self) -> str:
        # Debezium finds the primary through replica-set discovery, so it asks for the set by name; the stand-in
        # answers as the one member of rs0. Only Debezium uses this: the other clients keep the direct connection.
        return self.mongo_uri or f"mongodb://127.0.0.1:{self.local_mongo_port}/?replicaSet=rs0"

    @property
    def effective_kafka_bootstrap(self) -> str:
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.local_kafka_port}"

    @property
    def effective_connect_url(self) -> str:
        return self.connect_url or f"http://127.0.0.1:{self.local_connect_port}"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.trades_topic}.dead-letter"

    @property
    def late_topic(self) -> str:
        return f"{self.trades_topic}.late"

    @property
    def aggregates_topic(self) -> str:
        return f"{self.trades_topic}.aggregates"

    @property
    def candles_topic(self) -> str:
        return f"{self.trades_topic}.candles"

    @property
    def live_topic(self) -> str:
        return f"{self.trades_topic}.live-ticks"

    @property
    def effective_archive_dir(self) -> Path:
        return self.archive_dir or self.data_dir / "archive"

    @property
    def effective_checkpoint_dir(self) -> Path:
        return self.checkpoint_dir or self.data_dir / "checkpoints"

    @property
    def effective_connect_plugin_path(self) -> Path:
        return self.connect_plugin_path or self.data_dir / "connect-plugins"

    @property
    def uses_connect(self) -> bool:
        """CDC runs on a Kafka Connect worker (``connect`` or ``debezium``) rather than our relay."""
        return self.cdc_mode != "relay"

    @property
    def embedded_mongo(self) -> bool:
        return self.mongo_uri is None

    @property
    def embedded_kafka(self) -> bool:
        return self.kafka_bootstrap_servers is None

    def service_env(self) -> dict[str, str]:
        """Variables that hand these exact addresses to a child process (app, relay, job)."""
        env = {
            "MONGO_URI": self.effective_mongo_uri,
            "KAFKA_BOOTSTRAP_SERVERS": self.effective_kafka_bootstrap,
            "SPARK_MASTER": self.spark_master,
            "TRIGGER_INTERVAL_MS": str(self.trigger_interval_ms),
            "STREAM_MODE": self.stream_mode,
            "REALTIME_CHECKPOINT_S": str(self.realtime_checkpoint_s),
            "STOCKDASH_DATA_DIR": str(self.data_dir),
            "CHECKPOINT_DIR": str(self.effective_checkpoint_dir),
            "MONGO_DATABASE": self.database,
            "TRADES_TOPIC": self.trades_topic,
            "KAFKA_TOPIC_PARTITIONS": str(self.topic_partitions),
            "CDC_MODE": self.cdc_mode,
            "DASHBOARD_REFRESH_MS": str(self.dashboard_refresh_ms),
            "DEDUPE_HORIZON_S": str(self.dedupe_horizon_s),
            "MAX_CLOCK_SKEW_S": str(self.max_clock_skew_s),
            "CANDLE_LATENESS_S": str(self.candle_lateness_s),
            "STALE_AFTER_S": str(self.stale_after_s),
            "ARCHIVE_DIR": str(self.effective_archive_dir),
            "ARCHIVE_RETENTION_DAYS": str(self.archive_retention_days),
            "APP_MODE": self.app_mode,
        }
        if self.spark_jars:
            env["SPARK_JARS"] = self.spark_jars
        if self.uses_connect:
            env["CONNECT_URL"] = self.effective_connect_url
        return env


def configuration_table() -> str:
    """The README's table of :data:`DOCUMENTED_VARIABLES` (a test keeps the two equal)."""
    rows = [f"| `{name}` | {default if default.startswith('(') else f'`{default}`'} | {meaning} |"
            for name, default, meaning in DOCUMENTED_VARIABLES]
    return "\n".join(["| variable | default | meaning |", "|---|---|---|", *rows])


if __name__ == "__main__":
    print(configuration_table())
