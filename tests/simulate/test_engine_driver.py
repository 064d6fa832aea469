"""The engine driver the property test compares the simulator with, checked alone against
pages worked out by hand: rules, escalation, repeats, an acknowledgement, a handoff moved
by the spring change, an override and a maintenance window."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from oncall.settings import Settings
from tests.conftest import FakeClock
from tests.simulate.cases import ADMIN_TOKEN, AM_TOKEN, EV_TOKEN, Case, OverrideSpec, Sent
from tests.simulate.engine import run_engine
from tests.support.factories import make_alert, make_webhook

T = datetime(2027, 6, 7, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)

RULES_AND_REPEAT = f"""
integrations:
  - {{name: am, type: alertmanager, token: "{AM_TOKEN}"}}
  - {{name: ev, type: events_v2, token: "{EV_TOKEN}"}}
users:
  - name: alice
    role: admin
    api_token: "{ADMIN_TOKEN}"
    contacts:
      - {{type: webhook, url: "${{HOOK}}/alice/webhook"}}
      - {{type: slack, url: "${{HOOK}}/alice/slack"}}
    notification_rules:
      high: [{{contact: webhook, after: 0m}}, {{contact: slack, after: 2m}}]
  - {{name: bob, contacts: [{{type: webhook, url: "${{HOOK}}/bob/webhook"}}]}}
policies:
  - name: p
    repeat: 1
    levels:
      - {{notify: ["user:alice"], escalate_after: 5m}}
      - {{notify: ["user:bob"], escalate_after: 10m}}
routes: [{{policy: p}}]
"""


def alert_at(at: datetime, **labels: str) -> dict[str, object]:
    alert = make_alert("db1", starts_at=at)
    alert["labels"].update(labels)
    body = make_webhook([alert])
    body["commonLabels"] = dict(alert["labels"])
    return body


def sent(minutes: float, level: int, repeat: int, user: str, contact: str) -> Sent:
    channel = "slack" if contact == "slack" else "webhook"
    return Sent(T + minutes * MINUTE, level, repeat, user, contact, channel)


async def test_it_pages_each_rule_and_level_and_repeats_the_policy_once(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    case = Case(RULES_AND_REPEAT, "alertmanager", alert_at(T), T, 1, None)
    run = await run_engine(case, make_settings(), clock)
    assert run.pages == [
        sent(0, 1, 0, "alice", "webhook"),
        sent(2, 1, 0, "alice", "slack"),
        sent(5, 2, 0, "bob", "webhook"),
        sent(15, 1, 1, "alice", "webhook"),
        sent(17, 1, 1, "alice", "slack"),
        sent(20, 2, 1, "bob", "webhook"),
    ]
    assert [(s.at, s.level, s.repeat) for s in run.steps] == [
        (T, 1, 0),
        (T + 5 * MINUTE, 2, 0),
        (T + 15 * MINUTE, 1, 1),
        (T + 20 * MINUTE, 2, 1),
    ]


async def test_an_acknowledgement_cancels_the_pages_rules_hold_and_stops_escalating(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    case = Case(RULES_AND_REPEAT, "alertmanager", alert_at(T), T, 1, 16 * MINUTE)
    run = await run_engine(case, make_settings(), clock)
    assert run.pages == [
        sent(0, 1, 0, "alice", "webhook"),
        sent(2, 1, 0, "alice", "slack"),
        sent(5, 2, 0, "bob", "webhook"),
        sent(15, 1, 1, "alice", "webhook"),
    ]
    assert [row[1] for row in run.rows].count("cancelled") == 1  # alice's slack at 17m


async def test_the_period_ends_the_run(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    case = Case(RULES_AND_REPEAT, "alertmanager", alert_at(T), T, 0.1, None)  # 6 minutes
    run = await run_engine(case, make_settings(), clock)
    assert run.pages == [
        sent(0, 1, 0, "alice", "webhook"),
        sent(2, 1, 0, "alice", "slack"),
        sent(5, 2, 0, "bob", "webhook"),
    ]


BERLIN_DAILY = f"""
integrations: [{{name: am, type: alertmanager, token: "{AM_TOKEN}"}}]
users:
  - {{name: alice, role: admin, api_token: "{ADMIN_TOKEN}",
      contacts: [{{type: webhook, url: "${{HOOK}}/alice/webhook"}}]}}
  - {{name: bob, contacts: [{{type: webhook, url: "${{HOOK}}/bob/webhook"}}]}}
  - {{name: carol, contacts: [{{type: webhook, url: "${{HOOK}}/carol/webhook"}}]}}
schedules:
  - name: primary
    time_zone: Europe/Berlin
    layers: [{{members: [alice, bob], rotation: 1d, handoff: "2027-03-27 02:00"}}]
policies:
  - name: p
    repeat: 2
    levels: [{{notify: ["schedule:primary"], escalate_after: 30m}}]
routes: [{{policy: p}}]
maintenance:
  - {{name: night, start: "2027-03-28T01:40:00+00:00", end: "2027-03-28T01:50:00+00:00"}}
"""


async def test_the_spring_change_moves_the_handoff_to_three_and_an_override_wins(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    """01:30 in Berlin on 2027-03-28 is 00:30Z; 02:00 does not exist that night, so the
    daily handoff from alice to bob is at 03:00 CEST, 01:00Z. Carol's override covers
    01:30Z; the window from 01:40Z holds the incident and its end at 01:50Z pages from
    level 1 again, at once."""
    at = datetime(2027, 3, 28, 0, 30, tzinfo=UTC)
    carol = OverrideSpec("primary", "carol", at + 55 * MINUTE, at + 65 * MINUTE)
    case = Case(BERLIN_DAILY, "alertmanager", alert_at(at), at, 2, None, (carol,))
    run = await run_engine(case, make_settings(), clock)

    def page(minutes: int, repeat: int, user: str) -> Sent:
        return Sent(at + minutes * MINUTE, 1, repeat, user, "webhook", "webhook")

    assert run.pages == [
        page(0, 0, "alice"),  # 01:30 CET
        page(30, 1, "bob"),  # 03:00 CEST: the handoff
        page(60, 2, "carol"),  # the override
        page(80, 0, "bob"),  # released at 01:50Z: level 1 again, repeats from 0
        page(110, 1, "bob"),
    ]


async def test_an_events_v2_trigger_pages_like_an_alert(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    event = {
        "routing_key": EV_TOKEN,
        "event_action": "trigger",
        "dedup_key": "disk-db1",
        "payload": {"summary": "Disk full", "source": "db1", "severity": "warning"},
    }
    case = Case(RULES_AND_REPEAT, "events_v2", event, T, 0.05, None)  # 3 minutes
    run = await run_engine(case, make_settings(), clock)
    assert run.pages == [sent(0, 1, 0, "alice", "webhook"), sent(2, 1, 0, "alice", "slack")]
