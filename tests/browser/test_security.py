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
