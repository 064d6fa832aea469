"""Signed action links: `{public_url}/a/{token}` acknowledges, snoozes for SNOOZE or
resolves as one user.

A token is `base64url(incident:action:user:expiry) "." base64url(HMAC-SHA256)` under the
`[security] secret_key`; the HMAC covers every field, so changing any of them, or the
expiry, breaks it. Pure: the caller passes the key and `now`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

ACTIONS = ("acknowledge", "snooze", "resolve")
LINK_LIFETIME = timedelta(days=7)
SNOOZE = timedelta(hours=1)  # how long a snooze link snoozes: one tap, no form to fill
LABELS = {"acknowledge": "Acknowledge", "snooze": "Snooze 1h", "resolve": "Resolve"}


def label(action: str) -> str:
    """Return how a page or the confirm page names `action` (its button's text)."""
    return LABELS.get(action, action.capitalize())


class InvalidLink(Exception):
    """The token is malformed, tampered with, or expired; the message says which."""


@dataclass(frozen=True)
class LinkClaim:
    incident_id: int
    action: str
    user: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@functools.lru_cache(maxsize=4)
def _keyed(key: bytes) -> hmac.HMAC:
    """Return an HMAC-SHA256 already keyed with `key`, to be copied for each message."""
    return hmac.new(key, digestmod="sha256")


def _mac(key: bytes, payload: bytes) -> bytes:
    # A copy of a keyed HMAC: `hmac.digest` keys OpenSSL afresh each call and gives up the
    # GIL while doing it, so the event loop waited to get it back (a link per action, per page).
    mac = _keyed(key).copy()
    mac.update(b"oncall-link-v1|" + payload)
    return mac.digest()


def sign(key: bytes, incident_id: int, action: str, user: str, expires_at: datetime) -> str:
    """Return the token for `action` on an incident by `user`, valid until `expires_at`."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    # ":" cannot occur in a user name (the directory allows [a-z0-9_.-]).
    payload = f"{incident_id}:{action}:{user}:{int(expires_at.timestamp())}".encode()
    return f"{_b64(payload)}.{_b64(_mac(key, payload))}"


def verify(key: bytes, token: str, now: datetime) -> LinkClaim:
    """Return what a valid token allows; raises InvalidLink for anything else."""
    try:
        encoded_payload, encoded_mac = token.split(".")
        payload, mac = _unb64(encoded_payload), _unb64(encoded_mac)
    except (ValueError, binascii.Error):
        raise InvalidLink("this link is malformed") from None
    if not hmac.compare_digest(mac, _mac(key, payload)):
        raise InvalidLink("this link is not valid")
    try:
        incident, action, user, expiry = payload.decode().split(":")
        claim = LinkClaim(int(incident), action, user, datetime.fromtimestamp(int(expiry), UTC))
    except (ValueError, UnicodeDecodeError):
        raise InvalidLink("this link is malformed") from None
    if claim.action not in ACTIONS:
        raise InvalidLink("this link is malformed")
    if now >= claim.expires_at:
        raise InvalidLink("this link has expired")
    return claim
