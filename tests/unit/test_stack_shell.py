"""``python -m stack up``'s output: safe to ``eval`` in a POSIX shell, and never a credential."""

from __future__ import annotations

import subprocess

import pytest

from pipeline.settings import Settings
from stack.shell import export_lines, provided_variables

SECRET_URI = "mongodb://trader:s3cr&t@db.example:27017/?replicaSet=rs0&authSource=admin"


def started(requested: Settings) -> Settings:
    """What ``LocalStack.start`` returns for ``requested`` (its ``ready_settings``), without starting anything."""
    return requested.with_changes(mongo_uri=requested.effective_mongo_uri,
                                  kafka_bootstrap_servers=requested.effective_kafka_bootstrap,
                                  spark_jars=requested.spark_jars or "/m2/spark-sql-kafka.jar,/m2/kafka-clients.jar")


def shell_eval(script: str, *names: str) -> list[str]:
    """The values of ``names`` after ``eval``-ing ``script`` in /bin/sh, as the README's usage does."""
    printed = subprocess.run(["sh", "-c", 'eval "$1"; shift; for n; do eval "printf \'%s\\0\' \\"\\$$n\\""; done',
                              "sh", script, *names], env={"PATH": "/usr/bin:/bin"}, capture_output=True, check=True)
    return printed.stdout.decode().split("\0")[:-1]


def test_a_users_mongo_uri_is_never_printed_only_the_embedded_services():
    requested = Settings.from_env({"MONGO_URI": SECRET_URI, "LOCAL_KAFKA_PORT": "19092"})
    output = export_lines(provided_variables(requested, started(requested)))
    assert "s3cr" not in output and "MONGO_URI" not in output and "trader" not in output
    assert shell_eval(output, "KAFKA_BOOTSTRAP_SERVERS") == ["127.0.0.1:19092"]


def test_the_embedded_stack_prints_its_addresses_and_jars_and_eval_assigns_them_verbatim():
    requested = Settings.from_env({"LOCAL_MONGO_PORT": "17017", "LOCAL_KAFKA_PORT": "19092"})
    variables = provided_variables(requested, started(requested))
    assert set(variables) == {"MONGO_URI", "KAFKA_BOOTSTRAP_SERVERS", "SPARK_JARS"}
    assert variables["MONGO_URI"] == "mongodb://127.0.0.1:17017/?directConnection=true"
    names = list(variables)
    assert shell_eval(export_lines(variables), *names) == [variables[name] for name in names]


def test_values_the_user_set_are_not_repeated():
    requested = Settings.from_env({"MONGO_URI": SECRET_URI, "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
                                   "SPARK_JARS": "/opt/jars/a.jar"})
    assert provided_variables(requested, started(requested)) == {}
    assert export_lines({}) == ""


@pytest.mark.parametrize("mode", ["connect", "debezium"])
def test_the_embedded_connect_worker_is_printed_in_connect_mode(mode: str):
    requested = Settings.from_env({"CDC_MODE": mode, "LOCAL_CONNECT_PORT": "18083", "SPARK_JARS": "/j.jar"})
    assert provided_variables(requested, started(requested))["CONNECT_URL"] == "http://127.0.0.1:18083"


@pytest.mark.parametrize("value", ["a&b", "it's", "$(touch /tmp/pwned)", "`id`", "x y\tz", "*", "line\nbreak", ""])
def test_every_value_survives_eval_unchanged(value: str):
    assert shell_eval(export_lines({"VALUE": value}), "VALUE") == [value]


def test_a_name_that_is_not_an_identifier_is_refused():
    with pytest.raises(ValueError, match="not a shell variable name"):
        export_lines({"X;rm -rf /": "1"})
