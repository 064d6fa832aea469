"""Fixtures of the browser tests: Debian's Chromium driven by Playwright (its sync API, in
plain test functions), one real service per module and backend, a fresh browser context per
test, and a folder for screenshots.

Each module gets its own Playwright (not the session): its sync API leaves its event loop
marked as running on the main thread until it stops, which the asyncio tests of later
modules could not share.
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)

from tests.browser.harness import CHROMIUM, Service, log_in
from tests.support.db import BACKENDS

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
TIMEOUT_MS = 10_000  # an action's or an expectation's wait before the test fails

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module", params=BACKENDS)
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """The module's service on one backend; alice's and bob's passwords are set with
    `python app.py set-password` while it runs, as an admin would."""
    backend = str(request.param)
    running = Service(tmp_path_factory.mktemp(f"browser-{backend}"), backend)
    running.start()
    try:
        running.set_password("alice")
        yield running
    finally:
        running.stop()


class Watched:
    """What a page did that no page of ours should: open a dialog (an injected script ran),
    throw, or log an error (a Content-Security-Policy violation is one)."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def watch(self, page: Page) -> None:
        def on_dialog(dialog: Any) -> None:
            self.problems.append(f"a {dialog.type} dialog opened: {dialog.message!r}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", self.on_console)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "")
        # Chromium asks every site for a favicon (there is none), and logs as an error
        # each answer a test provokes on purpose (a wrong password, a form refused).
        if url.endswith("/favicon.ico") or re.search(r"status of 40[13]\b", message.text):
            return
        self.problems.append(f"console error at {url}: {message.text}")


@pytest.fixture
def new_context(browser: Browser, service: Service) -> Iterator[Any]:
    """Return a function that opens a browser context on the service (keyword arguments go
    to `browser.new_context`); each one's pages are watched and it is closed afterwards."""
    contexts: list[BrowserContext] = []
    watched = Watched()

    def open_context(**options: Any) -> BrowserContext:
        context = browser.new_context(
            base_url=service.url, viewport=options.pop("viewport", DESKTOP), **options
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.on("page", watched.watch)
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()
    assert not watched.problems, watched.problems


@pytest.fixture
def page(new_context: Any) -> Page:
    """A page in a fresh context: nobody logged in."""
    return new_context().new_page()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def alice_session(browser: Browser, service: Service) -> dict[str, Any]:
    """The cookies of a session of alice's, logged in once through the form per module."""
    context = browser.new_context(base_url=service.url)
    log_in(context.new_page())
    state = context.storage_state()
    context.close()
    return dict(state)


@pytest.fixture
def alice(new_context: Any, alice_session: dict[str, Any]) -> Page:
    """A page where alice is logged in (on a desktop's screen)."""
    return new_context(storage_state=alice_session).new_page()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The folder of the screenshots: $ONCALL_SCREENSHOTS (`.ci/run` sets and prints it),
    else one in pytest's temporary folder."""
    given = os.environ.get("ONCALL_SCREENSHOTS")
    folder = pathlib.Path(given) if given else tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
