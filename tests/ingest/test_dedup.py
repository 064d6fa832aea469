"""The pure dedup decision, case by case."""

from __future__ import annotations

from datetime import timedelta

from oncall.ingest.alertmanager import parse_webhook
from oncall.ingest.dedup import KnownAlert, OpenIncident, plan_delivery
from tests.support.factories import T0, make_alert, make_webhook

START = T0  # make_alert writes T0 with nanoseconds; the extra digits are dropped


def group_of(*alerts):
    return parse_webhook(make_webhook(list(alerts)))


def stored(alert_id, incident_id, instance, status="firing", open_=True, start=START):
    return KnownAlert(alert_id, incident_id, f"fp-DiskFull-{instance}", status, open_, start)


def test_a_new_group_opens_one_incident():
    [change] = plan_delivery(group_of(make_alert("db1"), make_alert("db2")), None, [], {})
    assert change.incident_id is None and len(change.add) == 2 and change.firing_after == 2


def test_a_pure_redelivery_changes_nothing():
    group = group_of(make_alert("db1"))
    assert plan_delivery(group, OpenIncident(7, 1, 0), [stored(1, 7, "db1")], {7: 1}) == []


def test_a_redelivery_to_a_resolved_incident_changes_nothing():
    group = group_of(make_alert("db1"))
    assert plan_delivery(group, None, [stored(1, 7, "db1", open_=False)], {}) == []


def test_resolving_the_last_firing_alert_auto_resolves():
    group = group_of(make_alert("db1", status="resolved"))
    [change] = plan_delivery(group, OpenIncident(7, 1, 0), [stored(1, 7, "db1")], {7: 1})
    assert change.resolve and change.auto_resolves


def test_resolving_one_of_two_does_not_auto_resolve():
    group = group_of(make_alert("db1", status="resolved"), make_alert("db2"))
    rows = [stored(1, 7, "db1"), stored(2, 7, "db2")]
    [change] = plan_delivery(group, OpenIncident(7, 2, 0), rows, {7: 2})
    assert change.firing_after == 1 and not change.auto_resolves


def test_an_earlier_start_for_a_firing_fingerprint_is_the_same_occurrence():
    earlier = make_alert("db1", status="resolved", starts_at=T0 - timedelta(milliseconds=1))
    [change] = plan_delivery(
        group_of(earlier), OpenIncident(7, 1, 0), [stored(1, 7, "db1")], {7: 1}
    )
    assert change.add == [] and change.rekey == [(1, earlier_start(earlier))]
    assert change.auto_resolves


def earlier_start(alert):
    return parse_webhook(make_webhook([alert])).alerts[0].starts_at


def test_a_later_start_is_a_new_occurrence():
    later = make_alert("db1", starts_at=T0 + timedelta(hours=1))
    [change] = plan_delivery(group_of(later), OpenIncident(7, 1, 0), [stored(1, 7, "db1")], {7: 1})
    assert len(change.add) == 1 and change.rekey == [] and not change.resolve


def test_an_occurrence_resolves_in_its_own_incident_even_from_another_group():
    group = group_of(make_alert("db1", status="resolved"))
    [change] = plan_delivery(group, None, [stored(1, 3, "db1")], {3: 2})
    assert change.incident_id == 3 and change.firing_after == 1
