"""JSON in and out on the hot paths, through orjson (far faster than the standard module on
the small objects stored with every alert), with the standard module's results.

Compact output; text outside ASCII stays UTF-8 instead of \\u escapes. What orjson refuses
to write (integers beyond 64 bits, say) is written by the standard module instead, so no
value the standard module accepts is refused here.
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
    """Return the value of a JSON document; raises ValueError (not JSON, not UTF-8)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # orjson refuses a lone surrogate escape ("\ud800"), which the standard module
        # (and JSON) accepts; the ingest parsers make such text storable. Anything else
        # orjson refuses, the standard module refuses too (NaN and Infinity once told to).
        return json.loads(data, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    """Refuse NaN and Infinity, which are not JSON (orjson refuses them too)."""
    raise ValueError(f"{name} is not JSON")
