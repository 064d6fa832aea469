"""The lease row, read and written in one transaction on the leadership's own connection,
against the database's clock (PostgreSQL's `clock_timestamp()`)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from oncall.cluster.lease import Lease, release, take
from oncall.db.models import leadership

NAME = "scheduler"  # the one lease there is: who runs the timers
DISPOSE_TIMEOUT = 2.0  # seconds closing a connection may take before it is left
# A transaction on the lease row whose client goes quiet for this share of the failover
# is ended by the database itself, its row lock released: see LeaseStore.
IDLE_SHARE = 0.5


class LeaseStore:
    """The leadership's own engine: one connection, its statements bounded so a hung
    database fails a try rather than holding it.

    A process frozen (SIGSTOP, a paused VM) or cut off by the network in the middle of a
    try keeps the lease row locked for as long as the database keeps its session, which
    for a silent client is until TCP gives up: no other instance could take the lease,
    expired or not. The session's `idle_in_transaction_session_timeout` ends such a
    transaction after IDLE_SHARE of the failover: a renewal starts an interval after the
    last one, so the row is free again about when the lease it would have renewed
    expires, and the lease changes hands as if the process had died."""

    def __init__(self, url: str, schema: str, name: str, failover: timedelta) -> None:
        idle_ms = int(failover.total_seconds() * IDLE_SHARE * 1000)
        server_settings = {
            "application_name": f"oncall leadership {name}"[:63],
            "idle_in_transaction_session_timeout": str(idle_ms),
        }
        if schema:
            server_settings["search_path"] = schema
        self.engine = create_async_engine(
            url,
            pool_size=1,
            max_overflow=0,
            pool_timeout=5,
            connect_args={"timeout": 5, "command_timeout": 5, "server_settings": server_settings},
        )

    async def try_take(
        self, me: str, my_name: str, failover: timedelta
    ) -> tuple[Lease, datetime, bool]:
        """See `try_take`; one transaction."""
        async with self.engine.begin() as conn:
            return await try_take(conn, me, my_name, failover)

    async def give_up(self, me: str) -> bool:
        """See `give_up`; one transaction."""
        async with self.engine.begin() as conn:
            return await give_up(conn, me)

    async def dispose(self) -> None:
        """Close the connection, giving up after DISPOSE_TIMEOUT."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.engine.dispose(), DISPOSE_TIMEOUT)


async def _locked(conn: AsyncConnection) -> tuple[Lease, datetime]:
    """Return the lease row, locked until the transaction ends, and the database's time
    read after the lock was granted."""
    row = (
        await conn.execute(select(leadership).where(leadership.c.name == NAME).with_for_update())
    ).first()
    if row is None:  # removed by hand: the next take starts it again
        await conn.execute(insert(leadership).values(name=NAME, term=0))
        current = Lease(None, None, 0, None, None)
    else:
        current = Lease(row.holder, row.holder_name, row.term, row.since, row.expires_at)
    now = (await conn.execute(select(func.clock_timestamp()))).scalar_one()
    return current, now


async def _write(conn: AsyncConnection, lease: Lease) -> None:
    await conn.execute(
        update(leadership)
        .where(leadership.c.name == NAME)
        .values(
            holder=lease.holder,
            holder_name=lease.holder_name,
            term=lease.term,
            since=lease.since,
            expires_at=lease.expires_at,
        )
    )


async def try_take(
    conn: AsyncConnection, me: str, my_name: str, failover: timedelta
) -> tuple[Lease, datetime, bool]:
    """Take or renew the lease for `me` if `lease.take` allows; return the lease as it now
    is, the database's time, and whether `me` holds it. Raises the driver's errors."""
    current, now = await _locked(conn)
    taken = take(current, me, my_name, now, failover)
    if taken is None:
        return current, now, False
    await _write(conn, taken)
    return taken, now, True


async def give_up(conn: AsyncConnection, me: str) -> bool:
    """Let the lease expire now if `me` holds it; return whether it did."""
    current, now = await _locked(conn)
    released = release(current, me, now)
    if released is None:
        return False
    await _write(conn, released)
    return True
