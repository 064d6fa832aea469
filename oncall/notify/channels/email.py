"""E-mail over SMTP (aiosmtplib): a plain-text and an HTML part."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib

from oncall.directory.model import Contact
from oncall.notify.channels import ChannelContext, DeliveryError
from oncall.notify.messages import Page, html_body, subject, text_body


def build_message(page: Page, to: str, sender: str, ctx: ChannelContext) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject(page)
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(ctx.clock())
    message["Message-ID"] = make_msgid(f"oncall.{page.delivery_id}")
    message["X-Oncall-Delivery"] = str(page.delivery_id)
    message["X-Oncall-Incident"] = str(page.incident_id)
    message.set_content(text_body(page))
    message.add_alternative(html_body(page), subtype="html")
    return message


async def send(page: Page, contact: Contact, ctx: ChannelContext) -> None:
    """Send the page by mail; raises DeliveryError (5xx replies are permanent)."""
    smtp = ctx.smtp
    message = build_message(page, contact.address, smtp.from_, ctx)
    try:
        await aiosmtplib.send(
            message,
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.username or None,
            password=smtp.password or None,
            start_tls=smtp.starttls,
            use_tls=smtp.tls,
            timeout=smtp.timeout.total_seconds(),
        )
    except aiosmtplib.SMTPRecipientsRefused as error:
        codes = [refused.code for refused in error.recipients]
        raise DeliveryError(
            f"recipient refused: {codes}", permanent=all(code >= 500 for code in codes)
        ) from None
    except aiosmtplib.SMTPResponseException as error:
        raise DeliveryError(
            f"SMTP {error.code}: {error.message[:200]}", permanent=error.code >= 500
        ) from None
    except (TimeoutError, aiosmtplib.SMTPException, OSError) as error:
        raise DeliveryError(f"SMTP failed: {type(error).__name__}") from None
