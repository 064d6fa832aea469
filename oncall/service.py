"""The use cases: ingest a delivery, acknowledge, resolve. No HTTP here; `now` comes in."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Row

from oncall import store
from oncall.alertmanager import AlertGroup
from oncall.db import Database
from oncall.directory import DirectoryHolder, Integration
from oncall.errors import Unavailable

log = logging.getLogger(__name__)
_RACE_RETRIES = 3


class Service:
    """Holds what the use cases need; one per process."""

    def __init__(self, db: Database, directory: DirectoryHolder) -> None:
        self.db = db
        self.directory = directory

    async def ingest(self, integration: Integration, group: AlertGroup,
                     now: datetime) -> store.IngestResult:
        """Apply one delivery in one transaction and return the incidents it touched.

        A concurrent delivery for the same group can win the race to open the incident (the
        unique index on open groups says so); the transaction then reruns and joins it.
        Raises Unavailable when the database cannot take the write.
        """
        for attempt in range(_RACE_RETRIES):
            try:
                result = await self.db.run(store.ingest_group, integration.name, group, now)
            except exc.IntegrityError:
                log.info("ingest race, retrying", extra={"attempt": attempt + 1})
                continue
            if result.opened or result.resolved:
                log.info("ingested", extra={"integration": integration.name,
                                            "opened": result.opened,
                                            "resolved": result.resolved})
            return result
        raise Unavailable("concurrent deliveries for one group kept conflicting; retry")

    async def acknowledge(self, incident_id: int, actor: str,
                          now: datetime) -> tuple[Row[Any], bool]:
        """Acknowledge; return (incident row, changed). Raises NotFound or Conflict."""
        return await self.db.run(store.acknowledge, incident_id, actor, now)

    async def resolve(self, incident_id: int, actor: str,
                      now: datetime) -> tuple[Row[Any], bool]:
        """Resolve; return (incident row, changed). Raises NotFound."""
        return await self.db.run(store.resolve, incident_id, actor, now)
