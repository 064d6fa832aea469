"""Routing: the first route whose matchers all accept the incident's labels wins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from oncall.directory.model import Route
from oncall.routing.matchers import matches_all


def choose_route(routes: Sequence[Route], labels: Mapping[str, str]) -> Route:
    """Return the first route matching `labels`.

    The directory guarantees the last route is a catch-all, so one always matches; a
    ValueError here means the directory was built without that check.
    """
    for route in routes:
        if matches_all(route.matchers, labels):
            return route
    raise ValueError("no route matched and there is no catch-all route")
