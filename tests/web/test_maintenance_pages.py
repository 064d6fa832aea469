"""The /maintenance page: the directory file's and the API's windows in the viewer's time
zone; an admin adds and ends windows through its forms, a responder only reads."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

from tests.support.factories import ALICE_TOKEN, BOB_TOKEN, DIRECTORY_YAML, T0, rfc3339
from tests.support.roles import call
from tests.support.ui import log_in, post_form

ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
BOB = {"Authorization": f"Bearer {BOB_TOKEN}"}
API = "/api/v1/maintenance"
EVIL = "<script>alert(1)</script>"
# alice (Europe/Berlin, UTC+1 in January) is an admin; bob (UTC) a responder.
ADMIN_DIRECTORY = DIRECTORY_YAML.replace(
    "    full_name: Alice Example\n", "    full_name: Alice Example\n    role: admin\n"
)
FILE_WINDOWS = f"""
maintenance:
  - name: disks
    start: "{rfc3339(T0 - timedelta(hours=1))}"
    end: "{rfc3339(T0 + timedelta(hours=1))}"
    match: ['alertname="DiskFull"']
  - name: "nightly {EVIL}"
    every: {{days: [mon, tue, wed, thu, fri], from: "22:00", to: "02:00", time_zone: Europe/Berlin}}
    integrations: [prometheus]
  - name: last week
    start: "{rfc3339(T0 - timedelta(days=7))}"
    end: "{rfc3339(T0 - timedelta(days=6))}"
"""


def cards(text: str) -> list[str]:
    """Return each window's card as plain text, in page order."""
    found = re.findall(r'<li class="card window"[^>]*>(.*?)\n</li>', text, re.S)
    return [re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", c))).strip() for c in found]


async def test_it_shows_the_files_windows_in_the_viewers_zone(make_client: Any) -> None:
    client = await make_client(directory=ADMIN_DIRECTORY + FILE_WINDOWS)
    await log_in(client)
    text = await (await client.get("/maintenance")).text()
    current, ended = text.split('id="ended"')
    assert EVIL not in text and f"nightly {html.escape(EVIL)}" in text
    disks, nightly = cards(current)
    # T0 is 13:00 in Berlin; the window runs an hour either side.
    assert disks.startswith("disks open Open now, until 2026-01-05 14:00 CET")
    assert "From 2026-01-05 12:00 CET until 2026-01-05 14:00 CET" in disks
    assert 'alertname="DiskFull"' in disks and "In the directory file" in disks
    assert nightly.startswith(f"nightly {EVIL} upcoming Not open now; opens 2026-01-05 22:00 CET")
    assert (
        "Weekly, every Mon, Tue, Wed, Thu, Fri from 22:00 until 02:00 the next day "
        "(Europe/Berlin time)" in nightly
    )
    assert "only from prometheus" in nightly
    [last_week] = cards(ended)
    assert last_week.startswith("last week ended Ended 2025-12-30 13:00 CET")
    assert "Every incident" in last_week
    # The file's windows are changed in the file: no End button.
    assert "/end" not in text


async def test_an_admin_adds_and_ends_a_window_through_the_forms(make_client: Any) -> None:
    client = await make_client(directory=ADMIN_DIRECTORY)
    token = await log_in(client)
    page = await (await client.get("/maintenance")).text()
    assert 'action="/maintenance"' in page and "Add window" in page
    # The form starts at now in the viewer's zone.
    assert 'name="start" type="datetime-local" required value="2026-01-05T13:00"' in page
    response = await post_form(
        client,
        "/maintenance",
        token,
        name=f"db upgrade {EVIL}",
        start="2026-01-05T14:00",
        end="2026-01-05T16:30",
        match='team="db"\r\n\r\n  instance=~"db-.*"  \r\n',
        integrations="prometheus",
    )
    assert (response.status, response.headers["Location"]) == (303, "/maintenance")
    status, listed = await call(client, "GET", API, ALICE)
    [window] = listed["windows"]
    assert window["name"] == f"db upgrade {EVIL}"
    # 14:00 and 16:30 in Berlin, stored as instants.
    assert (window["start"], window["end"]) == ("2026-01-05T13:00:00Z", "2026-01-05T15:30:00Z")
    assert window["match"] == ['team="db"', 'instance=~"db-.*"']
    assert window["integrations"] == ["prometheus"]
    assert (window["source"], window["created_by"], window["open"]) == ("api", "alice", False)

    text = await (await client.get("/maintenance")).text()
    assert EVIL not in text
    [card] = cards(text)
    assert card.startswith(f"db upgrade {EVIL} upcoming Not open now; opens 2026-01-05 14:00 CET")
    assert "From 2026-01-05 14:00 CET until 2026-01-05 16:30 CET" in card
    assert "Added by alice" in card and "End" in card
    assert f'action="/maintenance/{window["id"]}/end"' in text

    response = await post_form(client, f"/maintenance/{window['id']}/end", token)
    assert (response.status, response.headers["Location"]) == (303, "/maintenance")
    status, listed = await call(client, "GET", API, ALICE)
    assert listed["windows"] == []
    status, audit = await call(client, "GET", "/api/v1/audit", ALICE)
    assert status == 200
    assert [e["action"] for e in audit["entries"]][:2] == ["maintenance.delete", "maintenance.add"]


async def test_ending_an_open_window_says_what_happens(make_client: Any) -> None:
    client = await make_client(directory=ADMIN_DIRECTORY)
    token = await log_in(client)
    response = await post_form(
        client, "/maintenance", token, name="now", start="2026-01-05T12:30", end="2026-01-05T14:00"
    )
    assert response.status == 303
    text = await (await client.get("/maintenance")).text()
    [card] = cards(text)
    assert card.startswith("now open Open now, until 2026-01-05 14:00 CET")
    assert "Every incident" in card
    assert "Ends it now by deleting it" in card


async def test_a_bad_window_is_refused_with_its_field_and_the_form_kept(make_client: Any) -> None:
    client = await make_client(directory=ADMIN_DIRECTORY)
    token = await log_in(client)
    cases = [
        ({"match": 'team="db"\nnot a matcher'}, "Matchers, line 2"),
        ({"end": "2026-01-05T13:00"}, "End: must be after start"),
        ({"start": "tomorrow"}, "Start: expected a date and time"),
        ({"integrations": "nagios"}, "Integrations: expected an integration's name"),
        ({"name": "  "}, "Name: expected a non-empty string"),
    ]
    for change, message in cases:
        fields = {"name": "kept name", "start": "2026-01-05T14:00", "end": "2026-01-05T15:00"}
        fields.update(change)
        response = await post_form(client, "/maintenance", token, **fields)
        assert response.status == 400, change
        text = await response.text()
        assert message in html.unescape(text), change
        assert f'value="{html.escape(fields["name"])}"' in text
    assert (await call(client, "GET", API, ALICE))[1]["windows"] == []


async def test_a_responder_sees_the_list_and_cannot_change_it(make_client: Any) -> None:
    client = await make_client(directory=ADMIN_DIRECTORY)
    status, created = await call(
        client,
        "POST",
        API,
        ALICE,
        json={"name": "api window", "start": "2026-01-05T14:00:00Z", "end": "2026-01-05T15:00:00Z"},
    )
    assert status == 201
    token = await log_in(client, "bob")
    text = await (await client.get("/maintenance")).text()
    assert "api window" in text
    assert 'action="/maintenance' not in text and "Add window" not in text
    # bob's zone is UTC.
    assert "From 2026-01-05 14:00 UTC until 2026-01-05 15:00 UTC" in cards(text)[0]
    fields = {"name": "mine", "start": "2026-01-05T14:00", "end": "2026-01-05T15:00"}
    response = await post_form(client, "/maintenance", token, **fields)
    assert response.status == 403
    assert "Only an admin" in await response.text()
    response = await post_form(client, f"/maintenance/{created['id']}/end", token)
    assert response.status == 403
    [window] = (await call(client, "GET", API, BOB))[1]["windows"]
    assert window["id"] == created["id"]


async def test_without_the_csrf_token_or_a_session_nothing_changes(make_client: Any) -> None:
    client = await make_client(directory=ADMIN_DIRECTORY)
    _, created = await call(
        client,
        "POST",
        API,
        ALICE,
        json={"name": "kept", "start": "2026-01-05T14:00:00Z", "end": "2026-01-05T15:00:00Z"},
    )
    token = await log_in(client)
    fields = {"name": "new", "start": "2026-01-05T14:00", "end": "2026-01-05T15:00"}
    end = f"/maintenance/{created['id']}/end"
    for path, form in (("/maintenance", fields), (end, {})):
        response = await client.post(path, data=form, allow_redirects=False)
        assert response.status == 403, path
        response = await post_form(client, path, "forged", **form)
        assert response.status == 403, path
    client.session.cookie_jar.clear()
    for path, form in (("/maintenance", fields), (end, {})):
        response = await post_form(client, path, token, **form)
        assert response.status == 403, path
        assert "session has ended" in await response.text()
    [window] = (await call(client, "GET", API, ALICE))[1]["windows"]
    assert window["name"] == "kept"


async def test_ending_a_window_that_is_gone_is_not_found(make_client: Any) -> None:
    client = await make_client(directory=ADMIN_DIRECTORY)
    token = await log_in(client)
    response = await post_form(client, "/maintenance/999/end", token)
    assert response.status == 404
    assert "not found" in await response.text()
