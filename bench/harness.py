"""What every benchmark shares: the service as a real `python app.py` process on SQLite, a
real webhook receiver, load drivers, percentiles, and the result line `run.py` collects.

Benchmarks never assert timings; they print figures, and they check correctness (counts in
the database and in Redis) so that a fast wrong answer cannot pass: a failed check exits 1.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pathlib
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # scripts run as `python bench/x.py`
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import redis  # noqa: E402
from aiohttp import web  # noqa: E402

from tests.support.process import ROOT, ServiceProcess, free_port  # noqa: E402

NO_STORM = "1000000/5m"  # [paging] storm_threshold no workload here reaches
TOKEN = "bench-alertmanager-token-0123456789abcdef"
USER_TOKEN = "bench-user-token-0123456789abcdefghijklmnopqrstuv"
WEBHOOK = "/api/v1/integrations/alertmanager"
RESULT_MARK = "RESULT "


class CheckFailed(Exception):
    """A benchmark's correctness check failed: its figures mean nothing."""


def check(condition: bool, message: str) -> None:
    """Raise CheckFailed with `message` unless `condition` holds."""
    if not condition:
        raise CheckFailed(message)


def cpu_seconds(pids: Iterable[int]) -> float:
    """Return the CPU time (user and system, every thread) the processes have used so far."""
    total = 0
    for pid in pids:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """Return the `q` quantile (0 < q <= 1) of sorted, non-empty `ordered`, nearest rank."""
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """Return p50, p99 and max of `values` (nearest rank), rounded to 0.1."""
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)
    return {
        "p50": round(nearest_rank(ordered, 0.50), 1),
        "p99": round(nearest_rank(ordered, 0.99), 1),
        "max": round(ordered[-1], 1),
    }


def directory_yaml(
    receiver_url: str, levels: Sequence[str] = ("10m",), group_by_alertname: bool = True
) -> str:
    """Return a directory: one Alertmanager integration, one policy whose level N pages
    user `uN` through a webhook to `receiver_url/uN`."""
    users = "\n".join(
        f'  - {{name: u{n}, api_token: "{USER_TOKEN}{n}", '
        f'contacts: [{{type: webhook, url: "{receiver_url}/u{n}"}}]}}'
        for n in range(1, len(levels) + 1)
    )
    level_lines = "\n".join(
        f'      - {{notify: ["user:u{n}"], escalate_after: {after}}}'
        for n, after in enumerate(levels, start=1)
    )
    return f"""
integrations:
  - {{name: prometheus, type: alertmanager, token: "{TOKEN}"}}
users:
{users}
policies:
  - name: bench
    repeat: 0
    levels:
{level_lines}
routes:
  - {{policy: bench}}
"""


def alert(
    alertname: str,
    instance: str,
    status: str = "firing",
    starts_at: str = "2026-11-28T00:00:00.000Z",
) -> dict[str, Any]:
    """Return one alert as Alertmanager sends it (labels alertname, instance, severity)."""
    return {
        "status": status,
        "labels": {"alertname": alertname, "instance": instance, "severity": "critical"},
        "annotations": {"summary": f"{alertname} on {instance}"},
        "startsAt": starts_at,
        "endsAt": "2026-11-28T01:00:00.000Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": f"http://prometheus:9090/graph?g0.expr={alertname}",
        "fingerprint": hashlib.sha256(f"{alertname}/{instance}".encode()).hexdigest()[:16],
    }


def webhook(alertname: str, alerts: list[dict[str, Any]]) -> bytes:
    """Return a version 4 webhook body for the group of one alertname."""
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return json.dumps(
        {
            "receiver": "oncall",
            "status": status,
            "alerts": alerts,
            "groupLabels": {"alertname": alertname},
            "commonLabels": {"alertname": alertname, "severity": "critical"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "version": "4",
            "groupKey": f'{{}}:{{alertname="{alertname}"}}',
            "truncatedAlerts": 0,
        }
    ).encode()


@dataclass
class Receiver:
    """A real HTTP endpoint for webhook contacts; records who was paged for what, and when."""

    url: str = ""
    pages: list[tuple[float, str, int, str, int, int]] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.pages.append(
            (
                time.time(),
                body["user"],
                body["incident"]["id"],
                body["event"],
                body["level"],
                body["repeat"],
            )
        )
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{user}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_pages(self, count: int, timeout: float) -> float:
        """Return the seconds until `count` pages had arrived. Raises CheckFailed."""
        return await wait_for(
            lambda: len(self.pages) >= count, timeout, f"{count} pages", interval=0.05
        )

    def pages_per(self, event: str = "incident.triggered") -> Counter[tuple[str, int, int, int]]:
        """Return how many times each (user, incident, level, repeat) got an `event` page."""
        return Counter(
            (user, incident, level, repeat)
            for _, user, incident, kind, level, repeat in self.pages
            if kind == event
        )


class Oncall:
    """The service under test: `python app.py` on a SQLite file in `workdir`, from this
    checkout or, with BENCH_SERVICE_ROOT set, from that one (`bench/compare.py` runs two
    versions side by side that way)."""

    def __init__(
        self,
        workdir: pathlib.Path,
        directory: str,
        redis_port: int = 6379,
        key_prefix: str | None = None,
        **settings: str,
    ) -> None:
        self.workdir = workdir
        self.db_path = workdir / "oncall.db"
        self.key_prefix = key_prefix or f"oncall-bench-{uuid.uuid4().hex[:10]}"
        self.redis_port = redis_port
        (workdir / "directory.yaml").write_text(directory)
        env = {
            "ONCALL_DATABASE_URL": f"sqlite+aiosqlite:///{self.db_path}",
            "ONCALL_DIRECTORY_PATH": str(workdir / "directory.yaml"),
            "ONCALL_REDIS_HOST": "127.0.0.1",
            "ONCALL_REDIS_PORT": str(redis_port),
            "ONCALL_REDIS_KEY_PREFIX": self.key_prefix,
            "ONCALL_SECURITY_SECRET_KEY": "bench-secret-key-0123456789",
            "ONCALL_SERVER_LOG_LEVEL": "warning",
        }
        root = pathlib.Path(os.environ.get("BENCH_SERVICE_ROOT", str(ROOT)))
        if root == ROOT:
            # The workloads open hundreds of incidents a minute and check every page: the
            # storm guard checks each (its cost is measured) but folds none. An older
            # checkout (compare's baseline) has no such setting and would refuse it.
            env["ONCALL_PAGING_STORM_THRESHOLD"] = NO_STORM
        env.update({f"ONCALL_{k.upper()}": v for k, v in settings.items()})
        self.process = ServiceProcess(env, workdir / "oncall.log", root)
        self._profiler: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def pid(self) -> int:
        assert self.process.proc is not None
        return self.process.proc.pid

    async def start(self) -> None:
        await self.process.start()
        profile = os.environ.get("BENCH_PYSPY")  # a path: record collapsed stacks there
        if profile:
            self._profiler = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(self.pid),
                    "--format",
                    "raw",
                    "--rate",
                    "200",
                    "--output",
                    profile,
                    *os.environ.get("BENCH_PYSPY_ARGS", "").split(),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def stop(self) -> None:
        code = self.process.stop()
        if self._profiler is not None:
            self._profiler.wait(timeout=30)
        check(
            code == 0,
            f"oncall exited with {code}: " + (self.workdir / "oncall.log").read_text()[-2000:],
        )

    def pids(self) -> list[int]:
        """Return the service's process and its children."""
        children = []
        for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:  # gone meanwhile
                continue
            if fields[1] == str(self.pid):
                children.append(int(stat.parent.name))
        return [self.pid, *sorted(children)]

    def cpu_seconds(self) -> float:
        """Return the CPU time (user and system, every thread) the service and its children
        have used so far."""
        return cpu_seconds(self.pids())

    def peak_rss_mb(self) -> float:
        """Return the peak resident set (VmHWM) in MB of the service and its children (the
        sum of each one's peak: an upper bound of their peak together)."""
        total = 0
        for pid in self.pids():
            for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        return round(total / 1024, 1)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Return the rows of a read-only query on the service's database."""
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def scalar(self, sql: str, *params: Any) -> Any:
        return self.query(sql, *params)[0][0]

    def redis(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.redis_port)

    def job_count(self, store: str = "escalation") -> int:
        client = self.redis()
        try:
            return int(client.hlen(f"{self.key_prefix}:{store}:jobs"))
        finally:
            client.close()

    def delete_keys(self) -> None:
        """Delete this run's keys, and only those."""
        client = self.redis()
        try:
            keys = list(client.scan_iter(f"{self.key_prefix}:*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


async def closed_loop(
    session: aiohttp.ClientSession,
    url: str,
    bodies: Sequence[bytes],
    in_flight: int,
    headers: dict[str, str] | None = None,
) -> tuple[float, list[float]]:
    """POST every body with `in_flight` requests outstanding; return (elapsed seconds,
    latencies in ms). Raises CheckFailed on any non-200 answer."""
    latencies: list[float] = []
    queue = iter(bodies)
    statuses: Counter[int] = Counter()

    async def worker() -> None:
        for body in queue:
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                statuses[response.status] += 1
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    elapsed = time.perf_counter() - started
    check(set(statuses) == {200}, f"non-200 answers: {dict(statuses)}")
    return elapsed, latencies


async def open_loop(send: Callable[[int], Awaitable[None]], count: int, rate: float) -> float:
    """Call send(i) for i in range(count) at a steady `rate` per second, each at its own
    start time whatever the others' latency; return the seconds the last start lagged."""
    started = time.perf_counter()
    tasks = set()
    worst = 0.0
    for i in range(count):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the load, not synchronising
        worst = max(worst, -delay)
        task = asyncio.create_task(send(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return worst


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


async def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.2
) -> float:
    """Poll `condition` until it holds; return the seconds it took. Raises CheckFailed."""
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > timeout:
            raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)
    return time.perf_counter() - started


def report(name: str, figures: dict[str, Any], checks: Iterable[str]) -> None:
    """Print the figures and the checks that passed; the last line is for `run.py`."""
    for key, value in figures.items():
        print(f"  {key}: {value}")
    for passed in checks:
        print(f"  check ok: {passed}")
    print(RESULT_MARK + json.dumps({"benchmark": name, "figures": figures, "checks": list(checks)}))


def run_main(main: Callable[[], Awaitable[None]]) -> None:
    """Run a benchmark's main; exit 1 when a correctness check failed."""
    try:
        asyncio.run(main())
    except CheckFailed as failure:
        print(f"CHECK FAILED: {failure}", file=sys.stderr)
        sys.exit(1)


def _fixed_work() -> int:
    total = 0
    for i in range(20_000):
        total += i * i
    return total


def cpu_steadiness(samples: int = 2000) -> dict[str, float]:
    """Time one fixed piece of pure-Python work (about a millisecond) `samples` times in
    this thread, with nothing else asked of the benchmark meanwhile; return its CPU time
    p50, p99.9 and max in ms, and the share of samples over twice the median.

    The same work's CPU time should not vary; where it does (a virtual machine's core
    shared or throttled), the service's requests stall the same way, and that shows in
    their p99: this says how much of a tail is the machine's. CPU time, not wall time, so
    the benchmark's own scheduling does not count."""
    times = []
    for _ in range(samples):
        started = time.thread_time()
        _fixed_work()
        times.append((time.thread_time() - started) * 1000)
    ordered = sorted(times)
    median = nearest_rank(ordered, 0.50)
    return {
        "p50": round(median, 2),
        "p999": round(nearest_rank(ordered, 0.999), 2),
        "max": round(ordered[-1], 2),
        "share_over_2x_p50": round(sum(t > 2 * median for t in times) / len(times), 4),
    }


def machine() -> str:
    """Return a one-line description of this machine."""
    model = "unknown CPU"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, {interpreter()}"


def interpreter() -> str:
    """Return this Python's version and where it is installed (its base prefix, a venv's
    too): builds differ by more than versions do. Debian's python3.11 (built with
    profile-guided and link-time optimisation, as the official Docker image is) runs the
    store's work in 14% fewer instructions than a plain source build of 3.11.7
    (BENCHMARKS.md, session 8)."""
    return f"Python {sys.version.split()[0]} ({sys.base_prefix})"
