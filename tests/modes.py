"""Which stream modes a test runs in: the session's job (``market_job`` in ``tests/conftest.py``) runs every
test that uses it once per mode the README offers, unless the test is marked with :data:`DEFAULT_MODE_ONLY`."""

import pytest

from pipeline.settings import STREAM_MODES

DEFAULT_MODE_ONLY = pytest.mark.parametrize("market_job", STREAM_MODES[:1], indirect=True)
