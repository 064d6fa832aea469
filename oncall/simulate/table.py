"""A simulation as text for a terminal: the route (and why the routes before it did not
match), policy, urgency, maintenance, the handoffs within the span, then each step, page
and note with its time in UTC and in the person's own time zone. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from oncall.directory.model import Directory
from oncall.simulate.answer import Simulation

UTC_ZONE = ZoneInfo("UTC")


def clock(at: datetime, zone: ZoneInfo = UTC_ZONE) -> str:
    """Return `at` in `zone` as `YYYY-MM-DD HH:MM` (with seconds when it has some) and the
    zone's abbreviation (`CEST`)."""
    local = at.astimezone(zone)
    shown = local.strftime("%Y-%m-%d %H:%M:%S" if local.second else "%Y-%m-%d %H:%M")
    return f"{shown} {local.tzname()}"


def columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Return rows as lines with every column padded to its widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))] if rows else []
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def render(simulation: Simulation, directory: Directory) -> list[str]:
    """Return the lines that show `simulation` (of `directory`, for the users' zones)."""

    def zone_of(user: str | None) -> ZoneInfo:
        found = directory.users.get(user or "")
        return ZoneInfo(found.time_zone) if found is not None else UTC_ZONE

    def local(at: datetime, user: str | None) -> str:
        zone = zone_of(user)
        return f"{clock(at, zone)} ({zone.key})" if user is not None else "-"

    sim = simulation
    route = sim.route
    lines = [
        f"simulated: {clock(sim.start)} to {clock(sim.end)} (end included)",
        f"incident:  {sim.title!r}, severity {sim.severity}, from {sim.integration}",
        "labels:    {" + ", ".join(f'{k}="{v}"' for k, v in sorted(sim.labels.items())) + "}",
        f"route:     {route.describe()}" + ("  (catch-all)" if not route.matchers else ""),
    ]
    lines += [f"  not {r.describe()}: {failed} does not match" for r, failed in sim.skipped]
    lines += [f"policy:    {sim.policy}", f"urgency:   {sim.urgency}"]
    if sim.maintenance is None:
        lines.append("maintenance: none holds it")
    else:
        until = clock(sim.maintenance.until) if sim.maintenance.until else "not within a year"
        lines.append(f"maintenance: held by {sim.maintenance.window!r} until {until}")
    if sim.handoffs:
        lines += ["", "handoffs:"]
        rows = [["TIME (UTC)", "LOCAL", "SCHEDULE", "FROM", "TO"]]
        for handoff in sim.handoffs:
            zone = ZoneInfo(directory.schedules[handoff.schedule].time_zone)
            rows.append(
                [
                    clock(handoff.at),
                    f"{clock(handoff.at, zone)} ({zone.key})",
                    handoff.schedule,
                    handoff.before or "nobody",
                    handoff.after or "nobody",
                ]
            )
        lines += ["  " + line for line in columns(rows)]
    lines += ["", "steps:"]
    if sim.steps:
        rows = [["TIME (UTC)", "LOCAL (USER)", "STEP", "TARGET", "ON CALL", "VIA"]]
        for step in sim.steps:
            for target in step.targets:
                rows.append(
                    [
                        clock(step.at),
                        local(step.at, target.user),
                        f"level {step.level} repeat {step.repeat}",
                        str(target.target),
                        target.user or "nobody",
                        target.via,
                    ]
                )
        lines += ["  " + line for line in columns(rows)]
    else:
        lines.append("  none")
    lines += ["", "pages:"]
    if sim.pages:
        rows = [["TIME (UTC)", "LOCAL (USER)", "USER", "CONTACT", "CHANNEL", "STEP"]]
        for page in sim.pages:
            which = f"level {page.level} repeat {page.repeat}" + (" digest" if page.digest else "")
            rows.append(
                [
                    clock(page.at),
                    local(page.at, page.user),
                    page.user,
                    page.contact,
                    page.channel,
                    which,
                ]
            )
        lines += ["  " + line for line in columns(rows)]
    else:
        lines.append("  nobody is paged")
    if sim.notes:
        lines += ["", "also:"]
        rows = [["TIME (UTC)", "WHAT"], *([clock(n.at), n.text] for n in sim.notes)]
        lines += ["  " + line for line in columns(rows)]
    return lines
