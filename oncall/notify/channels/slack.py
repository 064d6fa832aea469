"""Slack incoming webhook: a message with blocks (title, severity, labels, links, buttons).

Alert text is escaped for Slack's markup in `messages.slack_json`, so it never becomes a
link or a mention."""

from __future__ import annotations

import json

from oncall.directory.model import Contact
from oncall.notify.channels import ChannelContext, building
from oncall.notify.messages import Page, slack_json


async def send(page: Page, contact: Contact, ctx: ChannelContext) -> None:
    """POST the message to the contact's webhook URL; raises DeliveryError."""
    with building("Slack message"):
        body = json.dumps(slack_json(page)).encode()
    await ctx.http.post(
        contact.address,
        body,
        {"Content-Type": "application/json", "X-Oncall-Delivery": str(page.delivery_id)},
    )
