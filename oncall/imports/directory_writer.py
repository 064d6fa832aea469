"""A directory file from imported data: plain objects in, YAML text the parser accepts out.
Pure.

The vendor modules fill the dataclasses below and `render` writes them. Every token and
secret is a `${VAR}` reference (`python app.py init` generates them): a vendor's tokens are
never copied. Text from the vendor is quoted, and `${` in it is escaped, so nothing in a
name can become a variable reference or break out of a comment.
"""

from __future__ import annotations

import json
import re
import secrets
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from oncall.durations import format_duration
from oncall.schedules.rotation import DAYS

SECTIONS = ("integrations", "users", "schedules", "policies", "routes")
_NAME_CHARS = re.compile(r"[^a-z0-9_.-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
MAX_NAME = 63


@dataclass
class ImportedContact:
    type: str  # email, webhook, slack or apprise
    address: str  # `to` of an email, `url` of the others
    name: str = ""  # the contact's name in the file; empty: its type, `-2` for a second one
    comments: list[str] = field(default_factory=list)


@dataclass
class ImportedRule:
    """Page the user's contact number `contact` (an index into its contacts) `after` this."""

    contact: int
    after: timedelta


@dataclass
class ImportedUser:
    name: str
    full_name: str = ""
    time_zone: str = "UTC"
    role: str = "responder"  # or admin
    contacts: list[ImportedContact] = field(default_factory=list)
    rules: dict[str, list[ImportedRule]] = field(default_factory=dict)  # by urgency: high, low
    comments: list[str] = field(default_factory=list)


@dataclass
class ImportedRestriction:
    days: tuple[str, ...]  # of rotation.DAYS
    start: time
    end: time  # the next day when not after `start`


@dataclass
class ImportedLayer:
    members: list[str]
    rotation: timedelta
    handoff: datetime  # naive local wall-clock time, minutes
    restrict: ImportedRestriction | None = None
    comments: list[str] = field(default_factory=list)


@dataclass
class ImportedSchedule:
    name: str
    time_zone: str
    layers: list[ImportedLayer] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)


@dataclass
class ImportedLevel:
    notify: list[str]  # `user:NAME` or `schedule:NAME`
    escalate_after: timedelta
    comments: list[str] = field(default_factory=list)


@dataclass
class ImportedPolicy:
    name: str
    levels: list[ImportedLevel] = field(default_factory=list)
    repeat: int = 0
    comments: list[str] = field(default_factory=list)


@dataclass
class ImportedIntegration:
    name: str
    type: str  # alertmanager, events_v2 or heartbeat
    interval: timedelta | None = None  # heartbeat
    grace: timedelta | None = None  # heartbeat
    comments: list[str] = field(default_factory=list)


@dataclass
class ImportedRoute:
    policy: str
    match: list[str] = field(default_factory=list)  # Alertmanager matchers; none: catch-all
    urgency: str = ""  # empty: the parser's default
    comments: list[str] = field(default_factory=list)
    ack_timeout: timedelta | None = None


@dataclass
class ImportedDirectory:
    source: str  # shown in the file's first line, e.g. "PagerDuty (https://api.pagerduty.com)"
    integrations: list[ImportedIntegration] = field(default_factory=list)
    users: list[ImportedUser] = field(default_factory=list)
    schedules: list[ImportedSchedule] = field(default_factory=list)
    policies: list[ImportedPolicy] = field(default_factory=list)
    routes: list[ImportedRoute] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)  # at the top of the file
    # Comments at the top of a section (a key of SECTIONS): what was left out of it.
    notes: dict[str, list[str]] = field(default_factory=dict)

    def note(self, section: str, text: str) -> None:
        """Add a comment at the top of `section` (one of SECTIONS)."""
        assert section in SECTIONS, section
        self.notes.setdefault(section, []).append(text)


class Names:
    """Hands out unique directory names (lower-case letters, digits, `_ . -`) per kind."""

    def __init__(self) -> None:
        self._taken: set[str] = set()
        self.by_key: dict[str, str] = {}  # a vendor's id → the name given for it

    def take(self, *candidates: str | None, key: str = "", fallback: str = "x") -> str:
        """Return a fresh name from the first candidate that makes one (else `fallback`),
        with `-2`, `-3` added when it is taken; remember it under `key` when one is given."""
        base = ""
        for candidate in candidates:
            base = slug(candidate or "")
            if base:
                break
        base = base or slug(fallback) or "x"
        name, count = base, 1
        while name in self._taken:
            count += 1
            suffix = f"-{count}"
            name = base[: MAX_NAME - len(suffix)] + suffix
        self._taken.add(name)
        if key:
            self.by_key[key] = name
        return name


def slug(text: str) -> str:
    """Return `text` as a directory name, or "" when nothing of it is usable."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    lowered = _NAME_CHARS.sub("-", ascii_text.strip().lower())
    lowered = re.sub(r"-{2,}", "-", lowered).lstrip("_.-").rstrip("-")
    return lowered[:MAX_NAME].rstrip("-")


def contact_keys(contacts: Sequence[ImportedContact]) -> list[str]:
    """Return each contact's key as the parser gives it: its name, else its type with `-2`,
    `-3` for a user's second and third of that type."""
    keys = []
    counts: dict[str, int] = {}
    for contact in contacts:
        count = counts[contact.type] = counts.get(contact.type, 0) + 1
        keys.append(contact.name or (contact.type if count == 1 else f"{contact.type}-{count}"))
    return keys


def quote(text: str) -> str:
    """Return `text` as a YAML double-quoted scalar whose `${` stays literal."""
    return json.dumps(text.replace("${", "$${"), ensure_ascii=False)


def comment_text(text: str) -> str:
    """Return `text` on one line, fit to follow `# `."""
    return _CONTROL.sub(" ", text).strip()


class _Variables:
    """Environment variable names for the file's tokens and secrets, unique."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def take(self, *parts: str) -> str:
        base = re.sub(r"[^A-Z0-9]+", "_", "_".join(parts).upper()).strip("_") or "TOKEN"
        name, count = base, 1
        while name in self._taken:
            count += 1
            name = f"{base}_{count}"
        self._taken.add(name)
        return name


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, indent: int, text: str) -> None:
        self.lines.append(" " * indent + text)

    def comments(self, indent: int, texts: Iterable[str]) -> None:
        for text in texts:
            self.line(indent, f"# {comment_text(text)}".rstrip())


def render(directory: ImportedDirectory) -> str:
    """Return the directory file for `directory`."""
    out = _Out()
    variables = _Variables()
    out.comments(0, [f"Imported from {directory.source} by `python app.py import`."])
    out.comments(
        0,
        [
            "Tokens are ${VAR} references: `python app.py init` generates them; nothing",
            "was copied from the vendor. Lines starting with # say what was not carried over.",
            *directory.comments,
        ],
    )
    _integrations(out, directory, variables)
    _users(out, directory, variables)
    _schedules(out, directory)
    _policies(out, directory)
    _routes(out, directory)
    return "\n".join(out.lines) + "\n"


def _section(out: _Out, directory: ImportedDirectory, key: str, empty: bool) -> None:
    out.lines.append("")
    out.line(0, f"{key}:{' []' if empty else ''}")
    out.comments(2, directory.notes.get(key, []))


def _integrations(out: _Out, directory: ImportedDirectory, variables: _Variables) -> None:
    _section(out, directory, "integrations", not directory.integrations)
    for item in directory.integrations:
        out.comments(2, item.comments)
        token = variables.take("integration", item.name, "token")
        fields = [f"name: {quote(item.name)}", f"type: {item.type}", f'token: "${{{token}}}"']
        if item.interval is not None:
            fields.append(f"interval: {format_duration(item.interval)}")
        if item.grace is not None:
            fields.append(f"grace: {format_duration(item.grace)}")
        out.line(2, "- {" + ", ".join(fields) + "}")


def _users(out: _Out, directory: ImportedDirectory, variables: _Variables) -> None:
    _section(out, directory, "users", not directory.users)
    for user in directory.users:
        out.comments(2, user.comments)
        out.line(2, f"- name: {quote(user.name)}")
        if user.full_name:
            out.line(4, f"full_name: {quote(user.full_name)}")
        out.line(4, f"time_zone: {quote(user.time_zone)}")
        out.line(4, f"role: {user.role}")
        out.line(4, f'api_token: "${{{variables.take("user", user.name, "token")}}}"')
        keys = contact_keys(user.contacts)
        out.line(4, "contacts:" if user.contacts else "contacts: []")
        for contact, key in zip(user.contacts, keys, strict=True):
            out.comments(6, contact.comments)
            address = "to" if contact.type == "email" else "url"
            fields = [f"type: {contact.type}", f"{address}: {quote(contact.address)}"]
            if contact.name:
                fields.append(f"name: {quote(contact.name)}")
            if contact.type == "webhook":
                secret = variables.take("user", user.name, key, "secret")
                fields.append(f'secret: "${{{secret}}}"')
            out.line(6, "- {" + ", ".join(fields) + "}")
        rules = {u: r for u, r in user.rules.items() if r}
        if rules:
            out.line(4, "notification_rules:")
            for urgency, listed in rules.items():
                out.line(6, f"{urgency}:")
                for rule in listed:
                    after = format_duration(rule.after)
                    out.line(8, f"- {{contact: {quote(keys[rule.contact])}, after: {after}}}")


def _schedules(out: _Out, directory: ImportedDirectory) -> None:
    _section(out, directory, "schedules", not directory.schedules)
    for schedule in directory.schedules:
        out.comments(2, schedule.comments)
        out.line(2, f"- name: {quote(schedule.name)}")
        out.line(4, f"time_zone: {quote(schedule.time_zone)}")
        out.line(4, "layers:")
        for layer in schedule.layers:
            out.comments(6, layer.comments)
            members = ", ".join(quote(m) for m in layer.members)
            fields = [
                f"members: [{members}]",
                f"rotation: {format_duration(layer.rotation)}",
                f'handoff: "{layer.handoff:%Y-%m-%d %H:%M}"',
            ]
            if layer.restrict is not None:
                r = layer.restrict
                days = ", ".join(d for d in DAYS if d in r.days)
                fields.append(
                    f'restrict: {{days: [{days}], from: "{r.start:%H:%M}", to: "{r.end:%H:%M}"}}'
                )
            out.line(6, "- {" + ", ".join(fields) + "}")


def _policies(out: _Out, directory: ImportedDirectory) -> None:
    _section(out, directory, "policies", not directory.policies)
    for policy in directory.policies:
        out.comments(2, policy.comments)
        out.line(2, f"- name: {quote(policy.name)}")
        out.line(4, f"repeat: {policy.repeat}")
        out.line(4, "levels:")
        for level in policy.levels:
            out.comments(6, level.comments)
            notify = ", ".join(quote(t) for t in level.notify)
            after = format_duration(level.escalate_after)
            out.line(6, f"- {{notify: [{notify}], escalate_after: {after}}}")


def _routes(out: _Out, directory: ImportedDirectory) -> None:
    _section(out, directory, "routes", not directory.routes)
    for route in directory.routes:
        out.comments(2, route.comments)
        fields = []
        if route.match:
            fields.append("match: [" + ", ".join(quote(m) for m in route.match) + "]")
        fields.append(f"policy: {quote(route.policy)}")
        if route.urgency:
            fields.append(f"urgency: {route.urgency}")
        if route.ack_timeout is not None:
            fields.append(f"ack_timeout: {format_duration(route.ack_timeout)}")
        out.line(2, "- {" + ", ".join(fields) + "}")


def check(text: str) -> list[str]:
    """Return the problems the directory parser finds in `text` once every `${VAR}` is set
    (as `python app.py init` would set them); an empty list when it is valid."""
    from oncall.directory.parse import parse_directory, unset_references
    from oncall.errors import ConfigError

    environ = {name: secrets.token_urlsafe(32) for name, _ in unset_references(text, {})}
    try:
        parse_directory(text, environ, "<imported>")
    except ConfigError as error:
        return list(error.problems)
    return []
