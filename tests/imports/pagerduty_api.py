"""A local PagerDuty REST API answering with the fixtures in tests/data/imports/pagerduty.

Listings are paged as PagerDuty pages them (`limit`, `offset`, `more`), smaller than the
importer asks for so that it must follow `more`. Every request must carry
`Authorization: Token token=TOKEN` and the version-2 `Accept` header (else 401 / 406, with
PagerDuty's error body). `GET /schedules/{id}` renders its entries only when `since` and
`until` are given, and `/users/{id}/notification_rules` answers high-urgency rules unless
`urgency=all`, as the API reference describes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.factories import DATA

FIXTURES = DATA / "imports" / "pagerduty"
ACCEPT = "application/vnd.pagerduty+json;version=2"
PAGES = {"users": 3, "schedules": 2, "escalation_policies": 1, "services": 3}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class PagerDutyApi:
    token: str
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    refused: int = 0
    empty: set[str] = field(default_factory=set)  # listings answered with nothing

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.authenticate])
        for key in PAGES:
            app.router.add_get(f"/{key}", self.listing)
        app.router.add_get("/users/{id}/contact_methods", self.contact_methods)
        app.router.add_get("/users/{id}/notification_rules", self.notification_rules)
        app.router.add_get("/schedules/{id}", self.schedule)
        app.router.add_get("/services/{id}/integrations/{integration}", self.integration)
        return app

    @web.middleware
    async def authenticate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        query: dict[str, list[str]] = {}
        for key, value in request.query.items():
            query.setdefault(key, []).append(value)
        self.requests.append((request.path, query))
        if request.headers.get("Authorization") != f"Token token={self.token}":
            self.refused += 1
            return web.json_response(
                {"error": {"message": "Unauthorized", "code": 2006}}, status=401
            )
        if request.headers.get("Accept") != ACCEPT:
            return web.json_response(
                {"error": {"message": "Not Acceptable", "code": 2001}}, status=406
            )
        return await handler(request)

    async def listing(self, request: web.Request) -> web.Response:
        key = request.path.strip("/")
        items = [] if key in self.empty else fixture(f"{key}.json")[key]
        size = min(int(request.query.get("limit", 25)), PAGES[key])
        offset = int(request.query.get("offset", 0))
        page = items[offset : offset + size]
        more = offset + size < len(items)
        return web.json_response(
            {key: page, "limit": size, "offset": offset, "more": more, "total": None}
        )

    async def contact_methods(self, request: web.Request) -> web.Response:
        return self.file(f"contact_methods/{request.match_info['id']}.json")

    async def notification_rules(self, request: web.Request) -> web.Response:
        body = self.load(f"notification_rules/{request.match_info['id']}.json")
        wanted = request.query.get("urgency", "high")
        if wanted != "all":
            body["notification_rules"] = [
                r for r in body["notification_rules"] if r["urgency"] == wanted
            ]
        return web.json_response(body)

    async def schedule(self, request: web.Request) -> web.Response:
        body = self.load(f"schedule_{request.match_info['id']}.json")
        if "since" not in request.query or "until" not in request.query:
            schedule = body["schedule"]
            for sub in [
                *schedule["schedule_layers"],
                schedule["final_schedule"],
                schedule["overrides_subschedule"],
            ]:
                sub["rendered_schedule_entries"] = []
        return web.json_response(body)

    async def integration(self, request: web.Request) -> web.Response:
        return self.file(f"integration_{request.match_info['integration']}.json")

    def load(self, name: str) -> Any:
        path = FIXTURES / name
        if not path.resolve().is_relative_to(FIXTURES.resolve()) or not path.is_file():
            raise web.HTTPNotFound(
                text=json.dumps({"error": {"message": "Not Found", "code": 2100}}),
                content_type="application/json",
            )
        return json.loads(path.read_text())

    def file(self, name: str) -> web.Response:
        return web.json_response(self.load(name))


def final_entries(schedule_id: str) -> list[tuple[str, str, str]]:
    """Return the fixture's final schedule as (start, end, user id)."""
    schedule = fixture(f"schedule_{schedule_id}.json")["schedule"]
    return [
        (e["start"], e["end"], e["user"]["id"])
        for e in schedule["final_schedule"]["rendered_schedule_entries"]
    ]


def override_entries(schedule_id: str) -> list[tuple[str, str, str]]:
    schedule = fixture(f"schedule_{schedule_id}.json")["schedule"]
    return [
        (e["start"], e["end"], e["user"]["id"])
        for e in schedule["overrides_subschedule"]["rendered_schedule_entries"]
    ]


SCHEDULE_IDS = [s["id"] for s in fixture("schedules.json")["schedules"]]
