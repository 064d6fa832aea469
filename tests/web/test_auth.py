"""Every route of the app refuses a request without its own kind of credential.

The table is the router itself: every route `create_app` registers is an API route (a user's
API token, `/metrics` its metrics token) unless it is listed below as open, a signed link,
or an ingest endpoint, so a route added later is covered without touching this file. Each
route is asked with no credential, a wrong one, and every other kind's (an integration's
ingest token on the API, a user's API token on ingest), in every way a credential can be
presented (bearer, HTTP Basic password, `?token=`); and once with the right one, which must
not be refused, so the table cannot pass because a route is unreachable. Admin-only routes
are asked once more with a responder's token, which they refuse with 403.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from oncall.directory.holder import DirectoryHolder
from oncall.directory.parse import parse_directory
from oncall.settings import load_settings
from oncall.web.app import create_app
from oncall.web.keys import RUNTIME
from oncall.web.throttle import Throttle
from tests.support.db import snapshot
from tests.support.factories import ALICE_TOKEN, AM_TOKEN, BOB_TOKEN, DIRECTORY_YAML

EV_TOKEN = "ev-token-0123456789abcdefghijklmnopqrstuv"
HB_TOKEN = "hb-token-0123456789abcdefghijklmnopqrstuv"
GRAFANA_TOKEN = "grafana-token-0123456789abcdefghijklmnopqrstuv"
OTHER_HB_TOKEN = "hb-other-0123456789abcdefghijklmnopqrstuv"
METRICS_TOKEN = "metrics-token-0123456789abcdefghijklmnopqrstuv"
WRONG = "wrong-token-0123456789abcdefghijklmnopqrstuv"
ADMIN_TOKEN = "dana-token-0123456789abcdefghijklmnopqrstuv"
DIRECTORY = DIRECTORY_YAML.replace(
    "integrations:\n",
    f"""integrations:
  - {{name: pd, type: events_v2, token: "{EV_TOKEN}"}}
  - {{name: grafana, type: grafana, token: "{GRAFANA_TOKEN}"}}
  - {{name: backups, type: heartbeat, token: "{HB_TOKEN}", interval: 1h}}
  - {{name: cron, type: heartbeat, token: "{OTHER_HB_TOKEN}", interval: 1h}}
""",
).replace(
    "users:\n",
    f"""users:
  - {{name: dana, role: admin, api_token: "{ADMIN_TOKEN}", contacts: []}}
""",
)

# Answer without any credential: probes for load balancers and monitoring, and the
# OpenAPI document (it documents; it holds no secret).
OPEN = {"/health", "/-/healthy", "/-/ready", "/api/v1/openapi.json"}
# The signed token in the path is the credential (tests/notify checks links and their
# refusals); an API token does not stand in for it, which `test_a_signed_link_...` checks.
SIGNED_LINKS = {"/a/{token}"}
# The feed secret in the path is the credential (tests/web/test_feeds.py checks it); an API
# token, in a header or the query, does not stand in for it.
FEEDS = {"/feeds/{user}/{secret}/{file}"}
# Outside these prefixes are the web UI's pages and static files: a login session and its
# CSRF token are their credential, never a token (tests/web/test_forms_refused.py and
# test_login.py check them).
MACHINE_PREFIXES = ("/api/", "/v2/", "/-/", "/metrics", "/health", "/a/", "/feeds/")
# Routes only an admin's token opens; the table's right credential for them is an admin's.
ADMIN_ONLY = {("GET", "/api/v1/audit"), ("POST", "/-/reload")}
# Ingest endpoints whose credential is their integration's token in `Authorization`, by the
# integration types they take.
INGEST = {
    "/api/v1/integrations/alertmanager": ("alertmanager", "grafana"),
    "/api/v1/integrations/grafana": ("grafana",),
    "/api/v1/heartbeats/{name}": ("heartbeat",),
}
# Events v2's credential is the routing key in the body; it refuses as PagerDuty does.
EVENTS_V2 = {"/v2/enqueue", "/api/v1/integrations/events", "/v2/change/enqueue"}
# Known gaps owned by another issue, each with why it is not refused today: in the API
# table as strict xfails.
NOT_YET: dict[tuple[str, str], str] = {}
INTEGRATION_TOKENS = {
    "alertmanager": AM_TOKEN,
    "events_v2": EV_TOKEN,
    "grafana": GRAFANA_TOKEN,
    "heartbeat": HB_TOKEN,
}
# Sample values for path variables: the heartbeat's name is the one whose token is right.
PATH_SAMPLES = {
    "id": "1",
    "name": "backups",
    "file": "primary.ics",
    "token": "x",
    "user": "alice",
    "secret": "x",
}


def app_routes() -> list[tuple[str, str, str]]:
    """Return (method, canonical path, a concrete path it matches) for every route.

    Raises AssertionError for a path variable without a sample value, naming it.
    """
    settings = load_settings({"ONCALL_SETTINGS": "/dev/null"})
    directory = DirectoryHolder(parse_directory(DIRECTORY, {}, "auth.yaml"))
    found = []
    for route in create_app(settings, directory).router.routes():
        info = route.resource.get_info() if route.resource else {}
        canonical = route.resource.canonical if route.resource else ""
        if not canonical.startswith(MACHINE_PREFIXES):
            continue
        if "path" in info:
            path = info["path"]
        else:
            names = re.findall(r"{(\w+)}", info["formatter"])
            missing = [name for name in names if name not in PATH_SAMPLES]
            assert not missing, f"add a sample value for {missing} ({canonical}) to PATH_SAMPLES"
            path = info["formatter"].format(**PATH_SAMPLES)
            assert info["pattern"].fullmatch(path), (canonical, path)
        found.append((route.method, canonical, path))
    return found


ROUTES = app_routes()
API_ROUTES = [
    (method, canonical, path)
    for method, canonical, path in ROUTES
    if canonical not in OPEN | SIGNED_LINKS | FEEDS | set(INGEST) | EVENTS_V2
]


def api_params() -> list[Any]:
    """Return the API table's parameters; a known gap is a strict xfail, so fixing it
    fails here until its exception is removed."""
    params = []
    for method, canonical, path in API_ROUTES:
        gap = NOT_YET.get((method, canonical))
        marks = [pytest.mark.xfail(strict=True, reason=gap)] if gap else []
        params.append(
            pytest.param(method, canonical, path, id=f"{method} {canonical}", marks=marks)
        )
    return params


def presented(token: str | None, how: str) -> tuple[dict[str, str], dict[str, str]]:
    """Return (headers, query) presenting `token` `how`: bearer, basic, query or none."""
    if token is None or how == "none":
        return {}, {}
    if how == "bearer":
        return {"Authorization": f"Bearer {token}"}, {}
    if how == "basic":
        return {"Authorization": "Basic " + base64.b64encode(f"x:{token}".encode()).decode()}, {}
    assert how == "query"
    return {}, {"token": token}


async def status_of(
    client: TestClient[Any, Any], method: str, path: str, token: str | None, how: str
) -> int:
    """Return the status `method path` answers with `token` presented `how` (an empty JSON
    object as the body: a refusal must not depend on the body)."""
    headers, query = presented(token, how)
    body = None if method in ("GET", "HEAD") else {}
    response = await client.request(method, path, headers=headers, params=query, json=body)
    return response.status


# (what, token, how): everything an API route must refuse.
API_REFUSED = [
    ("no credential", None, "none"),
    ("empty bearer", "", "bearer"),
    ("a wrong token", WRONG, "bearer"),
    ("a wrong token as Basic password", WRONG, "basic"),
    ("a wrong token in the query", WRONG, "query"),
    ("a user token under an unknown scheme", ALICE_TOKEN, "token-scheme"),
    *[
        (f"the {kind} integration's token{suffix}", token, how)
        for kind, token in INTEGRATION_TOKENS.items()
        for suffix, how in (
            ("", "bearer"),
            (" as Basic password", "basic"),
            (" in the query", "query"),
        )
    ],
]


def api_credential(method: str, canonical: str) -> str:
    """Return the credential a route under the API table accepts."""
    if canonical == "/metrics":
        return METRICS_TOKEN
    return ADMIN_TOKEN if (method, canonical) in ADMIN_ONLY else ALICE_TOKEN


@pytest.fixture
async def auth_client(make_client: Any) -> TestClient[Any, Any]:
    # With a metrics token, /metrics on the main port is under the table too (without one
    # it is refused: tests/web/test_metrics.py).
    client: TestClient[Any, Any] = await make_client(
        directory=DIRECTORY, server_metrics_token=METRICS_TOKEN
    )
    # The table presents many wrong tokens from one address, which the throttle would
    # answer 429 before long; tests/web/test_throttle.py tests the throttle itself.
    client.app[RUNTIME].throttle = Throttle(limit=1_000_000)
    return client


async def refusals(
    client: TestClient[Any, Any],
    method: str,
    path: str,
    cases: list[tuple[str, str | None, str]],
) -> list[str]:
    """Return each case of `cases` that `method path` did not answer with 401."""
    wrong = []
    for what, token, how in cases:
        if how == "token-scheme":
            response = await client.request(
                method, path, headers={"Authorization": f"Token {token}"}
            )
            status = response.status
        else:
            status = await status_of(client, method, path, token, how)
        if status != 401:
            wrong.append(f"{what}: {status}")
    return wrong


@pytest.mark.parametrize(("method", "canonical", "path"), api_params())
async def test_an_api_route_answers_401_to_anything_but_its_own_credential(
    auth_client, method, canonical, path
):
    cases = list(API_REFUSED)
    if canonical == "/metrics":  # its credential is the metrics token: a user's is another kind
        cases += [("a user's API token", ALICE_TOKEN, "bearer")]
    assert await refusals(auth_client, method, path, cases) == []
    right = await status_of(auth_client, method, path, api_credential(method, canonical), "bearer")
    assert right != 401
    if (method, canonical) in ADMIN_ONLY:
        assert await status_of(auth_client, method, path, ALICE_TOKEN, "bearer") == 403


INGEST_ROUTES = [(m, c, p) for m, c, p in ROUTES if c in INGEST]


@pytest.mark.parametrize(
    ("method", "canonical", "path"), INGEST_ROUTES, ids=[f"{m} {c}" for m, c, _ in INGEST_ROUTES]
)
async def test_an_ingest_route_answers_401_to_anything_but_its_integrations_token(
    auth_client, method, canonical, path
):
    kinds = INGEST[canonical]
    own = INTEGRATION_TOKENS[kinds[0]]
    others = [(k, t) for k, t in INTEGRATION_TOKENS.items() if k not in kinds]
    cases: list[tuple[str, str | None, str]] = [
        ("no credential", None, "none"),
        ("a wrong token", WRONG, "bearer"),
        ("a wrong token as Basic password", WRONG, "basic"),
        ("its own token in the query", own, "query"),
        ("a user's API token", ALICE_TOKEN, "bearer"),
        ("another user's API token as Basic password", BOB_TOKEN, "basic"),
        *[(f"the {k} integration's token", t, "bearer") for k, t in others],
    ]
    if kinds == ("heartbeat",):
        cases.append(("another heartbeat's token", OTHER_HB_TOKEN, "bearer"))
    before = await snapshot(auth_client)
    assert await refusals(auth_client, method, path, cases) == []
    assert await snapshot(auth_client) == before
    for kind in kinds:
        assert await status_of(auth_client, method, path, INTEGRATION_TOKENS[kind], "bearer") != 401


EVENTS_ROUTES = [(m, c, p) for m, c, p in ROUTES if c in EVENTS_V2]


@pytest.mark.parametrize(
    ("method", "canonical", "path"), EVENTS_ROUTES, ids=[f"{m} {c}" for m, c, _ in EVENTS_ROUTES]
)
async def test_events_v2_refuses_any_routing_key_but_an_events_v2_integrations(
    auth_client, method, canonical, path
):
    # PagerDuty answers a bad routing key with 400 "invalid event" (its clients expect
    # that); a user's API token in `Authorization` does not stand in for the key.
    def event(routing_key: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "event_action": "trigger",
            "payload": {"summary": "s", "source": "s", "severity": "info"},
        }
        if routing_key is not None:
            body["routing_key"] = routing_key
        return body

    user = {"Authorization": f"Bearer {ALICE_TOKEN}"}
    cases = [
        ("no routing key", None, {}),
        ("no routing key, a user's API token as bearer", None, user),
        ("a wrong routing key", WRONG, {}),
        ("a user's API token as routing key", ALICE_TOKEN, user),
        ("the alertmanager integration's token", AM_TOKEN, {}),
        ("the heartbeat integration's token", HB_TOKEN, {}),
    ]
    before = await snapshot(auth_client)
    wrong = []
    for what, key, headers in cases:
        response = await auth_client.request(method, path, json=event(key), headers=headers)
        answer = await response.json()
        refused = response.status == 400 and any("routing" in e for e in answer.get("errors", []))
        if not refused:
            wrong.append(f"{what}: {response.status} {answer}")
    assert wrong == []
    assert await snapshot(auth_client) == before
    response = await auth_client.request(method, path, json=event(EV_TOKEN))
    assert response.status == 202


async def test_a_signed_link_is_not_opened_by_an_api_token(auth_client):
    for method in ("GET", "POST"):
        response = await auth_client.request(
            method, "/a/not-a-signed-token", headers={"Authorization": f"Bearer {ALICE_TOKEN}"}
        )
        assert response.status == 403


FEED_ROUTES = [(m, c, p) for m, c, p in ROUTES if c in FEEDS]


@pytest.mark.parametrize(
    ("method", "canonical", "path"), FEED_ROUTES, ids=[f"{m} {c}" for m, c, _ in FEED_ROUTES]
)
async def test_a_feed_url_is_not_opened_by_an_api_token(auth_client, method, canonical, path):
    # The sample path's secret is wrong: whatever else comes with it, the feed is not read.
    for how in ("none", "bearer", "basic", "query"):
        assert await status_of(auth_client, method, path, ALICE_TOKEN, how) == 404, how


def test_every_exception_is_a_route_of_the_app():
    # A renamed route must not leave a stale exception behind (nor escape the table).
    canonicals = {canonical for _, canonical, _ in ROUTES}
    exempt = OPEN | SIGNED_LINKS | FEEDS | set(INGEST) | EVENTS_V2 | {c for _, c in NOT_YET}
    assert exempt <= canonicals
    assert {(m, c) for m, c, _ in ROUTES} >= set(NOT_YET) | ADMIN_ONLY
    assert len(API_ROUTES) >= 10  # the table is not empty by a mistake in the filter
