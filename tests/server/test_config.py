"""The layered server config: defaults < file < environment < flags; errors name the
field and where its value came from."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from server.auth import hash_key
from server.config import ApiKey, ConfigError, env_layer, load_config


def test_config_defaults_are_loopback_7432_and_cwd_database() -> None:
    config = load_config()
    assert (config.host, config.port, config.db) == ("127.0.0.1", 7432, "eventlog.db")
    assert config.api_keys == []
    assert config.insecure is False


def test_config_precedence_is_defaults_file_env_flags(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('port = 8000\ndb = "file.db"\nlog_format = "json"\nmax_wait = 5.0\n')
    env = {"EVENTLOG_PORT": "8001", "EVENTLOG_DB": "env.db", "UNRELATED": "x"}
    config = load_config(file=toml, environ=env, flags={"port": 8002, "db": None})
    assert config.port == 8002  # flag beats env
    assert config.db == "env.db"  # env beats file; a None flag is "not given"
    assert config.log_format == "json"  # file beats default
    assert config.max_wait == 5.0
    assert config.host == "127.0.0.1"  # default


def test_env_values_are_converted_and_lists_are_json() -> None:
    key = {"name": "ci", "hash": hash_key("k"), "scopes": ["admin"]}
    env = {
        "EVENTLOG_INSECURE": "true",
        "EVENTLOG_MAX_BODY_BYTES": "1024",
        "EVENTLOG_API_KEYS": msgspec.json.encode([key]).decode(),
        "EVENTLOG_TEST_TIMEOUT_SCALE": "3",  # not a config field: ignored
    }
    config = load_config(environ=env)
    assert config.insecure is True
    assert config.max_body_bytes == 1024
    assert config.api_keys == [ApiKey(name="ci", hash=hash_key("k"), scopes=["admin"])]


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"port": "seven"}, "port"),
        ({"port": 70000}, "port must be between"),
        ({"bogus": 1}, "bogus"),
        ({"log_format": "xml"}, "log_format"),
        *(
            ({"consumers": [consumer]}, rf"\$\.consumers\[0\]\.{field}")
            for consumer, field in [
                ({"name": "c", "stream": "s", "kind": "log", "batch_size": 0}, "batch_size"),
                ({"name": "c", "stream": "s", "kind": "log", "max_attempts": 0}, "max_attempts"),
                ({"name": "c", "stream": "s", "shared": True, "ack_wait": -5}, "ack_wait"),
                ({"name": "c", "stream": "s", "shared": True, "ack_wait": 1e-300}, "ack_wait"),
                ({"name": "c", "stream": "s", "shared": True, "ack_wait": 86_401}, "ack_wait"),
                ({"name": "c", "stream": "s", "shared": True, "max_deliver": 0}, "max_deliver"),
            ]
        ),
    ],
)
def test_invalid_config_names_the_field(layer: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(flags=layer)


def test_a_bad_choice_in_the_config_names_the_accepted_values(tmp_path: Path) -> None:
    config = tmp_path / "eventlog.toml"
    config.write_text('[[webhooks.endpoints]]\nurl = "http://127.0.0.1/"\nretry = "weird"\n')
    with pytest.raises(ConfigError) as env:
        load_config(file=config)
    assert str(env.value) == (
        f"invalid configuration: webhooks in {config}: Invalid value 'weird': expected "
        '"default", "short" or an object with the fields schedule, max_attempts, jitter, '
        "max_retry_after, max_rate_limited - at `$.webhooks.endpoints[0].retry`"
    )
    with pytest.raises(ConfigError, match=re.escape('expected "json" or "kv" - at `$.log_format`')):
        load_config(environ={"EVENTLOG_LOG_FORMAT": "xml"})


def test_invalid_config_names_where_the_value_came_from(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as env:
        load_config(environ={"EVENTLOG_PORT": "abc"})
    assert str(env.value).startswith("invalid configuration: EVENTLOG_PORT: Expected `int`")
    with pytest.raises(ConfigError, match=r"EVENTLOG_ACCESS_LOG: .*\(use true or false\)"):
        load_config(environ={"EVENTLOG_ACCESS_LOG": "no"})
    config = tmp_path / "eventlog.toml"
    config.write_text("port = 'high'\n")
    with pytest.raises(ConfigError, match=f"port in {re.escape(str(config))}: "):
        load_config(file=config)
    config.write_text("prot = 7500\n")  # a typo of port
    with pytest.raises(ConfigError) as typo:
        load_config(file=config)
    assert str(typo.value) == (
        f"invalid configuration: prot in {config}: Object contains unknown field `prot` "
        "(no such option; docs/http.md#running-the-server lists them)"
    )
    config.write_text("port = 'high'\n")
    with pytest.raises(ConfigError, match="--max-body-bytes: "):  # flags win over the file
        load_config(file=config, flags={"max_body_bytes": "x", "port": 1})
    targets = '{"targets": [{"kind": "discord", "url": "http://chat.test/hooks/tok-hunter2"}]}'
    with pytest.raises(ConfigError) as secret:  # values are never echoed: they may be secrets
        load_config(environ={"EVENTLOG_NOTIFICATIONS": targets})
    assert str(secret.value).startswith("invalid configuration: EVENTLOG_NOTIFICATIONS: ")
    assert "hunter2" not in str(secret.value)


def test_bad_config_file_and_env_json_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(file=tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("port = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(file=bad)
    with pytest.raises(ConfigError, match="must be JSON"):
        env_layer({"EVENTLOG_API_KEYS": "[{"})


@pytest.mark.parametrize("value", ["0", "-60", "'a week'", "315360001"])
def test_bad_keep_history_names_its_path(tmp_path: Path, value: str) -> None:
    config = tmp_path / "eventlog.toml"
    config.write_text(f"[webhooks]\nkeep_history = {value}\n")
    with pytest.raises(ConfigError, match=r"webhooks in .*at `\$\.webhooks\.keep_history`"):
        load_config(file=config)


def test_keep_history_defaults_to_30_days_and_is_read_from_the_file(tmp_path: Path) -> None:
    assert load_config().webhooks.keep_history == 30 * 86400
    config = tmp_path / "eventlog.toml"
    config.write_text("[webhooks]\nkeep_history = 604800\n")
    assert load_config(file=config).webhooks.keep_history == 604800.0
