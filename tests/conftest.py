"""Session-scoped real services: the local stack on free ports in a temporary folder, one
SparkSession, one streaming job. Nothing here is a mock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient

from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.sinks import mongo
from pipeline.spark.microbatch import MarketJob
from pipeline.spark.session import spark_session
from stack.jvm import spark_jars
from stack.local import LocalStack
from stack.process import free_port, free_port_pair

TEST_SYMBOLS = tuple(f"ZT{index:03d}" for index in range(1, 81))  # listed in `stock` for tests only


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir = tmp_path_factory.mktemp("stack")
    env = {
        "STOCKDASH_DATA_DIR": str(data_dir),
        "LOCAL_MONGO_PORT": str(free_port()),
        "LOCAL_KAFKA_PORT": str(free_port_pair()),
        "TRADES_TOPIC": f"test.transaction.{uuid.uuid4().hex[:8]}",
        "SPARK_JARS": spark_jars(),
    }
    return Settings.from_env(env)


@pytest.fixture(scope="session")
def stack(base_settings: Settings) -> Iterator[Settings]:
    with LocalStack(base_settings) as ready:
        client = mongo.client(ready)
        client[ready.database]["stock"].insert_many(
            [{"_id": s, "symbol": s, "company": f"Test company {s}", "sector": "Test", "reference_price": 100.0}
             for s in TEST_SYMBOLS]
        )
        client.close()
        yield ready


@pytest.fixture(scope="session")
def spark(base_settings: Settings):
    session = spark_session(base_settings)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def market_job(stack: Settings, spark) -> Iterator[MarketJob]:
    job = MarketJob(stack, spark=spark).start()
    yield job
    job.stop()


@pytest.fixture(scope="session")
def mongo_client(stack: Settings) -> Iterator[MongoClient]:
    client = mongo.client(stack)
    yield client
    client.close()


@pytest.fixture(scope="session")
def _symbol_pool() -> Iterator[str]:
    return iter(TEST_SYMBOLS)


@pytest.fixture
def fresh_symbol(_symbol_pool) -> str:
    """A listed symbol no other test has traded: its aggregates are this test's alone."""
    return next(_symbol_pool)


@pytest.fixture
def transactions(stack: Settings, mongo_client: MongoClient):
    return mongo_client[stack.database]["transaction"]


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = PROJECT_ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path

