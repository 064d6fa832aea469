"""Overrides: a person on call for a span, over every layer of a schedule. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from oncall.errors import Forbidden, InvalidInput


@dataclass(frozen=True)
class Override:
    user: str
    start: datetime  # aware
    end: datetime  # aware


def override_user(users: Mapping[str, object], user: object) -> str:
    """Return the user a new override names; raises InvalidInput naming `user` when the
    directory has no such user."""
    if not isinstance(user, str) or user not in users:
        raise InvalidInput("expected the name of a user in the directory", "user")
    return user


def check_span(start: datetime, end: datetime) -> None:
    """Raise InvalidInput naming `end` unless an override's span is not empty."""
    if end <= start:
        raise InvalidInput("must be after start", "end")


def check_may_manage(actor: str, admin: bool, user: str) -> None:
    """Raise Forbidden unless `actor` may add or delete an override that puts `user` on
    call: an admin any, a responder only their own."""
    if not admin and actor != user:
        raise Forbidden(
            f"a responder may only add or delete their own overrides (this one is {user}'s); "
            "this needs an admin's token"
        )
