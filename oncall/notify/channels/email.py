"""E-mail over SMTP (aiosmtplib): a plain-text and an HTML part.

A header cannot carry a line break (the standard library refuses it, and written out it
would start another header). The subject is alert text, normalised at ingest and again
here onto one line; an address is configuration, and one with a control character is
refused rather than guessed at, so the page fails at once saying which.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib

from oncall.directory.model import Contact
from oncall.ingest.text import one_line
from oncall.notify.channels import ChannelContext, DeliveryError, building
from oncall.notify.messages import Page, html_body, subject, text_body

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _address(header: str, value: str) -> str:
    """Return `value` for the address header `header`; raises ValueError naming the header
    when it has a control character (a line break would start another header)."""
    if _CONTROL.search(value):
        raise ValueError(f"the {header} address {value!r} contains a control character")
    return value


def build_message(page: Page, to: str, sender: str, ctx: ChannelContext) -> EmailMessage:
    """Return the e-mail of a page; raises ValueError (or what the standard library raises)
    when it cannot be built."""
    message = EmailMessage()
    message["Subject"] = one_line(subject(page))
    message["From"] = _address("From", sender)
    message["To"] = _address("To", to)
    message["Date"] = format_datetime(ctx.clock())
    message["Message-ID"] = make_msgid(f"oncall.{page.delivery_id}")
    message["X-Oncall-Delivery"] = str(page.delivery_id)
    message["X-Oncall-Incident"] = str(page.incident_id)
    message.set_content(text_body(page))
    message.add_alternative(html_body(page), subtype="html")
    return message


async def send(page: Page, contact: Contact, ctx: ChannelContext) -> None:
    """Send the page by mail; raises DeliveryError (5xx replies and a message that cannot
    be built or encoded are permanent)."""
    smtp = ctx.smtp
    with building("e-mail"):
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
    except ValueError as error:  # the message is written out only once connected
        raise DeliveryError(
            f"could not encode the e-mail: {type(error).__name__}: {str(error)[:200]}",
            permanent=True,
        ) from None
