"""Session-scoped real services: the local stack on free ports in a temporary folder, one
SparkSession, one streaming job. Nothing here is a mock. And a check that the session leaves no
process of its own running."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient

from pipeline.domain.state import MarketState
from pipeline.settings import PROJECT_ROOT, STREAM_MODES, Settings
from pipeline.sinks import mongo
from pipeline.spark.jobs import StreamingJobs
from pipeline.spark.session import spark_session
from pipeline.waits import WaitTimeout, wait_until
from stack.jvm import spark_jars
from stack.local import LocalStack
from stack.proc import ProcInfo
from stack.process import free_port, free_port_pair
from tests.children import SESSION_VARIABLE, kill_leftovers, pyspark_gateways, session_leftovers

TEST_SYMBOLS = tuple(f"ZT{index:03d}" for index in range(1, 81))  # listed in `stock` for tests only


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fail the session when a process it started still runs after every other fixture stopped what it
    started (set up first, this fixture is torn down last); the leftovers are listed and killed. Which
    processes count as the session's: :func:`tests.children.session_leftovers`."""
    token = uuid.uuid4().hex
    os.environ[SESSION_VARIABLE] = token  # inherited by every process the tests start
    session_tmp = tmp_path_factory.getbasetemp()
    yield
    leftovers = _leftovers_after_grace(token, session_tmp)
    os.environ.pop(SESSION_VARIABLE, None)
    if leftovers:
        listing = "\n".join(f"  pid {info.pid} (parent {info.ppid}): {' '.join(info.cmdline)[:300]}" for info in leftovers)
        print(f"\n*** processes left behind by this test session (now killed):\n{listing}", file=sys.stderr, flush=True)
        kill_leftovers(leftovers)
        pytest.fail(f"{len(leftovers)} process(es) started by the tests still ran at the end of the session (killed "
                    f"now). Stop each child with tests.children.stop or `with running(...)`, which end its whole "
                    f"process group, and each service with its launcher's `with` block:\n{listing}", pytrace=False)


def _leftovers_after_grace(token: str, session_tmp: Path, grace: float = 10.0) -> list[ProcInfo]:
    """The session's processes still running after ``grace`` s (one stopped just now may be in its exit)."""
    def left() -> list[ProcInfo]:
        return session_leftovers(token, session_tmp, spared=pyspark_gateways())

    try:
        wait_until(lambda: not left(), timeout=grace, what="the session's processes ended", interval=0.2)
        return []
    except WaitTimeout:
        return left()


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir = tmp_path_factory.mktemp("stack")
    env = {
        "STOCKDASH_DATA_DIR": str(data_dir),
        "LOCAL_MONGO_PORT": str(free_port()),
        "LOCAL_KAFKA_PORT": str(free_port_pair()),
        "TRADES_TOPIC": f"test.transaction.{uuid.uuid4().hex[:8]}",
        "SPARK_JARS": spark_jars(),
        # The hostile suite stores documents of up to 16 MB and floods of junk: the stand-in's default 512 MB
        # heap ran out once the session had run it in both stream modes.
        "LOCAL_MONGO_HEAP_MB": "2048",
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


@pytest.fixture(scope="session", params=STREAM_MODES)
def market_job(request: pytest.FixtureRequest, stack: Settings, spark) -> Iterator[StreamingJobs]:
    """The job as the app runs it, in each stream mode the README offers (tests that use it run once per mode)."""
    job = StreamingJobs(stack.with_changes(stream_mode=request.param), MarketState(), spark=spark).start()
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

