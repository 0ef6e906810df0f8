"""``python -m stack run``'s exit status: a stop the user asked for is not a failure (``stack.__main__``)."""

import signal

from stack.__main__ import exit_status


def test_the_commands_own_status_is_kept():
    assert exit_status(0, set()) == 0
    assert exit_status(3, {signal.SIGTERM}) == 3


def test_ending_by_a_signal_passed_on_is_a_clean_stop():
    assert exit_status(-signal.SIGTERM, {signal.SIGTERM}) == 0
    assert exit_status(-signal.SIGINT, {signal.SIGINT, signal.SIGTERM}) == 0


def test_ending_by_a_signal_nobody_asked_for_is_a_failure_as_a_shell_says_it():
    assert exit_status(-signal.SIGKILL, set()) == 128 + signal.SIGKILL
    assert exit_status(-signal.SIGTERM, {signal.SIGINT}) == 128 + signal.SIGTERM
