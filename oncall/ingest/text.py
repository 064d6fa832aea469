"""Text as it enters: what a sender may put in a string that the database cannot store.
Pure.

PostgreSQL refuses NUL in `text` and `jsonb` (asyncpg rejects the whole statement, so one
bad label would lose its whole group), and a lone surrogate ("\\ud800"), which a JSON
escape can carry, has no UTF-8 encoding on either backend. Both become U+FFFD, the
replacement character, so the rest of the value and of the delivery is kept.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: str) -> str:
    """Return `value` with NUL and lone surrogates replaced by U+FFFD (`value` itself when
    it has none, the common case, checked without a copy)."""
    if value.isascii():
        return value.replace("\x00", REPLACEMENT) if "\x00" in value else value
    return _UNSTORABLE.sub(REPLACEMENT, value)


def storable_map(mapping: dict[str, str]) -> dict[str, str]:
    """Return a label or annotation map with every key and value `storable` (`mapping`
    itself when nothing needs replacing). Two keys that become equal keep the last value,
    as a repeated JSON key does."""
    for key, value in mapping.items():
        if storable(key) is not key or storable(value) is not value:
            return {storable(k): storable(v) for k, v in mapping.items()}
    return mapping
