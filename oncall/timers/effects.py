"""After a commit: do in Redis and on the wire what the transaction decided."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from oncall.timers.followups import Followups

if TYPE_CHECKING:
    from oncall.notify.outbox import Claimed
    from oncall.timers.scheduler import Timers


class AfterCommit:
    """Writes and removes a committed transaction's timers and sends the pages it claimed.

    Best effort: if Redis refuses, the database still says what is pending and the
    reconciler puts it back; a page whose send fails is sent again after its lease.
    """

    def __init__(self, timers: Timers, send: Callable[[Sequence[Claimed]], None]) -> None:
        self.timers = timers
        self.send = send

    def __call__(self, followups: Followups) -> None:
        self.timers.apply(followups)
        if followups.pages:
            self.send(followups.pages)
