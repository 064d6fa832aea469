"""In a real Chromium: logging in with a password set on the command line, what is refused
(a wrong password, a form without its CSRF token, a post without a session), alert data
shown as text, and the pages without JavaScript."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.harness import Service, log_in

CSRF_REFUSED = re.compile("did not come from this site")


def test_bob_logs_in_with_the_password_set_by_the_command_line(page: Page, service: Service):
    service.set_password("bob", "bob's own passphrase, typed once")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    log_in(page, "bob", "bob's own passphrase, typed once")
    expect(page).to_have_url(service.url + "/")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="bob")).to_be_visible()


def test_a_wrong_password_is_refused_and_logs_nobody_in(page: Page):
    page.goto("/login")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill("not alice's password at all")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(alice: Page, service):
    incident = service.fire("CsrfTokenRemoved")
    alice.goto(f"/incidents/{incident}")
    acknowledge = alice.get_by_role("button", name="Acknowledge")
    acknowledge.evaluate("button => button.form.querySelector('input[name=_csrf]').remove()")
    acknowledge.click()
    expect(alice.get_by_text(CSRF_REFUSED)).to_be_visible()
    # A script posting the form by itself, without the token or with a made-up one:
    for body in ("", "_csrf=made-up-token-0123456789"):
        status = alice.evaluate(
            """async ([path, body]) => (await fetch(path, {method: "POST", body,
                headers: {"Content-Type": "application/x-www-form-urlencoded"}})).status""",
            [f"/incidents/{incident}/resolve", body],
        )
        assert status == 403
    assert service.incident(incident)["status"] == "triggered"


def test_a_post_without_a_session_is_refused_and_changes_nothing(page: Page, service):
    incident = service.fire("NobodyLoggedIn")
    page.goto("/login")  # the site's own page, with the anonymous session's token
    token = page.locator("input[name=_csrf]").get_attribute("value")
    status = page.evaluate(
        """async ([path, token]) => (await fetch(path, {method: "POST",
            body: new URLSearchParams({_csrf: token}), redirect: "manual"})).status""",
        [f"/incidents/{incident}/acknowledge", token],
    )
    assert status == 403
    assert service.incident(incident)["status"] == "triggered"


def test_labels_and_annotations_are_shown_as_text_never_run(alice: Page, service):
    label = "<script>alert('label')</script>"
    summary = "<img src=x onerror=alert('summary')> disk full"
    incident = service.fire(
        "MarkupInAlert",
        labels={"team": label},
        annotations={"summary": summary, "description": "<b>not bold</b>"},
    )
    alice.goto("/?q=MarkupInAlert")
    expect(alice.locator(f'a[href="/incidents/{incident}"]')).to_contain_text(summary)
    alice.goto(f"/incidents/{incident}")
    expect(alice.get_by_role("heading", level=1)).to_have_text(summary)
    expect(alice.get_by_text(f"team={label}").first).to_be_visible()
    expect(alice.get_by_text("<b>not bold</b>").first).to_be_visible()
    # Nothing the alert said became an element (and the fixture fails on any dialog).
    assert alice.locator("main script, main img, main b").count() == 0


def test_without_javascript_a_responder_logs_in_and_acknowledges(new_context, service):
    page = new_context(java_script_enabled=False).new_page()
    incident = service.fire("NoJavaScript")
    log_in(page)
    page.goto(f"/incidents/{incident}")
    with page.expect_navigation():  # a plain form post, then the incident's page again
        page.get_by_role("button", name="Acknowledge").click()
    expect(page).to_have_url(f"{service.url}/incidents/{incident}")
    expect(page.locator(".status").first).to_have_text("acknowledged")
    answer = service.incident(incident)
    assert (answer["status"], answer["acknowledged_by"]) == ("acknowledged", "alice")
