"""The /simulate page (a form, its answer as tables and a timeline drawn on the server)
and the timeline's pure geometry (oncall.simulate.picture)."""

from __future__ import annotations

import html as html_module
import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from oncall.simulate import picture
from oncall.simulate.picture import PageAt, StepAt
from oncall.web.pages.simulate import SAMPLES
from tests.support.factories import AM_TOKEN
from tests.support.ui import log_in, page_csrf, post_form
from tests.web.test_forms_refused import everything
from tests.web.test_ui_attacks import injected

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # Monday 13:00 in Berlin


def page_at(minutes: float, user: str = "alice", channel: str = "email") -> PageAt:
    return PageAt(START + timedelta(minutes=minutes), user, f"{channel}:{user}", channel, 1, 0)


# The geometry.


def test_marks_sit_in_proportion_to_the_time_since_the_start():
    drawn = picture.draw(
        START,
        2,
        "Europe/Berlin",
        [StepAt(START, 1, 0), StepAt(START + timedelta(minutes=30), 2, 0)],
        [page_at(0), page_at(60, "bob"), page_at(120, "carol")],
    )
    steps, *people = drawn.rows
    assert [m.x for m in steps.marks] == [0.0, 250.0]
    assert [m.label for m in steps.marks] == ["L1", "L2"]
    assert [(r.user, [m.x for m in r.marks]) for r in people] == [
        ("alice", [0.0]),
        ("bob", [500.0]),
        ("carol", [1000.0]),
    ]
    # The label of the page at the right edge is drawn left of its mark, inside.
    (last,) = people[-1].marks
    assert last.anchor == "end" and last.label_x < last.x


def test_ticks_are_local_quarter_hours_for_two_hours():
    drawn = picture.draw(START, 2, "Europe/Berlin", [], [])
    assert [t.label for t in drawn.ticks] == [
        "13:00", "13:15", "13:30", "13:45", "14:00", "14:15", "14:30", "14:45", "15:00",
    ]  # fmt: skip
    assert [t.x for t in drawn.ticks] == [125.0 * n for n in range(9)]
    assert drawn.ticks[0].day == "Mon 5" and all(t.day == "" for t in drawn.ticks[1:])
    assert drawn.changes == ()


def test_on_the_spring_day_the_skipped_hour_takes_no_room():
    # 2027-03-28 00:00 to 06:00 in Berlin is five real hours: 02:00 to 03:00 never happens.
    start = datetime(2027, 3, 27, 23, 0, tzinfo=UTC)
    drawn = picture.draw(start, 5, "Europe/Berlin", [], [page_at(0)])
    hourly = [(t.label, t.x) for t in drawn.ticks if t.label.endswith(("00", "CEST"))]
    assert hourly == [
        ("00:00", 0.0),
        ("01:00", 200.0),
        ("03:00 CEST", 400.0),
        ("04:00", 600.0),
        ("05:00", 800.0),
        ("06:00", 1000.0),
    ]
    (change,) = drawn.changes
    assert change.at == datetime(2027, 3, 28, 1, 0, tzinfo=UTC) and change.x == 400.0
    assert change.label == "clocks go forward 1 h (CET to CEST)"


def test_on_the_autumn_day_the_repeated_hour_is_drawn_twice():
    start = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)  # 01:00 CEST
    drawn = picture.draw(start, 4, "Europe/Berlin", [], [])
    hourly = [(t.label, t.x) for t in drawn.ticks if ":00" in t.label]
    assert hourly == [
        ("01:00", 0.0),
        ("02:00", 250.0),
        ("02:00 CET", 500.0),
        ("03:00", 750.0),
        ("04:00", 1000.0),
    ]
    (change,) = drawn.changes
    assert change.label == "clocks go back 1 h (CEST to CET)" and change.x == 500.0


def test_a_week_has_a_tick_each_local_midnight():
    start = datetime(2026, 1, 4, 23, 0, tzinfo=UTC)  # Monday 00:00 in Berlin
    drawn = picture.draw(start, 168, "Europe/Berlin", [], [])
    assert [t.label for t in drawn.ticks] == [
        "Mon 5", "Tue 6", "Wed 7", "Thu 8", "Fri 9", "Sat 10", "Sun 11", "Mon 12",
    ]  # fmt: skip
    assert drawn.ticks[1].x == pytest.approx(1000 / 7, abs=0.001)


def test_pages_at_the_same_time_stack_instead_of_overlapping():
    drawn = picture.draw(
        START,
        2,
        "UTC",
        [],
        [page_at(0, channel="email"), page_at(0, channel="sms"), page_at(60, channel="webhook")],
    )
    (row,) = drawn.rows[1:]
    assert [(m.label, m.x) for m in row.marks] == [("email", 0), ("sms", 0), ("webhook", 500)]
    first, second, third = (m.y for m in row.marks)
    assert second - first == picture.TRACK and third == first  # far enough: the first track
    assert row.height == 2 * picture.TRACK
    # Rows follow each other without overlapping.
    tops = [(r.y, r.y + r.height) for r in drawn.rows]
    assert all(end <= following for (_, end), (following, _) in itertools.pairwise(tops))
    assert drawn.bottom <= drawn.height


def test_a_row_is_titled_with_the_shown_name_and_the_user():
    drawn = picture.draw(START, 1, "UTC", [], [page_at(5)], names={"alice": "Alice Example"})
    assert [r.title for r in drawn.rows] == ["Escalation steps", "Alice Example (alice)"]


def test_acknowledgement_and_maintenance_are_placed_on_the_axis():
    drawn = picture.draw(
        START,
        2,
        "UTC",
        [],
        [],
        acknowledged=START + timedelta(minutes=12),
        held_until=START + timedelta(minutes=90),
        held_by="db upgrade",
    )
    assert drawn.acknowledged_x == 100.0
    assert drawn.held is not None and (drawn.held.x, drawn.held.width) == (0.0, 750.0)
    held_on = picture.draw(START, 2, "UTC", [], [], held_until=None, held_by="forever")
    assert held_on.held is not None and held_on.held.width == 1000.0


def test_a_span_that_is_not_positive_or_a_naive_start_is_refused():
    with pytest.raises(ValueError):
        picture.draw(START, 0, "UTC", [], [])
    with pytest.raises(ValueError):
        picture.draw(START.replace(tzinfo=None), 2, "UTC", [], [])


# The page.

SCRIPT = "<script>alert(1)</script>"
SHOWN = "&lt;script&gt;alert(1)&lt;/script&gt;"
EV_TOKEN = "ev-token-0123456789abcdefghijklmnopqrstuv"
# alice (an admin in Berlin) and carol (whose full name is markup) share a daily rotation
# handing off at 09:00 Berlin time; bob (New York) is level 2. At T0 (Monday 5 January,
# 13:00 in Berlin) carol is on call. The first route takes only team="<script>..." alerts.
DIRECTORY = f"""
integrations:
  - {{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}
  - {{name: pd, type: events_v2, token: "{EV_TOKEN}"}}
users:
  - name: alice
    full_name: Alice Example
    role: admin
    time_zone: Europe/Berlin
    contacts: [{{type: email, to: alice@example.com}}]
  - name: bob
    full_name: Bob Builder
    time_zone: America/New_York
    contacts: [{{type: email, to: bob@example.com}}]
  - name: carol
    full_name: "{SCRIPT}"
    time_zone: Europe/Berlin
    contacts:
      - {{type: email, to: carol@example.com}}
      - {{type: webhook, name: phone, url: "http://127.0.0.1:9/carol"}}
schedules:
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - {{members: [alice, carol], rotation: 1d, handoff: "2026-01-04 09:00"}}
policies:
  - name: default
    levels:
      - {{notify: ["schedule:primary"], escalate_after: 5m}}
      - {{notify: ["user:bob"], escalate_after: 10m}}
  - name: markup
    levels:
      - {{notify: ["user:alice"], escalate_after: 5m}}
routes:
  - {{match: ['team="{SCRIPT}"'], policy: markup}}
  - {{policy: default}}
"""
FORM = {"source": "alertmanager", "at": "2026-01-05T13:00", "hours": "2"}


async def start(make_client: Any, user: str = "alice") -> tuple[Any, str]:
    client = await make_client(directory=DIRECTORY)
    await log_in(client, user)
    return client, await page_csrf(client, "/simulate")


def sample(name: str = "alertmanager") -> str:
    return json.dumps(SAMPLES[name])


def rows(html: str, kind: str) -> list[str]:
    """Return the text of each row of the table of `kind` ("step" or "page")."""
    found = re.findall(rf'<tr class="{kind}">(.*?)</tr>', html, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in found]


def svg_of(html: str) -> str:
    found = re.search(r'<figure class="picture simulate-picture">.*?</figure>', html, re.S)
    assert found, "the page has no timeline"
    return found.group(0)


def field_error(html: str, field: str) -> str | None:
    found = re.search(rf'<p class="error field-error" id="{field}-error">(.*?)</p>', html, re.S)
    return found.group(1) if found else None


async def test_the_form_is_in_the_viewers_time_zone_and_linked_from_every_page(make_client):
    client, _ = await start(make_client)
    html = await (await client.get("/simulate")).text()
    assert 'value="2026-01-05T13:00"' in html  # T0 in Berlin
    assert "your time zone, Europe/Berlin" in html
    assert '<a href="/simulate" aria-current="page">Simulate</a>' in html
    assert '<a href="/simulate">Simulate</a>' in await (await client.get("/")).text()
    await log_in(client, "bob")
    assert 'value="2026-01-05T07:00"' in await (await client.get("/simulate")).text()


async def test_a_sample_fills_the_payload_and_its_source(make_client):
    client, _ = await start(make_client)
    for name in ("alertmanager", "events_v2"):
        response = await client.get(f"/simulate?sample={name}")
        assert response.status == 200
        html = await response.text()
        textarea = re.search(r'<textarea id="simulate-payload"[^>]*>(.*?)</textarea>', html, re.S)
        assert textarea and json.loads(html_module.unescape(textarea.group(1))) == SAMPLES[name]
        source = re.search(r'<select id="simulate-source".*?</select>', html, re.S)
        assert source and f'<option value="{name}" selected>' in source.group(0)
    # A sample there is none of: said by the picker.
    response = await client.get(f"/simulate?sample={quote(SCRIPT)}")
    assert response.status == 400
    html = await response.text()
    assert "no sample is called that" in field_error(html, "sample")
    assert SCRIPT not in html


async def test_a_simulation_shows_the_route_steps_and_pages_in_both_time_zones(make_client):
    client, token = await start(make_client)
    before = await everything(client)
    response = await post_form(client, "/simulate", token, payload=sample(), **FORM)
    html = await response.text()
    assert response.status == 200, html
    facts = " ".join(re.sub(r"<[^>]+>", " ", html.split('<dl class="facts card">')[1]).split())
    assert "Route routes[1] : it matches every alert" in facts
    assert f"Earlier routes routes[0] : team=&#34;{SHOWN}&#34; does not match" in facts
    assert "Policy default Urgency high Maintenance no window holds it" in facts
    assert rows(html, "step") == [
        f"2026-01-05 13:00 CET 2026-01-05 12:00 UTC Level 1 schedule:primary : {SHOWN} (carol)"
        " (on call in layer 1)",
        "2026-01-05 13:05 CET 2026-01-05 12:05 UTC Level 2 user:bob : Bob Builder (bob)",
    ]
    assert rows(html, "page") == [
        f"2026-01-05 13:00 CET 2026-01-05 12:00 UTC {SHOWN} (carol) email email Level 1",
        f"2026-01-05 13:00 CET 2026-01-05 12:00 UTC {SHOWN} (carol) phone webhook Level 1",
        "2026-01-05 13:05 CET 2026-01-05 12:05 UTC Bob Builder (bob) email email Level 2",
    ]
    svg = svg_of(html)
    titles = re.findall(r'<text class="row-title"[^>]*>([^<]*)</text>', svg)
    assert titles == ["Escalation steps", f"{SHOWN} (carol)", "Bob Builder (bob)"]
    labels = re.findall(r'<text class="mark-label"[^>]*>([^<]*)</text>', svg)
    assert labels == ["L1", "L2", "email", "webhook", "email"]
    assert await everything(client) == before  # it wrote nothing


async def test_bob_sees_the_same_answer_in_new_york_time(make_client):
    client, token = await start(make_client, "bob")
    fields = {**FORM, "at": "2026-01-05T07:00"}  # 12:00 UTC
    html = await (await post_form(client, "/simulate", token, payload=sample(), **fields)).text()
    assert [r.split(" UTC ")[0] for r in rows(html, "page")][:1] == [
        "2026-01-05 07:00 EST 2026-01-05 12:00"
    ]
    assert '<title id="timeline-title">What would happen from 2026-01-05 07:00 EST' in html


async def test_an_override_resolves_the_schedule_and_an_acknowledgement_stops_it(make_client):
    client, token = await start(make_client)
    added = await post_form(
        client,
        "/schedules/primary/overrides",
        token,
        user="alice",
        start="2026-01-05T12:00",
        end="2026-01-05T15:00",
    )
    assert added.status == 303, await added.text()
    response = await post_form(
        client, "/simulate", token, payload=sample(), acknowledge_after="3m", **FORM
    )
    html = await response.text()
    assert [r.split(" UTC ")[-1] for r in rows(html, "step")] == [
        "Level 1 schedule:primary : Alice Example (alice) (on call by an override)"
    ]
    assert '<g class="acknowledged">' in svg_of(html)


async def test_an_events_v2_trigger_over_the_spring_change_is_drawn_in_real_time(make_client):
    client, token = await start(make_client)
    # 01:30 in Berlin on the night the clocks go from 02:00 to 03:00: three real hours.
    fields = {**FORM, "source": "events_v2", "at": "2027-03-28T01:30", "hours": "3"}
    response = await post_form(client, "/simulate", token, payload=sample("events_v2"), **fields)
    html = await response.text()
    assert response.status == 200, html
    assert rows(html, "page")[0].startswith("2027-03-28 01:30 CET 2027-03-28 00:30 UTC")
    svg = svg_of(html)
    assert "clocks go forward 1 h (CET to CEST)" in svg
    lines = re.findall(r'<line class="tick-line" x1="([\d.]+)"', svg)
    labels = re.findall(r'<text class="tick-label"[^>]*>([^<]*)</text>', svg)
    # Half an hour in: 02:00 to 03:00 never happens.
    assert list(zip(lines, labels, strict=True))[:3] == [
        ("0.0", "01:30"),
        ("83.333", "01:45"),
        ("166.667", "03:00 CEST"),
    ]


BAD = [  # (fields, the field whose error is shown, words in it)
    # nothing pasted, not JSON at all, JSON but not an object
    ({"payload": ""}, "payload", "paste a payload"),
    ({"payload": "{not json"}, "payload", "not JSON"),
    ({"payload": "[1, 2]"}, "payload", "expected a JSON object"),
    # JSON the integration refuses
    ({"payload": '{"alerts": "none"}'}, "payload", ""),
    # a source there is none of, one this directory has no integration for
    ({"source": "nagios"}, "source", "expected one of"),
    ({"source": "grafana"}, "source", ""),
    # no time, not a time, a time the clocks skip in Berlin
    ({"at": ""}, "at", "a date and time is required"),
    ({"at": "tomorrow"}, "at", "expected a date and time"),
    ({"at": "2026-03-29T02:30"}, "at", "does not exist in Europe/Berlin"),
    # not a number of hours, none, too many
    ({"hours": "two"}, "hours", "expected a number of hours"),
    ({"hours": "nan"}, "hours", "expected a number of hours"),
    ({"hours": "0"}, "hours", ""),
    ({"hours": "1000"}, "hours", ""),
    # not a duration
    ({"acknowledge_after": "soon"}, "acknowledge_after", "expected a duration"),
]


async def test_bad_input_shows_the_form_again_with_the_fields_error(make_client):
    client, token = await start(make_client)
    before = await everything(client)
    for fields, field, words in BAD:
        given = {**FORM, "payload": sample(), **fields}
        response = await post_form(client, "/simulate", token, **given)
        html = await response.text()
        assert response.status == 400, (fields, html)
        error = field_error(html, field)
        assert error is not None and words in error, (fields, error, html)
        assert 'class="picture simulate-picture"' not in html
        # What was typed is kept, to be corrected.
        for name, value in fields.items():
            if name not in ("source", "payload"):
                assert f'value="{html_module.escape(value)}"' in html, name
    assert await everything(client) == before


async def test_markup_pasted_or_from_the_directory_is_text_on_the_whole_page(make_client):
    client, token = await start(make_client)
    payload = SAMPLES["alertmanager"] | {"receiver": f"</textarea>{SCRIPT}"}
    labels = {"alertname": SCRIPT, "team": SCRIPT}
    payload["alerts"] = [{**payload["alerts"][0], "labels": labels}]
    payload |= {"commonLabels": labels, "groupLabels": {"alertname": SCRIPT}}
    response = await post_form(client, "/simulate", token, payload=json.dumps(payload), **FORM)
    html = await response.text()
    assert response.status == 200, html
    assert injected(html) == []
    assert "Policy markup" in " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert SHOWN in html and SCRIPT not in html
    for bad in (f"</textarea>{SCRIPT}", '{"x": "</textarea><script>alert(2)</script>"'):
        response = await post_form(client, "/simulate", token, **{**FORM, "payload": bad})
        assert injected(await response.text()) == [], bad
    # carol's name is in the picture's rows and in the marks' titles, escaped.
    response = await post_form(client, "/simulate", token, payload=sample(), **FORM)
    svg = svg_of(await response.text())
    assert '<text class="row-title" x="3" y="' in svg and f"{SHOWN} (carol)</text>" in svg
    assert f"<title>{SHOWN} (carol): email to" in svg
    assert SCRIPT not in svg
