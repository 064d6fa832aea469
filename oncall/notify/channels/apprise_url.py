"""Apprise: any Apprise URL (Telegram, Teams, Discord, ntfy, Pushover, SMS gateways, ...).

Apprise's result per call maps onto the same classification: success is delivered, failure
or timeout is retried, a URL Apprise cannot load is permanent. No tags or priorities are used:
those start Apprise's own escalation chain, and escalation is ours.
"""

from __future__ import annotations

import apprise

from oncall.directory.model import Contact
from oncall.notify.channels import ChannelContext, DeliveryError, building
from oncall.notify.messages import Page, subject, text_body


async def send(page: Page, contact: Contact, ctx: ChannelContext) -> None:
    """Notify through the contact's Apprise URL; raises DeliveryError."""
    target = apprise.Apprise()
    if not target.add(contact.address):
        raise DeliveryError("Apprise cannot load this URL", permanent=True)
    with building("Apprise message"):
        body, title = text_body(page), subject(page)
    result = await target.async_notify(body=body, title=title)
    status = result.status
    if status == apprise.AppriseResultStatus.SUCCESS:
        return
    if status == apprise.AppriseResultStatus.NOMATCH:
        raise DeliveryError("Apprise found no service for this URL", permanent=True)
    raise DeliveryError(f"Apprise delivery failed: {status.name}")
