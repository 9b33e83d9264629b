"""host.json and local.settings.json, read as `func start` reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from durablehost.app.config import (
    DEFAULT_HUB_NAME,
    HostConfig,
    LocalSettings,
    apply_settings,
    is_disabled,
    load_host_config,
    load_local_settings,
    resolve_app_setting,
)
from durablehost.errors import ConfigError
from durablehost.front.keys import FunctionKeys, load_or_create_keys


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_host_json(tmp_path: Path) -> None:
    config = load_host_config(tmp_path, environ={})
    assert (config.route_prefix, config.hub_name) == ("api", DEFAULT_HUB_NAME)
    assert config.max_concurrent_activities >= 10


def test_reads_prefix_hub_and_limits_with_comments(tmp_path: Path) -> None:
    _write(
        tmp_path / "host.json",
        """\ufeff{
          // a comment, as the real host allows
          "version": "2.0",
          /* block comment with "quotes" */
          "extensions": {
            "http": {"routePrefix": "/v1/"},
            "durableTask": {
              "hubName": "%MY_HUB%",
              "maxConcurrentActivityFunctions": 3,
              "maxConcurrentOrchestratorFunctions": "7"
            }
          },
          "note": "a // that is not a comment"
        }""",
    )
    config = load_host_config(tmp_path, environ={"MY_HUB": "OpsHub"})
    assert config == HostConfig(
        route_prefix="v1",
        hub_name="OpsHub",
        max_concurrent_activities=3,
        max_concurrent_orchestrations=7,
        source=tmp_path / "host.json",
        has_comments=True,
    )


def test_empty_route_prefix_is_allowed(tmp_path: Path) -> None:
    _write(
        tmp_path / "host.json", '{"version": "2.0", "extensions": {"http": {"routePrefix": ""}}}'
    )
    assert load_host_config(tmp_path, environ={}).route_prefix == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "host.json is not valid JSON: .* line 1"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"version": "1.0"}', 'only "2.0" host.json'),
        ('{"extensions": []}', "extensions must be a JSON object"),
        ('{"extensions": {"http": {"routePrefix": 5}}}', "routePrefix must be a string"),
        ('{"extensions": {"durableTask": {"hubName": "bad-name!"}}}', "not a valid task hub name"),
        ('{"extensions": {"durableTask": {"hubName": "ab"}}}', "3 to 45 letters"),
        ('{"extensions": {"durableTask": {"hubName": "%NOPE%"}}}', "'%NOPE%' refers to an app"),
        (
            '{"extensions": {"durableTask": {"maxConcurrentActivityFunctions": 0}}}',
            "maxConcurrentActivityFunctions must be a positive integer",
        ),
        (
            '{"extensions": {"durableTask": {"maxConcurrentOrchestratorFunctions": true}}}',
            "maxConcurrentOrchestratorFunctions must be a positive integer",
        ),
    ],
)
def test_bad_host_json_says_what_to_fix(tmp_path: Path, text: str, message: str) -> None:
    _write(tmp_path / "host.json", text)
    with pytest.raises(ConfigError, match=message):
        load_host_config(tmp_path, environ={})


def test_local_settings_values_and_port(tmp_path: Path) -> None:
    _write(
        tmp_path / "local.settings.json",
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {"A": "1", "FLAG": True, "N": 5, "EMPTY": None},
                "Host": {"LocalHttpPort": 7199},
            }
        ),
    )
    settings = load_local_settings(tmp_path)
    assert dict(settings.values) == {"A": "1", "FLAG": "true", "N": "5", "EMPTY": ""}
    assert settings.local_http_port == 7199


def test_apply_settings_never_overrides(tmp_path: Path) -> None:
    environ = {"A": "from the environment"}
    added = apply_settings(LocalSettings(values={"A": "file", "B": "file"}), environ)
    assert environ == {"A": "from the environment", "B": "file"}
    assert added == ["B"]


def test_missing_local_settings_is_empty(tmp_path: Path) -> None:
    assert load_local_settings(tmp_path) == LocalSettings()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"IsEncrypted": True, "Values": {}}, "is encrypted"),
        ({"Values": ["x"]}, "Values must be a JSON object"),
        ({"Values": {"X": {"nested": 1}}}, "Values.X must be a string"),
        ({"Values": {}, "Host": {"LocalHttpPort": "port"}}, "LocalHttpPort must be a port"),
    ],
)
def test_bad_local_settings(tmp_path: Path, payload: object, message: str) -> None:
    _write(tmp_path / "local.settings.json", json.dumps(payload))
    with pytest.raises(ConfigError, match=message):
        load_local_settings(tmp_path)


def test_resolve_app_setting() -> None:
    assert resolve_app_setting("%A%-%B%", {"A": "x", "B": "y"}) == "x-y"
    assert resolve_app_setting("plain", {}) == "plain"


def test_keys_file_is_created_once_and_reused(tmp_path: Path) -> None:
    first = load_or_create_keys(tmp_path / ".durablehost")
    second = load_or_create_keys(tmp_path / ".durablehost")
    assert first.master_key == second.master_key and len(first.master_key) >= 40
    assert (tmp_path / ".durablehost" / "keys.json").stat().st_mode & 0o777 == 0o600
    assert first.allows(first.default_key, "any", "function")
    assert not first.allows(first.default_key, "any", "admin")
    assert first.allows(None, "any", "anonymous")
    assert not first.allows(None, "any", "function")


def test_bad_keys_file(tmp_path: Path) -> None:
    _write(tmp_path / "keys.json", '{"hostKeys": {}}')
    with pytest.raises(ConfigError, match="needs a string masterKey"):
        load_or_create_keys(tmp_path)
    _write(tmp_path / "keys.json", "nope")
    with pytest.raises(ConfigError, match="delete it to get new keys"):
        load_or_create_keys(tmp_path)


def test_cors_settings(tmp_path: Path) -> None:
    _write(
        tmp_path / "local.settings.json",
        json.dumps(
            {
                "Values": {},
                "Host": {"CORS": "https://a.com/, https://b.com", "CORSCredentials": True},
            }
        ),
    )
    settings = load_local_settings(tmp_path)
    assert settings.cors_origins == ("https://a.com", "https://b.com")
    assert settings.cors_credentials is True
    _write(tmp_path / "local.settings.json", json.dumps({"Host": {"CORS": ["*"]}}))
    with pytest.raises(ConfigError, match=r"Host\.CORS must be a string"):
        load_local_settings(tmp_path)


def test_disabled_setting() -> None:
    assert is_disabled("f", {"AzureWebJobs.f.Disabled": "True"})
    assert is_disabled("f", {"AzureWebJobs.f.Disabled": "1"})
    assert not is_disabled("f", {"AzureWebJobs.f.Disabled": "false"})
    assert not is_disabled("f", {})


def test_function_keys_match_names_case_insensitively() -> None:
    keys = FunctionKeys(
        master_key="m", host_keys={"default": "h"}, function_keys={"MyFn": {"a": "k"}}
    )
    assert keys.allows("k", "myfn", "function")
    assert not keys.allows("k", "other", "function")
