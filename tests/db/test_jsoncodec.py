"""oncall.jsonfmt: orjson's speed with the standard module's results."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oncall.db import jsoncodec

# JSON values as the service stores them: text keys, finite numbers within 64 bits.
_scalars = (
    st.none()
    | st.booleans()
    | st.text()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_values)
def test_written_text_reads_back_as_the_standard_module_reads_its_own(value: object) -> None:
    assert json.loads(jsoncodec.dumps(value)) == json.loads(json.dumps(value))
    assert jsoncodec.loads(json.dumps(value)) == json.loads(json.dumps(value))


def test_what_orjson_refuses_is_written_by_the_standard_module() -> None:
    value = {1: 2**70, "é": [1.5]}
    assert jsoncodec.dumps(value) == '{"1":1180591620717411303424,"é":[1.5]}'
    assert json.loads(jsoncodec.dumps(value)) == json.loads(json.dumps(value))


@pytest.mark.parametrize("value", [datetime(2026, 11, 28, tzinfo=UTC), object(), {1, 2}])
def test_refuses_what_the_standard_module_refuses(value: object) -> None:
    with pytest.raises(TypeError):
        json.dumps(value)
    with pytest.raises(TypeError):
        jsoncodec.dumps(value)


@pytest.mark.parametrize("raw", [b'{"a": "\xff"}', b"{", b"", b"[1,]", "\ud800"])
def test_bad_documents_raise_value_error(raw: bytes | str) -> None:
    with pytest.raises(ValueError):
        jsoncodec.loads(raw)


def test_dumps_bytes_is_utf8_of_dumps() -> None:
    value = {"title": "Disk full on hôte-1", "n": 3}
    assert jsoncodec.dumps_bytes(value) == jsoncodec.dumps(value).encode()


@pytest.mark.parametrize(
    "levels",
    [
        jsoncodec.MAX_DEPTH + 1,  # just past the limit: both decoders would read it
        2_000,  # past the standard module's stack, within orjson's own limit
        100_000,  # past orjson's own limit too
    ],
)
def test_documents_nested_past_the_limit_are_refused(levels: int) -> None:
    with pytest.raises(jsoncodec.TooDeep, match="nested deeper than"):
        jsoncodec.loads("[" * levels + "]" * levels)
    with pytest.raises(jsoncodec.TooDeep):  # the standard module's path (a lone surrogate)
        jsoncodec.loads("[" * levels + '"\\ud800"' + "]" * levels)


def test_documents_as_deep_as_the_limit_are_read() -> None:
    depth = jsoncodec.MAX_DEPTH
    assert jsoncodec.loads("[" * depth + "]" * depth) == json.loads("[" * depth + "]" * depth)
    # many containers side by side are not depth
    wide = {"alerts": [{"labels": {"a": "b"}, "values": [[1]]} for _ in range(100)]}
    assert jsoncodec.loads(json.dumps(wide)) == wide
