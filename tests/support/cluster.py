"""Several `python app.py` instances on one PostgreSQL database of the test's own cluster,
each connecting as a role of its own (so the test can cut exactly one off from the
database), a steady stream of new incidents through them, and each instance's cluster role
read from `/health` and sampled over time."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]

from tests.support.factories import AM_AUTH, make_alert, make_webhook
from tests.support.ops import OPS
from tests.support.postgres_cluster import PostgresCluster
from tests.support.process import ServiceProcess

DATABASE = "oncall"
INGEST = "/api/v1/integrations/alertmanager"
# Long enough for a /health whose database check waits for its own timeout.
ASK_TIMEOUT = aiohttp.ClientTimeout(total=5)
# A sample's request window bounds when its answer was decided; one that takes longer
# than this is dropped (counted unanswered) rather than kept as a long, vague window: the
# handover gaps the samples must resolve are longer.
SAMPLE_TIMEOUT = aiohttp.ClientTimeout(total=2.5)
RETRY_AFTER = 1.0  # seconds between an IncidentLoad's rounds through the instances


def role_of(name: str) -> str:
    """Return the PostgreSQL role instance `name` connects as."""
    return f"oncall_{name}"


class ClusterDatabase:
    """The instances' database in `cluster`, and a LOGIN superuser role per instance."""

    def __init__(
        self, cluster: PostgresCluster, names: Iterable[str], database: str = DATABASE
    ) -> None:
        self.cluster = cluster
        self.names = list(names)
        self.database = database  # another per test, when tests share the cluster

    async def _admin(self, database: str = "postgres") -> asyncpg.Connection:
        return await asyncpg.connect(
            host="127.0.0.1", port=self.cluster.port, user="postgres", database=database
        )

    async def create(self) -> None:
        """Create the database and the roles (those an earlier test left are kept)."""
        conn = await self._admin()
        try:
            await conn.execute(f"CREATE DATABASE {self.database}")
            for name in self.names:
                if not await conn.fetchval(
                    "SELECT 1 FROM pg_roles WHERE rolname = $1", role_of(name)
                ):
                    await conn.execute(f"CREATE ROLE {role_of(name)} SUPERUSER LOGIN")
        finally:
            await conn.close()

    def url(self, name: str | None = None, port: int | None = None) -> str:
        """Return the SQLAlchemy URL for instance `name`, or the test's own (`postgres`),
        reaching the cluster on `port` (a proxy's) or its own."""
        user = role_of(name) if name else "postgres"
        port = port or self.cluster.port
        return f"postgresql+asyncpg://{user}@127.0.0.1:{port}/{self.database}"

    async def backends(self, name: str) -> int:
        """Return how many connections instance `name`'s role has open."""
        conn = await self._admin()
        try:
            count = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role_of(name)
            )
        finally:
            await conn.close()
        return int(count)

    async def cut_off(self, name: str, timeout: float = 10.0) -> int:
        """Refuse the role's logins, then terminate its connections until none is left
        (one being opened as the first batch goes is terminated in a later round).
        Return how many were terminated; raises TimeoutError when some outlive
        `timeout` seconds."""
        conn = await self._admin()
        terminated = 0
        try:
            await conn.execute(f"ALTER ROLE {role_of(name)} NOLOGIN")
            deadline = time.monotonic() + timeout
            while True:
                rows = await conn.fetch(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                    role_of(name),
                )
                if not rows:
                    return terminated
                terminated += len(rows)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{role_of(name)} still has {len(rows)} connections")
                await asyncio.sleep(0.05)  # polling pg_stat_activity, not synchronising
        finally:
            await conn.close()

    async def leadership_backend(self, name: str) -> tuple[int, int] | None:
        """Return the server process and the client's port of instance `name`'s
        leadership connection (oncall.cluster.store names it), or None while it has none."""
        conn = await self._admin()
        try:
            row = await conn.fetchrow(
                "SELECT pid, client_port FROM pg_stat_activity WHERE application_name = $1",
                f"oncall leadership {name}",
            )
        finally:
            await conn.close()
        return (int(row["pid"]), int(row["client_port"])) if row else None

    async def connect(self) -> asyncpg.Connection:
        """Return a connection to the instances' database as `postgres`; the caller closes
        it."""
        return await self._admin(self.database)

    async def backend_state(self, pid: int) -> str | None:
        """Return the state of server process `pid` (`idle in transaction`: it holds its
        transaction's locks, waiting for its client), None when it is gone."""
        conn = await self._admin()
        try:
            state = await conn.fetchval("SELECT state FROM pg_stat_activity WHERE pid = $1", pid)
        finally:
            await conn.close()
        return str(state) if state is not None else None

    async def let_in(self, name: str) -> None:
        """Accept the role's logins again."""
        conn = await self._admin()
        try:
            await conn.execute(f"ALTER ROLE {role_of(name)} LOGIN")
        finally:
            await conn.close()


@dataclass
class Instance:
    """One named instance; its process is restarted in place (same port, new process)."""

    name: str
    process: ServiceProcess


def instance_env(db: ClusterDatabase, name: str, shared: dict[str, str]) -> dict[str, str]:
    """Return instance `name`'s settings: `shared` (the same for every instance) plus its
    own database role and instance name."""
    return {
        **shared,
        "ONCALL_DATABASE_URL": db.url(name),
        "ONCALL_CLUSTER_INSTANCE": name,
    }


def make_instances(db: ClusterDatabase, shared: dict[str, str], folder: Path) -> list[Instance]:
    """Return the instances (not started), each logging to `folder`/oncall-NAME.log."""
    return [
        Instance(
            name, ServiceProcess(instance_env(db, name, shared), folder / f"oncall-{name}.log")
        )
        for name in db.names
    ]


async def health_checks(
    session: aiohttp.ClientSession,
    instance: Instance,
    timeout: aiohttp.ClientTimeout = ASK_TIMEOUT,
) -> dict[str, Any] | None:
    """Return the instance's `/health` checks, or None when it does not answer within
    `timeout`. A 503 answer carries its checks too."""
    try:
        async with session.get(
            f"{instance.process.url}/health", headers=OPS, timeout=timeout
        ) as response:
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    checks = body.get("checks") if isinstance(body, dict) else None
    return checks if isinstance(checks, dict) else None


async def cluster_state(
    session: aiohttp.ClientSession, instance: Instance
) -> dict[str, Any] | None:
    """Return the instance's `/health` cluster check, or None when it does not answer (or
    answers without one)."""
    check = (await health_checks(session, instance) or {}).get("cluster")
    return check if isinstance(check, dict) else None


async def states(
    session: aiohttp.ClientSession, instances: list[Instance]
) -> dict[str, dict[str, Any] | None]:
    """Return every instance's cluster check (None where it did not answer), asked at once."""
    found = await asyncio.gather(*(cluster_state(session, i) for i in instances))
    return {i.name: state for i, state in zip(instances, found, strict=True)}


async def sole_leader(
    session: aiohttp.ClientSession, instances: list[Instance], besides: str | None = None
) -> tuple[Instance, dict[str, Any]] | None:
    """Return the instance that says it leads and its check, when exactly one does (and
    it is not `besides`); None otherwise."""
    found = await states(session, instances)
    leaders = [
        (i, found[i.name]) for i in instances if (found[i.name] or {}).get("role") == "leader"
    ]
    if len(leaders) != 1 or leaders[0][0].name == besides:
        return None
    instance, state = leaders[0]
    assert state is not None
    return instance, state


def alert_group(name: str) -> dict[str, Any]:
    """Return an Alertmanager webhook of one new group: one incident per distinct name."""
    return make_webhook([make_alert("db1", alertname=name)], alertname=name)


class IncidentLoad:
    """Opens incidents at a steady rate through the instances in turn, each a group of its
    own. An instance that does not take it (down, or cut off from the database) passes it
    to the next, as a load balancer would; the same group again opens no second incident."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        instances: list[Instance],
        rate: float,
        prefix: str = "Load",
        retries: int = 0,
    ) -> None:
        self.session = session
        self.instances = instances
        self.rate = rate
        self.prefix = prefix  # of the group names: two loads of one test need two
        # Rounds through every instance after the first, RETRY_AFTER apart, before a
        # group counts as lost (Alertmanager sends a webhook again until it is taken).
        self.retries = retries
        self.opened: dict[str, int] = {}  # group name -> its incident
        self.refused = 0  # answers other than 200, and no answers
        self.lost: list[str] = []  # groups no instance took
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()

    @property
    def count(self) -> int:
        return len(self.opened)

    async def _open(self, name: str, first: int) -> None:
        order = self.instances[first:] + self.instances[:first]
        for retry in range(self.retries + 1):
            if retry:
                await asyncio.sleep(RETRY_AFTER)  # the sender's back-off, not a wait
            if await self._try(name, order):
                return
        self.lost.append(name)

    async def _try(self, name: str, order: list[Instance]) -> bool:
        """Send the group to each instance in `order` until one takes it; return whether
        one did."""
        for instance in order:
            try:
                async with self.session.post(
                    f"{instance.process.url}{INGEST}",
                    json=alert_group(name),
                    headers=AM_AUTH,
                    timeout=ASK_TIMEOUT,
                ) as response:
                    if response.status == 200:
                        [incident_id] = (await response.json())["incidents"]
                        self.opened[name] = incident_id
                        return True
            except (aiohttp.ClientError, TimeoutError):
                pass
            self.refused += 1
        return False

    async def _run(self) -> None:
        start = time.monotonic()
        for n in itertools.count():
            # Each on its own task, so a slow answer never slows the rate.
            send = asyncio.ensure_future(self._open(f"{self.prefix}{n}", n % len(self.instances)))
            self._sends.add(send)
            send.add_done_callback(self._sends.discard)
            # The steady rate itself: this paces the load, it waits for nothing.
            try:
                await asyncio.wait_for(
                    self._stop.wait(), max(0.0, start + (n + 1) / self.rate - time.monotonic())
                )
                return
            except TimeoutError:
                pass

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop opening incidents; return once every one sent is answered."""
        self._stop.set()
        if self._task is not None:
            await self._task
        await asyncio.gather(*list(self._sends))


@dataclass(frozen=True)
class Sample:
    """One answer to `/health`: when it was asked and answered (monotonic seconds), by
    which instance (name and process), what it said."""

    sent: float
    received: float
    instance: str
    instance_id: str | None
    role: str | None
    term: int | None
    leader_id: str | None
    running: bool | None = None  # the scheduler check's: whether its scheduler runs

    @property
    def leads(self) -> bool:
        """Whether it says it leads, or runs a scheduler (which only a leader may)."""
        return self.role == "leader" or self.running is True


class RoleSampler:
    """Asks every instance's role again and again, each as soon as its previous answer
    is in (and `pace` seconds have passed), recording each answer."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        instances: list[Instance],
        pace: float = 0.03,
        timeout: aiohttp.ClientTimeout = SAMPLE_TIMEOUT,
    ) -> None:
        self.session = session
        self.instances = instances
        self.pace = pace
        self.timeout = timeout  # an answer later than this is dropped (see SAMPLE_TIMEOUT)
        self.samples: list[Sample] = []
        self.unanswered = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _ask(self, instance: Instance) -> None:
        sent = time.monotonic()
        checks = await health_checks(self.session, instance, self.timeout)
        received = time.monotonic()
        state = (checks or {}).get("cluster")
        if checks is None or not isinstance(state, dict):
            self.unanswered += 1
            return
        self.samples.append(
            Sample(
                sent,
                received,
                instance.name,
                state.get("instance_id"),
                state.get("role"),
                state.get("term"),
                state.get("leader_id"),
                (checks.get("scheduler") or {}).get("running"),
            )
        )

    async def _sample(self, instance: Instance) -> None:
        while not self._stop.is_set():
            await self._ask(instance)
            # Paces the sampling (many a second, not a busy loop); waits for nothing.
            await asyncio.sleep(self.pace)

    async def _run(self) -> None:
        # A loop per instance: a slow answer from one delays no other's samples.
        await asyncio.gather(*(self._sample(i) for i in self.instances))

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    def leader_claims(self, since: float = float("-inf")) -> list[Sample]:
        """Return the samples asked from `since` on that show their instance leading."""
        return [s for s in self.samples if s.leads and s.sent >= since]


def overlapping_leaders(samples: Iterable[Sample]) -> list[tuple[Sample, Sample]]:
    """Return pairs of samples of different processes, each leading (by its role or its
    running scheduler), whose request windows (sent..received) overlap: two leaders that
    may have run at the same instant."""
    claims = sorted((s for s in samples if s.leads), key=lambda s: s.sent)
    latest: dict[str | None, Sample] = {}  # per process: its claim answered last so far
    found = []
    for claim in claims:
        for process, earlier in latest.items():
            if process != claim.instance_id and earlier.received >= claim.sent:
                found.append((earlier, claim))
        previous = latest.get(claim.instance_id)
        if previous is None or claim.received > previous.received:
            latest[claim.instance_id] = claim
    return found


def shared_terms(samples: Iterable[Sample]) -> dict[int | None, set[str | None]]:
    """Return the terms claimed by more than one process, with the processes: by leaders
    claiming them, or named as their leader by any instance."""
    holders: dict[int | None, set[str | None]] = defaultdict(set)
    for sample in samples:
        if sample.role == "leader":
            holders[sample.term].add(sample.instance_id)
        if sample.leader_id is not None:
            holders[sample.term].add(sample.leader_id)
    return {term: ids for term, ids in holders.items() if len(ids) > 1}


# Processes frozen (SIGSTOP) and thawed (SIGCONT): a paused VM, a stuck or swapping host.


def _parent(pid: int) -> int | None:
    """Return the parent of process `pid`, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name, in parentheses, may hold spaces: the fields follow the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[1])


def postmaster_pid(cluster: PostgresCluster) -> int:
    """Return the pid of the cluster's postmaster, from its data directory."""
    return int((cluster.data / "postmaster.pid").read_text().split()[0])


def children(pid: int) -> list[int]:
    """Return the processes whose parent is `pid` (a postmaster's: backends, the
    checkpointer, the WAL writer, autovacuum)."""
    return [
        int(entry)
        for entry in os.listdir("/proc")
        if entry.isdigit() and _parent(int(entry)) == pid
    ]


class Frozen:
    """Processes stopped with SIGSTOP until `thaw` (or the end of a `with` block) sends them
    SIGCONT: their sockets stay open and nothing answers."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.at: float | None = None  # time.monotonic() of the freeze
        self.thawed_at: float | None = None

    def freeze(self, pids: Iterable[int]) -> None:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            self.pids.append(pid)
        self.at = time.monotonic()

    def freeze_postgres(self, cluster: PostgresCluster) -> None:
        """Freeze the postmaster first, so that it forks no backend the list misses."""
        postmaster = postmaster_pid(cluster)
        self.freeze([postmaster])
        self.freeze(children(postmaster))

    def thaw(self) -> None:
        for pid in reversed(self.pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.pids = []
        self.thawed_at = time.monotonic()

    def __enter__(self) -> Frozen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.thaw()


def unread(server_port: int, client_port: int) -> int:
    """Return the bytes waiting unread at the server's end of the loopback TCP connection
    from `client_port` to `server_port` (a request sent, not yet read), per /proc/net/tcp;
    0 when there is no such connection."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
        if int(local, 16) == server_port and int(remote, 16) == client_port:
            return int(fields[4].split(":")[1], 16)
    return 0


LEASE_LOCKED = """
SELECT 1 FROM pg_locks
WHERE pid = $1 AND granted AND relation = (SELECT oid FROM pg_class WHERE relname = 'leadership')
"""


async def lease_locked(conn: asyncpg.Connection, pid: int) -> bool:
    """Return whether server process `pid` is in a transaction that locked the lease row
    (a renewal or a take under way: `SELECT ... FOR UPDATE` locks the table too, and
    pg_locks, in shared memory, answers while `pid` itself is frozen). `conn` is a
    connection to the instances' database."""
    return bool(await conn.fetchval(LEASE_LOCKED, pid))


class SlowConnects:
    """A TCP proxy in front of PostgreSQL that holds each new connection `delay` seconds
    before relaying it, as a loaded server forking backends or a slow network's
    handshakes do; established connections relay at full speed."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        self.upstream_port = upstream_port
        self.delay = delay
        self.port = 0
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for relay in list(self._relays):
            relay.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        relay = asyncio.ensure_future(self._relay(reader, writer))
        self._relays.add(relay)
        relay.add_done_callback(self._relays.discard)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.sleep(self.delay)  # the slowness itself
            upstream = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            await asyncio.gather(_pipe(reader, upstream[1]), _pipe(upstream[0], writer))
        except OSError:
            pass
        finally:
            writer.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy `source` to `sink` until either end closes, then close `sink`."""
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except OSError:
        pass
    finally:
        sink.close()
