"""Coverage warnings for `check-config`: schedule gaps ahead, targets nobody can be paged at."""

from __future__ import annotations

from datetime import datetime, timedelta

from oncall.directory.model import Directory
from oncall.schedules.rotation import shifts

LOOKAHEAD = timedelta(days=14)


def schedule_gaps(directory: Directory, now: datetime) -> list[str]:
    """Return a warning per schedule span in the next 14 days with nobody on call
    (overrides are not considered: they are not part of the file)."""
    warnings = []
    end = now + LOOKAHEAD
    for schedule in directory.schedules.values():
        zone = schedule.zone
        cursor = now
        for shift in [*shifts(schedule, [], now, end), None]:
            until = shift.start if shift is not None else end
            if until > cursor:
                warnings.append(
                    f"schedule {schedule.name}: nobody on call from "
                    f"{cursor.astimezone(zone):%Y-%m-%d %H:%M} to "
                    f"{until.astimezone(zone):%Y-%m-%d %H:%M} ({schedule.time_zone})"
                )
            if shift is not None:
                cursor = shift.end
    return warnings


def unreachable_targets(directory: Directory) -> list[str]:
    """Return a warning per policy level target whose people have no contact method."""
    warnings = []
    for policy in directory.policies.values():
        for number, level in enumerate(policy.levels, start=1):
            for target in level.targets:
                if target.kind == "user":
                    people = [target.name]
                else:
                    schedule = directory.schedules[target.name]
                    people = sorted({m for layer in schedule.layers for m in layer.members})
                silent = [p for p in people if not directory.users[p].contacts]
                if silent:
                    warnings.append(
                        f"policy {policy.name} level {number}: {target} pages "
                        f"{', '.join(silent)}, who have no contact methods"
                    )
    return warnings
