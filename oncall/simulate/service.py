"""The simulator as the service runs it: a request's body checked, the state the decisions
read taken from the database in one read transaction (through the other domains'
services), then `simulate`. It writes nothing and pages nobody."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from oncall.db.engine import Connection, Database
from oncall.directory.holder import DirectoryHolder
from oncall.directory.model import Directory
from oncall.durations import parse_duration
from oncall.errors import InvalidInput
from oncall.incidents.service import opened_before_in
from oncall.maintenance.service import windows_in
from oncall.notify.storm import StormThreshold
from oncall.schedules.service import overrides_within_in
from oncall.simulate.answer import Simulation
from oncall.simulate.payload import SOURCES
from oncall.simulate.scenario import (
    DEFAULT_HOURS,
    INCLUDED,
    MAX_HOURS,
    Scenario,
    State,
    simulate,
)

FIELDS = ("source", "payload", "at", "hours", "acknowledge_after", "integration")
# Instants the schedules can compute with, a week either side included (as the API's).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
MAX_ACKNOWLEDGE_AFTER = timedelta(hours=MAX_HOURS)


class Simulator:
    def __init__(self, db: Database, directory: DirectoryHolder, storm: StormThreshold) -> None:
        self.db = db
        self.directory = directory
        self.storm = storm

    async def run(self, body: Any) -> dict[str, Any]:
        """Return the simulation of a request's body as the API answers it
        (`Simulation.to_json`). Raises InvalidInput naming the field (see `scenario`),
        Unavailable when the database cannot be read."""
        return (await self.simulation(body)).to_json()

    async def simulation(self, body: Any) -> Simulation:
        """Return the simulation of a request's body. Raises as `run` does."""
        scenario = scenario_of(body)
        directory = self.directory.current
        start, end = scenario.at, scenario.end + INCLUDED
        storm = self.storm

        def read(conn: Connection) -> State:
            return State(
                overrides=overrides_within_in(conn, list(directory.schedules), start, end),
                windows=windows_in(conn, directory.maintenance),
                opened=opened_before_in(conn, start - 2 * storm.window, start, storm.lookback),
                storm=storm,
            )

        state = await self.db.run(read)
        return simulate(directory, scenario, state)


def state_without_database(directory: Directory, storm: StormThreshold) -> State:
    """Return the state when there is no database to read: the directory file's windows
    only, no overrides, no recent incidents."""
    return State(windows=directory.maintenance, storm=storm)


def scenario_of(body: Any) -> Scenario:
    """Return the scenario a request's body asks for. Raises InvalidInput naming the
    field: an unknown one, `source`, `payload` (an object), `at` (ISO 8601 with an
    offset), `hours` (above 0, at most MAX_HOURS), `acknowledge_after` (a Prometheus
    duration above 0, at most MAX_HOURS), `integration` (a name)."""
    if not isinstance(body, Mapping):
        raise InvalidInput("expected a JSON object", "$")
    for key in body:
        if key not in FIELDS:
            raise InvalidInput(f"unknown field; expected {', '.join(FIELDS)}", str(key)[:100])
    source = body.get("source")
    if source not in SOURCES:
        raise InvalidInput(f"expected one of {', '.join(SOURCES)}", "source")
    payload = body.get("payload")
    if not isinstance(payload, Mapping):
        raise InvalidInput("expected the alert's body as a JSON object", "payload")
    integration = body.get("integration")
    if integration is not None and not isinstance(integration, str):
        raise InvalidInput("expected the name of an integration", "integration")
    return Scenario(
        source=source,
        payload=payload,
        at=instant(body.get("at")),
        hours=hours(body.get("hours", DEFAULT_HOURS)),
        acknowledge_after=acknowledge_after(body.get("acknowledge_after")),
        integration=integration,
    )


def instant(value: Any, field: str = "at") -> datetime:
    """Return an ISO 8601 time that carries its offset, in UTC; raises InvalidInput naming
    `field` for anything else, or one out of EARLIEST to LATEST."""
    if not isinstance(value, str):
        raise InvalidInput("expected an ISO 8601 time with an offset", field)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{value[:40]!r} is not an ISO 8601 time", field) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidInput("the time needs an offset, e.g. 2027-03-28T01:30:00+01:00", field)
    try:
        in_range = EARLIEST <= parsed < LATEST
    except OverflowError:  # its offset takes it out of datetime's range
        in_range = False
    if not in_range:
        raise InvalidInput(f"expected a time from {EARLIEST.year} to before {LATEST.year}", field)
    return parsed.astimezone(UTC)


def hours(value: Any) -> float:
    """Return the span to simulate in hours; raises InvalidInput naming `hours` unless it
    is a number above 0 and at most MAX_HOURS."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput("expected a number of hours", "hours")
    if not 0 < value <= MAX_HOURS:  # NaN fails this too
        raise InvalidInput(f"expected more than 0 and at most {MAX_HOURS:g} hours", "hours")
    return float(value)


def acknowledge_after(value: Any) -> timedelta | None:
    """Return how long after the opening someone acknowledges (None: nobody); raises
    InvalidInput naming `acknowledge_after` unless it is a Prometheus duration above 0 and
    at most MAX_HOURS."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("expected a duration such as 10m", "acknowledge_after")
    try:
        after = parse_duration(value)
    except ValueError as error:
        raise InvalidInput(str(error), "acknowledge_after") from None
    if not timedelta(0) < after <= MAX_ACKNOWLEDGE_AFTER:
        raise InvalidInput(f"expected more than 0 and at most {MAX_HOURS:g}h", "acknowledge_after")
    return after
