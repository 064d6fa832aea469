"""In a real Chromium, a responder's night: an alert from a real Alertmanager appears on the
list by itself; acknowledge, note and snooze it from its page; put someone else on call
with an override and take it back; every page fits a phone and is photographed."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import DESKTOP, PHONE
from tests.browser.harness import Service, local_minute, readme_screenshots, seed
from tests.support.alertmanager import Alertmanager
from tests.support.factories import AM_TOKEN

REFRESH_MS = 20_000  # Alertmanager's group_wait (1 s), then the list's refresh (every 5 s)


@pytest.fixture(scope="module")
def alertmanager(
    service: Service, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Alertmanager]:
    """Debian's prometheus-alertmanager, sending every group to the service at once."""
    hook = {
        "url": f"{service.url}/api/v1/integrations/alertmanager",
        "http_config": {"authorization": {"credentials": AM_TOKEN}},
    }
    manager = Alertmanager(
        tmp_path_factory.mktemp("alertmanager"),
        receivers=[{"name": "oncall", "webhook_configs": [hook]}],
        route={
            "receiver": "oncall",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
    )
    manager.start()
    yield manager
    manager.stop()


def test_an_incident_from_alertmanager_appears_on_the_list_without_a_reload(
    alice: Page, service: Service, alertmanager: Alertmanager
):
    alice.goto("/")
    incidents = alice.locator("section#incidents")
    expect(incidents).to_be_visible()
    new_one = incidents.get_by_role("link", name=re.compile("BrowserSeesIt"))
    expect(new_one).to_have_count(0)
    alice.evaluate("window.loadedOnce = true")  # gone if the page were loaded again

    alertmanager.add("alertname=BrowserSeesIt", "severity=critical", "instance=web-3")

    expect(new_one).to_be_visible(timeout=REFRESH_MS)
    assert alice.evaluate("window.loadedOnce") is True
    (listed,) = [
        i for i in service.api("/api/v1/incidents")["incidents"] if "BrowserSeesIt" in i["title"]
    ]
    expect(new_one).to_have_attribute("href", f"/incidents/{listed['id']}")


def test_an_incidents_title_on_the_list_opens_its_page(alice: Page, service: Service):
    incident = service.fire("OpenedFromTheList", labels={"instance": "db-8"})
    alice.goto("/")
    alice.locator(f'a[href="/incidents/{incident}"]').click()
    expect(alice).to_have_url(f"{service.url}/incidents/{incident}")
    expect(alice.get_by_role("heading", level=1)).to_have_text("OpenedFromTheList on db-8")
    expect(alice.get_by_role("button", name="Acknowledge")).to_be_visible()


def test_alice_acknowledges_adds_a_note_and_snoozes_from_the_incident_page(
    alice: Page, service: Service
):
    incident = service.fire("ReplicaDown", labels={"instance": "db-7"})
    alice.goto(f"/incidents/{incident}")
    expect(alice.get_by_role("heading", level=1)).to_have_text("ReplicaDown on db-7")

    alice.get_by_role("button", name="Acknowledge").click()
    expect(alice.locator(".status").first).to_have_text("acknowledged")
    expect(alice.get_by_text(re.compile("acknowledged by alice")).first).to_be_visible()
    answer = service.incident(incident)
    assert (answer["status"], answer["acknowledged_by"]) == ("acknowledged", "alice")

    alice.get_by_label("Note").fill("Restarted the replica; watching the lag.")
    alice.get_by_role("button", name="Add note").click()
    timeline = alice.locator("section", has=alice.get_by_role("heading", name="Timeline"))
    expect(timeline).to_contain_text("Restarted the replica; watching the lag.")
    notes = [e for e in service.incident(incident)["timeline"] if e["type"] == "incident.note"]
    assert [e["actor"] for e in notes] == ["alice"]

    alice.get_by_label("Snooze for").select_option("1h")
    alice.get_by_role("button", name="Snooze").click()
    expect(alice.get_by_text(re.compile("snoozed until")).first).to_be_visible()
    until = datetime.fromisoformat(service.incident(incident)["snoozed_until"])
    assert abs(until - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(minutes=5)


def on_call_now(page: Page) -> Any:
    """The /oncall cell saying who is on call now for the schedule "primary": in the row
    with the link to its page, the cell after the schedule's own."""
    row = page.get_by_role("row").filter(has=page.locator('a[href="/schedules/primary"]'))
    return row.get_by_role("cell").nth(1)


def test_an_override_added_on_the_schedule_page_puts_someone_else_on_call_until_removed(
    alice: Page, service: Service
):
    before = service.on_call()
    assert before in ("alice", "bob")  # one layer: somebody always is
    other = "bob" if before == "alice" else "alice"
    alice.goto("/oncall")
    expect(on_call_now(alice)).to_contain_text(before)

    alice.goto("/schedules/primary")
    expect(alice.get_by_role("img").first).to_be_visible()
    now = datetime.now(UTC)
    alice.get_by_label("Who", exact=True).select_option(other)
    alice.get_by_label("From").fill(local_minute(now - timedelta(minutes=1)))
    alice.get_by_label("Until").fill(local_minute(now + timedelta(hours=2)))
    known = {o["id"] for o in overrides(service)}
    alice.get_by_role("button", name="Add override").click()
    expect(alice.get_by_role("button", name="Remove")).to_have_count(len(known) + 1)
    (added,) = [o for o in overrides(service) if o["id"] not in known]
    assert added["user"] == other
    remove = alice.locator(f'form[action="/schedules/primary/overrides/{added["id"]}/delete"]')
    expect(remove.get_by_role("button", name="Remove")).to_be_visible()
    assert service.on_call() == other

    alice.goto("/oncall")
    expect(on_call_now(alice)).to_contain_text(other)
    expect(on_call_now(alice)).not_to_contain_text(before)

    alice.goto("/schedules/primary")
    remove.get_by_role("button", name="Remove").click()
    expect(remove).to_have_count(0)
    assert service.on_call() == before
    assert added["id"] not in [o["id"] for o in overrides(service)]
    alice.goto("/oncall")
    expect(on_call_now(alice)).to_contain_text(before)


def overrides(service: Service) -> list[dict[str, Any]]:
    return list(service.api("/api/v1/schedules/primary/overrides")["overrides"])


@pytest.fixture(scope="module")
def seeded(service: Service) -> dict[str, int]:
    return seed(service)


PAGES = {
    "incidents": "/",
    "incident": "/incidents/{lag}",
    "oncall": "/oncall",
    "schedule": "/schedules/primary",
    "me": "/me",
    "maintenance": "/maintenance",
    "status": "/status",
}


def fits(page: Page) -> tuple[int, int]:
    """Return the page's scrolling width and its viewport's width."""
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    return widths[0], widths[1]


@pytest.mark.parametrize("name", [*PAGES, "login"])
def test_every_page_fits_a_phone_and_is_photographed(
    name: str,
    new_context: Any,
    alice_session: dict[str, Any],
    seeded: dict[str, int],
    service: Service,
    screenshots: pathlib.Path,
):
    session = {} if name == "login" else {"storage_state": alice_session}
    path = "/login" if name == "login" else PAGES[name].format(**seeded)
    folder = screenshots / service.backend
    folder.mkdir(exist_ok=True)
    for screen, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        page = new_context(viewport=viewport, **session).new_page()
        response = page.goto(path)
        assert response is not None and response.status == 200, response
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        page.screenshot(path=folder / f"{name}-{screen}.png", full_page=True)
        if screen == "phone":
            scroll, width = fits(page)
            assert scroll <= width, f"{path} scrolls sideways on a phone: {scroll} > {width}"


def test_the_readme_screenshots_are_made_from_these_pages(
    browser: Browser, service: Service, seeded: dict[str, int], screenshots: pathlib.Path
):
    folder = screenshots / service.backend / "readme"
    folder.mkdir(parents=True, exist_ok=True)
    files = readme_screenshots(browser, service, seeded, folder)
    assert [file.name for file in files] == ["incident.png", "schedule.png"]
    assert all(file.read_bytes().startswith(b"\x89PNG") for file in files)
