"""``python -m stack up|down|status|run -- CMD...``: the local stack from the command line.

``up`` starts the stack and prints ``export`` lines for what it provides (see :mod:`stack.shell`), for
``eval "$(python -m stack up)"``.

``run`` starts the stack (reusing what runs), runs CMD with the stack's addresses in its
environment, and on exit, Ctrl-C or SIGTERM stops what it started.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from pipeline.settings import Settings, SettingsError
from stack.local import LocalStack, StackError
from stack.shell import export_lines, provided_variables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status", "run"])
    parser.add_argument("command", nargs=argparse.REMAINDER, help="with `run`: the command to run")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        stack = LocalStack(settings)
        if args.action == "up":
            # stdout is meant for `eval "$(python -m stack up)"`; progress goes to stderr.
            print(export_lines(provided_variables(settings, stack.start())), end="")
            return 0
        if args.action == "down":
            stack.stop_all()
            return 0
        if args.action == "status":
            for name, service in stack.services.items():
                print(f"{name:14} {'running pid ' + str(service.pid()) if service.running() else 'stopped'}")
            return 0
        return _run(stack, [part for part in args.command if part != "--"])
    except (SettingsError, StackError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(stack: LocalStack, command: list[str]) -> int:
    if not command:
        print("error: `run` needs a command, e.g. python -m stack run -- streamlit run app.py", file=sys.stderr)
        return 2
    child: subprocess.Popen | None = None
    asked: set[int] = set()  # the signals passed on: a stop the user asked for

    def forward(signum: int, _frame: object) -> None:
        asked.add(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    with stack as ready:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, forward)
        child = subprocess.Popen(command, env={**os.environ, **ready.service_env()})
        return exit_status(child.wait(), asked)


def exit_status(returncode: int, asked: set[int]) -> int:
    """The command's status, except that ending by a signal passed on to it is the stop the user asked for: 0.
    (Its -15 went on as ``sys.exit(-15)``, status 241, and ``make run`` printed "Error 241" at every Ctrl-C or
    SIGTERM.) Ending by a signal nobody asked for stays a failure: 128 + the signal, as a shell says it."""
    if returncode < 0:
        return 0 if -returncode in asked else 128 - returncode
    return returncode


if __name__ == "__main__":
    sys.exit(main())
