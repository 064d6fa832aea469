"""Which CPU the service's threads run on (`[server] pin_cpu`).

On SQLite the event loop and the database thread take turns on one GIL, so the service
uses about one core however many it may run on. Left to the scheduler, the two threads
run on different cores, and every hand-over between them wakes the other core and moves
the interpreter's working set (objects, reference counts, the GIL itself) from one core's
cache to the other's. Kept on one CPU, a new incident cost 11% less CPU on 2 cores
(BENCHMARKS.md, session 9). Pinning is done at start-up, before any thread exists:
threads inherit their creator's CPU set.
"""

from __future__ import annotations

import os
from typing import Literal

AUTO: Literal["auto"] = "auto"
OFF: Literal["off"] = "off"
PinSetting = Literal["auto", "off"] | int


def parse_setting(text: str) -> PinSetting:
    """Return the setting's value: "auto", "off" or a CPU number; raises ValueError."""
    lowered = text.strip().lower()
    if lowered in (AUTO, OFF):
        return lowered  # type: ignore[return-value]
    try:
        cpu = int(lowered)
    except ValueError:
        raise ValueError(f"expected auto, off or a CPU number, got {text!r}") from None
    if cpu < 0:
        raise ValueError(f"expected auto, off or a CPU number, got {text!r}")
    return cpu


def choose_cpu(setting: PinSetting, allowed: frozenset[int] | None,
               sqlite_thread: bool, writer_process: bool = False) -> int | None:
    """Return the CPU to keep every thread of the service on, or None to leave them to the
    scheduler.

    `allowed` is the CPUs this process may run on (None where the platform cannot pin);
    `sqlite_thread` says transactions run in the database thread (SQLite, `writer =
    thread`). "auto" pins only then, and only with a choice of CPUs: on PostgreSQL there is
    no database thread, and the writer process is there to use a second core. It takes the
    highest-numbered CPU, since CPU 0 handles most interrupts on many machines.
    Raises ValueError when an explicit CPU cannot be used, or is asked for beside the
    writer process (which would inherit it and share the one CPU).
    """
    if setting == OFF:
        return None
    if setting == AUTO:
        if not sqlite_thread or allowed is None or len(allowed) < 2:
            return None
        return max(allowed)
    if writer_process:
        raise ValueError("the writer process would run on the same CPU; use auto or off "
                         "with [database] writer = process")
    if allowed is None:
        raise ValueError("this platform cannot pin threads to a CPU; use auto or off")
    if setting not in allowed:
        raise ValueError(f"CPU {setting} is not one this process may use "
                         f"({', '.join(map(str, sorted(allowed)))})")
    return setting


def allowed_cpus() -> frozenset[int] | None:
    """Return the CPUs this thread may run on, or None where the platform does not say."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return frozenset(os.sched_getaffinity(0))


def pin(cpu: int) -> None:
    """Keep the calling thread, and every thread it starts from now on, on `cpu`."""
    os.sched_setaffinity(0, {cpu})
