"""JSON in and out on the hot paths, through orjson (far faster than the standard module on
the small objects stored with every alert), with the standard module's results.

Compact output; text outside ASCII stays UTF-8 instead of \\u escapes. What orjson refuses
to write (integers beyond 64 bits, say) is written by the standard module instead, so no
value the standard module accepts is refused here.

Reading refuses documents nested deeper than MAX_DEPTH, far beyond any real alert or API
body: the standard module would otherwise exhaust the interpreter's stack on them (a
RecursionError, not a ValueError), and a deep value costs every later walk over it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# {1: x} becomes {"1": x}, as json.dumps writes it; datetimes and dataclasses are refused,
# as json.dumps refuses them, instead of being written in orjson's own way.
_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)
MAX_DEPTH = 64  # levels of nesting: arrays and objects within one another


class TooDeep(ValueError):
    """The document nests arrays and objects deeper than MAX_DEPTH."""

    def __init__(self) -> None:
        super().__init__(f"nested deeper than {MAX_DEPTH} levels")


def dumps(value: Any) -> str:
    """Return `value` as JSON text; raises TypeError or ValueError as json.dumps does."""
    return dumps_bytes(value).decode()


def dumps_bytes(value: Any) -> bytes:
    """Return `value` as UTF-8 JSON; raises TypeError or ValueError as json.dumps does."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def loads(data: bytes | str) -> Any:
    """Return the value of a JSON document; raises ValueError (not JSON, not UTF-8), or
    TooDeep (a ValueError) when it nests deeper than MAX_DEPTH."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        if str(error).startswith("depth limit"):  # orjson's own, far above MAX_DEPTH
            raise TooDeep() from None
        # orjson refuses a lone surrogate escape ("\ud800"), which the standard module
        # (and JSON) accepts; the ingest parsers make such text storable. Anything else
        # orjson refuses, the standard module refuses too (NaN and Infinity once told to).
        try:
            value = json.loads(data, parse_constant=_refuse_constant)
        except RecursionError:
            raise TooDeep() from None
    if _may_nest_deeply(data) and not _within_depth(value):
        raise TooDeep()
    return value


def _may_nest_deeply(data: bytes | str) -> bool:
    """Return False when the text has too few brackets to nest past MAX_DEPTH: the usual
    small document is then not walked at all."""
    if isinstance(data, str):
        return data.count("[") + data.count("{") > MAX_DEPTH
    return data.count(b"[") + data.count(b"{") > MAX_DEPTH


def _within_depth(value: Any) -> bool:
    """Return whether `value` nests at most MAX_DEPTH levels (walked level by level, without
    recursion, so a deep value cannot exhaust the stack here either)."""
    level = [value] if type(value) in (dict, list) else []
    for _ in range(MAX_DEPTH):
        inner: list[Any] = []
        for container in level:
            items = container.values() if type(container) is dict else container
            inner.extend(item for item in items if type(item) in (dict, list))
        if not inner:
            return True
        level = inner
    return False


def _refuse_constant(name: str) -> Any:
    """Refuse NaN and Infinity, which are not JSON (orjson refuses them too)."""
    raise ValueError(f"{name} is not JSON")
