"""The pure dedup decision, case by case."""

from __future__ import annotations

from datetime import timedelta

from oncall.ingest.alertmanager import parse_webhook
from oncall.ingest.dedup import KnownAlert, OpenIncident, plan_delivery
from tests.support.factories import T0, make_alert, make_webhook

START = T0  # make_alert writes T0 with nanoseconds; the extra digits are dropped


def group_of(*alerts):
    return parse_webhook(make_webhook(list(alerts)))


def stored(alert_id, incident_id, instance, status="firing", open_=True, start=START, generation=0):
    fingerprint = f"fp-DiskFull-{instance}"
    return KnownAlert(alert_id, incident_id, fingerprint, status, open_, start, generation)


def test_a_new_group_opens_one_incident():
    [change] = plan_delivery(group_of(make_alert("db1"), make_alert("db2")), None, [], {})
    assert change.incident_id is None and len(change.add) == 2 and change.firing_after == 2


def test_a_pure_redelivery_changes_nothing():
    group = group_of(make_alert("db1"))
    assert plan_delivery(group, OpenIncident(7, 1, 0), [stored(1, 7, "db1")], {7: 1}) == []


def test_a_firing_alert_after_a_manual_resolve_refires_in_a_new_incident():
    # Incident 7 was resolved by a person while db1 still fired; Alertmanager re-sends it.
    group = group_of(make_alert("db1"))
    [change] = plan_delivery(group, None, [stored(1, 7, "db1", open_=False)], {})
    assert change.incident_id is None and change.add == []
    [refire] = change.refire
    assert refire.previous.id == 1 and refire.generation == 1 and refire.still_firing
    assert change.firing_after == 1 and change.rows_added == 1


def test_a_firing_alert_after_the_source_resolved_it_refires_whatever_its_start():
    # Alertmanager sent "resolved" (incident 7 auto-resolved), then the same occurrence firing.
    group = group_of(make_alert("db1"))
    rows = [stored(1, 7, "db1", status="resolved", open_=False)]
    [change] = plan_delivery(group, None, rows, {})
    assert change.incident_id is None
    [refire] = change.refire
    assert refire.generation == 1 and not refire.still_firing


def test_a_resolved_redelivery_to_a_resolved_incident_changes_nothing():
    group = group_of(make_alert("db1", status="resolved"))
    for status in ("firing", "resolved"):
        rows = [stored(1, 7, "db1", status=status, open_=False)]
        assert plan_delivery(group, None, rows, {}) == []


def test_a_resolved_alert_of_an_open_incident_sent_again_changes_nothing():
    rows = [stored(1, 7, "db1", status="resolved"), stored(2, 7, "db2")]
    for status in ("resolved", "firing"):  # a late firing copy does not re-fire either
        group = group_of(make_alert("db1", status=status), make_alert("db2"))
        assert plan_delivery(group, OpenIncident(7, 1, 0), rows, {7: 1}) == []


def test_a_refire_joins_the_groups_open_incident():
    group = group_of(make_alert("db1"), make_alert("db2"))
    rows = [stored(1, 3, "db1", open_=False), stored(2, 7, "db2")]
    [change] = plan_delivery(group, OpenIncident(7, 1, 0), rows, {7: 1})
    assert change.incident_id == 7 and [r.previous.id for r in change.refire] == [1]
    assert change.firing_after == 2 and not change.auto_resolves


def test_the_newest_generation_is_the_occurrence():
    # Generation 0 closed in incident 3, generation 1 fires in open incident 7.
    rows = [stored(1, 3, "db1", open_=False), stored(2, 7, "db1", generation=1)]
    assert plan_delivery(group_of(make_alert("db1")), OpenIncident(7, 1, 0), rows, {7: 1}) == []
    [change] = plan_delivery(
        group_of(make_alert("db1", status="resolved")), OpenIncident(7, 1, 0), rows, {7: 1}
    )
    assert change.resolve == [(2, "fp-DiskFull-db1", change.resolve[0][2])]
    assert change.auto_resolves
    # Once incident 7 is closed too, the next firing copy is generation 2.
    closed = [rows[0], stored(2, 7, "db1", status="resolved", open_=False, generation=1)]
    [change] = plan_delivery(group_of(make_alert("db1")), None, closed, {})
    assert [r.generation for r in change.refire] == [2]


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
