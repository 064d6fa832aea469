"""The pure simulator on hand-built directories: routes, urgency, maintenance, rules,
acknowledgements, repeats, who is on call and why, the storm guard, refused payloads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from oncall.directory.model import Directory
from oncall.directory.parse import parse_directory
from oncall.errors import InvalidInput
from oncall.maintenance.windows import check_window
from oncall.notify.storm import StormThreshold
from oncall.schedules.overrides import Override
from oncall.simulate.answer import Simulation
from oncall.simulate.scenario import Scenario, State, simulate
from tests.support.factories import AM_TOKEN, make_alert, make_webhook

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday
EV_TOKEN = "ev-token-0123456789abcdefghijklmnopqrstuv"
USERS = """
users:
  - name: alice
    time_zone: Europe/Berlin
    contacts:
      - {type: email, to: alice@example.com}
      - {type: webhook, name: phone, url: "https://hooks.example.com/alice"}
    notification_rules:
      high: [{contact: email, after: 0m}, {contact: phone, after: 10m}]
  - {name: bob, contacts: [{type: email, to: bob@example.com}]}
  - {name: carol, contacts: [{type: email, to: carol@example.com}]}
  - {name: dave}
"""


def directory(body: str) -> Directory:
    """Return a directory of alice, bob, carol and dave (no contact) plus `body`."""
    text = f"""
integrations:
  - {{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}
  - {{name: events, type: events_v2, token: "{EV_TOKEN}"}}
{USERS}
{body}
"""
    return parse_directory(text, {}, "oncall.yaml")


TWO_LEVELS = """
policies:
  - name: web
    repeat: 1
    levels:
      - {notify: ["user:bob"], escalate_after: 5m}
      - {notify: ["user:carol"], escalate_after: 10m}
routes: [{policy: web}]
"""


def alert(**labels: str) -> dict[str, Any]:
    """Return an Alertmanager webhook of one firing alert whose common labels are `labels`."""
    body = make_webhook([make_alert("db1", starts_at=T0)])
    body["commonLabels"] = {"alertname": "DiskFull", **labels}
    return body


def run(
    found: Directory,
    payload: dict[str, Any] | None = None,
    *,
    at: datetime = T0,
    hours: float = 1,
    acknowledge_after: timedelta | None = None,
    source: str = "alertmanager",
    state: State | None = None,
) -> Simulation:
    scenario = Scenario(source, payload or alert(), at, hours, acknowledge_after, integration=None)
    return simulate(found, scenario, state or State(windows=found.maintenance))


def pages(simulation: Simulation) -> list[tuple[str, str, str, int, int]]:
    """Return each page as (UTC time HH:MM, user, contact, level, repeat)."""
    return [(f"{p.at:%H:%M}", p.user, p.contact, p.level, p.repeat) for p in simulation.pages]


def steps(simulation: Simulation) -> list[tuple[str, int, int, list[str | None]]]:
    return [
        (f"{s.at:%H:%M}", s.level, s.repeat, [t.user for t in s.targets]) for s in simulation.steps
    ]


def test_it_names_the_matcher_that_failed_at_each_earlier_route() -> None:
    found = directory(
        TWO_LEVELS.replace(
            "routes: [{policy: web}]",
            """routes:
  - {match: ['team="db"', 'severity="critical"'], policy: web}
  - {match: ['team="web"', 'env=~"prod|staging"'], policy: web}
  - {match: ['team="web"'], policy: web}
  - {policy: web}""",
        )
    )
    answer = run(found, alert(team="web", env="dev")).to_json()
    assert answer["route"] == {
        "index": 2,
        "matchers": ['team="web"'],
        "skipped": [
            {"index": 0, "failed": 'team="db"'},
            {"index": 1, "failed": 'env=~"prod|staging"'},
        ],
    }


def test_it_pages_each_level_and_repeat_until_exhausted() -> None:
    simulation = run(directory(TWO_LEVELS))
    assert steps(simulation) == [
        ("12:00", 1, 0, ["bob"]),
        ("12:05", 2, 0, ["carol"]),
        ("12:15", 1, 1, ["bob"]),
        ("12:20", 2, 1, ["carol"]),
    ]
    assert pages(simulation) == [
        ("12:00", "bob", "email", 1, 0),
        ("12:05", "carol", "email", 2, 0),
        ("12:15", "bob", "email", 1, 1),
        ("12:20", "carol", "email", 2, 1),
    ]
    assert [(f"{n.at:%H:%M}", n.kind) for n in simulation.notes] == [("12:30", "exhausted")]


def test_a_low_urgency_incident_pages_level_1_only() -> None:
    found = directory(
        TWO_LEVELS.replace("[{policy: web}]", "[{policy: web, urgency: by_severity}]")
    )
    simulation = run(found, alert(severity="warning"))
    assert simulation.urgency == "low"
    assert steps(simulation) == [("12:00", 1, 0, ["bob"])]
    assert run(found, alert(severity="critical")).urgency == "high"


def test_notification_rules_delay_pages() -> None:
    found = directory(TWO_LEVELS.replace('"user:bob"', '"user:alice"'))
    assert pages(run(found, hours=0.25)) == [
        ("12:00", "alice", "email", 1, 0),
        ("12:05", "carol", "email", 2, 0),
        ("12:10", "alice", "phone", 1, 0),
        ("12:15", "alice", "email", 1, 1),
    ]


def test_an_acknowledgement_stops_later_steps_and_delayed_pages() -> None:
    found = directory(TWO_LEVELS.replace('"user:bob"', '"user:alice"'))
    simulation = run(found, acknowledge_after=timedelta(minutes=7))
    # alice's phone (due 12:10) and level 2's repeat never happen; carol's 12:05 page did.
    assert pages(simulation) == [
        ("12:00", "alice", "email", 1, 0),
        ("12:05", "carol", "email", 2, 0),
    ]
    assert [n.kind for n in simulation.notes] == ["acknowledged"]


def test_an_acknowledgement_that_times_out_escalates_again_from_level_1() -> None:
    found = directory(TWO_LEVELS.replace("repeat: 1", "repeat: 0\n    ack_timeout: 20m"))
    simulation = run(found, acknowledge_after=timedelta(minutes=2))
    assert steps(simulation) == [
        ("12:00", 1, 0, ["bob"]),
        ("12:22", 1, 0, ["bob"]),
        ("12:27", 2, 0, ["carol"]),
    ]
    assert [(f"{n.at:%H:%M}", n.kind) for n in simulation.notes] == [
        ("12:02", "acknowledged"),
        ("12:22", "ack_timeout"),
        ("12:37", "exhausted"),
    ]


WINDOW = """
maintenance:
  - name: upgrade
    start: "2026-01-05T11:00:00Z"
    end: "2026-01-05T12:30:00Z"
    match: ['team="db"']
"""


def test_a_maintenance_window_holds_it_until_it_ends_then_level_1_is_paged() -> None:
    found = directory(TWO_LEVELS + WINDOW)
    simulation = run(found, alert(team="db"), hours=0.6)
    assert simulation.to_json()["maintenance"] == {
        "window": "upgrade",
        "until": "2026-01-05T12:30:00Z",
    }
    assert steps(simulation) == [("12:30", 1, 0, ["bob"]), ("12:35", 2, 0, ["carol"])]
    assert run(found, alert(team="web")).maintenance is None


def test_a_window_opening_mid_escalation_stops_its_steps_and_pending_pages() -> None:
    window = WINDOW.replace("11:00:00Z", "12:08:00Z").replace("12:30:00Z", "12:40:00Z")
    found = directory(TWO_LEVELS.replace('"user:bob"', '"user:alice"') + window)
    simulation = run(found, alert(team="db"))
    # alice's phone page due 12:10 is cancelled by the hold; the window's end restarts.
    assert pages(simulation) == [
        ("12:00", "alice", "email", 1, 0),
        ("12:05", "carol", "email", 2, 0),
        ("12:40", "alice", "email", 1, 0),
        ("12:45", "carol", "email", 2, 0),
        ("12:50", "alice", "phone", 1, 0),
        ("12:55", "alice", "email", 1, 1),
        ("13:00", "carol", "email", 2, 1),  # the span's end is part of it
    ]
    assert [(f"{n.at:%H:%M}", n.kind) for n in simulation.notes] == [
        ("12:08", "held"),
        ("12:40", "released"),
    ]


def test_an_api_window_from_the_state_holds_it_too() -> None:
    found = directory(TWO_LEVELS)
    window, problems = check_window(
        {"name": "db work", "start": "2026-01-05T11:00:00Z", "end": "2026-01-05T14:00:00Z"},
        "api:1",
        {"prometheus"},
    )
    assert window is not None, problems
    simulation = run(found, state=State(windows=[window]))
    assert simulation.maintenance is not None and simulation.maintenance.key == "api:1"
    assert simulation.pages == ()


ROTA = """
schedules:
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - {members: [alice, bob], rotation: 1d, handoff: "2026-01-01 09:00"}
      - members: [carol]
        rotation: 1w
        handoff: "2026-01-01 00:00"
        restrict: {days: [mon], from: "13:10", to: "13:20"}
  - name: empty
    time_zone: UTC
    layers:
      - {members: [bob], rotation: 1d, handoff: "2030-01-01 00:00"}
policies:
  - name: rota
    levels:
      - {notify: ["schedule:primary", "user:bob"], escalate_after: 5m}
      - {notify: ["schedule:empty"], escalate_after: 5m}
routes: [{policy: rota}]
"""


def test_it_says_which_layer_or_override_puts_someone_on_call() -> None:
    found = directory(
        ROTA.replace(
            'escalate_after: 5m}\n      - {notify: ["schedule:empty"]',
            'escalate_after: 5m}\n      - {notify: ["schedule:primary"]',
        )
    )
    override = Override("bob", T0 + timedelta(minutes=20), T0 + timedelta(minutes=30))
    state = State(overrides={"primary": [override]})
    simulation = simulate(found, Scenario("alertmanager", alert(), T0, 0.5), state)
    shown = [
        (step["at"][11:16], step["targets"][0]["resolved_to"], step["targets"][0]["via"])
        for step in simulation.to_json()["steps"]
    ]
    # 13:00 Berlin: alice's day of layer 0; 13:10-13:20 carol's restricted layer 1 on top.
    assert shown == [("12:00", "alice", "layer:0"), ("12:05", "alice", "layer:0")]
    later = simulate(
        found, Scenario("alertmanager", alert(), T0 + timedelta(minutes=10), 0.3), state
    )
    assert [(s.targets[0].user, s.targets[0].via) for s in later.steps] == [
        ("carol", "layer:1"),
        ("carol", "layer:1"),
    ]
    overridden = simulate(
        found, Scenario("alertmanager", alert(), T0 + timedelta(minutes=20), 0.1), state
    )
    assert [(t.user, t.via) for t in overridden.steps[0].targets] == [
        ("bob", "override"),
        ("bob", "user"),
    ]
    # paged once for both targets of level 1
    assert [(p.user, p.level) for p in overridden.pages] == [("bob", 1), ("bob", 2)]


def test_a_level_with_nobody_on_call_pages_nobody() -> None:
    simulation = run(directory(ROTA), hours=0.2)
    second = simulation.steps[1]
    assert (second.level, [(t.target.name, t.user, t.via) for t in second.targets]) == (
        2,
        [("empty", None, "nobody")],
    )
    assert [(p.user, p.contact, p.level) for p in simulation.pages] == [
        ("alice", "email", 1),
        ("bob", "email", 1),
        ("alice", "phone", 1),  # her rule's 10 minutes: level 2 paged nobody meanwhile
    ]
    assert ("nobody_on_call", "schedule 'empty' has nobody on call") in [
        (n.kind, n.text) for n in simulation.notes
    ]


def test_a_user_without_contacts_is_noted_and_not_paged() -> None:
    simulation = run(directory(TWO_LEVELS.replace('"user:bob"', '"user:dave"')), hours=0.05)
    assert [s.targets[0].user for s in simulation.steps] == ["dave"]
    assert simulation.pages == ()
    assert [n.kind for n in simulation.notes] == ["no_contact"]


def test_the_must_show_spring_change_in_berlin_hands_off_at_three_local() -> None:
    # 2027-03-28 01:30 Berlin (CET, UTC+1), an hour before the clocks skip 02:00-03:00.
    found = directory(
        """
schedules:
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - {members: [alice, bob], rotation: 1d, handoff: "2027-03-01 02:00"}
policies:
  - name: rota
    repeat: 3
    levels: [{notify: ["schedule:primary"], escalate_after: 15m}]
routes: [{policy: rota}]
"""
    )
    at = datetime.fromisoformat("2027-03-28T01:30:00+01:00")
    simulation = run(found, at=at, hours=1)
    berlin = [(_local(s.at), s.targets[0].user) for s in simulation.steps]
    assert berlin == [("01:30", "alice"), ("01:45", "alice"), ("03:00", "bob"), ("03:15", "bob")]
    assert [(_local(h.at), h.before, h.after) for h in simulation.handoffs] == [
        ("03:00", "alice", "bob")
    ]
    assert simulation.handoffs[0].at == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)


def _local(at: datetime) -> str:
    return at.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M")


def test_in_a_storm_pages_fold_into_one_digest_per_user() -> None:
    found = directory(TWO_LEVELS.replace('"user:bob"', '"user:alice"'))
    storm = StormThreshold(3, timedelta(minutes=5))
    opened = [T0 - timedelta(seconds=s) for s in (10, 20, 30)]
    simulation = run(found, hours=0.1, state=State(opened=opened, storm=storm))
    # alice's rules page email first: her digest goes there; the phone rule is folded.
    assert [(f"{p.at:%H:%M}", p.user, p.contact, p.digest) for p in simulation.pages] == [
        ("12:00", "alice", "email", True),
        ("12:05", "carol", "email", True),
    ]
    assert simulation.to_json()["pages"][0]["digest"] is True
    quiet = run(found, hours=0.1, state=State(opened=opened[:2], storm=storm))
    assert not any(p.digest for p in quiet.pages)


def test_an_events_v2_trigger_routes_by_its_labels_and_severity() -> None:
    found = directory(
        TWO_LEVELS.replace(
            "routes: [{policy: web}]",
            "routes:\n  - {match: ['component=\"db\"'], policy: web, urgency: by_severity}\n"
            "  - {policy: web}",
        )
    )
    event = {
        "routing_key": "anything",
        "event_action": "trigger",
        "payload": {"summary": "Disk full", "source": "db1", "severity": "info", "component": "db"},
    }
    simulation = run(found, event, source="events_v2")
    assert (simulation.integration, simulation.route.index, simulation.urgency) == (
        "events",
        0,
        "low",
    )
    assert simulation.title == "Disk full"


@pytest.mark.parametrize(
    ("source", "payload", "field"),
    [
        # an alert without labels: the Alertmanager parser's own error, under payload
        (
            "alertmanager",
            {**alert(), "alerts": [{**make_alert("x"), "labels": {}}]},
            "payload.alerts[0].labels",
        ),
        # every alert resolved: it opens no incident
        ("alertmanager", make_webhook([make_alert("x", status="resolved")]), "payload.alerts"),
        # Events v2: the first of its errors names the field
        (
            "events_v2",
            {
                "routing_key": "k",
                "event_action": "trigger",
                "payload": {"source": "db1", "severity": "info"},
            },
            "payload.payload.summary",
        ),
        # an acknowledge opens nothing
        (
            "events_v2",
            {"routing_key": "k", "event_action": "acknowledge", "dedup_key": "d"},
            "payload.event_action",
        ),
        # not the body of any version
        ("alertmanager", {**alert(), "version": "9"}, "payload.version"),
        # a source nobody sends
        ("nagios", alert(), "source"),
        # the directory has no Grafana integration
        ("grafana", alert(), "source"),
    ],
)
def test_a_payload_the_integration_would_refuse_is_refused_naming_its_field(
    source: str, payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        run(directory(TWO_LEVELS), payload, source=source)
    assert refused.value.field == field


def test_an_integration_that_does_not_take_the_source_is_refused() -> None:
    scenario = Scenario("alertmanager", alert(), T0, 1, None, integration="events")
    with pytest.raises(InvalidInput) as refused:
        simulate(directory(TWO_LEVELS), scenario, State())
    assert refused.value.field == "integration"
