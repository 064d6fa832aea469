"""Accounts as the service uses them: set a password, check one at login, and tell whether
a session begun at some instant is still valid."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Callable
from datetime import datetime
from typing import Any

from oncall.accounts import passwords, store
from oncall.audit import entries
from oncall.audit.service import Audit
from oncall.db.engine import Connection, Database
from oncall.directory.holder import DirectoryHolder
from oncall.errors import ConstraintViolated, NotFound

# argon2 takes tens of milliseconds and tens of MiB per hash: at most this many run at once
# (in threads), so a burst of logins can neither stall the event loop nor exhaust memory.
CONCURRENT_HASHES = 2


class Accounts:
    def __init__(self, db: Database, directory: DirectoryHolder, audit: Audit) -> None:
        self.db = db
        self.directory = directory
        self.audit = audit
        self._hashing = asyncio.Semaphore(CONCURRENT_HASHES)

    def _user(self, name: str) -> str:
        if name not in self.directory.current.users:
            raise NotFound(f"no user named {name!r} in the directory", "user")
        return name

    async def set_password(self, user: str, password: str, actor: str, now: datetime) -> None:
        """Set `user`'s password (ending their sessions), recorded in the audit log.
        Raises NotFound naming `user` for a user not in the directory, InvalidInput naming
        `password` for one that breaks the rules."""
        self._user(user)
        passwords.checked(password)
        async with self._hashing:
            hashed = await asyncio.to_thread(passwords.hash_password, password)

        def work(conn: Connection) -> None:
            store.set_password(conn, user, hashed, now)
            self.audit.record_in(conn, actor, entries.PASSWORD_SET, f"user:{user}", {}, now)

        await self.db.run(work)

    async def login(
        self, user: str, password: str, admit: Callable[[], None] = lambda: None
    ) -> str | None:
        """Return the tag of `user`'s password (`passwords.tag`) when `password` is right,
        else None (an unknown user and a user without a password too, as slowly as a wrong
        one). A session keeps the tag: a new password has another.

        `admit` is called when this login's turn to hash comes, right before its hash; it
        raises to refuse the login (a limit that the tries ahead of it in the queue have
        reached since it arrived)."""
        row = None
        if user in self.directory.current.users:
            row = await self.db.run(store.password_of, user)
        stored = None if row is None else str(row.hash)
        async with self._hashing:
            admit()
            right = await asyncio.to_thread(passwords.matches, stored, password)
        if not right or row is None:
            return None
        if passwords.needs_rehash(str(row.hash)):
            async with self._hashing:
                new = await asyncio.to_thread(passwords.hash_password, password)
            await self.db.run(store.rehash, user, str(row.hash), new)
            return passwords.tag(new)
        return passwords.tag(str(row.hash))

    async def session_holds(self, user: str, tag: str, session_id: str) -> bool:
        """Return whether the session `session_id` of `user`, begun with the password
        tagged `tag`, still holds: the user is in the directory, their password is still
        that one, and the session was not ended (`end_session`)."""
        if user not in self.directory.current.users:
            return False

        def read(conn: Connection) -> tuple[Any, bool]:
            return store.password_of(conn, user), store.session_ended(conn, session_id)

        row, ended = await self.db.run(read)
        if row is None or ended:
            return False
        return hmac.compare_digest(passwords.tag(str(row.hash)), tag)

    async def end_session(
        self, user: str, session_id: str, expires_at: datetime, now: datetime
    ) -> None:
        """Record that the session `session_id` of `user` ended (logging out): a copy of
        its cookie, presented before `expires_at` (when the cookie expires anyway), opens
        nothing."""
        # The same session logged out at the same instant in another tab: recorded.
        with contextlib.suppress(ConstraintViolated):
            await self.db.run(store.end_session, session_id, user, expires_at, now)

    async def users_with_passwords(self) -> set[str]:
        """Return the names of the users who have a password."""
        return await self.db.run(store.users_with_passwords)
