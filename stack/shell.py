"""What ``python -m stack up`` prints: ``export`` lines a POSIX shell can ``eval``, holding no credential.

Only what the stack itself provides is printed (the embedded services' addresses, which carry no
password, and the Spark jars it resolved). A value the user set is never repeated: their shell has it
already, and a ``MONGO_URI`` of theirs may hold a password that must not land in a terminal or a log.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

from pipeline.settings import Settings

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def provided_variables(requested: Settings, ready: Settings) -> dict[str, str]:
    """The variables for what the stack provides: an address for each service ``requested`` left embedded
    (taken from ``ready``, the settings the started stack returned), and ``SPARK_JARS`` when the stack
    resolved it. Nothing the user configured (``requested`` has it) is included."""
    provided: dict[str, str] = {}
    if requested.embedded_mongo:
        provided["MONGO_URI"] = ready.effective_mongo_uri
    if requested.embedded_kafka:
        provided["KAFKA_BOOTSTRAP_SERVERS"] = ready.effective_kafka_bootstrap
    if requested.uses_connect and requested.connect_url is None:
        provided["CONNECT_URL"] = ready.effective_connect_url
    if requested.spark_jars is None and ready.spark_jars:
        provided["SPARK_JARS"] = ready.spark_jars
    return provided


def export_lines(variables: Mapping[str, str]) -> str:
    """One ``export NAME='value'`` line per variable, each value quoted with :func:`shlex.quote` so that
    ``eval "$(python -m stack up)"`` assigns it verbatim (``&``, ``?``, spaces and quotes included)."""
    lines = []
    for name, value in variables.items():
        if not _NAME.fullmatch(name):
            # A name is pasted into shell code unquoted: only a plain identifier is safe there.
            raise ValueError(f"{name!r} is not a shell variable name; use letters, digits and '_'")
        lines.append(f"export {name}={shlex.quote(value)}")
    return "".join(f"{line}\n" for line in lines)
