"""The /status page: /health's checks in words, failed pages with their last error, and the
chart of incidents opened per day with the median times to acknowledge and to resolve."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

from aiohttp import web
from markupsafe import escape

from oncall.clock import isoformat
from oncall.web.keys import RUNTIME
from oncall.web.pages.status import check_words
from tests.support.factories import (
    ALICE_TOKEN,
    AM_AUTH,
    AM_TOKEN,
    BOB_TOKEN,
    DIRECTORY_YAML,
    T0,
    make_alert,
    make_webhook,
)
from tests.support.ui import log_in
from tests.support.waiting import eventually

ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
EVIL = "<script>alert(1)</script>"
INGEST = "/api/v1/integrations/alertmanager"


def webhook_directory(url: str) -> str:
    return f"""
integrations: [{{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}]
users:
  - name: alice
    api_token: "{ALICE_TOKEN}"
    contacts: [{{type: webhook, name: hook, url: "{url}"}}]
  - {{name: bob, api_token: "{BOB_TOKEN}", contacts: []}}
policies:
  - {{name: p, levels: [{{notify: ["user:alice"], escalate_after: 1h}}]}}
routes: [{{policy: p}}]
"""


async def open_incident(client: Any, name: str) -> int:
    body = make_webhook([make_alert("db1", alertname=name)], alertname=name)
    response = await client.post(INGEST, json=body, headers=AM_AUTH)
    assert response.status == 200, await response.text()
    [incident_id] = (await response.json())["incidents"]
    return int(incident_id)


def per_day(text: str) -> dict[str, int]:
    """Return the chart's table: incidents opened on each day that has any."""
    table = text.split('<table id="per-day">')[1].split("</table>")[0]
    rows = re.findall(r'<th scope="row">([^<]+)</th><td>(\d+)</td>', table)
    assert len(rows) == 30
    return {day: int(n) for day, n in rows if n != "0"}


async def test_it_says_each_health_check_in_words(client: Any) -> None:
    await log_in(client)
    response = await client.get("/status")
    assert response.status == 200
    text = await response.text()
    assert "Every check passes." in text
    checks = text.split('id="health"')[1].split("</section>")[0]
    for name, words in (
        ("Database", "Answering ("),
        ("Redis (timers)", "Answering"),
        ("Scheduler", "Running"),
    ):
        assert f"<strong>{html.escape(name)}</strong>" in checks and words in checks
    assert "0 failed pages (dead letters)" in checks
    assert "Last reconcile at 2026-01-05 13:00 CET" in checks


async def test_it_needs_a_login(client: Any) -> None:
    response = await client.get("/status", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, "/login?next=/status")


def test_a_failing_check_is_worded_for_everybody_and_its_error_shown_to_admins() -> None:
    check = {
        "status": "fail",
        "running": True,
        "last_reconcile": None,
        "overdue_steps": 3,
        "failed_steps": 1,
        "failed_notifications": 2,
        "overdue_notifications": 0,
        "pending": {"escalation": 4, "notification": 1},
        "error": "3 escalation steps overdue; no reconcile: db at 10.0.0.5 refused",
    }
    responder = check_words("scheduler", check, "UTC", admin=False)
    assert (responder.ok, responder.summary, responder.error) == (
        False,
        "Running, with problems",
        None,
    )
    assert responder.facts == [
        "No reconcile has succeeded yet",
        "3 escalation steps overdue",
        "1 escalation step failed",
        "0 pages overdue",
        "2 failed pages (dead letters)",
        "5 timers pending",
    ]
    admin = check_words("scheduler", check, "UTC", admin=True)
    assert admin.error == check["error"]
    database = check_words("database", {"status": "fail", "error": "timeout"}, "UTC", False)
    assert (database.summary, database.error) == ("Not answering", None)
    redis = check_words("redis", {"status": "fail", "error": "refused", "for_s": 12.5}, "UTC", True)
    assert redis.summary.startswith("Not answering for 12.5 s") and redis.error == "refused"


async def test_a_failed_page_shows_with_its_incident_contact_and_last_error(
    make_client: Any, aiohttp_server: Any
) -> None:
    async def refuse(_request: web.Request) -> web.Response:
        return web.Response(status=400, text=EVIL)  # a client error: no retry, a dead letter

    receiver = web.Application()
    receiver.router.add_post("/hook", refuse)
    server = await aiohttp_server(receiver)
    client = await make_client(directory=webhook_directory(str(server.make_url("/hook"))))
    incident_id = await open_incident(client, "DiskFull")
    notifier = client.app[RUNTIME].notifier

    async def failed() -> Any:
        return await notifier.list_notifications(["failed"], None, 10)

    [(row, _)] = await eventually(failed, what="the dead letter")
    assert EVIL in row.last_error
    await log_in(client, "bob")
    text = await (await client.get("/status")).text()
    assert EVIL not in text
    [letter] = re.findall(r'<tr class="dead-letter">(.*?)</tr>', text, re.S)
    cells = [c.strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", letter, re.S)]
    assert cells[0].startswith('<time datetime="2026-01-05T12:00:00+00:00">2026-01-05 12:00 UTC')
    assert cells[1:5] == [
        f'<a href="/incidents/{incident_id}">#{incident_id}</a>',
        "alice",
        "hook",
        "1",
    ]
    assert cells[5] == f"HTTP 400: {html.escape(EVIL)}"
    assert "1 failed page (dead letter)" in text


async def test_the_chart_counts_incidents_per_local_day_with_the_medians(
    client: Any, clock: Any
) -> None:
    clock.advance(-timedelta(days=2))  # Saturday 3 January, 13:00 in Berlin
    await open_incident(client, "Saturday")
    clock.advance(timedelta(days=2) - timedelta(hours=12, minutes=30))  # Monday, 00:30 in Berlin
    first = await open_incident(client, "Night")
    clock.advance(timedelta(minutes=4))
    response = await client.post(f"/api/v1/incidents/{first}/acknowledge", headers=ALICE)
    assert response.status == 200
    clock.advance(timedelta(hours=1, minutes=56))
    response = await client.post(f"/api/v1/incidents/{first}/resolve", headers=ALICE)
    assert response.status == 200
    clock.advance(timedelta(hours=10, minutes=30))  # T0: 13:00 in Berlin
    second = await open_incident(client, "Noon")
    clock.advance(timedelta(minutes=10))
    response = await client.post(f"/api/v1/incidents/{second}/acknowledge", headers=ALICE)
    assert response.status == 200

    await log_in(client)  # alice's days are Berlin's
    text = await (await client.get("/status")).text()
    assert per_day(text) == {"Sat 3 Jan": 1, "Mon 5 Jan": 2}
    summary = re.sub(r"<[^>]+>|\s+", " ", text.split('id="stats-summary">')[1].split("</p>")[0])
    summary = re.sub(r"\s+", " ", summary).strip()
    assert summary == (
        "3 incidents opened (days in Europe/Berlin). "
        "Median time to acknowledge: 7 min (over 2 acknowledged). "
        "Median time to resolve: 2 h (over 1 resolved)."
    )
    svg = text.split("<svg")[1].split("</svg>")[0]
    assert 'role="img"' in svg and "<title" in svg
    assert "Median to acknowledge: 7 min" in svg and "Median to resolve: 2 h" in svg
    bars = re.findall(r'<rect class="bar"[^>]*height="([\d.]+)"[^>]*><title>([^<]+)</title>', svg)
    assert len(bars) == 30
    heights = {title: float(h) for h, title in bars}
    assert heights["Mon 5 Jan: 2"] == 2 * heights["Sat 3 Jan: 1"] > 0
    assert heights["Sun 4 Jan: 0"] == 0

    client.session.cookie_jar.clear()
    await log_in(client, "bob")  # bob's days are UTC's: the night incident was on Sunday
    assert per_day(await (await client.get("/status")).text()) == {
        "Sat 3 Jan": 1,
        "Sun 4 Jan": 1,
        "Mon 5 Jan": 1,
    }


def configuration(text: str) -> str:
    """Return the page's Configuration section."""
    return text.split('id="configuration"')[1].split("</section>")[0]


async def test_the_configuration_section_says_when_there_are_no_warnings(client: Any) -> None:
    await log_in(client)
    section = configuration(await (await client.get("/status")).text())
    assert "<h2" in section and "Configuration" in section
    assert "No warnings about the directory file over the next 30 days." in section
    assert "<li>" not in section


async def test_the_configuration_section_lists_each_warning_with_its_path_escaped(
    make_client: Any,
) -> None:
    shadowing = f"  - {{match: ['team=\"{EVIL}\"'], policy: default}}\n"
    shadowed = f"  - {{match: ['team=\"{EVIL}\"', 'env=\"prod\"'], policy: default}}\n"
    client = await make_client(
        directory=DIRECTORY_YAML.replace("routes:\n", f"routes:\n{shadowing}{shadowed}")
    )
    await log_in(client)
    text = await (await client.get("/status")).text()
    section = configuration(text)
    message = f'can never match: routes[0] {{team="{EVIL}"}} matches every alert it matches'
    assert f'<li><code class="path">routes[1]</code>: {escape(message)}</li>' in section
    assert "1 warning about the directory file" in section
    assert EVIL not in text


OFFICE_HOURS = """schedules:
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - members: [alice, bob]
        rotation: 1w
        handoff: "2026-01-05 09:00"
        restrict: {days: [mon, tue, wed, thu, fri], from: "09:00", to: "17:00"}
policies:"""


async def test_a_gap_an_override_fills_is_not_warned_on_the_status_page(make_client: Any) -> None:
    directory = DIRECTORY_YAML.replace("policies:", OFFICE_HOURS).replace(
        '"user:alice"', '"schedule:primary"'
    )
    client = await make_client(directory=directory)
    await log_in(client)
    monday = "from 2026-01-05 17:00 CET to 2026-01-06 09:00 CET"
    tuesday = "from 2026-01-06 17:00 CET to 2026-01-07 09:00 CET"
    section = configuration(await (await client.get("/status")).text())
    assert f'<code class="path">schedules.primary</code>: nobody on call {monday}' in section
    assert f'<code class="path">policies.default.levels[0]</code>: pages nobody {monday}' in section

    # T0 is Monday 13:00 in Berlin: alice takes Monday night.
    night = {"user": "alice", "start": isoformat(T0 + timedelta(hours=4))}
    night["end"] = isoformat(T0 + timedelta(hours=20))
    response = await client.post("/api/v1/schedules/primary/overrides", json=night, headers=ALICE)
    assert response.status == 201, await response.text()
    section = configuration(await (await client.get("/status")).text())
    assert monday not in section
    assert f'<code class="path">schedules.primary</code>: nobody on call {tuesday}' in section
