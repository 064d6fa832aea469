"""A table's checksum that is equal on SQLite and PostgreSQL when their rows are equal.

Each row, as SQLAlchemy reads it back (the column types applied), is written as canonical
text and hashed; the table's checksum is the SHA-256 over its rows in primary-key order.
The text hides what the two backends store differently for one value:

- datetimes: the UTC instant to the microsecond, whatever zone the driver gives (a naive
  one counts as UTC, as the service stores every time);
- JSON: objects with their keys sorted (JSONB reorders them) and numbers by their
  decimal value, so 100.0 and 1e2 and 100 are one number (JSONB keeps a number's digits,
  not whether Python wrote it as a float: 1e300 comes back as an integer);
- booleans as true/false (SQLite stores 0/1), text with ASCII escapes.

Standard library only: the move and its tests use it on rows from either backend.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time
from decimal import Context, Decimal
from json.encoder import encode_basestring_ascii
from typing import Any

_quote = encode_basestring_ascii  # ASCII escapes: one spelling per string


def _number(value: int | float | Decimal) -> str:
    """Return a number's canonical text: its exact decimal value, normalised."""
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return repr(value)  # nan, inf, -inf: no decimal value to normalise
        exact = Decimal(repr(value))  # the shortest text that reads back as this float
    else:
        exact = Decimal(value)
    if exact.is_zero():
        return "0"  # -0.0 too: PostgreSQL's numeric has no negative zero
    digits = len(exact.as_tuple().digits)
    return str(exact.normalize(Context(prec=max(digits, 28))))


# The common cases without Decimal; each gives what `_number` gives.
def _int(value: int) -> str:
    return str(value) if value % 10 else _number(value)  # 10 is 1E+1 there


def _float(value: float) -> str:
    text = repr(value)
    if "e" in text or "n" in text:  # an exponent, nan, inf
        return _number(value)
    if text.endswith(".0"):
        return _int(int(value))  # below 1e16 (no exponent): exact
    return text  # a fraction without trailing zeros is its normalised text


def _instant(value: datetime) -> str:
    if value.tzinfo is not UTC:
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        value = aware.astimezone(UTC)
    return "@" + value.isoformat(timespec="microseconds")


def _object(value: dict[Any, Any]) -> str:
    try:
        keys = sorted(value)
    except TypeError:  # keys of several types: not from JSON, but still one order
        keys = sorted(value, key=str)
    return "{" + ",".join([_quote(str(k)) + ":" + encode(value[k]) for k in keys]) + "}"


def _array(value: list[Any] | tuple[Any, ...]) -> str:
    return "[" + ",".join([encode(item) for item in value]) + "]"


_BY_TYPE: dict[type, Callable[[Any], str]] = {
    type(None): lambda _: "null",
    bool: lambda value: "true" if value else "false",
    int: _int,
    float: _float,
    str: _quote,
    datetime: _instant,
    dict: _object,
    list: _array,
    tuple: _array,
}


def encode(value: Any) -> str:
    """Return the canonical text of one value read from either backend.

    Raises TypeError for a type it does not know, so that a new kind of column gets a
    decision instead of a checksum that may differ between the backends."""
    exact = _BY_TYPE.get(type(value))
    if exact is not None:
        return exact(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return _number(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, datetime):
        return _instant(value)
    if isinstance(value, date | time):
        return "@" + value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "x" + bytes(value).hex()
    if isinstance(value, dict):
        return _object(value)
    if isinstance(value, list | tuple):
        return _array(value)
    raise TypeError(f"no canonical encoding for a {type(value).__name__} value")


def encode_row(row: Sequence[Any]) -> bytes:
    """Return one row's canonical encoding: its values in column order, one line."""
    return ("[" + ",".join([encode(value) for value in row]) + "]\n").encode("ascii")


class TableChecksum:
    """The running checksum of one table's rows, fed in primary-key order."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.rows = 0

    def add(self, rows: Iterable[Sequence[Any]]) -> None:
        """Add rows, in order, to the checksum."""
        for row in rows:
            self._hash.update(encode_row(row))
            self.rows += 1

    def hexdigest(self) -> str:
        """Return the SHA-256 of the rows added so far, as hex."""
        return self._hash.hexdigest()
