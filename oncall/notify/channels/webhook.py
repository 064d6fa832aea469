"""Webhook: the incident as JSON, signed with the contact's secret.

Headers: `X-Oncall-Delivery: <notification id>` (an idempotency key: a resend after a
crash carries the same one), `X-Oncall-Attempt: <n>` (which attempt of it, from 1) and,
when the contact has a secret,
`X-Oncall-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
"""

from __future__ import annotations

import hmac

from oncall.db import jsoncodec
from oncall.directory.model import Contact
from oncall.notify.channels import ChannelContext, building
from oncall.notify.messages import Page, webhook_json


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Return the X-Oncall-Signature value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, "sha256")
    return f"t={timestamp},v1={mac.hexdigest()}"


async def send(page: Page, contact: Contact, ctx: ChannelContext) -> None:
    """POST the page; raises DeliveryError."""
    with building("webhook body"):
        body = jsoncodec.dumps_bytes(webhook_json(page))
    headers = {
        "Content-Type": "application/json",
        "X-Oncall-Delivery": str(page.delivery_id),
        "X-Oncall-Attempt": str(page.attempt),
    }
    if contact.secret:
        headers["X-Oncall-Signature"] = signature(
            contact.secret, int(ctx.clock().timestamp()), body
        )
    await ctx.http.post(contact.address, body, headers)
