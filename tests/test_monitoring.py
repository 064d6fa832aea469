"""The dead-man's switch's decision: a ping only while /health's database, scheduler and
cluster checks pass; and the part of its URL that may be logged."""

from __future__ import annotations

import pytest

from oncall.monitoring import PingDecision, should_ping, url_host

OK = {"status": "ok"}
FAIL_DB = {"status": "fail", "error": "OperationalError: no such table: audit_log"}
OVERDUE = {"status": "fail", "error": "2 escalation steps overdue"}
STOPPED = {"status": "fail", "error": "scheduler not running"}
REDIS_DOWN = {"status": "fail", "error": "Connection refused", "for_s": 12.0}
LEADERLESS = {"status": "fail", "error": "no instance leads"}


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        # all well
        ({"database": OK, "redis": OK, "scheduler": OK, "cluster": OK}, PingDecision(True)),
        # a follower whose cluster has a leader: it pings too
        ({"database": OK, "scheduler": OK, "cluster": OK}, PingDecision(True)),
        # nobody leads (a follower's own scheduler check passes: the leader's timers are
        # not its own): no ping
        (
            {"database": OK, "redis": OK, "scheduler": OK, "cluster": LEADERLESS},
            PingDecision(False, "cluster: no instance leads"),
        ),
        # Redis down: the database sweep still fires what falls due
        (
            {"database": OK, "redis": REDIS_DOWN, "scheduler": OK, "cluster": OK},
            PingDecision(True),
        ),
        # the database does not answer
        (
            {"database": FAIL_DB, "redis": OK, "scheduler": OK, "cluster": OK},
            PingDecision(False, "database: OperationalError: no such table: audit_log"),
        ),
        # a step overdue (by more than OVERDUE_AFTER): pages are late
        (
            {"database": OK, "redis": OK, "scheduler": OVERDUE, "cluster": OK},
            PingDecision(False, "scheduler: 2 escalation steps overdue"),
        ),
        # the scheduler stopped
        (
            {"database": OK, "redis": OK, "scheduler": STOPPED, "cluster": OK},
            PingDecision(False, "scheduler: scheduler not running"),
        ),
        # both: each named
        (
            {"database": FAIL_DB, "scheduler": OVERDUE, "cluster": OK},
            PingDecision(
                False,
                "database: OperationalError: no such table: audit_log; "
                "scheduler: 2 escalation steps overdue",
            ),
        ),
        # a check missing is no pass
        (
            {"database": OK},
            PingDecision(False, "scheduler: not checked; cluster: not checked"),
        ),
        # a failure without its error still says which
        (
            {"database": {"status": "fail"}, "scheduler": OK, "cluster": OK},
            PingDecision(False, "database: fail"),
        ),
    ],
)
def test_it_pings_only_while_the_database_the_scheduler_and_the_cluster_pass(checks, expected):
    assert should_ping(checks) == expected


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://hc-ping.com/0f1e2d3c-uuid", "hc-ping.com"),  # the UUID is the secret
        ("https://nosnch.in/abc123?m=up", "nosnch.in"),
        ("http://127.0.0.1:8099/ping/x", "127.0.0.1:8099"),
        ("https://user:password@ntfy.example.org/topic/publish", "ntfy.example.org"),
        ("http://[::1]:9000/p", "[::1]:9000"),
        ("http://[broken/p", "?"),  # unparseable: nothing of it
    ],
)
def test_only_the_host_of_a_ping_url_is_shown(url, host):
    assert url_host(url) == host
