"""Waiting on a condition with a deadline, never a bare sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """The condition did not hold in time; the message says what was expected and last seen."""


def wait_until(
    probe: Callable[[], T],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    describe: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something truthy and return that; raise after ``timeout`` s.

    An ``AssertionError`` raised by the probe propagates at once: an assertion states something that
    must hold now, so waiting on would only turn a failure into a timeout (or, worse, let a later
    success hide it). Any other exception from the probe counts as "not yet" (a service still
    starting, say) and the last one is reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = probe()
            if result:
                return result
            last = result
        except AssertionError:
            raise
        except Exception as exc:  # noqa: BLE001 - any other failure of a probe means "not yet"
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            seen = describe() if describe else repr(last)
            raise WaitTimeout(f"{what}: not met within {timeout:g}s; last seen: {seen}")
        time.sleep(interval)
