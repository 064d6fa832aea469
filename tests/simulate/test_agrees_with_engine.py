"""The simulator agrees with the engine (issue 25): for random directories, overrides,
payloads and instants (many near 2027's daylight-saving changes in Berlin and New York),
the pages `simulate()` predicts are the pages the real service sends, at the same times,
to the same contacts, when its fake clock is stepped through the same period; and so are
the escalation steps, with whom each paged.

Each example runs the service on a database and a Redis key prefix of its own, on both
backends. Examples are derandomized so CI runs the same ones every time.
A disagreement found here belongs in tests/simulate/test_scenario.py as a plain test too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings

from oncall.directory.model import Directory
from oncall.maintenance.windows import check_window
from oncall.notify.storm import DEFAULT_THRESHOLD, parse_threshold
from oncall.schedules.overrides import Override
from oncall.settings import Settings
from oncall.simulate.answer import Simulation
from oncall.simulate.scenario import Scenario, State, simulate
from tests.conftest import FakeClock
from tests.simulate.cases import Case, Sent
from tests.simulate.engine import EngineRun, Step, hook_directory, run_engine
from tests.simulate.strategies import cases
from tests.support.db import MIGRATED, drop_schema
from tests.support.redis_server import delete_keys

# Per backend, the same ones every run (CI). ONCALL_SIMULATE_EXAMPLES=500 searches
# further, with fresh random examples each time.
SEARCH = os.environ.get("ONCALL_SIMULATE_EXAMPLES")
EXAMPLES = int(SEARCH or "40")


@contextlib.contextmanager
def example_settings(
    make_settings: Callable[..., Settings], backend: str, folder: Path, case: Case
) -> Iterator[Settings]:
    """Yield settings naming a database (at the newest migration) and a Redis key prefix
    for one example, both removed afterwards, and the case's storm threshold."""
    tag = uuid.uuid4().hex[:12]
    prefix = f"oncall-sim-{tag}"
    given = {"redis_key_prefix": prefix}
    if case.storm is not None:
        given["paging_storm_threshold"] = case.storm
    if backend == "postgresql":
        schema = f"t_sim_{tag}"
        MIGRATED.postgresql(schema)
        found = make_settings(database_schema=schema, **given)
    else:
        path = folder / f"{tag}.db"
        MIGRATED.sqlite(path)
        found = make_settings(database_url=f"sqlite+aiosqlite:///{path}", **given)
    try:
        yield found
    finally:
        delete_keys(prefix)
        if backend == "postgresql":
            drop_schema(schema)


def simulated(case: Case) -> tuple[Directory, Simulation]:
    """Return the case's directory and what the simulator says of it: the directory's
    windows, the overrides the engine's run makes through the API and the earlier
    openings are the state."""
    directory = hook_directory(case, "http://127.0.0.1:9/hook")
    overrides: dict[str, list[Override]] = {}
    for spec in case.overrides:
        overrides.setdefault(spec.schedule, []).append(Override(spec.user, spec.start, spec.end))
    scenario = Scenario(case.source, case.payload, case.at, case.hours, case.acknowledge_after)
    windows = list(directory.maintenance)
    for number, data in enumerate(case.api_windows, start=1):  # ids of a fresh database
        window, problems = check_window(data, f"api:{number}", set(directory.integrations))
        assert window is not None, problems
        windows.append(window)
    storm = DEFAULT_THRESHOLD if case.storm is None else parse_threshold(case.storm)
    state = State(overrides, windows, case.prior, storm)
    return directory, simulate(directory, scenario, state)


def simulated_pages(simulation: Simulation) -> list[Sent]:
    """Return the simulated pages as the engine's outbox has them: a digest at level 0,
    repeat 0 (the simulator names the step whose pages it folded)."""
    return sorted(
        Sent(p.at, 0, 0, p.user, p.contact, p.channel, True)
        if p.digest
        else Sent(p.at, p.level, p.repeat, p.user, p.contact, p.channel)
        for p in simulation.pages
    )


def answered_pages(answer: dict[str, Any]) -> list[Sent]:
    """Return the pages of POST /api/v1/simulate's answer as `simulated_pages` does."""
    found = []
    for page in answer["pages"]:
        at = datetime.fromisoformat(page["at"])
        if page.get("digest"):
            found.append(Sent(at, 0, 0, page["user"], page["contact"], page["channel"], True))
        else:
            found.append(
                Sent(
                    at,
                    page["level"],
                    page["repeat"],
                    page["user"],
                    page["contact"],
                    page["channel"],
                )
            )
    return sorted(found)


def simulated_steps(simulation: Simulation, directory: Directory) -> list[Step]:
    """Return the simulated steps as the engine's timeline records them: the users paged,
    in target order, each once."""
    found = []
    for step in simulation.steps:
        paged = [r.user for r in step.targets if r.user is not None and r.user in directory.users]
        found.append(Step(step.at, step.level, step.repeat, tuple(dict.fromkeys(paged))))
    return found


def describe(case: Case, simulation: Simulation, run: EngineRun) -> str:
    """Return what a failure shows: the case and both sides' pages and steps."""
    lines = [
        f"at {case.at.isoformat()} for {case.hours}h, {case.source}, "
        f"acknowledged after {case.acknowledge_after}, storm {case.storm} after {case.prior}",
        f"overrides: {case.overrides}",
        f"windows through the API: {case.api_windows}",
        f"route {simulation.route.describe()}, policy {simulation.policy}, "
        f"urgency {simulation.urgency}, held {simulation.maintenance}",
        "directory:",
        case.directory,
        "simulated pages:",
        *(f"  {p}" for p in simulated_pages(simulation)),
        "engine pages:",
        *(f"  {p}" for p in run.pages),
        "engine steps:",
        *(f"  {step}" for step in run.steps),
        "simulated notes:",
        *(f"  {n.at.isoformat()} {n.kind}: {n.text}" for n in simulation.notes),
    ]
    return "\n".join(lines)


def classify(case: Case, simulation: Simulation, run: EngineRun) -> None:
    """Tell hypothesis's statistics what kind of example this was."""
    event(f"source: {case.source}, urgency: {simulation.urgency}")
    event(f"pages: {min(len(run.pages), 5)}{'+' if len(run.pages) >= 5 else ''}")
    if any(page.digest for page in run.pages):
        event("a digest")
    kinds = {note.kind for note in simulation.notes}
    for kind in sorted(
        kinds & {"held", "released", "acknowledged", "ack_timeout", "nobody_on_call"}
    ):
        event(f"note: {kind}")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=SEARCH is None,
    database=None,
    # `make_settings`, `backend` and `tmp_path` hold nothing an example changes: each
    # example makes its own database and key prefix.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_the_simulator_pages_whom_the_engine_pages_when_it_does(
    make_settings: Callable[..., Settings], backend: str, tmp_path: Path, case: Case
) -> None:
    directory, simulation = simulated(case)
    with example_settings(make_settings, backend, tmp_path, case) as found:
        run = asyncio.run(run_engine(case, found, FakeClock(case.at)))
    classify(case, simulation, run)
    shown = describe(case, simulation, run)
    assert simulated_pages(simulation) == run.pages, shown
    assert simulated_steps(simulation, directory) == run.steps, shown
    # The service's own answer, from the state it read in the engine's database.
    assert answered_pages(run.answer) == run.pages, shown
