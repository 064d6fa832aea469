"""Settings: defaults, the file, environment overrides, and every bad key named at once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from oncall.errors import ConfigError
from oncall.settings import load_settings


def settings_file(tmp_path, text: str) -> dict[str, str]:
    path = tmp_path / "settings.ini"
    path.write_text(text)
    return {"ONCALL_SETTINGS": str(path)}


def test_defaults_are_the_embedded_setup(tmp_path):
    settings = load_settings(settings_file(tmp_path, ""))
    assert settings.server.port == 8080
    assert settings.server.max_body_bytes == 16 * 1024 * 1024
    assert settings.database.url == "sqlite+aiosqlite:///data/oncall.db"
    assert settings.redis.host == "localhost" and settings.redis.port == 6379
    assert settings.redis.key_prefix == "oncall"
    assert settings.scheduler.reconcile_interval == timedelta(seconds=30)


def test_the_environment_overrides_the_file(tmp_path):
    env = settings_file(tmp_path, "[server]\nport = 9000\n[redis]\nhost = filehost\n")
    env.update(ONCALL_SERVER_PORT="9100", REDIS_HOST="seedhost", REDIS_PASSWORD="pw")
    settings = load_settings(env)
    assert settings.server.port == 9100
    assert settings.redis.host == "seedhost"  # the seed's REDIS_HOST beats the file
    assert settings.redis.password == "pw"
    env["ONCALL_REDIS_HOST"] = "oncallhost"  # ...and ONCALL_REDIS_HOST beats REDIS_HOST
    assert load_settings(env).redis.host == "oncallhost"


def test_every_bad_key_is_reported_at_once(tmp_path):
    env = settings_file(
        tmp_path,
        "[server]\nport = eighty\ncolour = blue\n[nonsense]\na = 1\n"
        "[scheduler]\nreconcile_interval = 30 seconds\n",
    )
    env.update(
        ONCALL_REDIS_PORT="0",
        ONCALL_DATABASE_URL="mysql://x",
        ONCALL_SECURITY_SECRET_KEY="short",
        ONCALL_REDIS_BOGUS="1",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    text = "\n".join(caught.value.problems)
    for expected in (
        "[server] port",
        "colour",
        "[nonsense]",
        "reconcile_interval",
        "[redis] port",
        "[database] url",
        "[security] secret_key",
        "ONCALL_REDIS_BOGUS",
    ):
        assert expected in text, expected
    assert "short" not in text  # secrets are never echoed
    assert len(caught.value.problems) == 8


def test_a_missing_settings_file_named_explicitly_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read settings"):
        load_settings({"ONCALL_SETTINGS": str(tmp_path / "absent.ini")})


def test_the_shipped_settings_file_is_valid():
    settings = load_settings({"ONCALL_SETTINGS": "settings.ini"})
    assert settings.directory.path == "oncall.example.yaml"
    assert settings.directory.env_file == "data/oncall.env"  # where `init` writes tokens


def test_a_sender_address_over_two_lines_is_refused_at_start_up(tmp_path):
    # A continuation line in the file: every e-mail page's From header would be unbuildable.
    with pytest.raises(ConfigError) as caught:
        load_settings(
            settings_file(tmp_path, "[smtp]\nfrom = On-call pager\n  <pager@example.com>\n")
        )
    [problem] = caught.value.problems
    assert problem.startswith("[smtp] from (from ") and "one line" in problem
