"""Calendar feed URLs: `{public_url}/feeds/{user}/{secret}/{schedule}.ics`. Pure.

A calendar app cannot send headers, so the credential is in the URL, where proxies and
calendar providers keep it. It is therefore a secret of its own, not the API token: it
only reads schedule feeds, each user has one, and rotating or revoking it ends every URL
built on it. The database keeps its SHA-256 only; a 256-bit random secret needs no slow
hash, and the digests are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import quote

SECRET_BYTES = 32


def new_secret() -> str:
    """Return a fresh random feed secret, URL-safe."""
    return secrets.token_urlsafe(SECRET_BYTES)


def digest(secret: str) -> str:
    """Return the hex SHA-256 of a secret: what is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, stored: str) -> bool:
    """Return whether `secret` is the one whose digest is `stored` (constant time)."""
    return hmac.compare_digest(digest(secret).encode(), stored.encode())


def feed_url(public_url: str, user: str, secret: str, schedule: str) -> str:
    """Return the URL of `schedule`'s feed read with `user`'s secret."""
    return (
        f"{public_url.rstrip('/')}/feeds/{quote(user, safe='')}/{quote(secret, safe='')}/"
        f"{quote(schedule, safe='')}.ics"
    )
