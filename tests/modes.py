"""Which stream modes a test runs in: the session's job (``market_job`` in ``tests/conftest.py``) runs every
test that uses it once per mode the README offers, unless the test is marked with :data:`DEFAULT_MODE_ONLY`;
and what a test waits for where the modes differ."""

import pytest

from pipeline.settings import STREAM_MODES
from pipeline.waits import wait_until

DEFAULT_MODE_ONLY = pytest.mark.parametrize("market_job", STREAM_MODES[:1], indirect=True)


def wait_for_the_record(job, timeout: float = 60) -> None:
    """Until the record (the micro-batch query) holds every trade on screen. In the default mode a trade shows
    through the live ticks first; a rule the record applies per batch against what it held before (a late tick,
    a revised candle) needs the earlier trades in the record before the next one is sent. A no-op in micro-batch
    mode, where nothing is on screen before the record has it."""
    wait_until(lambda: job.state.snapshot().live_ticks == 0, timeout=timeout, what="the record holds every trade shown",
               describe=lambda: f"{job.state.snapshot().live_ticks} live ticks ahead of the record")
