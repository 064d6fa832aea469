"""Routing: the first route whose matchers all accept the incident's labels wins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from oncall.directory.model import Route
from oncall.routing.matchers import Matcher, first_failing

# An earlier route that did not match, with the first of its matchers that refused.
Skipped = tuple[Route, Matcher]


def explain_route(
    routes: Sequence[Route], labels: Mapping[str, str]
) -> tuple[Route, list[Skipped]]:
    """Return the first route matching `labels`, with each route before it and the
    matcher that refused the labels there.

    The directory guarantees the last route is a catch-all, so one always matches; a
    ValueError here means the directory was built without that check.
    """
    skipped: list[Skipped] = []
    for route in routes:
        failed = first_failing(route.matchers, labels)
        if failed is None:
            return route, skipped
        skipped.append((route, failed))
    raise ValueError("no route matched and there is no catch-all route")


def choose_route(routes: Sequence[Route], labels: Mapping[str, str]) -> Route:
    """Return the first route matching `labels` (see `explain_route`)."""
    return explain_route(routes, labels)[0]
