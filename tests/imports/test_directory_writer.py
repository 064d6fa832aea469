"""The importers' writer: plain data in, a directory file the parser accepts out."""

from __future__ import annotations

import secrets
from datetime import datetime, time, timedelta

from oncall.directory.parse import parse_directory, unset_references
from oncall.imports.directory_writer import (
    ImportedContact,
    ImportedDirectory,
    ImportedIntegration,
    ImportedLayer,
    ImportedLevel,
    ImportedPolicy,
    ImportedRestriction,
    ImportedRoute,
    ImportedRule,
    ImportedSchedule,
    ImportedUser,
    Names,
    check,
    render,
    slug,
)
from oncall.schedules.rotation import Restriction


def make_imported() -> ImportedDirectory:
    return ImportedDirectory(
        source="Vendor (https://vendor.example)",
        integrations=[ImportedIntegration("checkout", "events_v2", comments=["from service X"])],
        users=[
            ImportedUser(
                "alice",
                'Alice ${HOME} "Ex"\nample',
                "Europe/Berlin",
                "admin",
                [
                    ImportedContact("email", "alice@example.com"),
                    ImportedContact("webhook", "https://hooks.example/a"),
                    ImportedContact("email", "alice@home.example"),
                ],
                {"high": [ImportedRule(0, timedelta(0)), ImportedRule(2, timedelta(minutes=5))]},
                comments=["phone +49 30 1234: oncall cannot call\n- {injected: yes}"],
            ),
            ImportedUser("bob"),
        ],
        schedules=[
            ImportedSchedule(
                "primary",
                "Europe/Berlin",
                [
                    ImportedLayer(["alice", "bob"], timedelta(weeks=1), datetime(2026, 1, 5, 9)),
                    ImportedLayer(
                        ["bob"],
                        timedelta(days=1),
                        datetime(2026, 1, 5, 9),
                        ImportedRestriction(("mon", "fri"), time(18), time(9)),
                    ),
                ],
            )
        ],
        policies=[
            ImportedPolicy(
                "default",
                [
                    ImportedLevel(["schedule:primary"], timedelta(minutes=30)),
                    ImportedLevel(["user:bob", "user:alice"], timedelta(minutes=5)),
                ],
                repeat=2,
            )
        ],
        routes=[
            ImportedRoute("default", ['service="checkout"']),
            ImportedRoute("default", comments=["everything else"]),
        ],
        notes={"integrations": ["an email integration was left out"]},
    )


def parsed(text: str):
    environ = {name: secrets.token_urlsafe(32) for name, _ in unset_references(text, {})}
    return parse_directory(text, environ), environ


def test_it_writes_a_file_the_parser_accepts_with_every_object():
    text = render(make_imported())
    assert check(text) == []
    directory, _ = parsed(text)
    assert directory.users["alice"].role == "admin"
    assert [c.name for c in directory.users["alice"].contacts] == ["email", "webhook", "email-2"]
    rules = directory.users["alice"].rules("high")
    assert [(r.contact, r.after) for r in rules] == [
        ("email", timedelta(0)),
        ("email-2", timedelta(minutes=5)),
    ]
    layers = directory.schedules["primary"].layers
    assert layers[0].rotation == timedelta(weeks=1)
    assert layers[0].handoff == datetime(2026, 1, 5, 9)
    assert layers[1].restrict == Restriction(frozenset({0, 4}), time(18), time(9))
    policy = directory.policies["default"]
    assert policy.repeat == 2
    assert [str(t) for t in policy.levels[1].targets] == ["user:bob", "user:alice"]
    assert str(directory.routes[0].matchers[0]) == 'service="checkout"'
    assert directory.routes[1].matchers == ()


def test_every_token_and_secret_is_a_variable_for_init_to_generate():
    text = render(make_imported())
    _, environ = parsed(text)
    assert set(environ) == {
        "INTEGRATION_CHECKOUT_TOKEN",
        "USER_ALICE_TOKEN",
        "USER_ALICE_WEBHOOK_SECRET",
        "USER_BOB_TOKEN",
    }
    keys = [key for _, key in unset_references(text, {})]
    assert {key.rpartition(".")[2] for key in keys} == {"token", "api_token", "secret"}


def test_vendor_text_stays_literal_and_inside_its_comment():
    text = render(make_imported())
    directory, _ = parsed(text)
    # `${HOME}` is not expanded, quotes and the newline survive in the value.
    assert directory.users["alice"].full_name == 'Alice ${HOME} "Ex"\nample'
    # A newline in a comment cannot start a YAML line of its own.
    assert "# phone +49 30 1234: oncall cannot call - {injected: yes}" in text
    assert "# an email integration was left out" in text


def test_names_are_directory_names_and_unique():
    names = Names()
    assert names.take("Alice Example", key="P1") == "alice-example"
    assert names.take("alice example") == "alice-example-2"
    assert names.take("", "  ", fallback="user") == "user"
    assert names.take("Ünïcode ☃ Team") == "unicode-team"
    assert names.by_key == {"P1": "alice-example"}
    assert slug("--A.B_c--") == "a.b_c"
    assert len(names.take("x" * 200)) == 63


def test_an_empty_import_says_what_is_missing():
    problems = check(render(ImportedDirectory(source="Nothing")))
    assert any("routes: at least one route is required" in p for p in problems)
