"""Every state-changing request of the web UI needs a session and its CSRF token: each
POST route of the pages, without a session, without the token and with another session's
token, is refused and writes nothing.

The routes are read from the app's router, so a page added later is covered without
changing this test; a route with a placeholder this test cannot fill fails it.
"""

from __future__ import annotations

import re
from typing import Any

from oncall.db.models import metadata
from oncall.web.keys import RUNTIME
from tests.support.factories import AM_AUTH, make_alert, make_webhook
from tests.support.roles import ADMIN, _rows, override, roles_directory
from tests.support.ui import log_in, post_form

# Posts that are not pages' forms: the API and ingest (tokens), signed links (the URL's
# signature is the credential), ops, and the login form (no session yet: its own tests).
NOT_PAGES = ("/api/", "/v2/", "/a/", "/-/", "/login", "/feeds/", "/health", "/metrics")
FIELDS = {
    "text": "a note",
    "duration": "1h",
    "level": "2",
    "to": "fast",
    "user": "bob",
    "start": "2026-01-05T13:00",
    "end": "2026-01-05T14:00",
    "name": "w",
    "match": 'severity="critical"',
}


def page_posts(app: Any) -> list[str]:
    """Return the canonical paths of every POST route of the pages."""
    found = set()
    for route in app.router.routes():
        resource = route.resource
        if route.method != "POST" or resource is None:
            continue
        if not resource.canonical.startswith(NOT_PAGES):
            found.add(resource.canonical)
    return sorted(found)


async def _ids(client: Any) -> dict[str, int]:
    """Create an incident, an override and a maintenance window; return their ids."""
    response = await client.post(
        "/api/v1/integrations/alertmanager",
        json=make_webhook([make_alert("db1")]),
        headers=AM_AUTH,
    )
    [incident] = (await response.json())["incidents"]
    added = await client.post(
        "/api/v1/schedules/primary/overrides", json=override("bob"), headers=ADMIN
    )
    window = await client.post(
        "/api/v1/maintenance",
        json={
            "name": "w",
            "start": "2026-01-05T12:00:00Z",
            "end": "2026-01-05T18:00:00Z",
            "match": ['severity="none"'],
        },
        headers=ADMIN,
    )
    assert added.status == 201 and window.status == 201, await window.text()
    return {
        "incidents": incident,
        "overrides": (await added.json())["id"],
        "maintenance": (await window.json())["id"],
    }


def concrete(canonical: str, ids: dict[str, int]) -> str:
    """Return `canonical` with its placeholders filled with existing things."""
    path = canonical.replace("{name}", "primary")

    def fill(match: re.Match[str]) -> str:
        owner = match.group(1)
        assert owner in ids, f"{canonical}: no test value for its {{id}}"
        return f"/{owner}/{ids[owner]}"

    path = re.sub(r"/(\w+)/\{id[^}]*\}", fill, path)
    assert "{" not in path, f"{canonical}: a placeholder this test cannot fill"
    return path


async def everything(client: Any) -> dict[str, list[tuple[Any, ...]]]:
    # Not the lease either: on PostgreSQL the instance renews it on its own, all along.
    names = tuple(name for name in metadata.tables if name not in ("meta", "leadership"))
    return await client.app[RUNTIME].db.run(_rows, names)


async def test_every_page_post_without_a_session_or_its_csrf_token_is_refused(
    make_client: Any, aiohttp_client: Any
) -> None:
    client = await make_client(directory=roles_directory())
    ids = await _ids(client)
    routes = page_posts(client.app)
    # The pages' actions: each area's forms are here (the test fails on an empty list).
    assert {"/logout", "/incidents/{id}/acknowledge"} <= set(routes), routes
    paths = [concrete(route, ids) for route in routes]
    before = await everything(client)
    # No session at all.
    for path in paths:
        response = await client.post(path, data=FIELDS, allow_redirects=False)
        assert response.status == 403, (path, response.status)
    assert await everything(client) == before
    # dana (an admin: every form is hers to post) logged in, without the token, with a
    # wrong one, and with the right one from another site.
    token = await log_in(client, "dana")
    before = await everything(client)
    for path in paths:
        for fields, headers in (
            (FIELDS, {}),
            ({**FIELDS, "_csrf": "x" * len(token)}, {}),
            ({**FIELDS, "_csrf": token}, {"Origin": "https://evil.example"}),
            ({**FIELDS, "_csrf": token}, {"Sec-Fetch-Site": "cross-site"}),
        ):
            response = await client.post(path, data=fields, headers=headers, allow_redirects=False)
            assert response.status == 403, (path, fields.get("_csrf"), headers)
    assert await everything(client) == before
    # The same posts with the token do act (so the refusals above were the token's doing).
    response = await post_form(client, f"/incidents/{ids['incidents']}/acknowledge", token)
    assert response.status == 303
    assert await everything(client) != before


def page_gets(app: Any) -> list[str]:
    """Return the canonical paths of every GET route of the pages but the login form."""
    found = {
        route.resource.canonical
        for route in app.router.routes()
        if route.method == "GET" and route.resource is not None
    }
    return sorted(p for p in found if not p.startswith((*NOT_PAGES, "/static")))


async def test_every_page_sends_a_visitor_without_a_session_to_log_in(make_client: Any) -> None:
    client = await make_client(directory=roles_directory())
    ids = await _ids(client)
    routes = page_gets(client.app)
    assert {"/", "/incidents/{id}"} <= set(routes), routes
    for route in routes:
        path = concrete(route, ids)
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"].startswith("/login?next="), path
