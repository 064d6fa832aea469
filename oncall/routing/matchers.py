"""Alertmanager label matchers: `name="value"`, `name!="value"`, `name=~"re"`, `name!~"re"`.

Semantics follow Alertmanager: regexes are fully anchored (`^(?:re)$`), a missing label
matches as the empty string, values may be double-quoted (with `\\"`, `\\\\` and `\\n`
escapes) or bare.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_MATCHER = re.compile(
    r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*$",
    re.DOTALL,
)
_LEADING_FLAGS = re.compile(r"^\(\?([ims]+)\)")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n"}


@dataclass(frozen=True)
class Matcher:
    """One parsed matcher; `matches(labels)` is the whole of its behaviour."""

    name: str
    op: str
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether `labels` satisfy this matcher (absent labels count as "")."""
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        quoted = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{quoted}"'


def parse_matcher(text: str) -> Matcher:
    """Return the Matcher written in `text`.

    Raises ValueError naming what is wrong: the shape, an unterminated quote, a bad regex.
    """
    match = _MATCHER.match(text)
    if match is None:
        raise ValueError(f'{text!r} is not a matcher like name="value" or name=~"regex"')
    name, op, value = match["name"], match["op"], match["value"]
    if value.startswith('"'):
        value = _unquote(value)
    elif '"' in value:
        raise ValueError(f"{text!r}: a value with a quote must be fully quoted")
    regex = None
    if op in ("=~", "!~"):
        # Go accepts `(?i)` at the start of the anchored group; Python wants a scoped flag.
        flags = _LEADING_FLAGS.match(value)
        body = f"(?{flags[1]}:{value[flags.end() :]})" if flags else f"(?:{value})"
        try:
            regex = re.compile(body)
        except re.error as exc:
            raise ValueError(f"{text!r}: invalid regular expression: {exc}") from None
    return Matcher(name, op, value, regex)


def _unquote(quoted: str) -> str:
    out: list[str] = []
    index = 1
    while index < len(quoted):
        char = quoted[index]
        if char == "\\":
            if index + 1 >= len(quoted) or quoted[index + 1] not in _ESCAPES:
                raise ValueError(f"{quoted}: unknown escape sequence")
            out.append(_ESCAPES[quoted[index + 1]])
            index += 2
            continue
        if char == '"':
            if index != len(quoted) - 1:
                raise ValueError(f"{quoted}: text after the closing quote")
            return "".join(out)
        out.append(char)
        index += 1
    raise ValueError(f"{quoted}: missing closing quote")


def first_failing(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> Matcher | None:
    """Return the first matcher that refuses `labels`, or None when every one accepts them."""
    for matcher in matchers:
        if not matcher.matches(labels):
            return matcher
    return None


def matches_all(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    """Return whether every matcher accepts `labels` (an empty tuple accepts everything)."""
    return first_failing(matchers, labels) is None
