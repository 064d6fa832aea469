"""In a real Chromium, as an attacker and as a bad night would: no page breaks its own
Content-Security-Policy (nothing needs an inline style or script, htmx's swaps included),
and a link from alert data opens where it says, even to another port of this host."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.harness import Service, log_in
from tests.support.factories import AM_TOKEN, make_alert

# Collects the page's policy violations from before its first script runs (Playwright's
# init scripts are not the page's own: the policy does not apply to them).
WATCH_POLICY = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective}: ${event.blockedURI} ${event.sample}`);
});
"""


def violations(page: Page) -> list[str]:
    return list(page.evaluate("window.__violations || []"))


def fire(service: Service, alertname: str, generator_url: str) -> int:
    """Post one firing alert whose source is `generator_url`; return its incident."""
    alert = make_alert("db-9", alertname=alertname)
    alert["generatorURL"] = generator_url
    alert["annotations"]["runbook_url"] = generator_url
    alert["labels"]["team"] = "<b style='color:red' onclick='alert(1)'>db</b>"
    alert["fingerprint"] = uuid.uuid4().hex[:16]
    body = {
        "receiver": "oncall",
        "status": "firing",
        "alerts": [alert],
        "groupLabels": {"alertname": alertname},
        "commonLabels": alert["labels"],
        "commonAnnotations": {},
        "externalURL": generator_url,
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}"}}',
        "truncatedAlerts": 0,
    }
    auth = {"Authorization": f"Bearer {AM_TOKEN}"}
    status, answer = service.request("POST", "/api/v1/integrations/alertmanager", body, auth)
    assert status == 200, answer
    (incident,) = answer["incidents"]
    return int(incident)


def test_no_page_needs_what_its_security_policy_forbids(new_context: Any, service: Service):
    incident = fire(service, "PolicyWatch", "https://prometheus.example.com/graph")
    context = new_context()
    context.add_init_script(WATCH_POLICY)
    page = context.new_page()
    page.goto("/login")
    assert violations(page) == []
    log_in(page)
    for path in (
        "/",
        "/?status=all&q=PolicyWatch",
        f"/incidents/{incident}",
        "/oncall",
        "/schedules/primary",
        "/me",
        "/maintenance",
        "/status",
    ):
        page.goto(path)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        assert violations(page) == [], path
    # What htmx does: a boosted link, a boosted form, the list's own refresh.
    page.goto("/")
    with page.expect_response(lambda r: r.url.endswith("/") and r.request.method == "GET"):
        pass  # the list refreshes itself every 5 s
    page.get_by_role("link", name="On call").click()
    expect(page).to_have_url(re.compile(r"/oncall$"))
    page.goto(f"/incidents/{incident}")
    page.get_by_label("Note").fill("a note posted by htmx")
    page.get_by_role("button", name="Add note").click()
    expect(page.get_by_text("a note posted by htmx")).to_be_visible()
    page.goto("/me")
    page.get_by_role("button", name=re.compile("(Create|Rotate) calendar feed")).click()
    expect(page.locator("#feed-urls")).to_be_visible()
    assert violations(page) == []


def test_a_source_link_to_another_port_of_this_host_opens(new_context: Any, service: Service):
    # A Prometheus on the same host as the service: the same host name, another port.
    target = f"{service.receiver.url}/graph?g0.expr=up"
    incident = fire(service, "SourceNextDoor", target)
    page = new_context().new_page()
    log_in(page)
    # Prometheus answers in its stead: what matters is that the browser went there.
    page.route(target, lambda route: route.fulfill(body="Prometheus", content_type="text/plain"))
    page.goto(f"/incidents/{incident}")
    page.get_by_role("link", name="Source").click()
    expect(page).to_have_url(target)
