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


def tls_pair(tmp_path, key_of_another: bool = False) -> dict[str, str]:
    import trustme

    ca = trustme.CA()
    issued = ca.issue_cert("localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    (ca.issue_cert("localhost") if key_of_another else issued).private_key_pem.write_to_path(
        str(key)
    )
    return {"ONCALL_SERVER_TLS_CERT_FILE": str(cert), "ONCALL_SERVER_TLS_KEY_FILE": str(key)}


def test_tls_is_off_by_default_and_public_url_stays_http(tmp_path):
    server = load_settings(settings_file(tmp_path, "")).server
    assert not server.tls and server.tls_cert_file == server.tls_key_file == ""
    assert server.public_url == "http://localhost:8080"


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("0.0.0.0", "8080", "https://localhost:8080"),  # a wildcard address is no host
        ("127.0.0.1", "8443", "https://127.0.0.1:8443"),
        ("::1", "8443", "https://[::1]:8443"),  # an IPv6 address in brackets
        ("oncall.example.org", "443", "https://oncall.example.org:443"),
    ],
)
def test_public_url_defaults_to_https_of_the_listener_when_tls_is_on(
    tmp_path, host, port, expected
):
    env = {**settings_file(tmp_path, ""), **tls_pair(tmp_path)}
    env.update(ONCALL_SERVER_HOST=host, ONCALL_SERVER_PORT=port)
    server = load_settings(env).server
    assert server.tls and server.public_url == expected


def test_a_public_url_that_is_set_is_kept_with_tls(tmp_path):
    env = {**settings_file(tmp_path, "[server]\npublic_url = https://pager.example.org\n")}
    env.update(tls_pair(tmp_path))
    assert load_settings(env).server.public_url == "https://pager.example.org"


def test_a_certificate_without_its_key_is_refused_naming_both(tmp_path):
    env = {**settings_file(tmp_path, ""), **tls_pair(tmp_path)}
    del env["ONCALL_SERVER_TLS_KEY_FILE"]
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    [problem] = caught.value.problems
    assert problem.startswith("[server] tls_cert_file (from ONCALL_SERVER_TLS_CERT_FILE) = ")
    assert "tls_key_file (from default) = ''" in problem and "set both" in problem


def test_a_key_of_another_certificate_is_refused_naming_both(tmp_path):
    env = {**settings_file(tmp_path, "[server]\nport = eighty\n"), **tls_pair(tmp_path, True)}
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    # Reported with the other bad keys, at once.
    [port, problem] = caught.value.problems
    assert port.startswith("[server] port")
    assert "[server] tls_cert_file (from ONCALL_SERVER_TLS_CERT_FILE)" in problem
    assert " and tls_key_file (from ONCALL_SERVER_TLS_KEY_FILE) = " in problem
    assert "does not belong to the certificate" in problem


def test_ping_is_off_by_default_every_minute_when_set(tmp_path):
    monitoring = load_settings(settings_file(tmp_path, "")).monitoring
    assert monitoring.ping_url == "" and monitoring.ping_interval == timedelta(minutes=1)
    env = settings_file(
        tmp_path, "[monitoring]\nping_url = https://hc-ping.com/1234\nping_interval = 30s\n"
    )
    monitoring = load_settings(env).monitoring
    assert monitoring.ping_url == "https://hc-ping.com/1234"
    assert monitoring.ping_interval == timedelta(seconds=30)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("ping_url", "hc-ping.com/secret-uuid", "expected an http(s) URL"),  # no scheme
        ("ping_url", "ftp://example.org/secret-uuid", "expected an http(s) URL"),
        ("ping_interval", "500ms", "at least 1s"),  # a flood, not a heartbeat
        ("ping_interval", "1 minute", "duration"),
    ],
)
def test_a_bad_ping_setting_is_refused_without_echoing_the_url(tmp_path, key, value, words):
    with pytest.raises(ConfigError) as caught:
        load_settings(settings_file(tmp_path, f"[monitoring]\n{key} = {value}\n"))
    [problem] = caught.value.problems
    assert problem.startswith(f"[monitoring] {key} (from ") and words in problem
    assert "secret-uuid" not in problem
