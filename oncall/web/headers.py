"""Security headers on every response, set in one `on_response_prepare` hook."""

from __future__ import annotations

from aiohttp import web

SERVER = "oncall"  # no versions: they only help an attacker pick an exploit
# For pages that set no policy of their own: nothing loads from anywhere but inline style,
# forms post back here, and no other site may frame them (clickjacking of the buttons).
HTML_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def html_policy(existing: str | None) -> str:
    """Return the Content-Security-Policy of an HTML page: its own with `frame-ancestors
    'none'` added when it names no frame ancestors, or HTML_POLICY when it has none."""
    if not existing:
        return HTML_POLICY
    if "frame-ancestors" in existing:
        return existing
    return f"{existing.rstrip('; ')}; frame-ancestors 'none'"


async def security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """Set the headers every response carries, and those of HTML pages."""
    headers = response.headers
    headers["Server"] = SERVER
    headers["X-Content-Type-Options"] = "nosniff"
    # Signed links carry their token in the URL: no Referer may take it to another site.
    headers.setdefault("Referrer-Policy", "no-referrer")
    if response.content_type == "text/html":
        headers["X-Frame-Options"] = "DENY"
        headers["Content-Security-Policy"] = html_policy(headers.get("Content-Security-Policy"))


def install(app: web.Application) -> None:
    """Add the hook to `app` (each app that serves a listener needs its own)."""
    app.on_response_prepare.append(security_headers)
