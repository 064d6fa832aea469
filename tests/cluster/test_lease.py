"""The lease's decisions: who may take it, when a leader must have stopped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from oncall.cluster.lease import Lease, deadline, interval, release, take

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FAILOVER = timedelta(seconds=10)
FREE = Lease(None, None, 0, None, None)


def held(by: str, expires: datetime, term: int = 3) -> Lease:
    return Lease(by, by.split("#")[0], term, T0 - timedelta(minutes=1), expires)


def test_a_lease_nobody_held_is_taken_as_the_first_term() -> None:
    assert take(FREE, "a#1", "a", T0, FAILOVER) == Lease("a#1", "a", 1, T0, T0 + FAILOVER)


def test_its_holder_renews_it_in_the_same_term_since_the_same_time() -> None:
    current = held("a#1", T0 + timedelta(seconds=2))
    renewed = take(current, "a#1", "a", T0, FAILOVER)
    assert renewed == Lease("a#1", "a", 3, current.since, T0 + FAILOVER)


def test_nobody_else_takes_it_before_it_expires() -> None:
    current = held("a#1", T0 + timedelta(microseconds=1))
    assert take(current, "b#2", "b", T0, FAILOVER) is None


def test_an_expired_lease_is_a_new_term_for_whoever_takes_it() -> None:
    current = held("a#1", T0)  # expires at T0: gone at T0
    assert take(current, "b#2", "b", T0, FAILOVER) == Lease("b#2", "b", 4, T0, T0 + FAILOVER)
    # Its old holder too starts a new term: it stopped leading when it could not renew.
    assert take(current, "a#1", "a", T0, FAILOVER) == Lease("a#1", "a", 4, T0, T0 + FAILOVER)


def test_a_restarted_instance_is_another_holder() -> None:
    # Same [cluster] instance, new process: it waits for the old process's lease.
    current = held("a#1", T0 + timedelta(seconds=5))
    assert take(current, "a#2", "a", T0, FAILOVER) is None


def test_release_expires_it_now_and_only_for_its_holder() -> None:
    current = held("a#1", T0 + timedelta(seconds=5))
    released = release(current, "a#1", T0)
    assert released is not None and not released.live(T0)
    assert take(released, "b#2", "b", T0, FAILOVER) is not None
    assert release(current, "b#2", T0) is None
    assert release(held("a#1", T0), "a#1", T0) is None  # expired already


def test_a_leader_stops_before_its_lease_can_expire() -> None:
    # Renewed at 100.0 (sent then; the database stamps it no earlier), it stops by 109:
    # while the database's lease runs to at least 110.
    assert deadline(100.0, FAILOVER) == 109.0
    assert deadline(100.0, FAILOVER) < 100.0 + FAILOVER.total_seconds()
    # Several renewals fit before it: one failing is not the end.
    assert interval(FAILOVER) * 4 < deadline(0.0, FAILOVER)
