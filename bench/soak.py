"""A fault soak that checks invariants (issue 19, section 4): a benchmark, not a timed test.

    python bench/soak.py [--minutes 10] [--backend sqlite|postgresql] [--seed N]

For the given duration it drives a steady mix against a real `python app.py` (its own SQLite
file, or a PostgreSQL cluster the soak starts itself so it can restart it; its own
redis-server): new Alertmanager groups, re-deliveries of open groups, acknowledgements and
resolves through the API, acknowledgements aimed at the instant a level falls due, and
alert resolves from the source. The policy's levels are short (2s / 3s / 2s, repeat 1), so
every incident runs six steps and its exhaustion in 14 s. Every webhook is retried until it
is accepted, one at a time per group, as Alertmanager does; the service's webhook contacts
point at a receiver in this process that logs every request.

Meanwhile it injects faults on a seeded random schedule, one at a time, each a few
seconds: SIGKILL and restart of the service, SIGSTOP/SIGCONT of Redis, Redis restarted
empty, the receiver answering 500, and on PostgreSQL a database restart.

Then the faults and the load stop, every group still firing is delivered once more (as
Alertmanager's repeat does), and the soak waits until everything is healthy and quiet
(`/health` 200, no open incident with a step pending, no page pending). It checks, from
the receiver's log and the database (read directly with SQLAlchemy):

- level_not_paged: every step an incident fired (and every step an open one was due) was
  paged to each of its targets and answered 200 at the receiver eventually; a page is
  excused only when the incident's acknowledgement or resolve cancelled it before it could
  be delivered (within 5 s of the step, or while a fault was under way).
- page_after_ack: no trigger page whose send began (its body's `sent_at`, else its
  arrival) after the soak had the 200 of the incident's acknowledgement or resolve.
- step_fired_twice: no (incident, level, repeat) with two `escalation.level` entries.
- page_twice: no (incident, level, repeat, user) paged under two delivery ids.
- step_late: no step fired more than 5 s after its due time, and none left unfired more
  than 5 s past it; a step that fell due while the service was down counts from its
  return, one that fell due while the database was down from its first retry (the fixed
  schedule: 5, 10, 20 s between tries) that met the database up.
- bad_answer / unanswered: every request eventually accepted; 503 only while the database
  was down, connection errors and timeouts only while the service was killed (or the
  database down), never a 500 or any other status.
- firing_without_incident: every group whose last accepted webhook was firing has an open
  incident; resolved_group_open: every group whose last was resolved has none.

It prints every figure and violation, writes `bench/results/soak-<date>-<backend>-<seed>.json`
and exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import harness
from harness import NO_STORM, ROOT, percentiles
from oncall.db.models import escalation_jobs, incident_events, incidents, notifications
from tests.support.factories import ALICE_TOKEN, AM_TOKEN, BOB_TOKEN, make_alert, make_webhook
from tests.support.postgres_cluster import PostgresCluster
from tests.support.process import ServiceProcess
from tests.support.redis_server import RedisServer

WEBHOOK = "/api/v1/integrations/alertmanager"
USERS = ("alice", "bob", "carol")
LEVELS = ("2s", "3s", "2s")  # escalate_after of levels 1, 2, 3
LEVEL_SECONDS = (2.0, 3.0, 2.0)
REPEAT = 1
STEPS = [(level, repeat) for repeat in range(REPEAT + 1) for level in (1, 2, 3)]
LATE_BOUND = 5.0  # seconds a step may fire after its due time
# A failing step is tried at its due time and retried 5, 15 and 35 s later (the escalation
# service's fixed schedule: 3 retries from 5 s); then the reconciler (its default interval).
STEP_TRIES = (0.0, 5.0, 15.0, 35.0)
RECONCILE_INTERVAL = 30.0
BEFORE_FAULT = 1.0  # a step due this long before a kill may meet it unfired
KILL_SLACK = 1.0  # connection errors this long after the restarted service answers
DB_SLACK = 3.0  # 503s this long after the database accepts connections again
REQUEST_TIMEOUT = 10.0  # Alertmanager's default
SETTLE_TIMEOUT = 180.0
# Actions per second of the steady mix.
RATES = {"new": 3.0, "redeliver": 3.0, "ack": 0.5, "resolve": 0.5, "source_resolve": 1.5}
AIMED_ACK_SHARE = 0.3  # new incidents acknowledged at the instant level 2 or 3 falls due
FAULT_GAP = (6.0, 20.0)  # seconds between faults
FAULT_LENGTH = (2.0, 8.0)  # seconds each lasts
ACCEPTED = {"200"}


def directory(receiver_url: str) -> str:
    """Return the directory: one Alertmanager integration, users alice, bob and carol (the
    first two with API tokens), each with a webhook contact on the receiver, and one policy
    paging them in turn with short levels."""
    tokens = {"alice": ALICE_TOKEN, "bob": BOB_TOKEN}
    users = "\n".join(
        f"  - {{name: {u}, "
        + (f'api_token: "{tokens[u]}", ' if u in tokens else "")
        + f'contacts: [{{type: webhook, url: "{receiver_url}/{u}"}}]}}'
        for u in USERS
    )
    levels = "\n".join(
        f'      - {{notify: ["user:{USERS[i]}"], escalate_after: {after}}}'
        for i, after in enumerate(LEVELS)
    )
    return f"""
integrations: [{{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}]
users:
{users}
policies:
  - name: soak
    repeat: {REPEAT}
    levels:
{levels}
routes: [{{policy: soak}}]
"""


def parse_time(value: Any) -> float | None:
    """Return an RFC 3339 text's Unix time, or None when absent."""
    if not value or not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def ts(value: datetime | None) -> float | None:
    """Return an aware datetime's Unix time, or None."""
    return None if value is None else value.timestamp()


@dataclass
class Hit:
    """One request the receiver got, and how it answered."""

    at: float
    answered: int
    delivery: str
    event: str
    incident: int
    level: int
    repeat: int
    user: str
    sent_at: float | None


@dataclass
class Receiver(harness.Receiver):
    """The webhook contacts' endpoint (the benchmarks' receiver, started and stopped the
    same way): logs every request whole; answers 500 while `failing`."""

    hits: list[Hit] = field(default_factory=list)
    failing: bool = False

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        status = 500 if self.failing else 200
        self.hits.append(
            Hit(
                at=time.time(),
                answered=status,
                delivery=request.headers.get("X-Oncall-Delivery", ""),
                event=body.get("event", ""),
                incident=int(body["incident"]["id"]),
                level=int(body.get("level", 0)),
                repeat=int(body.get("repeat", 0)),
                user=body.get("user", request.match_info["user"]),
                sent_at=parse_time(body.get("sent_at")),
            )
        )
        return web.Response(status=status, text="ok" if status == 200 else "failing")


@dataclass
class Fault:
    """One injected fault: its kind, when it began and when everything was back."""

    kind: str
    start: float
    end: float
    planned_s: float


@dataclass
class Attempt:
    """One try of a request: when sent and answered, and the status or the error's name."""

    sent: float
    answered: float
    outcome: str
    latency_ms: float


@dataclass
class Request:
    """One logical request (a webhook delivery, an acknowledgement ...) and its tries."""

    kind: str
    target: str
    attempts: list[Attempt] = field(default_factory=list)
    accepted: bool = False


@dataclass
class Group:
    """An Alertmanager group the soak sends: its bodies, what it last planned and what the
    service last accepted, and the open incident it knows of."""

    name: str
    key: str
    firing: bytes
    resolved: bytes
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    planned: str = "firing"
    accepted: str = ""
    incident: int | None = None


class Soak:
    """The service, its Redis and database, the receiver, the load, the faults, the checks."""

    def __init__(self, minutes: float, backend: str, seed: int, workdir: Path) -> None:
        self.minutes = minutes
        self.backend = backend
        self.seed = seed
        self.workdir = workdir
        self.load_rng = random.Random(seed)
        self.fault_rng = random.Random(seed + 1)
        self.receiver = Receiver()
        self.redis = RedisServer(workdir)
        self.postgres: PostgresCluster | None = None
        self.service: ServiceProcess | None = None
        self.reader: AsyncEngine | None = None
        self.session: aiohttp.ClientSession | None = None
        self.groups: list[Group] = []
        self.firing: list[Group] = []
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.closed_by_soak: set[int] = set()  # incidents the soak acknowledged or resolved
        # incident -> (Unix time the soak had a 200 that closed it, how)
        self.close_answer: dict[int, tuple[float, str]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.give_up_at = float("inf")
        self.run_id = uuid.uuid4().hex[:6]
        self.started = 0.0
        self.settled_at = 0.0
        self.settle_figures: dict[str, Any] = {}

    # Setup and teardown.

    async def start(self) -> None:
        """Start the receiver, Redis, the database (PostgreSQL) and the service."""
        await self.receiver.start()
        self.redis.start()
        if self.backend == "postgresql":
            self.postgres = PostgresCluster()
            self.postgres.init()
            self.postgres.start()
            url = self.postgres.url
        else:
            url = f"sqlite+aiosqlite:///{self.workdir / 'oncall.db'}"
        (self.workdir / "directory.yaml").write_text(directory(self.receiver.url))
        env = {
            "ONCALL_DATABASE_URL": url,
            "ONCALL_DIRECTORY_PATH": str(self.workdir / "directory.yaml"),
            "ONCALL_REDIS_HOST": "127.0.0.1",
            "ONCALL_REDIS_PORT": str(self.redis.port),
            "ONCALL_REDIS_KEY_PREFIX": f"oncall-soak-{self.run_id}",
            "ONCALL_SECURITY_SECRET_KEY": "soak-secret-key-0123456789",
            # The checker expects every page: the storm guard must fold none
            "ONCALL_PAGING_STORM_THRESHOLD": NO_STORM,
            "ONCALL_SERVER_LOG_LEVEL": "warning",
        }
        self.service = ServiceProcess(env, self.workdir / "oncall.log")
        await self.service.start()
        self.reader = create_async_engine(url, pool_pre_ping=True)
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
            connector=aiohttp.TCPConnector(limit=64),
        )

    async def stop(self) -> int | None:
        """Stop everything this soak started; return the service's exit code."""
        code = None
        if self.session is not None:
            await self.session.close()
        if self.service is not None:
            code = self.service.stop()
        if self.reader is not None:
            await self.reader.dispose()
        if self.redis.proc is not None and self.redis.proc.poll() is None:
            self.redis.resume()
        self.redis.stop()
        if self.postgres is not None:
            self.postgres.destroy()
        await self.receiver.stop()
        return code

    @property
    def url(self) -> str:
        assert self.service is not None
        return self.service.url

    # Requests.

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def post(
        self, kind: str, target: str, path: str, body: bytes | None, token: str, ok: set[str]
    ) -> tuple[str, Any] | None:
        """POST until an answer in `ok` (Alertmanager's way: retry with backoff); return
        (status, JSON body), or None when given up."""
        assert self.session is not None
        request = Request(kind, target)
        self.requests.append(request)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        delay = 0.25
        while True:
            sent, clock = time.time(), time.perf_counter()
            payload: Any = None
            try:
                async with self.session.post(self.url + path, data=body, headers=headers) as r:
                    raw = await r.read()
                    outcome = str(r.status)
                    if r.status == 200:
                        payload = json.loads(raw)
            except TimeoutError:
                outcome = "timeout"
            except aiohttp.ClientError as error:
                outcome = type(error).__name__
            request.attempts.append(
                Attempt(sent, time.time(), outcome, (time.perf_counter() - clock) * 1000)
            )
            if outcome in ok:
                request.accepted = True
                return outcome, payload
            if time.time() > self.give_up_at:
                return None
            await asyncio.sleep(delay)  # the retry's backoff
            delay = min(delay * 2, 2.0)

    async def deliver(self, group: Group, status: str, kind: str) -> None:
        """Send the group's webhook (firing or resolved), one at a time per group."""
        async with group.lock:
            body = group.firing if status == "firing" else group.resolved
            answer = await self.post(kind, group.name, WEBHOOK, body, AM_TOKEN, ACCEPTED)
            if answer is None:
                return
            group.accepted = status
            ids = answer[1].get("incidents", [])
            if status == "firing":
                if ids:
                    group.incident = ids[0]
            else:
                now = time.time()
                for incident in ids:
                    self.close_answer.setdefault(incident, (now, "source_resolve"))
                group.incident = None

    async def act(self, incident: int, action: str, kind: str) -> None:
        """Acknowledge or resolve an incident through the API as alice."""
        answer = await self.post(
            kind,
            str(incident),
            f"/api/v1/incidents/{incident}/{action}",
            None,
            ALICE_TOKEN,
            {"200", "409"},
        )
        if answer is not None and answer[0] == "200":
            self.close_answer.setdefault(incident, (time.time(), kind))

    async def new_group(self) -> None:
        """Open a new group of 1 to 3 alerts; sometimes acknowledge it as a level falls due."""
        n = len(self.groups)
        name = f"Soak{self.run_id}x{n:05d}"
        starts = datetime.now(UTC)
        hosts = [f"db{i}" for i in range(1, self.load_rng.randint(1, 3) + 1)]
        firing = make_webhook(
            [make_alert(h, alertname=name, starts_at=starts) for h in hosts], alertname=name
        )
        resolved = make_webhook(
            [make_alert(h, alertname=name, starts_at=starts, status="resolved") for h in hosts],
            alertname=name,
        )
        group = Group(
            name, firing["groupKey"], json.dumps(firing).encode(), json.dumps(resolved).encode()
        )
        aim = (
            self.load_rng.choice((LEVEL_SECONDS[0], LEVEL_SECONDS[0] + LEVEL_SECONDS[1]))
            if self.load_rng.random() < AIMED_ACK_SHARE
            else None
        )
        self.groups.append(group)
        self.firing.append(group)
        await self.deliver(group, "firing", "new")
        incident = group.incident
        if aim is not None and incident is not None:
            # Aimed at the instant the step falls due (the incident opened just before its
            # webhook's answer): the acknowledgement races the step's firing.
            await asyncio.sleep(aim + self.load_rng.uniform(-0.05, 0.05))
            if incident not in self.closed_by_soak:
                self.closed_by_soak.add(incident)
                await self.act(incident, "acknowledge", "aimed_ack")

    def open_incidents(self) -> list[Group]:
        return [
            g
            for g in self.firing
            if g.incident is not None and g.incident not in self.closed_by_soak
        ]

    def one_action(self) -> None:
        """Choose and start one action of the mix."""
        kinds, weights = zip(*RATES.items(), strict=True)
        kind = self.load_rng.choices(kinds, weights)[0]
        if kind == "new" or not self.firing:
            self.spawn(self.new_group())
        elif kind == "redeliver":
            self.spawn(self.deliver(self.load_rng.choice(self.firing), "firing", "redeliver"))
        elif kind == "source_resolve":
            group = self.load_rng.choice(self.firing)
            self.firing.remove(group)
            group.planned = "resolved"
            self.spawn(self.deliver(group, "resolved", "source_resolve"))
        else:
            candidates = self.open_incidents()
            if not candidates:
                return
            group = self.load_rng.choice(candidates)
            incident = group.incident
            assert incident is not None
            self.closed_by_soak.add(incident)
            if kind == "resolve":
                group.incident = None  # the next firing delivery opens a new one
                self.spawn(self.act(incident, "resolve", "resolve"))
            else:
                self.spawn(self.act(incident, "acknowledge", "ack"))

    async def drive(self, until: float) -> None:
        """Run the steady mix until `until` (Unix time)."""
        interval = 1.0 / sum(RATES.values())
        next_at = time.monotonic()
        while time.time() < until:
            self.one_action()
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))  # the load's pace

    # Faults.

    async def inject(self, until: float) -> None:
        """Inject faults, one at a time, on the seeded schedule; none runs past `until`."""
        kinds = ["service_kill", "redis_pause", "redis_restart_empty", "receiver_500"]
        if self.backend == "postgresql":
            kinds.append("database_restart")
        while True:
            gap = self.fault_rng.uniform(*FAULT_GAP)
            kind = self.fault_rng.choice(kinds)
            length = self.fault_rng.uniform(*FAULT_LENGTH)
            if time.time() + gap + length + 15 > until:
                return
            await asyncio.sleep(gap)  # the schedule's gap
            start = time.time()
            await self.fault(kind, length)
            self.faults.append(Fault(kind, start, time.time(), round(length, 2)))
            took = time.time() - start
            print(
                f"  fault {kind:20s} at {start - self.started:6.1f} s for {took:4.1f} s", flush=True
            )

    async def fault(self, kind: str, length: float) -> None:
        """Inject one fault for `length` seconds and return once everything is back."""
        assert self.service is not None
        if kind == "service_kill":
            self.service.kill()
            await asyncio.sleep(length)
            await self.service.start()
        elif kind == "redis_pause":
            self.redis.pause()
            await asyncio.sleep(length)
            self.redis.resume()
        elif kind == "redis_restart_empty":
            self.redis.stop()
            await asyncio.sleep(length)
            await asyncio.to_thread(self.redis.start)
        elif kind == "receiver_500":
            self.receiver.failing = True
            await asyncio.sleep(length)
            self.receiver.failing = False
        elif kind == "database_restart":
            assert self.postgres is not None
            await self.postgres.astop("fast")
            await asyncio.sleep(length)
            await self.postgres.astart()

    # The run.

    async def run(self) -> None:
        """The load and the faults, the final re-delivery, then settling."""
        self.started = time.time()
        until = self.started + self.minutes * 60
        self.give_up_at = until + 120
        print(f"soak: {self.minutes} min on {self.backend}, seed {self.seed}", flush=True)
        await asyncio.gather(self.drive(until), self.inject(until))
        while self.tasks:
            await asyncio.gather(*list(self.tasks))
        # Alertmanager's repeat: every group still firing is delivered once more, which
        # re-opens the groups whose incident a person resolved while they still fire.
        semaphore = asyncio.Semaphore(8)

        async def final(group: Group) -> None:
            async with semaphore:
                await self.deliver(group, "firing", "final_redeliver")

        await asyncio.gather(*(final(g) for g in self.firing))
        await self.settle()

    async def settle(self) -> None:
        """Wait until /health is 200, no open incident has a step pending and no page is
        pending (every escalation run to its end, every retry done)."""
        assert self.session is not None and self.reader is not None
        began = time.time()
        health: int | str = 0
        while True:
            try:
                async with self.session.get(self.url + "/health") as response:
                    health = response.status
            except (aiohttp.ClientError, TimeoutError) as error:
                health = type(error).__name__
            async with self.reader.connect() as conn:
                steps_pending = len(
                    (
                        await conn.execute(
                            select(incidents.c.id).where(
                                incidents.c.status == "triggered",
                                incidents.c.next_due_at.is_not(None),
                            )
                        )
                    ).all()
                )
                pages_pending = len(
                    (
                        await conn.execute(
                            select(notifications.c.id).where(notifications.c.status == "pending")
                        )
                    ).all()
                )
            done = health == 200 and steps_pending == 0 and pages_pending == 0
            if done or time.time() - began > SETTLE_TIMEOUT:
                break
            await asyncio.sleep(1.0)  # polling the service's state while it settles
        await asyncio.sleep(1.0)  # the receiver's last answers logged
        self.settled_at = time.time()
        self.settle_figures = {
            "settle_s": round(self.settled_at - began, 1),
            "settled": done,
            "health_at_end": health,
            "steps_pending_at_end": steps_pending,
            "pages_pending_at_end": pages_pending,
        }

    # Reading the database.

    async def read_database(self) -> dict[str, list[Any]]:
        """Return the incidents, escalation timeline entries, step rows and trigger pages."""
        assert self.reader is not None
        async with self.reader.connect() as conn:
            tables = {
                "incidents": (await conn.execute(select(incidents))).all(),
                "events": (
                    await conn.execute(
                        select(incident_events).where(incident_events.c.type.like("escalation.%"))
                    )
                ).all(),
                "jobs": (await conn.execute(select(escalation_jobs))).all(),
                "pages": (
                    await conn.execute(
                        select(notifications).where(notifications.c.kind == "trigger")
                    )
                ).all(),
                "resolved_messages": (
                    await conn.execute(
                        select(notifications.c.id).where(notifications.c.kind == "resolved")
                    )
                ).all(),
            }
        return {
            name: [SimpleNamespace(**row._asdict()) for row in rows]
            for name, rows in tables.items()
        }

    def raw(self) -> SimpleNamespace:
        """Return what the checks read of this soak, picklable (to re-check a run offline)."""
        groups = [SimpleNamespace(name=g.name, key=g.key, accepted=g.accepted) for g in self.groups]
        return SimpleNamespace(
            backend=self.backend,
            seed=self.seed,
            minutes=self.minutes,
            started=self.started,
            settled_at=self.settled_at,
            settle_figures=self.settle_figures,
            faults=self.faults,
            requests=self.requests,
            groups=groups,
            close_answer=self.close_answer,
            receiver=SimpleNamespace(hits=self.receiver.hits),
        )


# The checks.

WEBHOOK_KINDS = {"new", "redeliver", "source_resolve", "final_redeliver"}
API_OK = {"200", "409"}


def within(
    t: float, windows: Iterable[tuple[float, float]], before: float = 0.0, after: float = 0.0
) -> tuple[float, float] | None:
    """Return the window holding `t` (widened by `before` and `after`), or None."""
    for start, end in windows:
        if start - before <= t <= end + after:
            return start, end
    return None


def offsets(values: Sequence[float]) -> dict[str, float]:
    """Return p50/p99/max of seconds, in ms."""
    return percentiles([v * 1000 for v in values])


class Checker:
    """The invariants, from the receiver's log, the soak's requests and the database."""

    def __init__(self, soak: Any, db: dict[str, list[Any]]) -> None:
        self.soak = soak
        self.db = db
        self.t0 = soak.started
        self.violations: list[dict[str, Any]] = []
        self.kills = [(f.start, f.end) for f in soak.faults if f.kind == "service_kill"]
        self.db_down = [(f.start, f.end) for f in soak.faults if f.kind == "database_restart"]
        self.incidents = {row.id: row for row in db["incidents"]}
        self.hits: dict[tuple[int, int, int, str], list[Hit]] = defaultdict(list)
        for hit in soak.receiver.hits:
            if hit.event == "incident.triggered":
                self.hits[(hit.incident, hit.level, hit.repeat, hit.user)].append(hit)
        self.page_rows: dict[tuple[int, int, int, str], list[Any]] = defaultdict(list)
        for row in db["pages"]:
            self.page_rows[(row.incident_id, row.level, row.repeat, row.user_name)].append(row)
        self.levels = [e for e in db["events"] if e.type == "escalation.level"]
        self.excused = 0
        self.raced = 0  # pages that arrived after the close's answer, sent before it

    def rel(self, t: float | None) -> float | None:
        """Seconds since the soak began, for reading violations."""
        return None if t is None else round(t - self.t0, 3)

    def violation(self, invariant: str, **detail: Any) -> None:
        self.violations.append({"invariant": invariant, **detail})

    def closed_at(self, incident: int) -> float | None:
        """When the database says the incident was acknowledged or resolved, if it was."""
        row = self.incidents[incident]
        times = [t for t in (ts(row.acknowledged_at), ts(row.resolved_at)) if t is not None]
        return min(times) if times else None

    def exempt_base(self, due: float) -> float:
        """The instant lateness counts from: the due time; the service's return when it fell
        due while the service was down (the reconciler fires overdue steps at start-up);
        and when it fell due while the database was down, the first of the step's fixed
        retries (3 from 5 s: due + 0, 5, 15, 35 s) at or after the database's return, or
        the reconciler's next pass after it when the retries ran out first."""
        base = due
        kill = within(due, self.kills, before=BEFORE_FAULT)
        if kill:
            base = max(base, kill[1])
        down = within(due, self.db_down, before=BEFORE_FAULT)
        if down:
            # The first try that met the database up (a try can meet the next outage).
            tries = [
                due + offset
                for offset in STEP_TRIES
                if not within(due + offset, self.db_down, before=BEFORE_FAULT)
            ]
            last_end = max(end for _, end in self.db_down)
            base = max(base, tries[0] if tries else last_end + RECONCILE_INTERVAL)
        return base

    def overlaps_fault(self, start: float, end: float) -> bool:
        return any(f.start <= end and f.end >= start for f in self.soak.faults)

    # Invariants.

    def level_not_paged(self) -> None:
        for event in self.levels:
            detail = event.detail or {}
            level, repeat = detail.get("level"), detail.get("repeat")
            fired = ts(event.at)
            assert fired is not None
            for user in detail.get("paged", []):
                key = (event.incident_id, level, repeat, user)
                if any(h.answered == 200 for h in self.hits[key]):
                    continue
                rows = self.page_rows[key]
                closed = self.closed_at(event.incident_id)
                statuses = [r.status for r in rows]
                if (
                    statuses
                    and all(s == "cancelled" for s in statuses)
                    and closed is not None
                    and (closed - fired <= LATE_BOUND or self.overlaps_fault(fired - 1, closed))
                ):
                    self.excused += 1  # acknowledged or resolved before it could arrive
                    continue
                self.violation(
                    "level_not_paged",
                    incident=event.incident_id,
                    level=level,
                    repeat=repeat,
                    user=user,
                    fired_at_s=self.rel(fired),
                    closed_at_s=self.rel(closed),
                    page_rows=[
                        {
                            "id": r.id,
                            "status": r.status,
                            "attempts": r.attempts,
                            "last_error": r.last_error,
                        }
                        for r in rows
                    ],
                    requests=[(self.rel(h.at), h.answered, h.delivery) for h in self.hits[key]],
                )
        fired_steps: dict[int, set[tuple[int, int]]] = defaultdict(set)
        for event in self.levels:
            fired_steps[event.incident_id].add((event.detail["level"], event.detail["repeat"]))
        for row in self.incidents.values():
            if row.status != "triggered":
                continue
            if row.next_level is None:
                expected = STEPS
            else:
                pointer = (row.next_level, row.next_repeat)
                expected = STEPS[: STEPS.index(pointer)] if pointer in STEPS else STEPS
                due = ts(row.next_due_at)
                if due is not None and due < self.soak.settled_at - LATE_BOUND:
                    self.violation(
                        "level_not_paged",
                        incident=row.id,
                        reason="step overdue at the end",
                        step=list(pointer),
                        due_at_s=self.rel(due),
                    )
            for level, repeat in expected:
                if (level, repeat) not in fired_steps[row.id]:
                    self.violation(
                        "level_not_paged",
                        incident=row.id,
                        reason="step of a triggered incident never fired",
                        level=level,
                        repeat=repeat,
                    )

    def page_after_ack(self) -> None:
        for hits in self.hits.values():
            for hit in hits:
                closing = self.soak.close_answer.get(hit.incident)
                if closing is None or self.incidents[hit.incident].status == "triggered":
                    continue
                began = hit.sent_at if hit.sent_at is not None else hit.at
                if hit.at > closing[0] >= began:
                    self.raced += 1
                if began > closing[0]:
                    self.violation(
                        "page_after_ack",
                        incident=hit.incident,
                        level=hit.level,
                        repeat=hit.repeat,
                        user=hit.user,
                        delivery=hit.delivery,
                        closed_by=closing[1],
                        close_answer_s=self.rel(closing[0]),
                        send_began_after_ms=round((began - closing[0]) * 1000, 1),
                        arrived_after_ms=round((hit.at - closing[0]) * 1000, 1),
                        measured_by="sent_at" if hit.sent_at is not None else "arrival",
                        answered=hit.answered,
                    )

    def step_fired_twice(self) -> None:
        counts = Counter(
            (e.incident_id, e.detail["level"], e.detail["repeat"]) for e in self.levels
        )
        for (incident, level, repeat), n in counts.items():
            if n > 1:
                self.violation(
                    "step_fired_twice", incident=incident, level=level, repeat=repeat, entries=n
                )

    def page_twice(self) -> None:
        for (incident, level, repeat, user), hits in self.hits.items():
            deliveries = sorted({h.delivery for h in hits})
            if len(deliveries) > 1:
                self.violation(
                    "page_twice",
                    incident=incident,
                    level=level,
                    repeat=repeat,
                    user=user,
                    deliveries=deliveries,
                )

    def step_late(self) -> tuple[list[float], list[float]]:
        """Check every timer step; return the raw and the counted lateness (seconds)."""
        raw: list[float] = []
        counted: list[float] = []
        for job in self.db["jobs"]:
            if job.level == 1 and job.repeat == 0:
                continue  # paged in the transaction that opened the incident: not a timer
            due = ts(job.due_at)
            assert due is not None
            base = self.exempt_base(due)
            if job.state == "fired":
                fired = ts(job.fired_at)
                assert fired is not None
                raw.append(fired - due)
                counted.append(fired - base)
                if fired - base > LATE_BOUND:
                    self.violation(
                        "step_late",
                        job=job.id,
                        due_at_s=self.rel(due),
                        fired_at_s=self.rel(fired),
                        counted_from_s=self.rel(base),
                        late_s=round(fired - base, 3),
                        attempts=job.attempts,
                    )
                continue
            deadline = self.closed_at(job.incident_id) or self.soak.settled_at
            if deadline - base > LATE_BOUND:
                self.violation(
                    "step_late",
                    job=job.id,
                    reason=f"never fired (state {job.state})",
                    due_at_s=self.rel(due),
                    counted_from_s=self.rel(base),
                    closed_or_end_s=self.rel(deadline),
                    attempts=job.attempts,
                    last_error=job.last_error,
                )
        return raw, counted

    def answers(self) -> None:
        for request in self.soak.requests:
            ok = ACCEPTED if request.kind in WEBHOOK_KINDS else API_OK
            for attempt in request.attempts:
                outcome = attempt.outcome
                if outcome in ok:
                    continue
                times = (attempt.sent, attempt.answered)
                if outcome == "503":
                    allowed = any(within(t, self.db_down, after=DB_SLACK) for t in times)
                elif not outcome.isdigit():  # no answer: refused, reset, timed out
                    allowed = any(
                        within(t, self.kills, after=KILL_SLACK)
                        or (outcome == "timeout" and within(t, self.db_down, after=DB_SLACK))
                        for t in times
                    )
                else:
                    allowed = False
                if not allowed:
                    self.violation(
                        "bad_answer",
                        request=request.kind,
                        target=request.target,
                        outcome=outcome,
                        sent_s=self.rel(attempt.sent),
                        answered_s=self.rel(attempt.answered),
                    )
            if not request.accepted:
                self.violation(
                    "unanswered",
                    request=request.kind,
                    target=request.target,
                    attempts=[a.outcome for a in request.attempts],
                )

    def groups(self) -> None:
        open_keys = {row.dedup_key for row in self.incidents.values() if row.status != "resolved"}
        for group in self.soak.groups:
            if group.accepted == "firing" and group.key not in open_keys:
                self.violation("firing_without_incident", group=group.name, key=group.key)
            if group.accepted == "resolved" and group.key in open_keys:
                self.violation("resolved_group_open", group=group.name, key=group.key)

    # Figures.

    def run(self) -> dict[str, Any]:
        """Check every invariant; return every figure."""
        self.level_not_paged()
        self.page_after_ack()
        self.step_fired_twice()
        self.page_twice()
        raw, counted = self.step_late()
        self.answers()
        self.groups()
        soak = self.soak
        faults: dict[str, Any] = {}
        for fault in soak.faults:
            entry = faults.setdefault(fault.kind, {"count": 0, "seconds": 0.0, "windows": []})
            entry["count"] += 1
            entry["seconds"] = round(entry["seconds"] + fault.end - fault.start, 1)
            entry["windows"].append([self.rel(fault.start), round(fault.end - fault.start, 2)])
        requests: dict[str, Any] = {}
        for request in soak.requests:
            entry = requests.setdefault(
                request.kind, {"requests": 0, "accepted": 0, "attempts": 0, "outcomes": Counter()}
            )
            entry["requests"] += 1
            entry["accepted"] += request.accepted
            entry["attempts"] += len(request.attempts)
            entry["outcomes"].update(a.outcome for a in request.attempts)
        for entry in requests.values():
            entry["outcomes"] = dict(entry["outcomes"].most_common())
        webhook_attempts = [a for r in soak.requests if r.kind in WEBHOOK_KINDS for a in r.attempts]
        api_attempts = [a for r in soak.requests if r.kind not in WEBHOOK_KINDS for a in r.attempts]
        statuses = Counter(row.status for row in self.incidents.values())
        events = Counter(e.type for e in self.db["events"])
        hits = soak.receiver.hits
        triggers = [h for h in hits if h.event == "incident.triggered"]
        deliveries = Counter(h.delivery for h in triggers)
        close_kinds = Counter(kind for _, kind in soak.close_answer.values())
        by_invariant = Counter(v["invariant"] for v in self.violations)
        return {
            "backend": soak.backend,
            "seed": soak.seed,
            "minutes": soak.minutes,
            "policy": {"levels": list(LEVELS), "repeat": REPEAT},
            "faults": faults,
            "fault_count": len(soak.faults),
            "requests": requests,
            "webhook_latency_ms": percentiles(
                [a.latency_ms for a in webhook_attempts if a.outcome.isdigit()]
            ),
            "webhook_latency_ms_accepted": percentiles(
                [a.latency_ms for a in webhook_attempts if a.outcome == "200"]
            ),
            "api_latency_ms": percentiles(
                [a.latency_ms for a in api_attempts if a.outcome.isdigit()]
            ),
            "groups": len(soak.groups),
            "groups_firing_at_end": sum(g.accepted == "firing" for g in soak.groups),
            "groups_resolved_by_source": sum(g.accepted == "resolved" for g in soak.groups),
            "incidents": len(self.incidents),
            "incidents_by_status": dict(statuses),
            "closed_by_soak_answers": dict(close_kinds),
            "steps_fired": events["escalation.level"],
            "escalations_exhausted": events["escalation.exhausted"],
            "timeline_escalation_events": dict(events),
            "step_rows_by_state": dict(Counter(j.state for j in self.db["jobs"])),
            "timer_steps_fired": len(raw),
            "step_lateness_ms": offsets(raw),
            "step_lateness_ms_counted": offsets(counted),
            "receiver_requests": len(hits),
            "trigger_requests": len(triggers),
            "trigger_requests_answered_500": sum(h.answered == 500 for h in triggers),
            "trigger_deliveries_distinct": len(deliveries),
            "trigger_deliveries_resent": sum(1 for n in deliveries.values() if n > 1),
            "trigger_requests_with_sent_at": sum(h.sent_at is not None for h in triggers),
            "resolved_requests": sum(h.event == "incident.resolved" for h in hits),
            "resolved_messages_in_outbox": len(self.db["resolved_messages"]),
            "trigger_pages_by_status": dict(Counter(r.status for r in self.db["pages"])),
            "pages_cancelled_by_close_undelivered": self.excused,
            "pages_arrived_after_close_sent_before": self.raced,
            **soak.settle_figures,
            "violations_by_invariant": dict(by_invariant),
            "violation_count": len(self.violations),
        }


def show(figures: dict[str, Any], violations: list[dict[str, Any]]) -> None:
    """Print the figures and every violation."""
    for key, value in figures.items():
        if key == "faults":
            for kind, entry in value.items():
                print(f"  fault {kind}: {entry['count']} times, {entry['seconds']} s in all")
        elif key == "requests":
            for kind, entry in value.items():
                print(
                    f"  requests {kind}: {entry['requests']} ({entry['accepted']} accepted), "
                    f"{entry['attempts']} attempts: {entry['outcomes']}"
                )
        else:
            print(f"  {key}: {value}")
    for violation in violations:
        print("  VIOLATION " + json.dumps(violation, default=str))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--recheck", metavar="PICKLE", help="check a finished run's raw data again")
    parser.add_argument(
        "--into",
        metavar="JSON",
        help="with --recheck: record the new check in that run's results file",
    )
    args = parser.parse_args()
    if args.recheck:
        checker = Checker(*pickle.loads(Path(args.recheck).read_bytes()))
        rechecked = checker.run()
        show(rechecked, checker.violations)
        if args.into:
            # The run's own figures stay; the checks of this checker are added beside them.
            result = json.loads(Path(args.into).read_text())
            result["recheck"] = {
                "checker_commit": _commit(),
                "violations_by_invariant": rechecked["violations_by_invariant"],
                "violation_count": rechecked["violation_count"],
                "step_lateness_ms_counted": rechecked["step_lateness_ms_counted"],
                "violations": checker.violations,
            }
            Path(args.into).write_text(json.dumps(result, indent=1, default=str) + "\n")
        return 1 if checker.violations else 0
    commit = _commit()  # other work may land while the soak runs: both ends are recorded
    workdir = Path(tempfile.mkdtemp(prefix="oncall-soak-"))
    soak = Soak(args.minutes, args.backend, args.seed, workdir)
    violations: list[dict[str, Any]] = []
    try:
        await soak.start()
        await soak.run()
        db = await soak.read_database()
        raw = Path(tempfile.gettempdir()) / f"oncall-soak-{args.backend}-{args.seed}.pickle"
        raw.write_bytes(pickle.dumps((soak.raw(), db)))
        print(f"  raw data for --recheck: {raw}")
        checker = Checker(soak.raw(), db)
        figures = checker.run()
        violations = checker.violations
    finally:
        code = await soak.stop()
    figures["service_exit_code"] = code
    figures["date"] = datetime.now(UTC).date().isoformat()
    figures["commit_at_start"] = commit
    figures["commit_at_end"] = _commit()
    show(figures, violations)
    results = ROOT / "bench" / "results"
    path = results / f"soak-{figures['date']}-{args.backend}-{args.seed}.json"
    path.write_text(
        json.dumps(
            {
                "figures": figures,
                "violations": violations,
                "faults": [
                    asdict(f) | {"start_s": round(f.start - soak.started, 2)} for f in soak.faults
                ],
            },
            indent=1,
            default=str,
        )
        + "\n"
    )
    print(f"  written: {path.relative_to(ROOT)}")
    if violations:
        print(f"  {len(violations)} violations; the service's log is kept in {workdir}")
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _commit() -> str:
    """Return the checkout's commit, with `+dirty` when the service's code has changes."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    dirty = git("status", "--porcelain", "--", "oncall", "app.py").strip()
    return git("rev-parse", "--short", "HEAD").strip() + ("+dirty" if dirty else "")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
