"""Password rules and argon2 hashing. Hashing is slow on purpose: callers on the event loop
run `hash_password` and `matches` in a thread (`Accounts` does)."""

from __future__ import annotations

import functools
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from oncall.errors import InvalidInput

MIN_LENGTH = 12
MAX_LENGTH = 256  # argon2 takes any length; the cap bounds the work a login can ask for
GENERATED_BYTES = 18  # 24 characters of URL-safe base64

_hasher = PasswordHasher()


@functools.cache
def _dummy() -> str:
    """Return the hash verified when the user has no password, so that a login for an
    unknown user costs as long as one for a known user and its timing tells nothing."""
    return _hasher.hash(secrets.token_urlsafe(GENERATED_BYTES))


def checked(password: str) -> str:
    """Return `password` when it may be set; raises InvalidInput naming `password`."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"must be at least {MIN_LENGTH} characters", "password")
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"must be at most {MAX_LENGTH} characters", "password")
    if password != password.strip():
        raise InvalidInput("must not begin or end with white space", "password")
    return password


def generate() -> str:
    """Return a new random password."""
    return secrets.token_urlsafe(GENERATED_BYTES)


def hash_password(password: str) -> str:
    """Return the argon2 hash of `password` (slow: run it in a thread)."""
    return _hasher.hash(password)


def matches(stored: str | None, password: str) -> bool:
    """Return whether `password` matches the hash `stored` (slow: run it in a thread);
    False when there is no hash, without answering any faster."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored or _dummy(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Return whether `stored` was hashed with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored)


def tag(stored: str) -> str:
    """Return a short digest of the hash `stored`: what a session keeps to know that the
    password it began with is still the user's (a new password, even the same one again,
    has a new salt and so another tag). The hash itself never leaves the database."""
    return hashlib.sha256(stored.encode()).hexdigest()[:32]
