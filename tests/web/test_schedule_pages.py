"""The /oncall and /schedules/{name} pages: who is on call, the picture, overrides by form."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from oncall.web.keys import RUNTIME
from tests.support.factories import AM_TOKEN
from tests.support.ui import log_in, page_csrf, post_form

SCRIPT = "<script>alert(1)</script>"
# alice (admin) and bob share a daily rotation handing off at 09:00 Berlin time; carol,
# whose full name is markup, holds weekday evenings. T0 is Monday 5 January 13:00 in Berlin:
# alice is on call until carol takes over at 18:00.
DIRECTORY = f"""
integrations:
  - {{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}
users:
  - name: alice
    full_name: Alice Example
    role: admin
    time_zone: Europe/Berlin
    contacts: [{{type: email, to: alice@example.com}}]
  - name: bob
    full_name: Bob Builder
    time_zone: Europe/Berlin
    contacts: [{{type: email, to: bob@example.com}}]
  - name: carol
    full_name: "{SCRIPT}"
    contacts: [{{type: email, to: carol@example.com}}]
schedules:
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - {{members: [alice, bob], rotation: 1d, handoff: "2026-01-01 09:00"}}
      - members: [carol]
        rotation: 7d
        handoff: "2026-01-01 00:00"
        restrict: {{days: [mon, tue, wed, thu, fri], from: "18:00", to: "20:00"}}
policies:
  - name: default
    repeat: 1
    levels:
      - {{notify: ["schedule:primary"], escalate_after: 5m}}
      - {{notify: ["user:bob"], escalate_after: 10m}}
routes:
  - {{policy: default}}
"""
PAGE = "/schedules/primary"


async def start(make_client, user="alice"):
    client = await make_client(directory=DIRECTORY)
    await log_in(client, user)
    return client, await page_csrf(client, PAGE)


async def text_of(client, path, status=200):
    response = await client.get(path)
    assert response.status == status, await response.text()
    return await response.text()


def schedule_row(html: str) -> str:
    """Return the /oncall table row of the schedule primary."""
    found = re.search(r'<tr>\s*<td><a href="/schedules/primary">.*?</tr>', html, re.S)
    assert found, html
    return found.group(0)


def plain(fragment: str) -> str:
    """Return an HTML fragment's text, tags dropped and spaces squeezed."""
    return " ".join(re.sub(r"<[^>]+>", "", fragment).split())


def override_marks(html: str) -> list[str]:
    """Return the titles of the picture's override segments."""
    return re.findall(r'<g class="segment segment-override">\s*<title>([^<]*)</title>', html)


def remove_paths(html: str) -> list[str]:
    return re.findall(r'action="(/schedules/primary/overrides/\d+/delete)"', html)


async def stored(client):
    rows = await client.server.app[RUNTIME].schedules.overrides("primary")
    return [(r.user_name, r.start_at, r.end_at) for r in rows]


async def add(client, token, user="bob", begin="2026-01-05T12:00", until="2026-01-05T15:00"):
    return await post_form(client, f"{PAGE}/overrides", token, user=user, start=begin, end=until)


async def test_oncall_shows_who_is_on_call_now_and_the_next_handoff(make_client):
    client, _ = await start(make_client)
    html = await text_of(client, "/oncall")
    row = plain(schedule_row(html))
    assert "Alice Example (alice)" in row
    assert "2026-01-05 18:00 CET to &lt;script&gt;alert(1)&lt;/script&gt; (carol)" in row
    levels = plain(re.search(r'<ol class="levels">.*?</ol>', html, re.S).group(0))
    assert "Level 1 (notifies schedule primary): Alice Example (alice)" in levels
    assert "Level 2 (notifies user bob): Bob Builder (bob)" in levels


async def test_an_override_added_by_form_changes_oncall_and_the_picture_until_removed(
    make_client,
):
    client, token = await start(make_client)
    response = await add(client, token)  # 12:00 to 15:00 Berlin time
    assert response.status == 303
    assert response.headers["Location"] == PAGE
    assert await stored(client) == [
        ("bob", datetime(2026, 1, 5, 11, tzinfo=UTC), datetime(2026, 1, 5, 14, tzinfo=UTC))
    ]
    row = plain(schedule_row(await text_of(client, "/oncall")))
    assert "Bob Builder (bob)" in row
    assert "2026-01-05 15:00 CET to Alice Example (alice)" in row

    html = await text_of(client, PAGE)
    assert override_marks(html) == [
        "Bob Builder (bob), override: 2026-01-05 12:00 CET to 2026-01-05 15:00 CET"
    ]
    assert "Bob Builder <strong>(override)</strong>" in html  # the shifts table says so
    (remove,) = remove_paths(html)

    response = await post_form(client, remove, token)
    assert response.status == 303 and response.headers["Location"] == PAGE
    assert await stored(client) == []
    assert "Alice Example (alice)" in plain(schedule_row(await text_of(client, "/oncall")))
    html = await text_of(client, PAGE)
    assert override_marks(html) == [] and remove_paths(html) == []


async def test_forms_without_the_csrf_token_or_a_session_are_refused_and_change_nothing(
    make_client,
):
    client, token = await start(make_client)
    fields = {"user": "bob", "start": "2026-01-05T12:00", "end": "2026-01-05T15:00"}
    for refused in ({}, {"_csrf": "not-the-token"}):
        response = await client.post(
            f"{PAGE}/overrides", data={**fields, **refused}, allow_redirects=False
        )
        assert response.status == 403
    assert await stored(client) == []

    assert (await add(client, token)).status == 303
    (remove,) = remove_paths(await text_of(client, PAGE))
    response = await client.post(remove, data={}, allow_redirects=False)
    assert response.status == 403
    assert len(await stored(client)) == 1

    client.session.cookie_jar.clear()  # no session: the token alone is not enough
    assert (await add(client, token, until="2026-01-05T16:00")).status == 403
    assert (await post_form(client, remove, token)).status == 403
    assert len(await stored(client)) == 1


async def test_a_responder_manages_only_their_own_overrides(make_client):
    client, token = await start(make_client)
    assert (await add(client, token, user="carol")).status == 303
    client.session.cookie_jar.clear()
    await log_in(client, "bob")
    token = await page_csrf(client, PAGE)
    html = await text_of(client, PAGE)
    assert remove_paths(html) == []  # carol's override has no button for bob
    options = re.findall(r'<option value="([^"]+)"', html)
    assert options == ["bob"]

    rows = await client.server.app[RUNTIME].schedules.overrides("primary")
    response = await post_form(client, f"{PAGE}/overrides/{rows[0].id}/delete", token)
    assert response.status == 403
    assert "only your own overrides" in await response.text()
    tomorrow = {"begin": "2026-01-06T12:00", "until": "2026-01-06T15:00"}
    response = await add(client, token, user="carol", **tomorrow)
    assert response.status == 403
    assert [user for user, _, _ in await stored(client)] == ["carol"]

    assert (await add(client, token, user="bob", **tomorrow)).status == 303
    assert len(remove_paths(await text_of(client, PAGE))) == 1  # bob's own


async def test_the_picture_has_a_lane_per_layer_and_berlin_day_boundaries(make_client):
    client, _ = await start(make_client)
    html = await text_of(client, PAGE)
    svg = re.search(r"<svg .*?</svg>", html, re.S).group(0)
    assert 'role="img"' in svg
    assert '<title id="picture-title">Who is on call on schedule primary, Monday 5 January' in svg
    assert svg.count('class="day-line"') == 15  # 14 days and the end
    labels = re.findall(r'class="day-label" x="[^"]+" y="16">([^<]+)<', svg)
    assert labels[0] == "Mon 5" and labels[-1] == "Sun 18" and len(labels) == 14
    lanes = re.findall(r'class="lane-title" x="3" y="[^"]+">([^<]+)<', svg)
    assert lanes == [
        "Layer 1: alice, bob (every day)",
        "Layer 2: carol (every week, restricted hours)",
        "Final: layers and overrides",
    ]
    assert "Alice Example (alice): 2026-01-05 09:00 CET to 2026-01-05 18:00 CET" in svg


async def test_the_day_the_clocks_go_back_is_drawn_25_hours_long(make_client, clock):
    clock.now = datetime(2026, 10, 20, 10, tzinfo=UTC)
    client, _ = await start(make_client)
    html = await text_of(client, PAGE)
    assert "<title>Sunday 25 October 2026: 25 hours</title>" in html
    assert re.search(r'class="day-note" x="[^"]+" y="34">25 h<', html)
    assert "Sunday 25 October 2026 has 25 hours" in html


async def test_an_added_override_is_marked_in_the_picture_with_a_pattern_and_words(make_client):
    client, token = await start(make_client)
    assert (await add(client, token, user="carol")).status == 303
    html = await text_of(client, PAGE)
    mark = re.search(r'<rect class="override-mark"[^>]*>', html).group(0)
    assert 'fill="url(#override-hatch)"' in mark and "stroke-dasharray" in mark
    assert "Override (hatched, dashed outline)" in html  # the legend


async def test_names_from_the_directory_are_shown_as_text(make_client):
    client, token = await start(make_client)
    assert (await add(client, token, user="carol")).status == 303
    for path in ("/oncall", PAGE):
        html = await text_of(client, path)
        assert SCRIPT not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_an_unknown_schedule_is_a_not_found_page(make_client):
    client, token = await start(make_client)
    html = await text_of(client, "/schedules/nope", status=404)
    assert "Not found" in html and "schedule &#39;nope&#39; not found" in html
    response = await post_form(client, "/schedules/nope/overrides", token, user="bob")
    assert response.status == 404


# (case, start, end, the error shown)
BAD_TIMES = [
    ("in the spring gap", "2026-03-29T02:30", "2026-03-29T05:00", "does not exist in Europe"),
    ("in the autumn overlap", "2026-10-25T02:30", "2026-10-25T05:00", "happens twice"),
    ("until before from", "2026-01-05T15:00", "2026-01-05T12:00", "Until: must be after start"),
    ("not a time", "tomorrow", "2026-01-05T12:00", "From: expected a date and time"),
    ("empty", "", "2026-01-05T12:00", "From: a date and time is required"),
]


async def test_a_local_time_that_is_skipped_repeated_or_wrong_is_refused_in_words(make_client):
    client, token = await start(make_client)
    for case, begin, until, shown in BAD_TIMES:
        response = await add(client, token, begin=begin, until=until)
        html = await response.text()
        assert response.status == 400, case
        assert shown in html, case
        # the form keeps what was typed
        assert f'name="start" required value="{begin}"' in html, case
    assert await stored(client) == []
