"""Delivery channels: one module per contact type, each with one `send(page, contact, ctx)`.

Every failure is one `DeliveryError(permanent=...)`; the retry loop lives in the notifier.
A message a channel cannot build (a header it cannot write, a value its encoder refuses)
is built from the same page, and fails the same way, on every attempt: it is permanent at
once (`building`), with the reason recorded on the notification.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from oncall.clock import Clock
from oncall.directory.model import Contact
from oncall.notify.messages import Page
from oncall.settings import SmtpSettings

if TYPE_CHECKING:  # oncall.notify.http imports DeliveryError from here
    from oncall.notify.http import HttpPoster


class DeliveryError(Exception):
    """A delivery failed; `permanent` failures are not retried."""

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: timedelta | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


MAX_REASON = 300  # characters of an exception's text kept in a build failure


@contextlib.contextmanager
def building(what: str) -> Iterator[None]:
    """Run the building of `what` (a message, a page); raises DeliveryError(permanent)
    saying what could not be built and why, for anything the block raises (a
    DeliveryError raised in it passes unchanged)."""
    try:
        yield
    except DeliveryError:
        raise
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"[:MAX_REASON]
        raise DeliveryError(f"could not build the {what}: {reason}", permanent=True) from error


@dataclass(frozen=True)
class ChannelContext:
    """What channels need besides the page and the contact."""

    http: HttpPoster
    smtp: SmtpSettings
    clock: Clock


Send = Callable[[Page, Contact, ChannelContext], Awaitable[None]]


def channel(contact_type: str) -> Send:
    """Return the `send` of a contact type; raises DeliveryError(permanent) for unknown ones."""
    module = _MODULES.get(contact_type)
    if module is None:
        raise DeliveryError(f"no channel for contact type {contact_type!r}", permanent=True)
    return _send_of(module)


@functools.cache
def _send_of(module: str) -> Send:
    # Imported on first use, each alone: Apprise is slow and large to import, which a
    # service without Apprise contacts should not pay.
    send: Send = importlib.import_module(f"oncall.notify.channels.{module}").send
    return send


_MODULES = {"webhook": "webhook", "email": "email", "slack": "slack", "apprise": "apprise_url"}
