"""The incidents pages: `/` (filter, search, pages, counts, refreshing itself) and
`/incidents/{id}` (alerts, timeline, pages sent, and the actions as forms), on both
databases; every value from an alert shown as text, and every form refused without a
session and its CSRF token."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from oncall.web.pages.incidents import LIST_LIMIT
from tests.support.db import snapshot
from tests.support.factories import (
    ALICE_TOKEN,
    AM_AUTH,
    AM_TOKEN,
    BOB_TOKEN,
    make_alert,
    make_webhook,
)
from tests.support.ui import log_in, post_form
from tests.support.waiting import eventually

URL = "/api/v1/integrations/alertmanager"
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
_INCIDENT_LINK = re.compile(r'<a href="/incidents/(\d+)">')


async def open_incident(
    client: TestClient[Any, Any],
    name: str = "DiskFull",
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    summary: str | None = None,
    generator_url: str | None = None,
) -> int:
    """Open an incident as Alertmanager does; `labels` are the group's and its alert's."""
    alert = make_alert("db1", alertname=name)
    alert["labels"].update(labels or {})
    alert["annotations"].update(annotations or {})
    if generator_url is not None:
        alert["generatorURL"] = generator_url
    body = make_webhook([alert], alertname=name)
    body["commonLabels"].update(labels or {})
    if summary is not None:
        body["commonAnnotations"] = {"summary": summary}
    response = await client.post(URL, json=body, headers=AM_AUTH)
    assert response.status == 200, await response.text()
    [incident_id] = (await response.json())["incidents"]
    return int(incident_id)


async def api(client: TestClient[Any, Any], incident_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/incidents/{incident_id}", headers=ALICE)
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def api_act(client: TestClient[Any, Any], incident_id: int, action: str) -> None:
    response = await client.post(f"/api/v1/incidents/{incident_id}/{action}", headers=ALICE)
    assert response.status == 200, await response.text()


async def html(client: TestClient[Any, Any], path: str, status: int = 200) -> str:
    response = await client.get(path)
    text = await response.text()
    assert response.status == status, text
    return text


def listed(page: str) -> list[int]:
    """Return the incidents a list page links to, in its order."""
    return [int(found) for found in _INCIDENT_LINK.findall(page)]


def count_of(page: str, label: str) -> int:
    found = re.search(rf'>{label} <span class="count">(\d+)</span>', page)
    assert found, f"no count {label!r}"
    return int(found.group(1))


# The list.


async def test_the_list_shows_open_incidents_newest_first_by_default(client):
    await log_in(client)
    first = await open_incident(client, "First")
    second = await open_incident(client, "Second")
    third = await open_incident(client, "Third")
    await api_act(client, first, "acknowledge")
    await api_act(client, second, "resolve")
    page = await html(client, "/")
    assert listed(page) == [third, first]
    assert f'<a href="/incidents/{third}">Third</a>' in page


async def test_the_status_filter_selects_incidents(client):
    await log_in(client)
    first = await open_incident(client, "First")
    second = await open_incident(client, "Second")
    third = await open_incident(client, "Third")
    await api_act(client, first, "acknowledge")
    await api_act(client, second, "resolve")
    assert listed(await html(client, "/?status=resolved")) == [second]
    assert listed(await html(client, "/?status=triggered&status=resolved")) == [third, second]
    assert listed(await html(client, "/?status=all")) == [third, second, first]
    assert "unknown status" in await html(client, "/?status=sleeping", 400)


async def test_the_counts_per_status_are_links_to_their_filter(client):
    await log_in(client)
    first = await open_incident(client, "First")
    await open_incident(client, "Second")
    third = await open_incident(client, "Third")
    await api_act(client, first, "acknowledge")
    await api_act(client, third, "resolve")
    page = await html(client, "/")
    counts = {
        label: count_of(page, label)
        for label in ("open", "triggered", "acknowledged", "resolved", "all")
    }
    assert counts == {"open": 2, "triggered": 1, "acknowledged": 1, "resolved": 1, "all": 3}
    assert '<a href="/?status=resolved">resolved' in page
    assert '<a href="/?status=all">all' in page
    assert '<a href="/" aria-current="true">open' in page


async def test_it_finds_incidents_by_title_and_by_label_value(client):
    await log_in(client)
    disk = await open_incident(client, "DiskFull", summary="Disk full on db1")
    payments = await open_incident(client, "Latency", labels={"team": "payments"})
    await open_incident(client, "Other", labels={"team": "search"})
    assert listed(await html(client, "/?q=disk+FULL")) == [disk]
    page = await html(client, "/?q=payments")
    assert listed(page) == [payments]
    # The counts are those of the search, and its filter links keep it.
    assert count_of(page, "open") == 1
    assert '<a href="/?status=all&amp;q=payments">all' in page
    assert 'name="q" value="payments"' in page


async def test_older_incidents_are_a_page_further(client):
    await log_in(client)
    ids = [await open_incident(client, f"Alert{n}") for n in range(LIST_LIMIT + 3)]
    first = await html(client, "/")
    assert listed(first) == ids[::-1][:LIST_LIMIT]
    older = re.search(r'<a href="([^"]+)" rel="next">Older</a>', first)
    assert older
    second = await html(client, older.group(1).replace("&amp;", "&"))
    assert listed(second) == ids[::-1][LIST_LIMIT:]
    assert 'rel="next"' not in second
    assert "not a cursor" in await html(client, "/?cursor=nonsense", 400)


async def test_the_list_refreshes_itself_every_5_seconds(client):
    await log_in(client)
    await open_incident(client)
    page = await html(client, "/?status=all&q=disk")
    section = re.search(r'<section id="incidents"[^>]*>', page)
    assert section
    tag = section.group(0)
    assert 'hx-get="/?status=all&amp;q=disk"' in tag  # the same URL
    assert 'hx-trigger="every 5s"' in tag
    assert 'hx-select="#incidents"' in tag
    assert 'hx-swap="outerHTML"' in tag
    # Else a boosted link inside would swap in the #incidents of the page it opens: none.
    assert 'hx-disinherit="*"' in tag
    head = page.split("</head>", 1)[0]
    assert '<noscript><meta http-equiv="refresh" content="30"></noscript>' in head


async def test_the_list_shows_times_in_the_viewers_zone(client):
    await log_in(client)  # alice lives in Europe/Berlin: UTC+1 in January
    await open_incident(client)
    assert "2026-01-05 13:00 CET" in await html(client, "/")


async def test_the_search_form_is_labelled_and_keeps_the_filter(client):
    await log_in(client)
    page = await html(client, "/?status=resolved")
    assert '<label for="search-q">Search' in page
    assert '<input type="hidden" name="status" value="resolved">' in page


# One incident.

WEBHOOKS = """
integrations:
  - {{name: prometheus, type: alertmanager, token: "{am}"}}
users:
  - name: alice
    time_zone: Europe/Berlin
    api_token: "{alice}"
    contacts: [{{type: webhook, url: "{url}/alice"}}]
  - {{name: bob, api_token: "{bob}", contacts: [{{type: webhook, url: "{url}/bob"}}]}}
policies:
  - name: default
    repeat: 0
    levels:
      - {{notify: ["user:alice"], escalate_after: 5m}}
      - {{notify: ["user:bob"], escalate_after: 5m}}
routes:
  - {{policy: default}}
"""


async def settled(client: TestClient[Any, Any], count: int) -> Any:
    response = await client.get("/api/v1/notifications", headers=ALICE)
    rows = (await response.json())["notifications"]
    done = len(rows) == count and all(r["status"] != "pending" for r in rows)
    return rows if done else None


async def test_the_incident_page_shows_its_alerts_timeline_and_pages(make_client, receiver):
    receiver.statuses = [200, 400]  # alice's page is delivered, bob's refused
    client = await make_client(
        WEBHOOKS.format(am=AM_TOKEN, alice=ALICE_TOKEN, bob=BOB_TOKEN, url=receiver.url)
    )
    token = await log_in(client)
    incident_id = await open_incident(
        client,
        labels={"team": "storage"},
        annotations={"runbook": "https://runbooks.example/disk", "note": "check the mount"},
    )
    await eventually(lambda: settled(client, 1), what="alice's page")
    await post_form(client, f"/incidents/{incident_id}/responders", token, user="bob")
    await eventually(lambda: settled(client, 2), what="bob's page")
    page = await html(client, f"/incidents/{incident_id}")
    assert "<h1>DiskFull</h1>" in page
    assert '<span class="status status-triggered">triggered</span>' in page
    assert "<dt>Policy</dt><dd>default</dd>" in page
    # The alert: labels, annotations (a URL is a link), its source.
    assert "<li>team=storage</li>" in page
    assert '<a href="https://runbooks.example/disk" rel="noopener noreferrer">' in page
    assert '<span class="text">check the mount</span>' in page
    assert '<a href="http://prometheus:9090/graph?g0.expr=DiskFull"' in page
    # The timeline, oldest first, in alice's zone.
    timeline = page.split('id="timeline-title"', 1)[1].split('id="pages-title"', 1)[0]
    assert timeline.index("Triggered") < timeline.index("Responder added")
    assert "2026-01-05 13:00 CET" in timeline
    # Both pages with their state and attempts.
    pages = page.split('id="pages-title"', 1)[1]
    assert "alice by webhook" in pages
    assert '<span class="status status-sent">sent</span>' in pages
    assert "delivered in" in pages
    assert "bob by webhook" in pages
    assert '<span class="status status-failed">failed</span>' in pages
    assert ": permanent in" in pages


async def test_an_unknown_incident_is_a_404_page(client):
    token = await log_in(client)
    page = await html(client, "/incidents/999", 404)
    assert "incident 999 not found" in page
    response = await post_form(client, "/incidents/999/acknowledge", token)
    assert response.status == 404


def _entries(body: dict[str, Any], kind: str) -> list[tuple[str, dict[str, Any]]]:
    """Return the actor and detail of each timeline entry of `kind`."""
    return [(e["actor"], e["detail"]) for e in body["timeline"] if e["type"] == kind]


def status_and(key: str) -> Any:
    return lambda body: (body["status"], body[key])


def entries(kind: str) -> Any:
    return lambda body: _entries(body, kind)


LEVEL_2 = [("alice", {"level": 2, "repeat": 0, "retriggered": False})]
# Each action: the API actions taken before, the form's fields, what the API shows after.
ACTIONS = [
    # acknowledging records who did it
    ([], "acknowledge", {}, status_and("acknowledged_by"), ("acknowledged", "alice")),
    # resolving records who did it
    ([], "resolve", {}, status_and("resolved_by"), ("resolved", "alice")),
    # unacknowledging triggers it again
    (["acknowledge"], "unacknowledge", {}, status_and("acknowledged_by"), ("triggered", None)),
    # snoozing acknowledges it until then (the clock stands at 12:00)
    (
        [],
        "snooze",
        {"duration": "30m"},
        status_and("snoozed_until"),
        ("acknowledged", "2026-01-05T12:30:00Z"),
    ),
    # escalating fires the level asked for
    ([], "escalate", {"level": "2"}, entries("incident.escalated"), LEVEL_2),
    # escalating without a level fires the next one
    ([], "escalate", {"level": ""}, entries("incident.escalated"), LEVEL_2),
    # reassigning hands it to a user alone
    ([], "reassign", {"to": "user:bob"}, lambda body: body["policy"], "user:bob"),
    # adding a responder pages them
    (
        [],
        "responders",
        {"user": "bob"},
        entries("incident.responder_added"),
        [("alice", {"user": "bob"})],
    ),
    # a note goes in the timeline
    ([], "notes", {"text": "looking"}, entries("incident.note"), [("alice", {"text": "looking"})]),
]


@pytest.mark.parametrize(
    ("before", "action", "fields", "shown", "expected"),
    ACTIONS,
    ids=[f"{case[1]}-{n}" for n, case in enumerate(ACTIONS)],
)
async def test_each_action_works_through_its_form(client, before, action, fields, shown, expected):
    token = await log_in(client)
    incident_id = await open_incident(client)
    for earlier in before:
        await api_act(client, incident_id, earlier)
    response = await post_form(client, f"/incidents/{incident_id}/{action}", token, **fields)
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == f"/incidents/{incident_id}"
    assert shown(await api(client, incident_id)) == expected


async def test_the_page_says_who_acknowledged_and_shows_notes(client, clock):
    token = await log_in(client)
    incident_id = await open_incident(client)
    clock.advance(timedelta(minutes=3))
    await post_form(client, f"/incidents/{incident_id}/acknowledge", token)
    await post_form(client, f"/incidents/{incident_id}/notes", token, text="on it\nsecond line")
    page = await html(client, f"/incidents/{incident_id}")
    assert "acknowledged by alice" in page
    assert '<span class="status status-acknowledged">acknowledged</span>' in page
    assert '<p class="note">on it\nsecond line</p>' in page
    assert "2026-01-05 13:03 CET" in page


async def test_only_the_actions_that_make_sense_are_offered(client):
    token = await log_in(client)
    incident_id = await open_incident(client)
    buttons = re.compile(r'<button type="submit"[^>]*>([^<]+)</button>')

    async def offered() -> set[str]:
        return set(buttons.findall(await html(client, f"/incidents/{incident_id}"))) - {"Log out"}

    assert await offered() == {
        "Acknowledge",
        "Resolve",
        "Snooze",
        "Escalate",
        "Reassign",
        "Add responder",
        "Add note",
    }
    await post_form(client, f"/incidents/{incident_id}/acknowledge", token)
    assert await offered() == {
        "Resolve",
        "Unacknowledge",
        "Snooze",
        "Escalate",
        "Reassign",
        "Add note",
    }
    await post_form(client, f"/incidents/{incident_id}/resolve", token)
    assert await offered() == {"Add note"}


async def test_the_forms_are_labelled_as_the_contract_says(client):
    await log_in(client)
    page = await html(client, f"/incidents/{await open_incident(client)}")
    for field, label in (
        ("snooze-duration", "Snooze for"),
        ("escalate-level", "Level"),
        ("reassign-to", "Policy"),
        ("responder-user", "Responder"),
        ("note-text", "Note"),
    ):
        assert f'<label for="{field}">{label}</label>' in page
    durations = re.findall(r'<option value="(\d+[mh])"', page)
    assert durations == ["15m", "30m", "1h", "2h", "4h", "8h", "24h"]
    assert '<textarea id="note-text" name="text"' in page


# Each refused action: the state it is posted in, the form, the status and message shown.
REFUSED = [
    # a resolved incident cannot be acknowledged
    ("resolve", "acknowledge", {}, 409, "is resolved"),
    # an acknowledged incident's responders would not be paged
    ("acknowledge", "responders", {"user": "bob"}, 409, "unacknowledge or reassign"),
    # a snooze names a duration
    (None, "snooze", {"duration": "forever"}, 400, "duration"),
    # a level the policy lacks
    (None, "escalate", {"level": "7"}, 400, "levels 1 to 2"),
    # a level is a number
    (None, "escalate", {"level": "two"}, 400, "level"),
    # reassigning names a policy or a user of the directory
    (None, "reassign", {"to": "policy:nope"}, 400, "policy:NAME"),
    # a responder is a user of the directory
    (None, "responders", {"user": "mallory"}, 400, "user of the directory"),
    # a note has some text
    (None, "notes", {"text": "  "}, 400, "a note needs some text"),
]


@pytest.mark.parametrize(("before", "action", "fields", "status", "message"), REFUSED)
async def test_a_bad_action_is_refused_with_the_services_error(
    client, before, action, fields, status, message
):
    token = await log_in(client)
    incident_id = await open_incident(client)
    if before:
        await api_act(client, incident_id, before)
    untouched = await snapshot(client)
    response = await post_form(client, f"/incidents/{incident_id}/{action}", token, **fields)
    assert response.status == status
    assert message in await response.text()
    assert await snapshot(client) == untouched


@pytest.mark.parametrize("action", ["acknowledge", "resolve", "notes", "snooze"])
async def test_an_action_without_the_csrf_token_changes_nothing(client, action):
    await log_in(client)
    incident_id = await open_incident(client)
    untouched = await snapshot(client)
    fields = {"text": "hi", "duration": "1h"}
    for token in (None, "forged-token"):
        data = fields if token is None else {"_csrf": token, **fields}
        response = await client.post(
            f"/incidents/{incident_id}/{action}", data=data, allow_redirects=False
        )
        assert response.status == 403
        assert "did not come from this site" in await response.text()
    assert await snapshot(client) == untouched


async def test_an_action_without_a_session_changes_nothing(client):
    token = await log_in(client)
    incident_id = await open_incident(client)
    untouched = await snapshot(client)
    client.session.cookie_jar.clear()
    response = await post_form(client, f"/incidents/{incident_id}/acknowledge", token)
    assert response.status == 403
    assert "log in again" in await response.text()
    assert await snapshot(client) == untouched
    assert (await api(client, incident_id))["status"] == "triggered"


async def test_alert_values_are_shown_as_text_on_both_pages(client):
    await log_in(client)
    incident_id = await open_incident(
        client,
        labels={"team": SCRIPT},
        annotations={"runbook": "javascript:alert(1)", "description": SCRIPT},
        summary=f"Disk {SCRIPT}",
        generator_url="javascript:alert(2)",
    )
    listing = await html(client, "/")
    assert f'<a href="/incidents/{incident_id}">Disk {ESCAPED}</a>' in listing
    searched = await html(client, "/?q=" + "%3Cscript%3E")
    assert listed(searched) == [incident_id]
    page = await html(client, f"/incidents/{incident_id}")
    for shown in (listing, searched, page):
        assert SCRIPT not in shown
        assert 'href="javascript:' not in shown
    assert f"<h1>Disk {ESCAPED}</h1>" in page
    assert f"<li>team={ESCAPED}</li>" in page
    assert f'<span class="text">{ESCAPED}</span>' in page
    assert '<span class="text">javascript:alert(1)</span>' in page  # text, not a link
    assert "Source: javascript:alert(2)" in page


async def test_events_v2_links_and_images_are_links_when_http(client):
    await log_in(client)
    links = '[{"href": "https://grafana.example/d/1", "text": "Graph"}, {"href": "javascript:x"}]'
    images = '[{"src": "https://img.example/a.png", "alt": "Chart"}]'
    incident_id = await open_incident(client, annotations={"links": links, "images": images})
    page = await html(client, f"/incidents/{incident_id}")
    assert '<a href="https://grafana.example/d/1" rel="noopener noreferrer">Graph</a>' in page
    assert '<a href="https://img.example/a.png" rel="noopener noreferrer">Chart</a>' in page
    assert "<li>javascript:x</li>" in page
    assert 'href="javascript:' not in page


async def test_a_page_needs_a_login(client):
    response = await client.get("/incidents/1", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/login?next=/incidents/1"
