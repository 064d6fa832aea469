"""Settings: `settings.ini` plus environment overrides, parsed once into frozen dataclasses.

Precedence, lowest first: built-in defaults, the settings file (`ONCALL_SETTINGS`, else
`./settings.ini` when present), the seed service's `REDIS_HOST` / `REDIS_PORT` /
`REDIS_PASSWORD`, then `ONCALL_<SECTION>_<KEY>`. Unknown sections and keys are errors, and
every bad key is reported at once.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from oncall import tls
from oncall.durations import parse_duration
from oncall.errors import ConfigError
from oncall.notify.storm import DEFAULT_THRESHOLD, StormThreshold, parse_threshold


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    public_url: str
    max_body_bytes: int
    log_format: str
    log_level: str
    metrics_token: str
    # `host:port` of a second listener serving only /metrics, without a token; empty: none.
    metrics_listen: str
    body_timeout: timedelta
    # 0: no limit. Behind a reverse proxy every connection comes from the proxy's address.
    max_connections_per_address: int
    # Reverse proxies whose X-Forwarded-For names the client (failed logins are counted
    # per client); empty: the connection's peer is the client.
    trusted_proxies: frozenset[str]
    # PEM files of the HTTPS listener: both set, or neither (plain HTTP).
    tls_cert_file: str = ""
    tls_key_file: str = ""

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert_file)


@dataclass(frozen=True)
class DatabaseSettings:
    url: str
    schema: str


@dataclass(frozen=True)
class RedisSettings:
    host: str
    port: int
    password: str
    db: int
    key_prefix: str
    socket_timeout: timedelta


@dataclass(frozen=True)
class SchedulerSettings:
    reconcile_interval: timedelta


@dataclass(frozen=True)
class DirectorySettings:
    path: str
    # `NAME=value` lines for the directory's `${NAME}` the environment lacks (`init` writes it).
    env_file: str


@dataclass(frozen=True)
class SecuritySettings:
    secret_key: str
    # Where a generated signing key is kept (mode 0600) when `secret_key` is empty.
    secret_key_file: str


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    username: str
    password: str
    from_: str
    starttls: bool
    tls: bool
    timeout: timedelta


@dataclass(frozen=True)
class PagingSettings:
    # More incidents opened within its window than its count: pages fold into digests.
    storm_threshold: StormThreshold


@dataclass(frozen=True)
class MonitoringSettings:
    # A dead-man's switch: GET while the service is healthy; empty: none.
    ping_url: str
    ping_interval: timedelta


@dataclass(frozen=True)
class ClusterSettings:
    # How long a dead or cut-off leader keeps the lease at most (oncall.cluster.lease).
    failover: timedelta
    # This instance's name, shown as the leader's identity; empty: `<hostname>:<port>`.
    instance: str


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    database: DatabaseSettings
    redis: RedisSettings
    scheduler: SchedulerSettings
    directory: DirectorySettings
    security: SecuritySettings
    smtp: SmtpSettings
    source: str  # which settings file was read, for messages
    paging: PagingSettings = PagingSettings(DEFAULT_THRESHOLD)
    monitoring: MonitoringSettings = MonitoringSettings("", timedelta(minutes=1))
    cluster: ClusterSettings = ClusterSettings(timedelta(seconds=10), "")


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise ValueError(f"expected an integer from {low} to {high}, got {value}")
        return value

    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {text!r}")
        return text.lower()

    return parse


def _positive_duration(text: str) -> timedelta:
    value = parse_duration(text)
    if value <= timedelta(0):
        raise ValueError("expected a duration above zero")
    return value


def _http_url(text: str) -> str:
    if not re.match(r"^https?://[^/\s]+", text):
        raise ValueError(f"expected an http(s) URL, got {text!r}")
    return text.rstrip("/")


def _optional_http_url(text: str) -> str:
    if not text:
        return text
    if not re.match(r"^https?://[^/\s?#]+[^\s]*$", text):
        # Not echoed: the path of a ping URL is its secret.
        raise ValueError("expected an http(s) URL")
    return text


def _ping_interval(text: str) -> timedelta:
    value = parse_duration(text)
    if value < timedelta(seconds=1):
        raise ValueError("expected a duration of at least 1s")
    return value


def _failover(text: str) -> timedelta:
    value = parse_duration(text)
    if not timedelta(seconds=1) <= value <= timedelta(minutes=10):
        raise ValueError("expected a duration from 1s to 10m")
    return value


def _instance_name(text: str) -> str:
    if len(text) > 100 or not all(c.isprintable() and not c.isspace() for c in text):
        raise ValueError("expected at most 100 printable characters without spaces")
    return text


def mask_url(url: str) -> str:
    """Return `url` with the password of its user part, if any, shown as `***`.

    Everything up to the last `@` counts as the user part, so a password holding an
    unescaped `@` or `/` is hidden whole too."""
    scheme, sep, rest = url.partition("://")
    user, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in user:
        return url
    return f"{scheme}://{user.partition(':')[0]}:***@{host}"


def _database_url(text: str) -> str:
    if not text.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ValueError("expected a sqlite+aiosqlite:// or postgresql+asyncpg:// URL")
    if text.startswith("postgresql"):
        host = text.partition("://")[2].rpartition("@")[2].partition("/")[0].partition("?")[0]
        port = host.rpartition("]")[2].rpartition(":")[2] if ":" in host else ""
        if port and not port.isdigit():
            raise ValueError(f"expected a port number after the host, got {port!r}")
    return text


def _identifier(text: str) -> str:
    if text and not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", text):
        raise ValueError(f"expected an SQL identifier, got {text!r}")
    return text


def _prefix(text: str) -> str:
    if not re.match(r"^[A-Za-z0-9_.:-]+$", text):
        raise ValueError("expected a non-empty key prefix of letters, digits and _ . : -")
    return text


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _address(text: str) -> str:
    # It becomes the From header of every e-mail page: one line, or no page could be built.
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError("expected one line without control characters")
    if not re.match(r"^[^@\s]+@[^@\s]+$", text.split("<")[-1].rstrip(">").strip()):
        raise ValueError(f"expected an e-mail address, got {text!r}")
    return text


def _listen_address(text: str) -> str:
    if not text:
        return text
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {text!r}")
    return text


def _ip_addresses(text: str) -> frozenset[str]:
    try:
        return frozenset(str(ipaddress.ip_address(a.strip())) for a in text.split(",") if a.strip())
    except ValueError:
        raise ValueError(f"expected IP addresses separated by commas, got {text!r}") from None


def _text(text: str) -> str:
    return text


def _nonempty(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text


def _secret(text: str) -> str:
    if text and len(text) < 16:
        raise ValueError("expected at least 16 characters (or empty to generate one)")
    return text


# section -> key -> (parser, default). The single description of every setting.
SPEC: dict[str, dict[str, tuple[Callable[[str], Any], str]]] = {
    "server": {
        "host": (_nonempty, "0.0.0.0"),
        "port": (_integer(0, 65535), "8080"),
        "public_url": (_http_url, "http://localhost:8080"),
        "max_body_bytes": (_integer(1024, 1 << 30), str(16 << 20)),
        "log_format": (_choice("text", "json"), "text"),
        "log_level": (_choice("debug", "info", "warning", "error"), "info"),
        "metrics_token": (_text, ""),
        "metrics_listen": (_listen_address, ""),
        "body_timeout": (_positive_duration, "10s"),
        "max_connections_per_address": (_integer(0, 1 << 20), "64"),
        "trusted_proxies": (_ip_addresses, ""),
        "tls_cert_file": (_text, ""),
        "tls_key_file": (_text, ""),
    },
    "database": {
        "url": (_database_url, "sqlite+aiosqlite:///data/oncall.db"),
        "schema": (_identifier, ""),
    },
    "redis": {
        "host": (_nonempty, "localhost"),
        "port": (_integer(1, 65535), "6379"),
        "password": (_text, ""),
        "db": (_integer(0, 1 << 16), "0"),
        "key_prefix": (_prefix, "oncall"),
        "socket_timeout": (_positive_duration, "1s"),
    },
    "scheduler": {
        "reconcile_interval": (_positive_duration, "30s"),
    },
    "directory": {
        "path": (_nonempty, "oncall.yaml"),
        "env_file": (_text, "data/oncall.env"),
    },
    "security": {
        "secret_key": (_secret, ""),
        "secret_key_file": (_nonempty, "data/secret.key"),
    },
    "smtp": {
        "host": (_nonempty, "localhost"),
        "port": (_integer(1, 65535), "25"),
        "username": (_text, ""),
        "password": (_text, ""),
        "from": (_address, "oncall@localhost"),
        "starttls": (_boolean, "false"),
        "tls": (_boolean, "false"),
        "timeout": (_positive_duration, "10s"),
    },
    "paging": {
        "storm_threshold": (parse_threshold, str(DEFAULT_THRESHOLD)),
    },
    "monitoring": {
        "ping_url": (_optional_http_url, ""),
        "ping_interval": (_ping_interval, "1m"),
    },
    "cluster": {
        "failover": (_failover, "10s"),
        "instance": (_instance_name, ""),
    },
}

_SEED_REDIS_ENV = {"REDIS_HOST": "host", "REDIS_PORT": "port", "REDIS_PASSWORD": "password"}
_SECRET_KEYS = {
    ("redis", "password"),
    ("security", "secret_key"),
    ("smtp", "password"),
    ("server", "metrics_token"),
    ("monitoring", "ping_url"),  # its path or query is the switch's secret
}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Return the settings from defaults, the settings file and the environment.

    Raises ConfigError listing every unreadable file, unknown key and bad value.
    """
    env = os.environ if environ is None else environ
    problems: list[str] = []
    raw = {
        section: {key: default for key, (_, default) in keys.items()}
        for section, keys in SPEC.items()
    }
    origin = {(section, key): "default" for section, keys in SPEC.items() for key in keys}

    path = env.get("ONCALL_SETTINGS")
    if path is None and os.path.exists("settings.ini"):
        path = "settings.ini"
    if path is not None:
        _read_file(path, raw, origin, problems)

    for name, key in _SEED_REDIS_ENV.items():
        if name in env:
            raw["redis"][key] = env[name]
            origin[("redis", key)] = name
    for name, value in env.items():
        if not name.startswith("ONCALL_") or name == "ONCALL_SETTINGS":
            continue
        section, _, key = name[len("ONCALL_") :].lower().partition("_")
        if section not in SPEC:
            continue  # other software may share the prefix; only our sections are strict
        if key not in SPEC[section]:
            problems.append(f"{name}: unknown setting [{section}] {key}")
            continue
        raw[section][key] = value
        origin[(section, key)] = name

    parsed: dict[str, dict[str, Any]] = {}
    for section, keys in SPEC.items():
        parsed[section] = {}
        for key, (parse, _) in keys.items():
            text = raw[section][key].strip()
            try:
                parsed[section][key] = parse(text)
            except ValueError as exc:
                shown = "<hidden>" if (section, key) in _SECRET_KEYS else repr(text)
                if (section, key) == ("database", "url"):
                    shown = repr(mask_url(text))
                where = origin[(section, key)]
                problems.append(f"[{section}] {key} (from {where}) = {shown}: {exc}")
    _check_tls(parsed["server"], origin, problems)
    _check_cluster(parsed["database"], origin, problems)
    if problems:
        raise ConfigError(problems, raw["directory"]["path"].strip())
    if origin[("server", "public_url")] == "default" and parsed["server"]["tls_cert_file"]:
        parsed["server"]["public_url"] = _https_url(parsed["server"])
    return Settings(
        server=ServerSettings(**parsed["server"]),
        database=DatabaseSettings(**parsed["database"]),
        redis=RedisSettings(**parsed["redis"]),
        scheduler=SchedulerSettings(**parsed["scheduler"]),
        directory=DirectorySettings(**parsed["directory"]),
        security=SecuritySettings(**parsed["security"]),
        smtp=SmtpSettings(
            **{("from_" if k == "from" else k): v for k, v in parsed["smtp"].items()}
        ),
        source=path or "defaults",
        paging=PagingSettings(**parsed["paging"]),
        monitoring=MonitoringSettings(**parsed["monitoring"]),
        cluster=ClusterSettings(**parsed["cluster"]),
    )


def _check_cluster(
    database: dict[str, Any], origin: dict[tuple[str, str], str], problems: list[str]
) -> None:
    """Add a problem for every `[cluster]` key set while the database is SQLite: SQLite
    has one writer, so it serves one instance and there is nothing to cluster."""
    url = database.get("url")
    if not isinstance(url, str) or not url.startswith("sqlite"):
        return
    for key in SPEC["cluster"]:
        where = origin[("cluster", key)]
        if where != "default":
            problems.append(
                f"[cluster] {key} (from {where}): clustering needs PostgreSQL; SQLite has one "
                "writer, so one instance serves it (`python app.py move-database` moves "
                "to PostgreSQL)"
            )


def _check_tls(
    server: dict[str, Any], origin: dict[tuple[str, str], str], problems: list[str]
) -> None:
    """Add the problem of the TLS pair, if any: one set without the other, or files that do
    not make a certificate and its key (read now, so a bad pair stops start-up and
    check-config)."""
    cert, key = server["tls_cert_file"], server["tls_key_file"]

    def named(*keys: str) -> str:
        return " and ".join(f"{k} (from {origin[('server', k)]}) = {server[k]!r}" for k in keys)

    if not cert and not key:
        return
    if not cert or not key:
        problems.append(
            f"[server] {named(tls.CERT_KEY, tls.KEY_KEY)}: set both (PEM files) or neither"
        )
        return
    try:
        tls.load(cert, key)
    except tls.CertificateError as error:
        problems.append(f"[server] {named(*error.keys)}: {error.message}")


def _https_url(server: dict[str, Any]) -> str:
    """Return `https://HOST:PORT` of the listener (`localhost` for a wildcard address)."""
    host = server["host"]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"https://{host}:{server['port']}"
    if address.is_unspecified:
        return f"https://localhost:{server['port']}"
    return f"https://{'[' + host + ']' if address.version == 6 else host}:{server['port']}"


def _read_file(
    path: str,
    raw: dict[str, dict[str, str]],
    origin: dict[tuple[str, str], str],
    problems: list[str],
) -> None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error) as exc:
        problems.append(f"{path}: cannot read settings: {exc}")
        return
    for section in parser.sections():
        if section not in SPEC:
            problems.append(f"{path}: unknown section [{section}]")
            continue
        for key, value in parser.items(section):
            if key not in SPEC[section]:
                problems.append(f"{path}: unknown key [{section}] {key}")
                continue
            raw[section][key] = value
            origin[(section, key)] = path
