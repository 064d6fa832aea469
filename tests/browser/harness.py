"""The service the browser tests drive: a real `python app.py` with a small team's directory,
a webhook endpoint its pages go to, and plain-HTTP helpers for what a test does around the
browser (posting alerts as Alertmanager does, reading the API as alice's scripts would);
a night's realistic data (`seed`), logging in, and the README's screenshots (`python -m
tests.browser.harness` writes docs/screenshots/, the tests make the same ones).

Everything here is synchronous: Playwright's sync API keeps an event loop of its own running
on the main thread, so the coroutines of `ServiceProcess` and the PostgreSQL clean-up run in
a thread of their own (`run_async`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import pathlib
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.db import POSTGRES_URL, drop_schema
from tests.support.factories import ALICE_TOKEN, AM_TOKEN, BOB_TOKEN, make_alert, rfc3339
from tests.support.process import ROOT, ServiceProcess
from tests.support.redis_server import REDIS_HOST, REDIS_PORT, delete_keys

_T = TypeVar("_T")
PASSWORD = "a long passphrase for the browser tests"
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
CHROMIUM = "/usr/bin/chromium"  # Debian's package; Playwright downloads no browser here
BERLIN = ZoneInfo("Europe/Berlin")  # alice's time zone: the forms' times are read in it


def in_thread(function: Callable[..., _T], *args: Any) -> _T:
    """Return `function(*args)`, called in a thread of its own: there, unlike on the main
    thread, `asyncio.run` may start a loop (see the module's docstring)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args).result()


def run_async(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run `coroutine` to its end in a thread of its own."""
    return in_thread(asyncio.run, coroutine)


def directory(receiver: str) -> str:
    """Return the team's directory file: alice (admin) and bob share a weekly rotation; each
    has a phone that takes pages, and alice's chat hook is gone (its pages fail for good and
    show on /status)."""
    return f"""
integrations:
  - {{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}
users:
  - name: alice
    full_name: Alice Example
    role: admin
    time_zone: Europe/Berlin
    api_token: "{ALICE_TOKEN}"
    contacts:
      - {{type: webhook, name: phone, url: "{receiver}/phone/alice"}}
      - {{type: webhook, name: chat, url: "{receiver}/gone"}}
  - name: bob
    full_name: Bob Builder
    time_zone: Europe/Berlin
    api_token: "{BOB_TOKEN}"
    contacts:
      - {{type: webhook, name: phone, url: "{receiver}/phone/bob"}}
schedules:
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - {{members: [alice, bob], rotation: 1w, handoff: "2026-01-05 09:00"}}
policies:
  - name: default
    levels:
      - {{notify: ["schedule:primary"], escalate_after: 30m}}
      - {{notify: ["user:bob"], escalate_after: 30m}}
routes:
  - {{policy: default}}
"""


class _Hook(BaseHTTPRequestHandler):
    """A phone's push service: 200 for /phone/*, 410 for a hook that was deleted."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(200 if self.path.startswith("/phone/") else 410)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the service's log says what it sent


class Receiver:
    """The webhook endpoint of every contact, on a free port, in a thread."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Service:
    """One `python app.py` on `backend` ("sqlite" or "postgresql") with its files in
    `folder`, and what tests do to it over plain HTTP and the command line."""

    def __init__(self, folder: pathlib.Path, backend: str) -> None:
        self.folder = folder
        self.backend = backend
        self.receiver = Receiver()
        self.key_prefix = f"oncall-browser-{uuid.uuid4().hex[:12]}"
        self.schema: str | None = None
        env = {
            "ONCALL_SETTINGS": "/dev/null",
            "ONCALL_REDIS_HOST": REDIS_HOST,
            "ONCALL_REDIS_PORT": str(REDIS_PORT),
            "ONCALL_REDIS_KEY_PREFIX": self.key_prefix,
            "ONCALL_DIRECTORY_PATH": str(folder / "oncall.yaml"),
        }
        if backend == "postgresql":
            self.schema = f"t_{uuid.uuid4().hex[:16]}"
            env.update(ONCALL_DATABASE_URL=POSTGRES_URL, ONCALL_DATABASE_SCHEMA=self.schema)
        else:
            env["ONCALL_DATABASE_URL"] = f"sqlite+aiosqlite:///{folder}/oncall.db"
        self.process = ServiceProcess(env, folder / "oncall.log")
        self.process.env["ONCALL_SERVER_PUBLIC_URL"] = self.process.url

    @property
    def url(self) -> str:
        return self.process.url

    def start(self) -> None:
        self.receiver.start()
        (self.folder / "oncall.yaml").write_text(directory(self.receiver.url))
        run_async(self.process.start())

    def stop(self) -> None:
        self.process.stop()
        self.receiver.stop()
        delete_keys(self.key_prefix)
        if self.schema is not None:
            in_thread(drop_schema, self.schema)

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """Run `python app.py ARGS` with the service's own settings."""
        return subprocess.run(
            [sys.executable, "app.py", *args],
            cwd=ROOT,
            env=self.process.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def set_password(self, user: str, password: str = PASSWORD) -> None:
        """`python app.py set-password USER`, the password on standard input."""
        result = self.cli("set-password", user, stdin=password + "\n")
        assert result.returncode == 0, result.stderr

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """Return the status and the JSON answer (None when empty) of an API request."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **ALICE, **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, json.loads(raw) if raw else None

    def api(self, path: str) -> Any:
        """Return what GET `path` answers alice (it must succeed)."""
        status, body = self.request("GET", path)
        assert status == 200, body
        return body

    def incident(self, incident_id: int) -> dict[str, Any]:
        return dict(self.api(f"/api/v1/incidents/{incident_id}"))

    def fire(
        self,
        alertname: str,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> int:
        """Post one firing alert as Alertmanager's webhook does; return its incident's id."""
        labels = labels or {}
        alert = make_alert(labels.get("instance", "db-1"), alertname=alertname)
        alert["startsAt"] = rfc3339(datetime.now(UTC) - timedelta(minutes=2))
        alert["labels"].update(labels)
        alert["annotations"].update(annotations or {})
        alert["fingerprint"] = uuid.uuid4().hex[:16]
        body = {
            "receiver": "oncall",
            "status": "firing",
            "alerts": [alert],
            "groupLabels": {"alertname": alertname},
            "commonLabels": alert["labels"],
            "commonAnnotations": alert["annotations"],
            "externalURL": "http://alertmanager.example.com:9093",
            "version": "4",
            "groupKey": f'{{}}:{{alertname="{alertname}", id="{alert["fingerprint"]}"}}',
            "truncatedAlerts": 0,
        }
        status, answer = self.request(
            "POST",
            "/api/v1/integrations/alertmanager",
            body,
            {"Authorization": f"Bearer {AM_TOKEN}"},
        )
        assert status == 200, answer
        (incident_id,) = answer["incidents"]
        return int(incident_id)

    def on_call(self, schedule: str = "primary") -> str | None:
        return self.api("/api/v1/oncall")["schedules"][schedule]  # type: ignore[no-any-return]


def seed(service: Service) -> dict[str, int]:
    """Give the service a night's worth of realistic data, through its API as Alertmanager
    and alice would: an incident acknowledged with a note, one still triggered, one
    resolved, an override tomorrow evening and a maintenance window; return the incidents'
    ids by name ("lag", "errors", "disk")."""
    lag = service.fire(
        "PostgresReplicationLag",
        labels={"severity": "critical", "team": "db", "instance": "db-2.prod", "job": "postgres"},
        annotations={
            "summary": "Replication lag on db-2.prod is 94 s",
            "description": "The replica is more than a minute behind the primary.",
            "runbook_url": "https://runbooks.example.com/postgres/replication-lag",
        },
    )
    errors = service.fire(
        "HighErrorRate",
        labels={"severity": "critical", "team": "web", "instance": "api-1.prod", "job": "api"},
        annotations={"summary": "5xx rate on api-1.prod above 5 % for 10 minutes"},
    )
    disk = service.fire(
        "DiskFilling",
        labels={"severity": "warning", "team": "infra", "instance": "backup-1.prod"},
        annotations={"summary": "/var on backup-1.prod will be full in 6 hours"},
    )
    for path, body in (
        (f"/api/v1/incidents/{lag}/acknowledge", None),
        (f"/api/v1/incidents/{lag}/notes", {"text": "Replica rebuilt after the failover."}),
        (f"/api/v1/incidents/{disk}/resolve", None),
        # alice's chat hook is gone: her page to it fails for good (a dead letter)
        (f"/api/v1/incidents/{errors}/responders", {"user": "alice"}),
    ):
        status, answer = service.request("POST", path, body)
        assert status in (200, 201), answer
    tomorrow = datetime.now(BERLIN).replace(hour=18, minute=0, second=0, microsecond=0)
    tomorrow += timedelta(days=1)
    then = service.api(f"/api/v1/oncall?at={quote(tomorrow.isoformat())}")["schedules"]
    for path, body in (
        (
            "/api/v1/schedules/primary/overrides",
            {
                "user": "alice" if then["primary"] == "bob" else "bob",
                "start": tomorrow.isoformat(),
                "end": (tomorrow + timedelta(hours=4)).isoformat(),
            },
        ),
        (
            "/api/v1/maintenance",
            {
                "name": "Database upgrade",
                "start": (tomorrow + timedelta(hours=4)).isoformat(),
                "end": (tomorrow + timedelta(hours=5, minutes=30)).isoformat(),
                "match": ['team="db"'],
            },
        ),
    ):
        status, answer = service.request("POST", path, body)
        assert status == 201, answer
    return {"lag": lag, "errors": errors, "disk": disk}


def log_in(page: Page, user: str = "alice", password: str = PASSWORD) -> None:
    """Log in through the login form as a person does."""
    page.goto("/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


README_SHOTS = ROOT / "docs" / "screenshots"
README_WIDTH = 1024
README_MAX_HEIGHT = 1300  # the top of a long page: what a reader needs to see


def readme_screenshots(
    browser: Browser, service: Service, seeded: dict[str, int], folder: pathlib.Path
) -> list[pathlib.Path]:
    """Photograph the incident page (of the seeded, acknowledged incident) and the
    schedule page as alice sees them on a desktop; return the PNG files written."""
    context = browser.new_context(
        base_url=service.url, viewport={"width": README_WIDTH, "height": 800}
    )
    try:
        page = context.new_page()
        log_in(page)
        written = []
        for name, path in (
            ("incident", f"/incidents/{seeded['lag']}"),
            ("schedule", "/schedules/primary"),
        ):
            page.goto(path)
            expect(page.get_by_role("heading", level=1)).to_be_visible()
            height = min(page.evaluate("document.documentElement.scrollHeight"), README_MAX_HEIGHT)
            file = folder / f"{name}.png"
            page.screenshot(
                path=file,
                full_page=True,
                clip={"x": 0, "y": 0, "width": README_WIDTH, "height": height},
            )
            written.append(file)
        return written
    finally:
        context.close()


def main() -> None:
    """Write the README's screenshots (docs/screenshots/) from a fresh service on SQLite
    with the seeded data: `python -m tests.browser.harness` (Redis must be running)."""
    with tempfile.TemporaryDirectory() as folder:
        service = Service(pathlib.Path(folder), "sqlite")
        service.start()
        try:
            service.set_password("alice")
            seeded = seed(service)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
                README_SHOTS.mkdir(parents=True, exist_ok=True)
                for file in readme_screenshots(browser, service, seeded, README_SHOTS):
                    print(f"{file.relative_to(ROOT)}: {file.stat().st_size // 1024} KB")
                browser.close()
        finally:
            service.stop()


def local_minute(at: datetime) -> str:
    """Return `at` as a datetime-local input's value in alice's time zone."""
    return at.astimezone(BERLIN).strftime("%Y-%m-%dT%H:%M")


if __name__ == "__main__":
    main()
