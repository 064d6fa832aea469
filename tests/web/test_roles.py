"""Roles: responders manage their own overrides, admins anyone's; the audit log records
every override change with its actor, and only admins read it."""

from __future__ import annotations

from oncall.web.keys import RUNTIME
from tests.support.factories import T0
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

OVERRIDES = "/api/v1/schedules/primary/overrides"


async def test_a_responder_cannot_add_an_override_for_someone_else(make_client):
    client = await make_client(directory=responders_directory())
    before = await written(client)
    status, body = await call(client, "POST", OVERRIDES, ALICE, json=override("bob"))
    assert status == 403
    assert "admin" in body["error"] and "bob" in body["error"]
    assert await written(client) == before


async def test_a_responder_cannot_delete_someone_elses_override(make_client):
    client = await make_client(directory=responders_directory())
    status, created = await call(client, "POST", OVERRIDES, BOB, json=override("bob"))
    assert status == 201
    before = await written(client)
    status, body = await call(client, "DELETE", f"{OVERRIDES}/{created['id']}", ALICE)
    assert status == 403 and "admin" in body["error"]
    assert await written(client) == before
    status, listed = await call(client, "GET", OVERRIDES, ALICE)
    assert [o["id"] for o in listed["overrides"]] == [created["id"]]


async def test_a_responder_adds_and_deletes_their_own_override(make_client):
    client = await make_client(directory=responders_directory())
    status, created = await call(client, "POST", OVERRIDES, ALICE, json=override("alice"))
    assert status == 201
    status, _ = await call(client, "DELETE", f"{OVERRIDES}/{created['id']}", ALICE)
    assert status == 204


async def test_an_admin_manages_others_overrides_and_the_audit_log_names_the_admin(make_client):
    client = await make_client(directory=roles_directory())
    status, created = await call(client, "POST", OVERRIDES, ADMIN, json=override("bob"))
    assert status == 201 and created["created_by"] == "dana"
    status, _ = await call(client, "DELETE", f"{OVERRIDES}/{created['id']}", ADMIN)
    assert status == 204
    status, log = await call(client, "GET", "/api/v1/audit", ADMIN)
    assert status == 200
    subject = f"schedule:primary/override:{created['id']}"
    assert [(e["actor"], e["action"], e["subject"]) for e in log["entries"]] == [
        ("dana", "override.delete", subject),
        ("dana", "override.create", subject),
    ]
    assert log["entries"][1]["detail"] == {
        "schedule": "primary",
        "user": "bob",
        "start": "2026-01-05T12:00:00Z",
        "end": "2026-01-05T14:00:00Z",
    }


async def test_a_deleted_override_leaves_a_record_of_who_deleted_it_and_what_it_was(
    make_client,
):
    client = await make_client(directory=roles_directory())
    status, created = await call(client, "POST", OVERRIDES, BOB, json=override("bob"))
    assert status == 201
    status, _ = await call(client, "DELETE", f"{OVERRIDES}/{created['id']}", BOB)
    assert status == 204
    status, log = await call(client, "GET", "/api/v1/audit", ADMIN)
    deleted = log["entries"][0]
    assert (deleted["actor"], deleted["action"], deleted["at"]) == (
        "bob",
        "override.delete",
        "2026-01-05T12:00:00Z",
    )
    assert deleted["detail"] == {
        "schedule": "primary",
        "user": "bob",
        "start": "2026-01-05T12:00:00Z",
        "end": "2026-01-05T14:00:00Z",
        "created_by": "bob",
        "created_at": "2026-01-05T12:00:00Z",
    }


async def test_the_audit_log_is_read_by_admins_only(make_client):
    client = await make_client(directory=roles_directory())
    status, body = await call(client, "GET", "/api/v1/audit", ALICE)
    assert status == 403 and "admin" in body["error"]
    status, _ = await call(client, "GET", "/api/v1/audit", {})
    assert status == 401


async def test_the_audit_log_pages_newest_first(make_client):
    client = await make_client(directory=roles_directory())
    for _ in range(5):
        status, _ = await call(client, "POST", OVERRIDES, ALICE, json=override("alice"))
        assert status == 201
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status, page = await call(client, "GET", "/api/v1/audit", ADMIN, params=params)
        assert status == 200 and len(page["entries"]) <= 2
        seen += [e["id"] for e in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)
    for bad in ("nonsense", "x" * 5000, "aWQ6MQ"):  # the last is an incidents cursor
        status, body = await call(client, "GET", "/api/v1/audit", ADMIN, params={"cursor": bad})
        assert (status, body["field"]) == (400, "cursor")


async def test_another_part_records_an_admin_action_through_the_audit_service(make_client):
    client = await make_client(directory=roles_directory())
    audit = client.app[RUNTIME].audit
    await audit.record("dana", "directory.reload", "directory", {"at": T0, "ok": True}, T0)
    status, log = await call(client, "GET", "/api/v1/audit", ADMIN)
    assert status == 200
    assert [(e["actor"], e["action"], e["detail"]) for e in log["entries"]] == [
        ("dana", "directory.reload", {"at": "2026-01-05T12:00:00Z", "ok": True})
    ]
