"""`python app.py simulate FILE --at TIME`: the tables it prints from a real directory file
(the spring change in Berlin among them), the database it reads, and exit code 2 naming
what is wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.factories import ALICE_TOKEN, AM_TOKEN
from tests.support.process import ROOT
from tests.support.roles import ADMIN, ADMIN_TOKEN

DIRECTORY = f"""
integrations:
  - {{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}
users:
  - name: alice
    time_zone: Europe/Berlin
    api_token: "{ALICE_TOKEN}"
    contacts: [{{type: email, to: alice@example.com}}]
  - name: bob
    time_zone: America/New_York
    contacts:
      - {{type: email, to: bob@example.com}}
      - {{type: webhook, name: phone, url: "https://hooks.example.com/bob"}}
    notification_rules: {{high: [{{contact: email, after: 0m}}, {{contact: phone, after: 5m}}]}}
  - {{name: dana, role: admin, api_token: "{ADMIN_TOKEN}", contacts: []}}
schedules:
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - {{members: [alice, bob], rotation: 1d, handoff: "2027-03-01 02:00"}}
policies:
  - name: rota
    repeat: 3
    levels: [{{notify: ["schedule:primary"], escalate_after: 15m}}]
routes:
  - {{match: ['team="db"'], policy: rota}}
  - {{policy: rota}}
"""
ALERT = {
    "version": "4",
    "status": "firing",
    "groupKey": '{}:{alertname="DiskFull"}',
    "commonLabels": {"alertname": "DiskFull", "severity": "critical"},
    "commonAnnotations": {"summary": "Disk full on db1"},
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "DiskFull", "instance": "db1"},
            "startsAt": "2027-03-28T00:30:00Z",
        }
    ],
}
SPRING = "2027-03-28T01:30:00+01:00"  # an hour before Berlin's clocks skip 02:00-03:00


def files(tmp_path: Path, alert: dict[str, Any] = ALERT) -> dict[str, str]:
    """Write the directory and the alert; return the settings' variables naming them (and
    a SQLite database that does not exist)."""
    (tmp_path / "oncall.yaml").write_text(DIRECTORY)
    (tmp_path / "alert.json").write_text(json.dumps(alert))
    return {
        "ONCALL_SETTINGS": os.devnull,
        "ONCALL_DIRECTORY_PATH": str(tmp_path / "oncall.yaml"),
        "ONCALL_DIRECTORY_ENV_FILE": str(tmp_path / "oncall.env"),
        "ONCALL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/absent.db",
    }


def simulate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "app.py", "simulate", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


def rows(output: str, section: str) -> list[list[str]]:
    """Return the rows of a section's table, each split on the two spaces between columns."""
    lines = output.split(f"\n{section}:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return [
        [cell.strip() for cell in line.strip().split("  ") if cell.strip()] for line in lines[1:]
    ]


def test_the_spring_change_in_berlin_hands_off_at_three_local_to_the_next_person(
    tmp_path: Path,
) -> None:
    result = simulate(files(tmp_path), str(tmp_path / "alert.json"), "--at", SPRING, "--hours", "1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "route:     routes[1] {}  (catch-all)" in out
    assert '  not routes[0] {team="db"}: team="db" does not match' in out
    assert "policy:    rota" in out and "urgency:   high" in out
    assert "maintenance: none holds it" in out
    assert rows(out, "handoffs") == [
        ["2027-03-28 01:00 UTC", "2027-03-28 03:00 CEST (Europe/Berlin)", "primary", "alice", "bob"]
    ]
    assert [(r[0], r[1], r[2], r[4]) for r in rows(out, "steps")] == [
        (
            "2027-03-28 00:30 UTC",
            "2027-03-28 01:30 CET (Europe/Berlin)",
            "level 1 repeat 0",
            "alice",
        ),
        (
            "2027-03-28 00:45 UTC",
            "2027-03-28 01:45 CET (Europe/Berlin)",
            "level 1 repeat 1",
            "alice",
        ),
        (
            "2027-03-28 01:00 UTC",
            "2027-03-27 21:00 EDT (America/New_York)",
            "level 1 repeat 2",
            "bob",
        ),
        (
            "2027-03-28 01:15 UTC",
            "2027-03-27 21:15 EDT (America/New_York)",
            "level 1 repeat 3",
            "bob",
        ),
    ]
    assert [(r[0], r[2], r[3]) for r in rows(out, "pages")] == [
        ("2027-03-28 00:30 UTC", "alice", "email"),
        ("2027-03-28 00:45 UTC", "alice", "email"),
        ("2027-03-28 01:00 UTC", "bob", "email"),
        ("2027-03-28 01:05 UTC", "bob", "phone"),  # his rule: five minutes later
        ("2027-03-28 01:15 UTC", "bob", "email"),
        ("2027-03-28 01:20 UTC", "bob", "phone"),
    ]
    assert not (tmp_path / "absent.db").exists()  # a database it would have to create: none


def test_an_acknowledgement_stops_what_comes_after_it(tmp_path: Path) -> None:
    result = simulate(
        files(tmp_path),
        str(tmp_path / "alert.json"),
        *("--at", "2027-03-28T01:00:00Z", "--acknowledge-after", "2m"),
    )
    assert result.returncode == 0, result.stderr
    assert [(r[2], r[3]) for r in rows(result.stdout, "pages")] == [("bob", "email")]
    assert rows(result.stdout, "also") == [
        ["2027-03-28 01:02 UTC", "acknowledged: the escalation stops"]
    ]


async def test_it_reads_the_overrides_of_the_database(
    tmp_path: Path, make_client: Any, database_env: dict[str, str]
) -> None:
    env = {**files(tmp_path), **database_env}
    client = await make_client(DIRECTORY)  # the service's: it migrated the database
    override = {"user": "bob", "start": "2027-03-28T00:00:00Z", "end": "2027-03-28T02:00:00Z"}
    response = await client.post(
        "/api/v1/schedules/primary/overrides", json=override, headers=ADMIN
    )
    assert response.status == 201
    result = simulate(env, str(tmp_path / "alert.json"), "--at", SPRING, "--hours", "0.25")
    assert result.returncode == 0, result.stderr
    assert [(r[4], r[5]) for r in rows(result.stdout, "steps")] == [
        ("bob", "override"),
        ("bob", "override"),
    ]
    without = simulate(env, str(tmp_path / "alert.json"), "--at", SPRING, "--no-database")
    assert rows(without.stdout, "steps")[0][4:] == ["alice", "layer:0"]


def test_bad_input_exits_2_naming_it(tmp_path: Path) -> None:
    env = files(tmp_path)
    alert = str(tmp_path / "alert.json")
    cases = [
        ((alert, "--at", "2027-03-28T01:30:00"), "simulate: --at: the time needs an offset"),
        ((alert, "--at", SPRING, "--hours", "200"), "simulate: --hours: expected more than 0"),
        ((alert, "--at", SPRING, "--acknowledge-after", "soon"), "simulate: --acknowledge-after:"),
        ((alert, "--at", SPRING, "--integration", "nope"), "simulate: --integration:"),
        ((alert, "--at", SPRING, "--source", "nagios"), "argument --source: invalid choice"),
        ((str(tmp_path / "missing.json"), "--at", SPRING), "missing.json: cannot read it as JSON"),
    ]
    for args, said in cases:
        result = simulate(env, *args)
        assert (result.returncode, said in result.stderr) == (2, True), (args, result.stderr)


def test_a_payload_the_integration_refuses_exits_2_naming_its_field(tmp_path: Path) -> None:
    broken = {**ALERT, "alerts": [{**ALERT["alerts"][0], "labels": {}}]}
    result = simulate(files(tmp_path, broken), str(tmp_path / "alert.json"), "--at", SPRING)
    assert result.returncode == 2
    assert "simulate: FILE (alerts[0].labels): an alert needs at least one label" in result.stderr
