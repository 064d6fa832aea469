"""The /schedules pages (being built)."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    """Add this module's pages to `app`."""
