"""What an alert carries besides its labels and annotations: its sender's details (any
JSON), links and images, normalised where they enter. Pure.

As PagerDuty's Events API v2 documents them (`payload.custom_details`, `links`, `images`):

    "custom_details": {"free": "2%", "disks": [{"name": "sda", "used": 0.98}]},
    "links": [{"href": "https://grafana.example.com/d/disk", "text": "Disk dashboard"}],
    "images": [{"src": "https://grafana.example.com/render/disk.png",
                "href": "https://grafana.example.com/d/disk", "alt": "Disk usage"}]

They are stored as given, structured (the alerts' JSON columns), never as markup: every
string is made storable (NUL and lone surrogates become U+FFFD), a URL or a link's text
is one line, and the keys of a link or an image other than those above are dropped. A
URL is kept whatever its scheme: whoever shows it decides whether it may be a link
(oncall.notify.messages.web_url). Bounds keep one alert small: over them the event is
refused with an error naming the field, as every other bad field is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from oncall.ingest.text import multiline, one_line, storable

MAX_LINKS = 20
MAX_IMAGES = 10
MAX_URL = 4096  # characters of an href or a src: Grafana's panel URLs run long
MAX_LINK_TEXT = 1024  # characters of a link's text or an image's alt
MAX_DETAILS_BYTES = 64 * 1024  # custom_details as compact UTF-8 JSON
MAX_DETAILS_DEPTH = 16  # levels of arrays and objects within custom_details

Link = dict[str, str]  # {"href", "text"}
Image = dict[str, str]  # {"src", "href", "alt"}


@dataclass(frozen=True)
class AlertContext:
    """An alert's details, links and images (None and empty when it has none)."""

    custom_details: Any = None
    links: tuple[Link, ...] = ()
    images: tuple[Image, ...] = ()

    def stored(self) -> dict[str, Any]:
        """Return the values of the alert row's columns: NULL for what it lacks."""
        return {
            "custom_details": self.custom_details,
            "links": list(self.links) or None,
            "images": list(self.images) or None,
        }


NO_CONTEXT = AlertContext()


def stored_context(custom_details: Any, links: Any, images: Any) -> AlertContext:
    """Return the context of a stored row's columns (NULL for rows written before them).
    A value of the wrong shape (edited by hand, say) is left out rather than trusted."""
    return AlertContext(
        custom_details,
        tuple(_stored_items(links, ("href", "text"), "href")),
        tuple(_stored_items(images, ("src", "href", "alt"), "src")),
    )


def _stored_items(value: Any, keys: tuple[str, ...], required: str) -> list[dict[str, str]]:
    if not isinstance(value, list):
        return []
    items = []
    for item in value:
        if isinstance(item, Mapping) and isinstance(item.get(required), str):
            items.append({key: str(item.get(key) or "") for key in keys})
    return items


def _text(item: Mapping[str, Any], key: str, where: str, limit: int, errors: list[str]) -> str:
    """Return an optional one-line string of a link or an image, "" when absent."""
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        errors.append(f"'{where}.{key}' must be a string")
        return ""
    if len(value) > limit:
        errors.append(f"'{where}.{key}' is longer than {limit} characters")
        return ""
    return one_line(value).strip()


def _items(
    value: Any, where: str, limit: int, errors: list[str]
) -> list[tuple[str, Mapping[str, Any]]]:
    """Return each object of a list with its path; a wrong shape is added to `errors`."""
    if value is None:
        return []
    if not isinstance(value, list):
        errors.append(f"'{where}' must be a list")
        return []
    if len(value) > limit:
        errors.append(f"'{where}' has more than {limit} items")
        return []
    found: list[tuple[str, Mapping[str, Any]]] = []
    for index, item in enumerate(value):
        if isinstance(item, dict):
            found.append((f"{where}[{index}]", item))
        else:
            errors.append(f"'{where}[{index}]' must be an object")
    return found


def parse_links(value: Any, where: str, errors: list[str]) -> tuple[Link, ...]:
    """Return the links of a `links` list, each {"href", "text"}; every problem is added
    to `errors` (an href is required, as PagerDuty documents)."""
    links = []
    for path, item in _items(value, where, MAX_LINKS, errors):
        known = len(errors)
        href = _text(item, "href", path, MAX_URL, errors)
        if not href:
            if len(errors) == known:  # else its type or length was the problem, told
                errors.append(f"'{path}.href' is missing or blank")
            continue
        links.append({"href": href, "text": _text(item, "text", path, MAX_LINK_TEXT, errors)})
    return tuple(links)


def parse_images(value: Any, where: str, errors: list[str]) -> tuple[Image, ...]:
    """Return the images of an `images` list, each {"src", "href", "alt"} (href and alt
    "" when not given); every problem is added to `errors` (a src is required)."""
    images = []
    for path, item in _items(value, where, MAX_IMAGES, errors):
        known = len(errors)
        src = _text(item, "src", path, MAX_URL, errors)
        if not src:
            if len(errors) == known:
                errors.append(f"'{path}.src' is missing or blank")
            continue
        images.append(
            {
                "src": src,
                "href": _text(item, "href", path, MAX_URL, errors),
                "alt": _text(item, "alt", path, MAX_LINK_TEXT, errors),
            }
        )
    return tuple(images)


def parse_details(value: Any, where: str, errors: list[str]) -> Any:
    """Return `custom_details` (any JSON value; None when absent) with every string and
    key storable and text kept multi-line; a value nested deeper than MAX_DETAILS_DEPTH or
    larger than MAX_DETAILS_BYTES as compact JSON is added to `errors`."""
    if value is None:
        return None
    try:
        cleaned = _clean(value, 1)
    except _TooDeep:
        errors.append(f"'{where}' is nested deeper than {MAX_DETAILS_DEPTH} levels")
        return None
    # The body is already bounded (512 KiB), so writing it out once to measure is cheap.
    size = len(json.dumps(cleaned, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_DETAILS_BYTES:
        errors.append(f"'{where}' is larger than {MAX_DETAILS_BYTES} bytes as JSON")
        return None
    return cleaned


class _TooDeep(ValueError):
    pass


def _clean(value: Any, depth: int) -> Any:
    """Return `value` with its strings and keys cleaned; raises _TooDeep past the depth
    (so the walk never goes deeper than MAX_DETAILS_DEPTH)."""
    if isinstance(value, str):
        return multiline(value)
    if not isinstance(value, dict | list):
        return value  # a number, true, false or null
    if depth > MAX_DETAILS_DEPTH:
        raise _TooDeep()
    if isinstance(value, dict):
        return {storable(str(key)): _clean(item, depth + 1) for key, item in value.items()}
    return [_clean(item, depth + 1) for item in value]
