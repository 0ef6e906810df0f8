"""The one settings object: defaults, overrides, and errors that name the fix."""

import inspect
import re

import pytest

from pipeline.settings import DOCUMENTED_VARIABLES, PROJECT_ROOT, Settings, SettingsError, configuration_table


def test_defaults_use_the_embedded_stack():
    settings = Settings.from_env({})
    assert settings.embedded_mongo and settings.embedded_kafka
    assert settings.effective_mongo_uri.startswith("mongodb://127.0.0.1:27017")
    assert "replicaSet" not in settings.effective_mongo_uri  # the stand-in has no set name
    assert settings.effective_kafka_bootstrap == "127.0.0.1:9092"
    assert settings.spark_master == "local[2]" and settings.trigger_interval_ms == 0


def test_addresses_given_mean_real_services():
    settings = Settings.from_env({"MONGO_URI": "mongodb://db1:27017/?replicaSet=rs0", "KAFKA_BOOTSTRAP_SERVERS": "k1:9092"})
    assert not settings.embedded_mongo and not settings.embedded_kafka
    assert settings.effective_mongo_uri == "mongodb://db1:27017/?replicaSet=rs0"


def test_service_env_round_trips():
    settings = Settings.from_env({"LOCAL_MONGO_PORT": "27999", "TRADES_TOPIC": "x.y"})
    again = Settings.from_env(settings.service_env())
    assert again.effective_mongo_uri == settings.effective_mongo_uri
    assert again.trades_topic == "x.y"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"TRIGGER_INTERVAL_MS": "soon"}, "TRIGGER_INTERVAL_MS='soon' is not a whole number"),
        ({"LOCAL_KAFKA_PORT": "70000"}, "not a TCP port"),
        ({"CDC_MODE": "maxwell"}, "use 'relay' (default) or 'connect' or 'debezium'"),
        ({"MONGO_URI": "localhost:27017"}, "must start with mongodb://"),
        ({"DASHBOARD_REFRESH_MS": "10"}, "at least 200"),
    ],
)
def test_wrong_settings_say_what_is_wrong(env, words):
    with pytest.raises(SettingsError, match=None) as error:
        Settings.from_env(env)
    assert words in str(error.value)


def test_debezium_mode_asks_the_stand_in_for_its_replica_set_and_the_others_do_not():
    settings = Settings.from_env({"CDC_MODE": "Debezium", "LOCAL_MONGO_PORT": "27999"})
    assert settings.cdc_mode == "debezium"
    assert settings.debezium_mongo_uri == "mongodb://127.0.0.1:27999/?replicaSet=rs0"
    assert settings.effective_mongo_uri == "mongodb://127.0.0.1:27999/?directConnection=true"
    assert settings.service_env()["CONNECT_URL"] == settings.effective_connect_url
    real = Settings.from_env({"CDC_MODE": "debezium", "MONGO_URI": "mongodb://db:27017/?replicaSet=prod"})
    assert real.debezium_mongo_uri == "mongodb://db:27017/?replicaSet=prod"


def test_every_variable_read_is_documented():
    source = inspect.getsource(Settings.from_env)
    documented = {name for name, _, _ in DOCUMENTED_VARIABLES}
    read = set(re.findall(r'"([A-Z][A-Z_]+)"', source))
    assert read <= documented, read - documented


def test_the_readme_shows_the_documented_variables():
    assert configuration_table() in (PROJECT_ROOT / "README.md").read_text(), (
        "README's configuration table is out of date: paste the output of `python -m pipeline.settings`")
