"""Reading the directory file: strict YAML into the frozen objects of `model`.

Parsing is strict (unknown keys are errors), `${VAR}` and `${VAR:-default}` are expanded in
string values (`$${` writes a literal `${`), and every problem is reported with its path,
e.g. `users[1].contacts[0].to: required`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from oncall.directory.envfile import read_env_file
from oncall.directory.model import (
    DEFAULT_RATE_LIMIT,
    INTEGRATION_TYPES,
    ROUTE_URGENCIES,
    TARGET_KINDS,
    URGENCIES,
    Contact,
    Directory,
    Integration,
    Level,
    NotificationRule,
    Policy,
    Route,
    Target,
    User,
)
from oncall.durations import parse_duration
from oncall.errors import ConfigError
from oncall.maintenance.windows import Window, check_window
from oncall.routing.matchers import parse_matcher
from oncall.schedules.rotation import DAYS, Layer, Restriction, Schedule

# Tokens authenticate callers from the internet: long enough that guessing is hopeless.
MIN_TOKEN_LENGTH = 32
# A webhook contact's secret signs what oncall sends; receivers may hold older, shorter ones.
MIN_WEBHOOK_SECRET_LENGTH = 16
# Every token and secret the repository has shipped as an example (the example directory,
# the README): anyone can read them, so an instance that uses one is open to everyone.
PUBLISHED_SECRETS = frozenset(
    {
        "example-alertmanager-token",
        "example-alice-token",
        "example-bob-token",
        "example-alertmanager-token-0123456789",
        "example-alice-token-0123456789abcdef",
        "example-bob-token-0123456789abcdefgh",
        "s3cret",
    }
)
ROLES = ("responder", "admin")
CONTACT_FIELDS = {
    "email": ({"to"}, {"name"}),
    "webhook": ({"url"}, {"secret", "name"}),
    "slack": ({"url"}, {"name"}),
    "apprise": ({"url"}, {"name"}),
}
_CLOCK_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_PUBLISHED = (
    "an example published in the oncall repository, so anyone can use it: "
    "generate one with `python app.py new-token`"
)
_ENV_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_directory(
    path: str, environ: Mapping[str, str] | None = None, env_file: str = ""
) -> Directory:
    """Return the validated directory read from the YAML file at `path`.

    `${VAR}` takes its value from `environ` (default: the process environment), else from
    the env file `env_file` when one is named and exists (`python app.py init` writes it).
    Raises ConfigError listing every problem with its path in the file.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read directory file: {exc.strerror}"]) from None
    values = read_env_file(env_file) if env_file else {}
    values.update(os.environ if environ is None else environ)
    return parse_directory(text, values, path, env_file)


def parse_directory(
    text: str, environ: Mapping[str, str], source: str = "<text>", env_file: str = ""
) -> Directory:
    """Return the validated directory from YAML `text`; raises ConfigError with every problem.

    `env_file` only names, in the message about a variable that is not set, where
    `python app.py init` would write it.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: not valid YAML: {exc}"]) from None
    if document is None:
        document = {}
    checker = _Checker(source, environ, env_file)
    result = checker.directory(document)
    if checker.problems:
        raise ConfigError(checker.problems)
    assert result is not None
    return result


def unset_references(text: str, environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """Return `(variable, key path)` for every `${VAR}` without a default in directory
    `text` that `environ` does not set, in the order they appear (a YAML error: none)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    found: list[tuple[str, str]] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")
        elif isinstance(value, str):
            for match in _ENV_REF.finditer(value):
                name = match.group(1)
                if name and match.group(2) is None and name not in environ:
                    found.append((name, path))

    walk(document, "")
    return found


class _Checker:
    """Walks the parsed YAML, collecting problems instead of stopping at the first."""

    def __init__(self, source: str, environ: Mapping[str, str], env_file: str = "") -> None:
        self.source = source
        self.environ = environ
        self.env_file = env_file
        self.problems: list[str] = []
        self.names: dict[str, set[str]] = {"user": set(), "schedule": set()}

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{self.source}: {path}: {message}")

    def mapping(
        self, value: Any, path: str, required: set[str], optional: set[str]
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.fail(path, "expected a mapping")
            return None
        for key in value:
            if key not in required and key not in optional:
                self.fail(f"{path}.{key}", "unknown key")
        for key in sorted(required - set(value)):
            self.fail(f"{path}.{key}", "required")
        return value

    def sequence(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(path, "expected a list")
            return []
        return value

    def string(self, value: Any, path: str, *, allow_empty: bool = False) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.fail(path, "expected a string")
            return None
        text = self.expand(str(value), path)
        if text is not None and not text and not allow_empty:
            self.fail(path, "must not be empty")
            return None
        return text

    def expand(self, text: str, path: str) -> str | None:
        missing: list[str] = []

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name, default = match.group(1), match.group(2)
            if name in self.environ and (default is None or self.environ[name] != ""):
                return self.environ[name]
            if default is not None:
                return default
            missing.append(name)
            return ""

        expanded = _ENV_REF.sub(substitute, text)
        where = f" into {self.env_file}" if self.env_file else ""
        for name in missing:
            self.fail(
                path,
                f"environment variable {name} is not set: run `python app.py init` to "
                f"generate it{where}, or set it in the environment",
            )
        return None if missing else expanded

    def section(
        self, top: dict[str, Any], key: str, parse: Callable[[Any, str, set[str]], Any]
    ) -> tuple[dict[str, Any], set[str]]:
        """Parse each item of a top-level list; return the valid ones by name, and every
        declared name (valid or not) for references to resolve against."""
        found: dict[str, Any] = {}
        names: set[str] = set()
        for index, item in enumerate(self.sequence(top.get(key), key)):
            value = parse(item, f"{key}[{index}]", names)
            if value is not None:
                found[value.name] = value
        return found, names

    def positive_duration(self, value: Any, path: str) -> timedelta | None:
        """Return a Prometheus duration above zero, or None after reporting the problem."""
        text = self.string(value, path)
        if text is None:
            return None
        try:
            duration = parse_duration(text)
        except ValueError as exc:
            self.fail(path, str(exc))
            return None
        if duration <= timedelta(0):
            self.fail(path, "must be above zero")
            return None
        return duration

    def name(self, value: Any, path: str, seen: set[str]) -> str | None:
        text = self.string(value, path)
        if text is None:
            return None
        if not _NAME.match(text):
            self.fail(path, f"{text!r} is not a name (lower-case letters, digits, _ . -)")
            return None
        if text in seen:
            self.fail(path, f"duplicate name {text!r}")
            return None
        seen.add(text)
        return text

    def directory(self, document: Any) -> Directory | None:
        top = self.mapping(
            document,
            "(top)",
            set(),
            {"integrations", "users", "schedules", "policies", "routes", "maintenance"},
        )
        if top is None:
            return None
        tokens: dict[str, str] = {}
        integrations, _ = self.section(
            top, "integrations", lambda item, path, seen: self.integration(item, path, seen, tokens)
        )
        # References resolve against declared names, so an invalid user or policy is
        # reported once, where it is, and not again at every place that names it.
        users, user_names = self.section(
            top, "users", lambda item, path, seen: self.user(item, path, seen, tokens)
        )
        schedules, schedule_names = self.section(
            top, "schedules", lambda item, path, seen: self.schedule(item, path, seen, user_names)
        )
        self.names = {"user": user_names, "schedule": schedule_names}
        policies, policy_names = self.section(
            top, "policies", lambda item, path, seen: self.policy(item, path, seen, user_names)
        )
        routes = []
        raw_routes = self.sequence(top.get("routes"), "routes")
        for index, item in enumerate(raw_routes):
            route = self.route(item, index, policy_names, index == len(raw_routes) - 1)
            if route is not None:
                routes.append(route)
        if not raw_routes:
            self.fail("routes", "at least one route is required; the last must match everything")
        for integration in integrations.values():
            target = integrations.get(integration.watchdog_of)
            if integration.watchdog_of and (target is None or target.type != "alertmanager"):
                # Named, not indexed: only valid integrations are here, so an index would lie.
                self.fail(
                    f"integrations[name={integration.name}].watchdog_of",
                    f"{integration.watchdog_of!r} is not an alertmanager integration",
                )
        maintenance = self.maintenance(top, set(integrations))
        return Directory(
            integrations, users, policies, tuple(routes), self.source, schedules, maintenance
        )

    def maintenance(self, top: dict[str, Any], integrations: set[str]) -> tuple[Window, ...]:
        """Return the file's maintenance windows, each known by its name."""
        found: list[Window] = []
        names: set[str] = set()
        for index, item in enumerate(self.sequence(top.get("maintenance"), "maintenance")):
            path = f"maintenance[{index}]"
            name = str(item.get("name", "")).strip() if isinstance(item, dict) else ""
            window, problems = check_window(item, f"directory:{name}", integrations)
            for field, message in problems:
                self.fail(path if field == "$" else f"{path}.{field}", message)
            if window is not None and window.name in names:
                self.fail(f"{path}.name", f"duplicate name {window.name!r}")
            elif window is not None:
                names.add(window.name)
                found.append(window)
        return tuple(found)

    def schedule(self, item: Any, path: str, seen: set[str], users: set[str]) -> Schedule | None:
        data = self.mapping(item, path, {"name", "time_zone", "layers"}, set())
        if data is None:
            return None
        name = self.name(data.get("name"), f"{path}.name", seen) if "name" in data else None
        zone = (
            self.string(data.get("time_zone"), f"{path}.time_zone") if "time_zone" in data else None
        )
        if zone is not None:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError, OSError):  # a folder: IsADirectoryError
                self.fail(f"{path}.time_zone", f"unknown time zone {zone!r}")
                zone = None
        raw_layers = self.sequence(data.get("layers"), f"{path}.layers")
        if "layers" in data and not raw_layers:
            self.fail(f"{path}.layers", "at least one layer is required")
        layers = [self.layer(raw, f"{path}.layers[{i}]", users) for i, raw in enumerate(raw_layers)]
        if name is None or zone is None or not layers or None in layers:
            return None
        return Schedule(name, zone, tuple(layer for layer in layers if layer is not None))

    def layer(self, item: Any, path: str, users: set[str]) -> Layer | None:
        data = self.mapping(item, path, {"members", "rotation", "handoff"}, {"restrict"})
        if data is None:
            return None
        ok = True
        members = []
        raw_members = self.sequence(data.get("members"), f"{path}.members")
        if "members" in data and not raw_members:
            self.fail(f"{path}.members", "at least one member is required")
            ok = False
        for index, raw in enumerate(raw_members):
            member = self.string(raw, f"{path}.members[{index}]")
            if member is not None and member not in users:
                self.fail(f"{path}.members[{index}]", f"unknown user {member!r}")
                member = None
            ok = ok and member is not None
            members.append(member)
        rotation = (
            self.positive_duration(data["rotation"], f"{path}.rotation")
            if "rotation" in data
            else None
        )
        handoff = None
        if "handoff" in data:
            text = self.string(data["handoff"], f"{path}.handoff")
            try:
                handoff = datetime.strptime(text or "", "%Y-%m-%d %H:%M")
            except ValueError:
                self.fail(f"{path}.handoff", "expected local time as YYYY-MM-DD HH:MM")
        restrict = None
        if "restrict" in data:
            restrict = self.restriction(data["restrict"], f"{path}.restrict")
            ok = ok and restrict is not None
        if not ok or rotation is None or handoff is None or not members:
            return None
        return Layer(tuple(m for m in members if m), rotation, handoff, restrict)

    def restriction(self, item: Any, path: str) -> Restriction | None:
        data = self.mapping(item, path, {"from", "to"}, {"days"})
        if data is None:
            return None
        days = data.get("days", list(DAYS))
        if not isinstance(days, list) or not days or any(d not in DAYS for d in days):
            self.fail(f"{path}.days", f"expected a list of {', '.join(DAYS)}")
            return None
        bounds = []
        for key in ("from", "to"):
            text = self.string(data.get(key), f"{path}.{key}") if key in data else None
            match = _CLOCK_TIME.match(text or "")
            if text is not None and match is None:
                self.fail(f"{path}.{key}", "expected a local time as HH:MM")
            bounds.append(time(int(match[1]), int(match[2])) if match else None)
        start, end = bounds
        if start is None or end is None:
            return None
        if start == end:
            self.fail(path, "from and to must differ")
            return None
        return Restriction(frozenset(DAYS.index(d) for d in days), start, end)

    def secret(self, value: Any, path: str, kind: str, tokens: dict[str, str]) -> str | None:
        token = self.string(value, path)
        if token is None:
            return None
        if token in PUBLISHED_SECRETS:
            self.fail(path, f"{kind} is {_PUBLISHED}")
            return None
        if len(token) < MIN_TOKEN_LENGTH:
            self.fail(path, f"{kind} must have at least {MIN_TOKEN_LENGTH} characters")
            return None
        if token in tokens:
            self.fail(path, f"the same token is already used at {tokens[token]}")
            return None
        tokens[token] = path
        return token

    def integration(
        self, item: Any, path: str, seen: set[str], tokens: dict[str, str]
    ) -> Integration | None:
        data = self.mapping(
            item,
            path,
            {"name", "type", "token"},
            {"rate_limit", "interval", "grace", "watchdog_of"},
        )
        if data is None:
            return None
        interval = grace = None
        if data.get("type") == "heartbeat":
            interval = (
                self.positive_duration(data["interval"], f"{path}.interval")
                if "interval" in data
                else None
            )
            if "interval" not in data:
                self.fail(f"{path}.interval", "required for a heartbeat")
            grace = (
                self.positive_duration(data["grace"], f"{path}.grace")
                if "grace" in data
                else timedelta(0)
            )
            if interval is None or grace is None:
                return None
        elif {"interval", "grace", "watchdog_of"} & set(data):
            self.fail(path, "interval, grace and watchdog_of are for heartbeat integrations")
            return None
        watchdog_of = str(data.get("watchdog_of", ""))
        rate_limit = DEFAULT_RATE_LIMIT
        if "rate_limit" in data:
            text = self.string(data["rate_limit"], f"{path}.rate_limit") or ""
            count, _, window = text.partition("/")
            try:
                rate_limit = (int(count), parse_duration(window))
                if rate_limit[0] < 1 or rate_limit[1] <= timedelta(0):
                    raise ValueError
            except ValueError:
                self.fail(f"{path}.rate_limit", "expected events per window, like 120/1m")
                return None
        name = self.name(data.get("name"), f"{path}.name", seen) if "name" in data else None
        type_ = self.string(data.get("type"), f"{path}.type") if "type" in data else None
        if type_ is not None and type_ not in INTEGRATION_TYPES:
            self.fail(f"{path}.type", f"expected one of {', '.join(INTEGRATION_TYPES)}")
            type_ = None
        token = (
            self.secret(data.get("token"), f"{path}.token", "token", tokens)
            if "token" in data
            else None
        )
        if name is None or type_ is None or token is None:
            return None
        return Integration(
            name, type_, token, rate_limit, interval, grace or timedelta(0), watchdog_of
        )

    def user(self, item: Any, path: str, seen: set[str], tokens: dict[str, str]) -> User | None:
        data = self.mapping(
            item,
            path,
            {"name"},
            {"full_name", "time_zone", "api_token", "contacts", "role", "notification_rules"},
        )
        if data is None:
            return None
        name = self.name(data.get("name"), f"{path}.name", seen) if "name" in data else None
        full_name = self.string(
            data.get("full_name", name or ""), f"{path}.full_name", allow_empty=True
        )
        time_zone = self.string(data.get("time_zone", "UTC"), f"{path}.time_zone")
        if time_zone is not None:
            try:
                ZoneInfo(time_zone)
            except (ZoneInfoNotFoundError, ValueError, OSError):  # a folder: IsADirectoryError
                self.fail(f"{path}.time_zone", f"unknown time zone {time_zone!r}")
                time_zone = None
        role = self.string(data.get("role", "responder"), f"{path}.role")
        if role is not None and role not in ROLES:
            self.fail(f"{path}.role", f"expected one of {', '.join(ROLES)}")
            role = None
        api_token = ""
        if "api_token" in data:
            api_token = (
                self.secret(data["api_token"], f"{path}.api_token", "api_token", tokens) or ""
            )
        contacts = []
        names: set[str] = set()
        of_type: dict[str, int] = {}
        for index, raw in enumerate(self.sequence(data.get("contacts"), f"{path}.contacts")):
            contact = self.contact(raw, f"{path}.contacts[{index}]", index)
            if contact is None:
                continue
            count = of_type[contact.type] = of_type.get(contact.type, 0) + 1
            key = contact.name or (contact.type if count == 1 else f"{contact.type}-{count}")
            if key in names:
                self.fail(f"{path}.contacts[{index}].name", f"duplicate contact name {key!r}")
                continue
            names.add(key)
            contacts.append(replace(contact, name=key))
        rules = None
        if "notification_rules" in data:
            rules = self.notification_rules(
                data["notification_rules"], f"{path}.notification_rules", names
            )
        if name is None or full_name is None or time_zone is None or role is None:
            return None
        return User(name, full_name, time_zone, api_token, tuple(contacts), role, rules or ())

    def notification_rules(
        self, item: Any, path: str, contacts: set[str]
    ) -> tuple[tuple[str, tuple[NotificationRule, ...]], ...] | None:
        """Return a user's rules by urgency; `contacts` are the user's contact names."""
        data = self.mapping(item, path, set(), set(URGENCIES))
        if data is None:
            return None
        found = []
        for urgency in URGENCIES:
            if urgency not in data:
                continue
            where = f"{path}.{urgency}"
            raw_rules = self.sequence(data[urgency], where)
            if not raw_rules:
                self.fail(
                    where,
                    "at least one rule is required (without the urgency, every contact is "
                    "paged at once)",
                )
                continue
            rules = []
            seen: set[str] = set()
            for index, raw in enumerate(raw_rules):
                rule = self.rule(raw, f"{where}[{index}]", contacts, seen)
                if rule is not None:
                    rules.append(rule)
            if len(rules) == len(raw_rules):
                found.append((urgency, tuple(rules)))
        return tuple(found)

    def rule(
        self, item: Any, path: str, contacts: set[str], seen: set[str]
    ) -> NotificationRule | None:
        data = self.mapping(item, path, {"contact", "after"}, set())
        if data is None or not {"contact", "after"} <= set(data):
            return None
        contact = self.string(data["contact"], f"{path}.contact")
        if contact is not None and contact not in contacts:
            known = ", ".join(sorted(contacts)) or "none"
            self.fail(f"{path}.contact", f"no contact named {contact!r} (the user's: {known})")
            contact = None
        elif contact is not None and contact in seen:
            # A contact is paged at most once per level: one row per page and contact.
            self.fail(f"{path}.contact", f"{contact!r} already has a rule for this urgency")
            contact = None
        if contact is not None:
            seen.add(contact)
        after = None
        text = self.string(data["after"], f"{path}.after")
        if text is not None:
            try:
                after = parse_duration(text)
            except ValueError as exc:
                self.fail(f"{path}.after", str(exc))
        if contact is None or after is None:
            return None
        return NotificationRule(contact, after)

    def contact(self, item: Any, path: str, index: int) -> Contact | None:
        if not isinstance(item, dict) or item.get("type") not in CONTACT_FIELDS:
            self.fail(f"{path}.type", f"expected one of {', '.join(CONTACT_FIELDS)}")
            return None
        required, optional = CONTACT_FIELDS[item["type"]]
        data = self.mapping(item, path, required | {"type"}, optional)
        if data is None or not required <= set(data):
            return None
        address_key = "to" if "to" in required else "url"
        address = self.string(data[address_key], f"{path}.{address_key}")
        if address is None:
            return None
        if address_key == "to" and not re.match(r"^[^@\s]+@[^@\s]+$", address):
            self.fail(f"{path}.to", f"{address!r} is not an e-mail address")
            return None
        if item["type"] in ("webhook", "slack") and not re.match(r"^https?://", address):
            self.fail(f"{path}.url", "expected an http(s) URL")
            return None
        secret = self.string(data.get("secret", ""), f"{path}.secret", allow_empty=True)
        if secret and secret in PUBLISHED_SECRETS:
            self.fail(f"{path}.secret", f"secret is {_PUBLISHED}")
            return None
        if secret and len(secret) < MIN_WEBHOOK_SECRET_LENGTH:
            self.fail(
                f"{path}.secret",
                f"secret must have at least {MIN_WEBHOOK_SECRET_LENGTH} characters",
            )
            return None
        name = ""
        if "name" in data:
            name = self.string(data["name"], f"{path}.name") or ""
            if name and not _NAME.match(name):
                self.fail(f"{path}.name", "expected lowercase letters, digits, '_', '.', '-'")
                return None
        return Contact(index, item["type"], address, secret or "", name)

    def policy(self, item: Any, path: str, seen: set[str], users: set[str]) -> Policy | None:
        data = self.mapping(item, path, {"name", "levels"}, {"repeat", "ack_timeout"})
        if data is None:
            return None
        name = self.name(data.get("name"), f"{path}.name", seen) if "name" in data else None
        repeat = data.get("repeat", 0)
        if isinstance(repeat, bool) or not isinstance(repeat, int) or not 0 <= repeat <= 100:
            self.fail(f"{path}.repeat", "expected an integer from 0 to 100")
            repeat = None
        levels = []
        raw_levels = self.sequence(data.get("levels"), f"{path}.levels")
        if "levels" in data and not raw_levels:
            self.fail(f"{path}.levels", "at least one level is required")
        for index, raw in enumerate(raw_levels):
            level = self.level(raw, f"{path}.levels[{index}]", users)
            if level is not None:
                levels.append(level)
        timeout_ok, ack_timeout = self.ack_timeout(data, path)
        if name is None or repeat is None or len(levels) != len(raw_levels) or not levels:
            return None
        if not timeout_ok:
            return None
        return Policy(name, repeat, tuple(levels), ack_timeout)

    def ack_timeout(self, data: dict[str, Any], path: str) -> tuple[bool, timedelta | None]:
        """Return whether the `ack_timeout` of a policy or route is good (a bad one is
        reported) and its value (None: not set)."""
        if "ack_timeout" not in data:
            return True, None
        found = self.positive_duration(data["ack_timeout"], f"{path}.ack_timeout")
        return found is not None, found

    def level(self, item: Any, path: str, users: set[str]) -> Level | None:
        data = self.mapping(item, path, {"notify", "escalate_after"}, set())
        if data is None:
            return None
        targets = []
        raw_targets = self.sequence(data.get("notify"), f"{path}.notify")
        if "notify" in data and not raw_targets:
            self.fail(f"{path}.notify", "at least one target is required")
        for index, raw in enumerate(raw_targets):
            target = self.target(raw, f"{path}.notify[{index}]", users)
            if target is not None:
                targets.append(target)
        after = (
            self.positive_duration(data["escalate_after"], f"{path}.escalate_after")
            if "escalate_after" in data
            else None
        )
        if after is None or len(targets) != len(raw_targets) or not targets:
            return None
        return Level(tuple(targets), after)

    def target(self, value: Any, path: str, users: set[str]) -> Target | None:
        text = self.string(value, path)
        if text is None:
            return None
        kind, _, name = text.partition(":")
        if kind not in TARGET_KINDS or not name:
            self.fail(path, f"{text!r}: expected user:NAME or schedule:NAME")
            return None
        if name not in self.names[kind]:
            self.fail(path, f"unknown {kind} {name!r}")
            return None
        return Target(kind, name)

    def route(self, item: Any, index: int, policies: set[str], last: bool) -> Route | None:
        path = f"routes[{index}]"
        data = self.mapping(
            item, path, {"policy"}, {"match", "notify_resolved", "urgency", "ack_timeout"}
        )
        if data is None:
            return None
        matchers = []
        for position, raw in enumerate(self.sequence(data.get("match"), f"{path}.match")):
            text = self.string(raw, f"{path}.match[{position}]")
            if text is None:
                continue
            try:
                matchers.append(parse_matcher(text))
            except ValueError as exc:
                self.fail(f"{path}.match[{position}]", str(exc))
        policy = self.string(data.get("policy"), f"{path}.policy") if "policy" in data else None
        if policy is not None and policy not in policies:
            self.fail(f"{path}.policy", f"unknown policy {policy!r}")
            policy = None
        notify_resolved = data.get("notify_resolved", True)
        if not isinstance(notify_resolved, bool):
            self.fail(f"{path}.notify_resolved", "expected true or false")
        urgency = self.string(data.get("urgency", "high"), f"{path}.urgency")
        if urgency is not None and urgency not in ROUTE_URGENCIES:
            self.fail(f"{path}.urgency", f"expected one of {', '.join(ROUTE_URGENCIES)}")
            urgency = None
        if last and matchers:
            self.fail(path, "the last route must be a catch-all (no match)")
        timeout_ok, ack_timeout = self.ack_timeout(data, path)
        if policy is None or urgency is None or not timeout_ok:
            return None
        return Route(index, tuple(matchers), policy, bool(notify_resolved), urgency, ack_timeout)
