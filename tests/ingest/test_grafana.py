"""Parsing Grafana's webhook: its documented body, its offsets, its own fields kept as the
alerts' context (links, image, details), unknown fields ignored, and field-named errors.
Pure."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from oncall.errors import InvalidInput
from oncall.ingest.alertmanager import MAX_TEXT
from oncall.ingest.context import NO_CONTEXT
from oncall.ingest.grafana import parse_alert_webhook, parse_grafana
from tests.support.factories import load_payload, make_alert, make_webhook

SILENCE_US = (
    "https://play.grafana.org/alerting/silence/new?alertmanager=grafana"
    "&matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1"
)


def documented() -> dict[str, Any]:
    """Return Grafana's documented body (tests/data/grafana_firing.json), a fresh copy."""
    return copy.deepcopy(load_payload("grafana_firing"))


def test_the_documented_body_parses_with_both_alerts():
    group = parse_grafana(documented())
    assert (group.group_key, group.status, group.receiver) == (
        "{}:{}",
        "firing",
        "My Super Webhook",
    )
    assert group.external_url == "https://play.grafana.org/"
    assert group.common_labels == {"team": "blue"}
    assert group.title() == "High memory usage"  # no common summary: the first alert's name
    assert [a.fingerprint for a in group.alerts] == ["c6eadffa33fcdf37", "bc97ff14869b13e3"]
    memory, cpu = group.alerts
    # 09:51:03 at +02:00 is 07:51:03 UTC.
    assert memory.starts_at == datetime(2021, 10, 12, 7, 51, 3, 157076, tzinfo=UTC)
    assert cpu.starts_at == datetime(2021, 10, 12, 7, 56, 3, 157076, tzinfo=UTC)
    assert memory.ends_at is None and cpu.ends_at is None  # Go's zero time
    assert memory.generator_url == "https://play.grafana.org/alerting/1afz29v7z/edit"
    assert memory.annotations == {
        "description": "The system has high memory usage",
        "runbook_url": "https://myrunbook.com/runbook/1234",
        "summary": "This alert was triggered for zone us-1",
    }
    # The empty dashboardURL and panelURL are not links; values stay numbers.
    assert memory.context.links == ({"href": SILENCE_US, "text": "Silence in Grafana"},)
    assert memory.context.images == ()
    assert memory.context.custom_details == {"values": {"B": 44.23943737541908, "C": 1}}
    assert cpu.context.links[0]["href"].endswith("zone%3Deu-1")


def test_the_documented_resolved_body_parses_resolved():
    group = parse_grafana(load_payload("grafana_resolved"))
    assert group.status == "resolved"
    ends = datetime(2021, 10, 12, 8, 6, 3, 157076, tzinfo=UTC)
    assert [(a.status, a.ends_at) for a in group.alerts] == [("resolved", ends)] * 2
    assert group.alerts[0].context.custom_details == {"values": {"B": 21.5, "C": 0}}


@pytest.mark.parametrize(
    ("starts_at", "expected"),
    [
        # Grafana writes times in its server's zone, as Go's time.Time marshals them.
        ("2021-10-12T09:51:03.157076+02:00", datetime(2021, 10, 12, 7, 51, 3, 157076, tzinfo=UTC)),
        # a zone west of UTC, with minutes, crossing back a day
        ("2021-10-11T19:21:03-05:30", datetime(2021, 10, 12, 0, 51, 3, tzinfo=UTC)),
        # east of UTC by more than 12 hours: the day before in UTC
        ("2021-10-13T00:51:03.5+14:00", datetime(2021, 10, 12, 10, 51, 3, 500000, tzinfo=UTC)),
        # a server in UTC writes +00:00 or Z, nanoseconds truncated
        (
            "2021-10-12T07:51:03.157076123+00:00",
            datetime(2021, 10, 12, 7, 51, 3, 157076, tzinfo=UTC),
        ),
        ("2021-10-12T07:51:03Z", datetime(2021, 10, 12, 7, 51, 3, tzinfo=UTC)),
    ],
)
def test_offsets_are_turned_into_utc(starts_at, expected):
    body = documented()
    body["alerts"][0]["startsAt"] = starts_at
    assert parse_grafana(body).alerts[0].starts_at == expected


def test_an_offset_end_is_turned_into_utc_too():
    body = load_payload("grafana_resolved")
    body["alerts"][1]["endsAt"] = "2021-10-12T03:06:03.157076-05:00"
    assert parse_grafana(body).alerts[1].ends_at == datetime(
        2021, 10, 12, 8, 6, 3, 157076, tzinfo=UTC
    )


def test_unknown_extra_fields_are_ignored():
    body = documented()
    body["somethingNew"] = {"nested": [1, 2]}
    body["orgId"] = "not even a number"  # documented, unused
    body["message"] = None
    alert = body["alerts"][0]
    # Newer Grafanas add these to each alert; none is kept.
    alert.update(orgId=1, enrichments={"k": [1]}, embeddedImage="a.png", futureField=[None])
    group = parse_grafana(body)
    assert len(group.alerts) == 2
    context = group.alerts[0].context
    assert [link["text"] for link in context.links] == ["Silence in Grafana"]
    assert context.images == () and list(context.custom_details) == ["values"]
    assert group.alerts[0].annotations == documented()["alerts"][0]["annotations"]


def test_grafanas_links_image_and_values_are_the_alerts_context():
    body = documented()
    alert = body["alerts"][0]
    alert["dashboardURL"] = "https://grafana.example/d/abc?from=1&to=2"
    alert["panelURL"] = "https://grafana.example/d/abc?from=1&to=2&viewPanel=4"
    alert["imageURL"] = "https://images.example/abc.png"
    alert["valueString"] = "[ var='B' labels={zone=us-1} value=44.2 ]"
    context = parse_grafana(body).alerts[0].context
    assert context.links == (
        {"href": "https://grafana.example/d/abc?from=1&to=2", "text": "Grafana dashboard"},
        {"href": "https://grafana.example/d/abc?from=1&to=2&viewPanel=4", "text": "Grafana panel"},
        {"href": SILENCE_US, "text": "Silence in Grafana"},
    )
    # The screenshot links to its panel.
    assert context.images == (
        {
            "src": "https://images.example/abc.png",
            "href": "https://grafana.example/d/abc?from=1&to=2&viewPanel=4",
            "alt": "Panel image",
        },
    )
    assert context.custom_details == {
        "values": {"B": 44.23943737541908, "C": 1},
        "valueString": "[ var='B' labels={zone=us-1} value=44.2 ]",
    }


def test_an_image_without_a_panel_links_to_the_dashboard_or_nowhere():
    body = documented()
    body["alerts"][0].update(imageURL="https://i.example/a.png", dashboardURL="https://g/d/x")
    body["alerts"][1].update(imageURL="https://i.example/b.png")
    first, second = parse_grafana(body).alerts
    assert first.context.images[0]["href"] == "https://g/d/x"
    assert second.context.images[0]["href"] == ""


def test_an_alert_without_grafanas_fields_has_no_context():
    body = documented()
    body["alerts"] = body["alerts"][:1]
    body["alerts"][0].update(values=None, valueString="", silenceURL="")
    [alert] = parse_grafana(body).alerts
    assert alert.context is NO_CONTEXT


def test_grafanas_urls_are_kept_on_one_line():
    body = documented()
    body["alerts"][0]["dashboardURL"] = " https://grafana.example/d/abc\r\nBcc: eve@example.com"
    link = parse_grafana(body).alerts[0].context.links[0]
    assert link == {
        "href": "https://grafana.example/d/abc Bcc: eve@example.com",
        "text": "Grafana dashboard",
    }  # one line; a page shows it as text, since it is no URL


@pytest.mark.parametrize(
    ("change", "field"),
    [
        # values: Go's map[string]float64
        (lambda a: a.update(values=[44.2]), "alerts[1].values"),
        (lambda a: a.update(values={"B": "44.2"}), "alerts[1].values.B"),
        (lambda a: a.update(values={"B": True}), "alerts[1].values.B"),
        (lambda a: a.update(values={"B": None}), "alerts[1].values.B"),
        (lambda a: a.update(values={"B": 10**400}), "alerts[1].values.B"),
        (lambda a: a.update(values={f"V{n}": n for n in range(101)}), "alerts[1].values"),
        # Grafana's URLs and value string: strings of bounded size
        (lambda a: a.update(dashboardURL=17), "alerts[1].dashboardURL"),
        (lambda a: a.update(panelURL={"url": "x"}), "alerts[1].panelURL"),
        (lambda a: a.update(silenceURL=["x"]), "alerts[1].silenceURL"),
        (lambda a: a.update(imageURL="https://x/" + "a" * MAX_TEXT), "alerts[1].imageURL"),
        (lambda a: a.update(valueString=4), "alerts[1].valueString"),
        # what the Alertmanager parser checks, checked the same
        (lambda a: a.update(startsAt="2021-10-12T09:51:03.157076+2:00"), "alerts[1].startsAt"),
        (lambda a: a.update(startsAt="2021-10-12T09:51:03+25:00"), "alerts[1].startsAt"),
        (lambda a: a.update(endsAt=0), "alerts[1].endsAt"),
        (lambda a: a.update(status="alerting"), "alerts[1].status"),
        (lambda a: a.pop("labels"), "alerts[1].labels"),
        (lambda a: a["annotations"].update(summary=None), "alerts[1].annotations.summary"),
        (lambda a: a.update(fingerprint=7), "alerts[1].fingerprint"),
    ],
)
def test_a_malformed_alert_is_refused_naming_its_field(change, field):
    body = documented()
    change(body["alerts"][1])
    with pytest.raises(InvalidInput) as refused:
        parse_grafana(body)
    assert refused.value.field == field
    with pytest.raises(InvalidInput) as refused_too:  # on the Alertmanager endpoint as well
        parse_alert_webhook(body)
    assert refused_too.value.field == field


def test_a_value_that_is_not_finite_is_refused():
    # JSON has no NaN (oncall.db.jsoncodec refuses it), but a decoded body is checked anyway.
    body = documented()
    body["alerts"][0]["values"] = {"B": float("inf")}
    with pytest.raises(InvalidInput) as refused:
        parse_grafana(body)
    assert refused.value.field == "alerts[0].values.B"


def test_the_alertmanager_endpoints_parser_takes_both_versions():
    assert parse_alert_webhook(documented()).alerts[0].context.links
    plain = make_webhook([make_alert("db1")])
    assert parse_alert_webhook(plain).alerts[0].context is NO_CONTEXT
    del plain["version"]  # a sender that leaves it out is taken as Alertmanager
    assert len(parse_alert_webhook(plain).alerts) == 1


@pytest.mark.parametrize("version", ["2", "5", 4, 1, ""])
def test_any_other_version_is_refused_naming_both(version):
    body = documented()
    body["version"] = version
    with pytest.raises(InvalidInput) as refused:
        parse_alert_webhook(body)
    assert refused.value.field == "version"
    assert '"4" (Alertmanager) or "1" (Grafana)' in str(refused.value)


def test_grafanas_endpoint_refuses_an_alertmanager_body():
    with pytest.raises(InvalidInput) as refused:
        parse_grafana(make_webhook([make_alert("db1")]))
    assert refused.value.field == "version"
    assert str(refused.value).startswith("unsupported webhook version '4'; expected \"1\"")
