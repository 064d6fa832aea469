"""Overrides: a person on call for a span, over every layer of a schedule. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from oncall.errors import InvalidInput


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
