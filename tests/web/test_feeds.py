"""Calendar feeds: a URL per user with a secret of its own, read-only, rotated and revoked;
the API token in `?token=` no longer opens a feed."""

from __future__ import annotations

import logging

import icalendar
from aiohttp.test_utils import make_mocked_request
from aiohttp.web import Response

from oncall.web.access_log import AccessLogger
from tests.support.factories import ALICE_TOKEN
from tests.support.roles import (
    ADMIN,
    ALICE,
    BOB,
    call,
    override,
    responders_directory,
    roles_directory,
    written,
)

FEED = "/api/v1/users/{}/calendar-feed"
PUBLIC_URL = "https://oncall.example.org"


def path_of(url: str) -> str:
    assert url.startswith(f"{PUBLIC_URL}/feeds/"), url
    return url.removeprefix(PUBLIC_URL)


async def feed_client(make_client):
    return await make_client(directory=roles_directory(), server_public_url=PUBLIC_URL)


async def test_the_api_token_in_the_query_no_longer_opens_the_feed(make_client):
    client = await make_client(directory=responders_directory())
    response = await client.get("/api/v1/schedules/primary.ics", params={"token": ALICE_TOKEN})
    assert response.status == 401
    # In a header it still does: a client that can send one keeps working.
    response = await client.get("/api/v1/schedules/primary.ics", headers=ALICE)
    assert response.status == 200


async def test_a_feed_url_reads_the_same_feed_without_any_token(make_client):
    client = await feed_client(make_client)
    await call(client, "POST", "/api/v1/schedules/primary/overrides", ALICE, json=override("alice"))
    status, created = await call(client, "POST", FEED.format("alice"), ALICE)
    assert status == 201 and created["user"] == "alice"
    assert list(created["feeds"]) == ["primary"]
    path = path_of(created["feeds"]["primary"])
    assert path.startswith("/feeds/alice/") and path.endswith("/primary.ics")
    by_url = await client.get(path)
    assert by_url.status == 200
    assert by_url.headers["Content-Type"].startswith("text/calendar")
    assert "no-store" in by_url.headers["Cache-Control"]
    by_token = await client.get("/api/v1/schedules/primary.ics", headers=ALICE)
    ours = icalendar.Calendar.from_ical(await by_url.read())
    theirs = icalendar.Calendar.from_ical(await by_token.read())
    assert ours == theirs and len(ours.walk("VEVENT")) > 100


async def test_a_feed_url_is_read_only(make_client):
    client = await feed_client(make_client)
    _, created = await call(client, "POST", FEED.format("alice"), ALICE)
    path = path_of(created["feeds"]["primary"])
    before = await written(client)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        response = await client.request(method, path, json={})
        assert response.status == 405, method
    assert await written(client) == before
    # It opens nothing else: the API refuses the secret as a token.
    secret = path.split("/")[3]
    response = await client.get("/api/v1/incidents", headers={"Authorization": f"Bearer {secret}"})
    assert response.status == 401
    assert (await client.get(path)).status == 200


async def test_rotating_ends_the_old_url_and_revoking_ends_the_new_one(make_client):
    client = await feed_client(make_client)
    _, first = await call(client, "POST", FEED.format("alice"), ALICE)
    _, second = await call(client, "POST", FEED.format("alice"), ALICE)
    old, new = path_of(first["feeds"]["primary"]), path_of(second["feeds"]["primary"])
    assert old != new
    assert (await client.get(old)).status == 404
    assert (await client.get(new)).status == 200
    status, _ = await call(client, "DELETE", FEED.format("alice"), ALICE)
    assert status == 204
    assert (await client.get(new)).status == 404
    status, body = await call(client, "DELETE", FEED.format("alice"), ALICE)
    assert (status, body["field"]) == (404, "name")


async def test_another_users_secret_does_not_open_a_users_feed(make_client):
    client = await feed_client(make_client)
    _, alices = await call(client, "POST", FEED.format("alice"), ALICE)
    _, bobs = await call(client, "POST", FEED.format("bob"), BOB)
    alice_secret = path_of(alices["feeds"]["primary"]).split("/")[3]
    bob_path = path_of(bobs["feeds"]["primary"])
    assert (await client.get(bob_path.replace(bob_path.split("/")[3], alice_secret))).status == 404
    assert (await client.get(bob_path)).status == 200


async def test_a_responder_cannot_manage_another_users_feed_and_an_admin_can(make_client):
    client = await feed_client(make_client)
    _, bobs = await call(client, "POST", FEED.format("bob"), BOB)
    before = await written(client)
    for method in ("POST", "DELETE"):
        status, body = await call(client, method, FEED.format("bob"), ALICE)
        assert status == 403 and "admin" in body["error"], method
    assert await written(client) == before
    assert (await client.get(path_of(bobs["feeds"]["primary"]))).status == 200
    status, _ = await call(client, "DELETE", FEED.format("bob"), ADMIN)
    assert status == 204
    assert (await client.get(path_of(bobs["feeds"]["primary"]))).status == 404
    _, log = await call(client, "GET", "/api/v1/audit", ADMIN)
    assert [(e["actor"], e["action"], e["subject"]) for e in log["entries"]] == [
        ("dana", "calendar_feed.revoke", "user:bob"),
        ("bob", "calendar_feed.create", "user:bob"),
    ]
    status, body = await call(client, "POST", FEED.format("zed"), ADMIN)
    assert (status, body["field"]) == (404, "name")


def test_the_access_log_does_not_record_a_feed_secret(caplog):
    logger = AccessLogger(logging.getLogger("test.access"), "")
    request = make_mocked_request("GET", "/feeds/alice/s3cret-feed-secret/primary.ics")
    with caplog.at_level(logging.INFO, logger="test.access"):
        logger.log(request, Response(), 0.001)
    (record,) = caplog.records
    assert "s3cret" not in str(record.__dict__)
