"""Text as it enters: what a sender may put in a string that the database cannot store, or
that a page cannot carry. Pure.

PostgreSQL refuses NUL in `text` and `jsonb` (asyncpg rejects the whole statement, so one
bad label would lose its whole group), and a lone surrogate ("\\ud800"), which a JSON
escape can carry, has no UTF-8 encoding on either backend. Both become U+FFFD, the
replacement character, so the rest of the value and of the delivery is kept.

Control characters (C0, DEL, C1, and the line and paragraph separators U+2028/U+2029) are
normalised by what a value is used for. A title, a severity, a label name or value, a URL
ends up in an e-mail subject or header, a Slack header, one line of a page: there a line
break cannot be carried (an e-mail header refuses it, or it starts a new header), so
`one_line` turns every run of breaks and tabs into one space and drops the other controls.
An annotation (a summary, a description) is free text that may span lines: `multiline`
keeps newlines and tabs, writes every other line break as a newline and drops the rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# What str.splitlines() breaks at, and the tab: one space in a one-line value.
_BREAKS = re.compile("[\t\n\x0b\x0c\r\x1c-\x1e\x85\u2028\u2029]+")
_LINE_BREAK = re.compile("\r\n|[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
# NUL is already U+FFFD (`storable`) when these run.
_CONTROLS = re.compile("[\x01-\x1f\x7f-\x9f]")
_CONTROLS_BUT_TAB_AND_NEWLINE = re.compile("[\x01-\x08\x0b-\x1f\x7f-\x9f]")
# What either function changes: found in one search, so text with none is not copied.
_TO_CLEAN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_TO_CLEAN_IN_MULTILINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def storable(value: str) -> str:
    """Return `value` with NUL and lone surrogates replaced by U+FFFD (`value` itself when
    it has none, the common case, checked without a copy)."""
    if value.isascii():
        return value.replace("\x00", REPLACEMENT) if "\x00" in value else value
    return _UNSTORABLE.sub(REPLACEMENT, value)


def one_line(value: str) -> str:
    """Return `value` `storable` and on one line: each run of line breaks and tabs one
    space, every other control character removed (`value` itself when it is printable,
    the common case)."""
    # isprintable() is False for every control character, NUL and lone surrogate, and for
    # some harmless characters (a no-break space), which the search then lets through.
    if value.isprintable() or not _TO_CLEAN.search(value):
        return value
    return _CONTROLS.sub("", _BREAKS.sub(" ", storable(value)))


def multiline(value: str) -> str:
    """Return `value` `storable` with newlines and tabs kept, every other line break
    (CR LF, CR, U+2028, ...) a newline and every other control character removed (`value`
    itself when it has no control character)."""
    if value.isprintable() or not _TO_CLEAN_IN_MULTILINE.search(value):
        return value
    return _CONTROLS_BUT_TAB_AND_NEWLINE.sub("", _LINE_BREAK.sub("\n", storable(value)))


def clean_map(mapping: dict[str, str], clean_value: Callable[[str], str]) -> dict[str, str]:
    """Return a label or annotation map with every key `one_line` and every value cleaned
    by `clean_value` (`one_line` for labels, `multiline` for annotations); `mapping` itself
    when nothing changes. Two keys that become equal keep the last value, as a repeated
    JSON key does."""
    for key, value in mapping.items():
        if (key.isprintable() and value.isprintable()) or (
            one_line(key) is key and clean_value(value) is value
        ):
            continue
        return {one_line(k): clean_value(v) for k, v in mapping.items()}
    return mapping
