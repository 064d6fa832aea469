"""An alert's context (custom_details, links, images): normalised where it enters, every
problem named by its path, bounded in size and depth."""

from __future__ import annotations

from typing import Any

import pytest

from oncall.ingest.context import (
    MAX_DETAILS_BYTES,
    MAX_DETAILS_DEPTH,
    MAX_LINKS,
    AlertContext,
    parse_details,
    parse_images,
    parse_links,
    stored_context,
)


def checked(parse: Any, value: Any, where: str = "links") -> tuple[Any, list[str]]:
    errors: list[str] = []
    return parse(value, where, errors), errors


def test_links_keep_href_and_text_on_one_line_and_drop_other_keys():
    links, errors = checked(
        parse_links,
        [
            {"href": "https://r.example.com/runbook", "text": "Runbook\nfor disks", "x": 1},
            {"href": " javascript:alert(1) "},  # kept as text: pages decide what is a link
        ],
    )
    assert errors == []
    assert links == (
        {"href": "https://r.example.com/runbook", "text": "Runbook for disks"},
        {"href": "javascript:alert(1)", "text": ""},
    )


def test_images_keep_src_href_and_alt():
    images, errors = checked(
        parse_images, [{"src": "https://g.example.com/p.png", "alt": "Disk"}], "images"
    )
    assert errors == []
    assert images == ({"src": "https://g.example.com/p.png", "href": "", "alt": "Disk"},)


# (case, parser, value, the error expected)
BAD = [
    ("links not a list", parse_links, {"href": "x"}, "'links' must be a list"),
    ("a link not an object", parse_links, ["https://x"], "'links[0]' must be an object"),
    ("a link without href", parse_links, [{"text": "t"}], "'links[0].href' is missing or blank"),
    ("an href not a string", parse_links, [{"href": 3}], "'links[0].href' must be a string"),
    ("a text not a string", parse_links, [{"href": "h", "text": []}], "'links[0].text' must"),
    ("too many links", parse_links, [{"href": "h"}] * (MAX_LINKS + 1), "'links' has more than"),
    ("an href too long", parse_links, [{"href": "h" * 5000}], "'links[0].href' is longer than"),
    ("an image without src", parse_images, [{"href": "h"}], "'links[0].src' is missing"),
]


@pytest.mark.parametrize(("case", "parse", "value", "expected"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_link_or_image_is_named_by_its_path(case, parse, value, expected):
    _, errors = checked(parse, value)
    assert len(errors) == 1 and expected in errors[0], errors


def test_details_are_any_json_with_their_strings_storable():
    value = {"free": "2%", "a\x00b": ["x\x00", 1, 2.5, True, None, {"deep": "line\r\nbreak"}]}
    details, errors = checked(parse_details, value, "payload.custom_details")
    assert errors == []
    assert details == {
        "free": "2%",
        "a\ufffdb": ["x\ufffd", 1, 2.5, True, None, {"deep": "line\nbreak"}],
    }
    assert checked(parse_details, "just text")[0] == "just text"
    assert checked(parse_details, None) == (None, [])


def nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"in": value}
    return value


def test_details_nested_too_deep_or_too_large_are_refused_by_name():
    assert checked(parse_details, nested(MAX_DETAILS_DEPTH))[1] == []
    _, errors = checked(parse_details, nested(MAX_DETAILS_DEPTH + 1), "payload.custom_details")
    assert errors == ["'payload.custom_details' is nested deeper than 16 levels"]
    assert checked(parse_details, {"blob": "x" * (MAX_DETAILS_BYTES - 20)})[1] == []
    _, errors = checked(parse_details, {"blob": "x" * MAX_DETAILS_BYTES}, "payload.custom_details")
    assert errors == ["'payload.custom_details' is larger than 65536 bytes as JSON"]


def test_a_stored_context_reads_back_and_rows_without_one_have_none():
    links = ({"href": "https://x", "text": "X"},)
    images = ({"src": "https://x/p.png", "href": "", "alt": ""},)
    context = AlertContext({"k": 1}, links, images)
    stored = context.stored()
    assert stored_context(stored["custom_details"], stored["links"], stored["images"]) == context
    assert AlertContext().stored() == {"custom_details": None, "links": None, "images": None}
    assert stored_context(None, None, None) == AlertContext()
    # A value of the wrong shape (edited by hand) is left out.
    assert stored_context(None, "nope", [{"alt": "no src"}]) == AlertContext()
