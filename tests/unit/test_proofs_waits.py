"""``wait_until``: an assertion inside a probe is a failure at once; other exceptions mean "not yet"."""

from __future__ import annotations

import pytest

from pipeline.waits import WaitTimeout, wait_until


def test_an_assertion_in_the_probe_propagates_at_once():
    calls = []

    def probe() -> bool:
        calls.append(1)
        assert len(calls) > 5, "the figure is wrong"  # would hold on a later call: waiting would hide the failure
        return True

    with pytest.raises(AssertionError, match="the figure is wrong"):
        wait_until(probe, timeout=60, what="an asserting probe", interval=0)
    assert len(calls) == 1  # not retried: the failure is not turned into a timeout nor a later pass


def test_other_exceptions_mean_not_yet():
    calls = []

    def probe() -> str | None:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("service still starting")
        return "ready"

    assert wait_until(probe, timeout=60, what="a probe that recovers", interval=0) == "ready"
    assert len(calls) == 3


def test_a_timeout_names_what_was_awaited_and_the_last_exception():
    def probe() -> bool:
        raise ValueError("broker unreachable")

    with pytest.raises(WaitTimeout) as error:
        wait_until(probe, timeout=0.1, what="the broker", interval=0.01)
    assert "the broker: not met within 0.1s" in str(error.value)
    assert "ValueError: broker unreachable" in str(error.value)


def test_a_falsy_result_is_not_yet_and_describe_says_what_was_seen():
    with pytest.raises(WaitTimeout, match="last seen: 3 of 5"):
        wait_until(lambda: 0, timeout=0.1, what="every trade", interval=0.01, describe=lambda: "3 of 5")
