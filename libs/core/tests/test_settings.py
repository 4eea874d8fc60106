import pytest

from tickwire.core.settings import ServiceSettings, env_name, load_settings


def test_shared_variables_are_unprefixed():
    assert env_name(ServiceSettings, "redis_url") == "TICKWIRE_REDIS_URL"
    assert env_name(ServiceSettings, "kafka_bootstrap_servers") == "TICKWIRE_KAFKA_BOOTSTRAP_SERVERS"


@pytest.mark.parametrize("variable, value", [
    ("TICKWIRE_REDIS_URL", "http://x"),
    ("TICKWIRE_REDIS_URL", "redis://host:99999/0"),
    ("TICKWIRE_KAFKA_BOOTSTRAP_SERVERS", "nohost"),
    ("TICKWIRE_LOG_FORMAT", "xml"),
    ("TICKWIRE_STARTUP_TIMEOUT_SECONDS", "-3"),
    ("TICKWIRE_REDIS_MODE", "sentinel"),
    ("TICKWIRE_KAFKA_MIN_INSYNC_REPLICAS", "2"),
])
def test_a_bad_value_stops_with_one_line_naming_it(monkeypatch, capsys, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as stop:
        load_settings(ServiceSettings, "tickwire-test")
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0] and lines[0].startswith("tickwire-test:")


def test_keyword_arguments_for_tests():
    settings = ServiceSettings(redis_url="redis://127.0.0.1:1/0", log_level="debug")
    assert settings.redis_url.endswith(":1/0") and settings.log_level == "DEBUG"
