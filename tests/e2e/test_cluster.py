"""Three instances on one PostgreSQL database (issue 24): the leader SIGKILLed three times
under a steady stream of incidents, the leader cut off from the database, and every
instance's role sampled throughout. Real `python app.py` processes on a PostgreSQL cluster
of the test's own, each instance connecting as its own role; real Redis; a real webhook
receiver that records every delivery id and attempt number it gets.

Run with `-s` to see the figures each run prints."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from oncall.clock import system_clock
from oncall.db.engine import Database, make_engine
from oncall.db.models import escalation_jobs, incident_events, incidents, notifications
from oncall.notify.outbox import LEASE
from oncall.settings import load_settings
from tests.support.cluster import (
    ClusterDatabase,
    IncidentLoad,
    Instance,
    RoleSampler,
    Sample,
    cluster_state,
    health_checks,
    make_instances,
    overlapping_leaders,
    shared_terms,
    sole_leader,
)
from tests.support.factories import AM_TOKEN
from tests.support.postgres_cluster import PostgresCluster
from tests.support.receivers import HttpReceiver, Received
from tests.support.redis_server import REDIS_HOST, REDIS_PORT
from tests.support.waiting import eventually

NAMES = ("a", "b", "c")
FAILOVER = 4.0  # seconds: [cluster] failover, small so that three failovers fit a test
RATE = 3.0  # incidents a second, through the instances in turn
LEVEL_2_AFTER = 10  # seconds from an incident's opening to its level 2
WARM_UP = int(RATE * LEVEL_2_AFTER)  # incidents before the first fault: level 2s fall due in it
BETWEEN = 6  # incidents opened between one recovery and the next fault
KILLS = 3
# Longest wait for every step and page after the load stops: the last level 2 falls due,
# and a page sent by a process that died before recording it goes again after its lease.
SETTLE = LEVEL_2_AFTER + FAILOVER + LEASE.total_seconds() + 30


def directory(receiver_url: str) -> str:
    """One user paged on the receiver: level 1 at once, level 2 LEVEL_2_AFTER later (its
    own wait long past the test, so no exhaustion step runs), no repeat. The integration's
    rate limit is each instance's own: one may take the share of one that is down."""
    return f"""
integrations:
  - {{name: prometheus, type: alertmanager, token: "{AM_TOKEN}", rate_limit: 6000/1m}}
users:
  - {{name: alice, contacts: [{{type: webhook, url: "{receiver_url}"}}]}}
policies:
  - name: p
    repeat: 0
    levels:
      - {{notify: ["user:alice"], escalate_after: {LEVEL_2_AFTER}s}}
      - {{notify: ["user:alice"], escalate_after: 1h}}
routes: [{{policy: p}}]
"""


# The cluster, its instances and the test's own view of the database.


@pytest.fixture
def own_postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
async def cluster_db(own_postgres: PostgresCluster) -> ClusterDatabase:
    db = ClusterDatabase(own_postgres, NAMES)
    await db.create()
    return db


@pytest.fixture
async def reader(cluster_db: ClusterDatabase) -> AsyncIterator[Database]:
    """The test's handle on the instances' database, as the `postgres` superuser."""
    env = {"ONCALL_SETTINGS": "/dev/null", "ONCALL_DATABASE_URL": cluster_db.url()}
    db = Database(make_engine(load_settings(env).database))
    yield db
    await db.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def instances(
    tmp_path: Path, cluster_db: ClusterDatabase, key_prefix: str, receiver: HttpReceiver
) -> AsyncIterator[list[Instance]]:
    """The three instances, started, with the same settings but their database role and
    instance name; stopped (SIGTERM) afterwards."""
    path = tmp_path / "oncall.yaml"
    path.write_text(directory(receiver.url))
    shared = {
        "ONCALL_SETTINGS": "/dev/null",  # none of the checkout's settings.ini
        "ONCALL_REDIS_HOST": REDIS_HOST,
        "ONCALL_REDIS_PORT": str(REDIS_PORT),
        "ONCALL_REDIS_KEY_PREFIX": key_prefix,
        "ONCALL_DIRECTORY_PATH": str(path),
        "ONCALL_CLUSTER_FAILOVER": f"{FAILOVER:g}s",
        # Every incident pages: a storm would fold its pages into digests.
        "ONCALL_PAGING_STORM_THRESHOLD": "100000/5m",
    }
    started = make_instances(cluster_db, shared, tmp_path)
    try:
        # The first applies the migrations and writes the shared secret key; the others
        # then start together.
        await started[0].process.start()
        await asyncio.gather(*(i.process.start() for i in started[1:]))
        yield started
    finally:
        await asyncio.gather(*(asyncio.to_thread(i.process.stop) for i in started))


@pytest.fixture
async def sampler(
    http: aiohttp.ClientSession, instances: list[Instance]
) -> AsyncIterator[RoleSampler]:
    """A role sampler of the instances, started; stopped afterwards, however the test ends."""
    sampling = RoleSampler(http, instances)
    sampling.start()
    yield sampling
    await sampling.stop()


@pytest.fixture
async def load(
    http: aiohttp.ClientSession, instances: list[Instance]
) -> AsyncIterator[IncidentLoad]:
    """Incidents opened at RATE through the instances, started; stopped afterwards, however
    the test ends (the test stops it itself when it has opened enough)."""
    opening = IncidentLoad(http, instances, RATE)
    opening.start()
    yield opening
    await opening.stop()


async def _value(value: Any) -> Any:
    return value


# What the database and the receiver say.


@dataclass
class Facts:
    """The run's outcome as the database records it."""

    incidents: set[int]
    level_2: dict[int, tuple[str, datetime, datetime | None]]  # incident: state, due, fired
    fired: Counter[tuple[int, int]]  # (incident, level): escalation.level timeline entries
    pages: list[Any]  # trigger notifications: id, incident_id, level, user, contact, ...


async def read_facts(db: Database) -> Facts:
    def read(conn: Any) -> Facts:
        ids = set(conn.execute(select(incidents.c.id)).scalars())
        jobs = conn.execute(
            select(
                escalation_jobs.c.incident_id,
                escalation_jobs.c.state,
                escalation_jobs.c.due_at,
                escalation_jobs.c.fired_at,
            ).where(escalation_jobs.c.level == 2, escalation_jobs.c.repeat == 0)
        )
        events = conn.execute(
            select(incident_events.c.incident_id, incident_events.c.detail).where(
                incident_events.c.type == "escalation.level"
            )
        )
        pages = conn.execute(
            select(
                notifications.c.id,
                notifications.c.incident_id,
                notifications.c.level,
                notifications.c.user_name,
                notifications.c.contact_index,
                notifications.c.status,
                notifications.c.attempts,
            ).where(notifications.c.kind == "trigger")
        )
        return Facts(
            ids,
            {j.incident_id: (j.state, j.due_at, j.fired_at) for j in jobs},
            Counter((i, (d or {}).get("level", 0)) for i, d in events),
            list(pages),
        )

    return await db.run(read)


def deliveries(requests: list[Received]) -> dict[int, list[int | None]]:
    """Return the attempt numbers the receiver got per delivery id (None: no header)."""
    got: dict[int, list[int | None]] = defaultdict(list)
    for request in requests:
        attempt = request.headers.get("X-Oncall-Attempt")
        got[int(request.headers["X-Oncall-Delivery"])].append(
            int(attempt) if attempt is not None else None
        )
    return got


def unsettled(facts: Facts, received: dict[int, list[int | None]]) -> list[str]:
    """Return what is still to happen: level 2s not fired, pages not sent or not received."""
    problems = []
    if missing := sorted(facts.incidents - facts.level_2.keys()):
        problems.append(f"incidents without a level-2 step: {missing[:10]}")
    if waiting := sorted(i for i, (state, _, _) in facts.level_2.items() if state != "fired"):
        states = Counter(facts.level_2[i][0] for i in waiting)
        problems.append(f"level-2 steps not fired: {dict(states)}, e.g. {waiting[:10]}")
    if unsent := [p for p in facts.pages if p.status != "sent"]:
        problems.append(f"pages not sent: {Counter(p.status for p in unsent)}")
    if unreceived := [p.id for p in facts.pages if p.id not in received]:
        problems.append(f"pages the receiver never got: {unreceived[:10]}")
    return problems


async def settle(db: Database, receiver: HttpReceiver) -> Facts:
    """Return the facts once every level 2 has fired and every page is received; raises
    naming what is missing when that takes longer than SETTLE."""
    last: list[str] = []

    async def done() -> Facts | None:
        facts = await read_facts(db)
        last[:] = unsettled(facts, deliveries(receiver.requests))
        return None if last else facts

    try:
        facts: Facts = await eventually(done, timeout=SETTLE, what="every step and page")
    except AssertionError as error:
        raise AssertionError(f"{error}: {'; '.join(last)}") from None
    return facts


def assert_each_step_and_page_once(
    facts: Facts, load: IncidentLoad, receiver: HttpReceiver
) -> list[float]:
    """Check the run's outcome; return the level-2 steps' gaps (fired_at - due_at, s)."""
    assert not load.lost, f"groups no instance took: {load.lost[:10]}"
    # Every group opened one incident, whichever instance (or instances) it went to.
    assert facts.incidents == set(load.opened.values())
    assert len(load.opened) == len(set(load.opened.values()))
    for incident in facts.incidents:
        assert facts.fired[(incident, 1)] == 1, (incident, facts.fired[(incident, 1)])
        assert facts.fired[(incident, 2)] == 1, (incident, facts.fired[(incident, 2)])
        assert facts.level_2[incident][0] == "fired"
    # One page per incident, level and contact: no step paged twice.
    per_step = Counter((p.incident_id, p.level, p.user_name, p.contact_index) for p in facts.pages)
    twice = {key: n for key, n in per_step.items() if n != 1}
    assert not twice, f"steps paged more than once: {twice}"
    assert {(i, level) for i, level, _, _ in per_step} == {
        (i, level) for i in facts.incidents for level in (1, 2)
    }
    # Every page delivered at least once, each attempt at most once, and never an attempt
    # the database has not claimed.
    received = deliveries(receiver.requests)
    attempts = {p.id: p.attempts for p in facts.pages}
    assert set(received) == set(attempts), set(received) ^ set(attempts)
    for delivery, numbers in received.items():
        assert None not in numbers, f"delivery {delivery} came without X-Oncall-Attempt"
        assert len(numbers) == len(set(numbers)), f"delivery {delivery} got attempts {numbers}"
        assert max(n for n in numbers if n is not None) <= attempts[delivery], (
            delivery,
            numbers,
            attempts[delivery],
        )
    gaps = []
    for _state, due, fired_at in facts.level_2.values():
        assert fired_at is not None
        gaps.append((fired_at - due).total_seconds())
    assert max(gaps) < FAILOVER + 5, f"a level 2 fired {max(gaps):.1f} s late"
    return gaps


def assert_one_leader_at_a_time(sampler: RoleSampler) -> None:
    """No two processes claimed to lead in overlapping request windows; no term had two
    holders."""
    assert sampler.samples, "the sampler got no answer"
    pairs = overlapping_leaders(sampler.samples)
    assert not pairs, f"{len(pairs)} overlapping leader claims, e.g. {pairs[:3]}"
    shared = shared_terms(sampler.samples)
    assert not shared, f"terms with several holders: {shared}"


def summary(sampler: RoleSampler) -> str:
    claims = sampler.leader_claims()
    waits = [s.received - s.sent for s in sampler.samples]
    span = max(s.received for s in sampler.samples) - min(s.sent for s in sampler.samples)
    return (
        f"{len(sampler.samples)} role samples in {span:.0f} s ({len(claims)} leader claims, "
        f"{sampler.unanswered} unanswered, answered in median {statistics.median(waits):.3f} s, "
        f"max {max(waits):.2f} s; terms {sorted({s.term or 0 for s in claims})})"
    )


async def _healthy_follower(http: aiohttp.ClientSession, instance: Instance, leader: str) -> Any:
    state = await cluster_state(http, instance) or {}
    wanted = {"status": "ok", "role": "follower", "leader": leader}
    return state if state and all(state.get(k) == v for k, v in wanted.items()) else None


# 1. The leader SIGKILLed three times.


async def test_the_leader_killed_three_times_fires_every_step_once(
    instances: list[Instance],
    http: aiohttp.ClientSession,
    reader: Database,
    receiver: HttpReceiver,
    sampler: RoleSampler,
    load: IncidentLoad,
) -> None:
    """Incidents opened through all three instances at a steady rate; the leader SIGKILLed
    three times, each time restarted as a follower once another instance leads: every
    level 2 fires once, every page is received once per attempt the database claimed, no
    level 2 fires later than failover + 5 s after its due time, and the sampled roles never
    show two leaders at once."""
    failovers: list[float] = []
    started = time.monotonic()
    await eventually(lambda: sole_leader(http, instances), timeout=30, what="a leader")
    await eventually(
        lambda: _value(load.count >= WARM_UP), timeout=60, what="incidents before the kills"
    )
    for _ in range(KILLS):
        leader, state = await eventually(lambda: sole_leader(http, instances), what="one leader")
        killed_at = time.monotonic()
        leader.process.kill()
        successor, taken = await eventually(
            lambda: sole_leader(http, instances, besides=leader.name),  # noqa: B023
            timeout=FAILOVER + 15,
            what=f"a leader after {leader.name} was killed",
        )
        failovers.append(time.monotonic() - killed_at)
        assert taken["term"] > state["term"]
        await leader.process.start()
        back = await cluster_state(http, leader)
        assert back is not None and back["role"] == "follower", back
        assert back["instance_id"] != state["instance_id"]
        await eventually(
            lambda: _healthy_follower(http, leader, successor.name),  # noqa: B023
            timeout=FAILOVER + 15,
            what=f"{leader.name} back as a follower",
        )
        mark = load.count
        await eventually(
            lambda: _value(load.count >= mark + BETWEEN),  # noqa: B023
            timeout=60,
            what="incidents after the recovery",
        )
    await load.stop()
    facts = await settle(reader, receiver)
    await sampler.stop()
    gaps = assert_each_step_and_page_once(facts, load, receiver)
    assert_one_leader_at_a_time(sampler)
    print(
        f"\ncluster kills: {len(facts.incidents)} incidents, {len(facts.level_2)} level-2 "
        f"steps, {len(facts.pages)} pages, {len(receiver.requests)} deliveries received, "
        f"{len(failovers)} kills; level-2 gap max {max(gaps):.2f} s, median "
        f"{statistics.median(gaps):.2f} s (failover {FAILOVER:g} s); kill to next leader "
        f"{', '.join(f'{s:.2f}' for s in failovers)} s; {load.refused} ingest answers "
        f"passed on; {summary(sampler)}; {time.monotonic() - started:.0f} s"
    )


# 2. The leader cut off from PostgreSQL.


async def _stepped_down(http: aiohttp.ClientSession, instance: Instance) -> Any:
    checks = await health_checks(http, instance)
    cluster = (checks or {}).get("cluster") or {}
    return checks if cluster.get("role") == "follower" else None


async def _fired_through(db: Database, moment: datetime) -> bool:
    """Whether every level 2 due before `moment` has fired, and one due after it too: then
    the cluster has run its timers until at least `moment`."""
    facts = await read_facts(db)
    due = [(d, state) for state, d, _ in facts.level_2.values()]
    return all(s == "fired" for d, s in due if d < moment) and any(
        s == "fired" for d, s in due if d >= moment
    )


async def test_the_leader_cut_off_from_postgresql_steps_down_and_no_step_fires_twice(
    instances: list[Instance],
    http: aiohttp.ClientSession,
    reader: Database,
    receiver: HttpReceiver,
    cluster_db: ClusterDatabase,
    sampler: RoleSampler,
    load: IncidentLoad,
) -> None:
    """The leader's role refused and its connections terminated, for longer than the
    failover: it says it is a follower with its timers stopped (its /health still
    answers), another instance leads and fires the steps due meanwhile, each once; let
    back in, it stays a follower while the other leads."""
    started = time.monotonic()
    await eventually(lambda: sole_leader(http, instances), timeout=30, what="a leader")
    await eventually(
        lambda: _value(load.count >= WARM_UP), timeout=60, what="incidents before the cut"
    )
    leader, state = await eventually(lambda: sole_leader(http, instances), what="a leader")
    cut_at, cut_wall = time.monotonic(), system_clock()
    terminated = await cluster_db.cut_off(leader.name)
    await eventually(lambda: _stepped_down(http, leader), timeout=FAILOVER + 10, what="a step-down")
    stepped_down = time.monotonic() - cut_at
    assert stepped_down < FAILOVER, f"it led for {stepped_down:.1f} s without its database"
    # Asked after the step-down (one answer's checks are read at moments up to the
    # database check's timeout apart): its scheduler has stopped, and it still answers.
    down = await health_checks(http, leader)
    assert down is not None and down["cluster"]["role"] == "follower", down
    assert down["scheduler"]["running"] is False, down["scheduler"]
    successor, taken = await eventually(
        lambda: sole_leader(http, instances, besides=leader.name),
        timeout=FAILOVER + 15,
        what="another leader",
    )
    taken_after = time.monotonic() - cut_at
    assert taken["term"] > state["term"]
    # Held off past two failovers, until the steps due meanwhile have fired.
    await eventually(
        lambda: _fired_through(reader, cut_wall + timedelta(seconds=2 * FAILOVER)),
        timeout=LEVEL_2_AFTER + 4 * FAILOVER,
        what="the steps due while it is cut off",
    )
    held = time.monotonic() - cut_at
    cut_state = await cluster_state(http, leader)
    assert cut_state is not None and cut_state["role"] == "follower", cut_state

    await cluster_db.let_in(leader.name)
    let_in_at, let_in_wall = time.monotonic(), system_clock()
    await eventually(
        lambda: _healthy_follower(http, leader, successor.name),
        timeout=FAILOVER + 15,
        what="the cut-off instance healthy again",
    )
    # Two more failovers' time with both able to lead: the other keeps it.
    await eventually(
        lambda: _fired_through(reader, let_in_wall + timedelta(seconds=2 * FAILOVER)),
        timeout=LEVEL_2_AFTER + 4 * FAILOVER,
        what="the steps due after the let-in",
    )
    now_leading = await sole_leader(http, instances)
    assert now_leading is not None and now_leading[0] is successor
    assert now_leading[1]["term"] == taken["term"]
    await load.stop()
    facts = await settle(reader, receiver)
    await sampler.stop()
    gaps = assert_each_step_and_page_once(facts, load, receiver)
    assert_one_leader_at_a_time(sampler)
    # After its step-down the cut-off process never claimed to lead again, and the
    # successor held its term throughout.
    stale = [
        s for s in sampler.leader_claims(since=cut_at + stepped_down) if s.instance == leader.name
    ]
    assert not stale, stale[:3]
    terms = {s.term for s in sampler.leader_claims(since=let_in_at)}
    assert terms == {taken["term"]}, terms
    print(
        f"\ncluster cut-off: {len(facts.incidents)} incidents, {len(facts.level_2)} level-2 "
        f"steps, {len(facts.pages)} pages, {len(receiver.requests)} deliveries received; "
        f"{terminated} connections terminated; stepped down after {stepped_down:.2f} s, "
        f"another led after {taken_after:.2f} s, held off {held:.1f} s; level-2 gap max "
        f"{max(gaps):.2f} s, median {statistics.median(gaps):.2f} s (failover {FAILOVER:g} s); "
        f"{load.refused} ingest answers passed on; {summary(sampler)}; "
        f"{time.monotonic() - started:.0f} s"
    )


# 3. The sampler's verdict itself.


def _claim(sent: float, received: float, process: str, term: int) -> Sample:
    return Sample(sent, received, process[0], process, "leader", term, process)


def test_the_role_check_sees_two_leaders_whose_claims_overlap() -> None:
    """The verdict the cluster tests rely on fails for two leaders at once, and for two
    holders of one term, and passes a handover with a gap."""
    handover = [_claim(0.0, 0.1, "a#1", 1), _claim(5.0, 5.1, "b#1", 2)]
    assert overlapping_leaders(handover) == [] and shared_terms(handover) == {}
    # b answered leader while a's claim was still being answered
    both = [_claim(0.0, 0.3, "a#1", 1), _claim(0.2, 0.25, "b#1", 2), _claim(0.4, 0.5, "a#1", 1)]
    assert overlapping_leaders(both) == [(both[0], both[1])]
    # a claim answered long after it was asked overlaps every later one
    slow = [_claim(0.0, 9.0, "a#1", 1), _claim(5.0, 5.1, "b#1", 2)]
    assert len(overlapping_leaders(slow)) == 1
    # a follower whose scheduler still runs while another leads
    running = Sample(0.15, 0.2, "a", "a#1", "follower", 1, "b#1", running=True)
    assert overlapping_leaders([both[1], running]) == [(running, both[1])]
    # one term, two processes (a restarted one is a new process)
    assert shared_terms([_claim(0.0, 0.1, "a#1", 3), _claim(5.0, 5.1, "a#2", 3)]) == {
        3: {"a#1", "a#2"}
    }
