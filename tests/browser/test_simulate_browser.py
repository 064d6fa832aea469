"""In a real Chromium on a phone's screen: alice picks a sample payload on /simulate,
submits it and sees the timeline drawn by the server; the page does not scroll sideways
and breaks no Content-Security-Policy rule (the fixture fails on any console error)."""

from __future__ import annotations

import pathlib
import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import DESKTOP, PHONE
from tests.browser.harness import Service


def test_alice_simulates_a_sample_alert_and_sees_its_timeline_on_a_phone(
    new_context: Any, alice_session: dict[str, Any], service: Service, screenshots: pathlib.Path
):
    page = new_context(viewport=PHONE, storage_state=alice_session).new_page()
    page.goto("/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Simulate").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Simulate an alert")
    page.get_by_label("Sample payload").select_option("alertmanager")
    page.get_by_role("button", name="Use this sample").click()
    expect(page.locator("#simulate-payload")).to_have_value(re.compile('"alertname": "DiskFull"'))

    page.get_by_role("button", name="Simulate", exact=True).click()
    timeline = page.locator("figure.simulate-picture svg")
    expect(timeline).to_be_visible()
    expect(timeline.locator("g.steps-row g.mark").first).to_be_attached()
    expect(page.locator("#pages tr.page").first).to_contain_text("phone")
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"/simulate scrolls sideways on a phone: {widths}"
    folder = screenshots / service.backend
    folder.mkdir(exist_ok=True)
    page.screenshot(path=folder / "simulate-phone.png", full_page=True)
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=folder / "simulate-desktop.png", full_page=True)
