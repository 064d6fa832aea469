"""The README's first command as a newcomer runs it: `init` with the shipped example files
prints a password for the example's admin, and that password logs in at once."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.harness import log_in, run_async
from tests.support.process import ROOT, ServiceProcess
from tests.support.redis_server import delete_keys


@pytest.fixture
def example_service(tmp_path) -> Iterator[ServiceProcess]:
    """`python app.py` with the checkout's settings.ini and oncall.example.yaml, its
    database, env file and key in this test's folder (not yet started)."""
    prefix = f"oncall-first-run-{uuid.uuid4().hex[:12]}"
    process = ServiceProcess(
        {
            "ONCALL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/oncall.db",
            "ONCALL_REDIS_KEY_PREFIX": prefix,
        },
        tmp_path / "oncall.log",
    )
    yield process
    process.stop()
    delete_keys(prefix)


def test_the_password_init_prints_logs_the_example_admin_in(
    browser: Browser, example_service: ServiceProcess
):
    init = subprocess.run(
        [sys.executable, "app.py", "init"],
        cwd=ROOT,
        env=example_service.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr
    found = re.search(r"/login as (\w+) with the password (\S+)", init.stdout)
    assert found, init.stdout
    user, password = found.groups()
    assert user == "alice"  # the example's admin
    run_async(example_service.start())

    context = browser.new_context(base_url=example_service.url)
    try:
        page = context.new_page()
        log_in(page, user, password)
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="alice")).to_be_visible()
    finally:
        context.close()
