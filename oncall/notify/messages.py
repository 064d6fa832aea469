"""What a page says, rendered per channel. Pure: a Page value in, text or JSON out.

Alert text is the sender's, so it is only ever shown, never markup: escaped for HTML in
e-mail and for Slack's markup in Slack (where `&`, `<` and `>` are entities, so no text
becomes a link or a mention). Only http and https URLs become links (`web_url`); any other
(`javascript:`, `data:`, a URL with a space) is shown as text. One-line values (the
headline, labels, URLs) are kept on one line here too, for pages built from rows stored
before the ingest parsers normalised them.

An alert's own context (an Events v2 trigger's custom_details, links and images; the
first alert's, in `Page.context`) is shown where each channel can: its links beside the
incident's (by their text; only http(s) ones become links), its details as lines of
text, its images as pictures only in e-mail HTML and Slack and only from https URLs
(PagerDuty requires https for them; a reader's client fetches them, so never over
plain http), else as links.

An annotation that is one http(s) URL (a `runbook_url`) is a link of the page too, by its
name (`alert_links`).
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from oncall.ingest.context import NO_CONTEXT, AlertContext
from oncall.ingest.text import one_line
from oncall.notify.links import label
from oncall.notify.storm import DigestSummary

MAX_LABELS_SHOWN = 12
MAX_DETAILS_SHOWN = 12  # custom_details' top-level entries a page lists
MAX_DETAIL_TEXT = 300  # characters of one of them shown
MAX_PICTURES = 3  # images shown as pictures (e-mail HTML, Slack); the rest are links
SLACK_IMAGE_URL = 3000  # Slack's limit on an image block's URL
MAX_ALERT_LINKS = 8
# Annotations a page shows as its text, never again as a link.
_TEXT_ANNOTATIONS = frozenset({"summary", "description"})
TEST_EVENT = "test"  # a test page: no incident behind it
DIGEST_EVENT = "incidents.digest"  # a storm's digest: many incidents in one page
TEST_TITLE = "Test page from oncall: no incident"
WEB_SCHEMES = ("http", "https")
# Whitespace and control characters: a URL with one is not a link but text.
_NOT_IN_URL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Page:
    """Everything one page shows; built from the incident when the delivery job runs."""

    delivery_id: int
    event: str  # "incident.triggered", "incident.resolved", DIGEST_EVENT or TEST_EVENT
    incident_id: int
    status: str
    title: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    level: int
    repeat: int
    user: str
    alert_count: int
    incident_url: str
    external_url: str = ""
    source_urls: tuple[str, ...] = ()
    links: dict[str, str] = field(default_factory=dict)  # links.ACTIONS, when offered
    sent_at: str = ""  # when this attempt began (RFC 3339, UTC): its age at the receiver
    attempt: int = 1  # which attempt of this delivery (the database counts each it claims)
    incidents: tuple[tuple[int, str], ...] = ()  # a digest's newest incidents: id, title
    context: AlertContext = NO_CONTEXT  # its first alert's details, links and images

    @property
    def summary(self) -> str:
        return self.annotations.get("summary", "")

    @property
    def description(self) -> str:
        return self.annotations.get("description", "")

    @property
    def headline(self) -> str:
        """Return status, severity, title and incident number, on one line."""
        if self.event == TEST_EVENT:
            return TEST_TITLE
        if self.event == DIGEST_EVENT:
            return one_line(f"[STORM] {self.title}")
        word = "RESOLVED" if self.event == "incident.resolved" else self.status.upper()
        return one_line(f"[{word}] [{self.severity}] {self.title} (#{self.incident_id})")


def test_page(user: str, public_url: str, sent_at: str) -> Page:
    """Return the test page a user asks for to check their contacts: clearly labelled,
    about no incident (id 0, no labels, no action links)."""
    return Page(
        delivery_id=0,
        event=TEST_EVENT,
        incident_id=0,
        status="test",
        title=TEST_TITLE,
        severity="info",
        labels={},
        annotations={
            "summary": "This is a test of your contact methods. There is no incident and "
            "nothing to do."
        },
        level=0,
        repeat=0,
        user=user,
        alert_count=0,
        incident_url=public_url,
        sent_at=sent_at,
    )


def digest_page(
    delivery_id: int, summary: DigestSummary, user: str, list_url: str, sent_at: str
) -> Page:
    """Return a storm's digest for `user`: how many incidents opened within the window,
    the newest few, and a link to the list of open incidents (no action links)."""
    newest = "; ".join(f"{one_line(title)} (#{i})" for i, title in summary.newest)
    return Page(
        delivery_id=delivery_id,
        event=DIGEST_EVENT,
        incident_id=summary.newest[0][0] if summary.newest else 0,
        status="storm",
        title=summary.title,
        severity="storm",
        labels={},
        annotations={"summary": f"Pages are folded into one a minute. Newest: {newest}"},
        level=0,
        repeat=0,
        user=user,
        alert_count=summary.count,
        incident_url=list_url,
        sent_at=sent_at,
        incidents=summary.newest,
    )


def subject(page: Page) -> str:
    """Return the e-mail subject: status, severity, title and incident number."""
    return page.headline


def web_url(url: str) -> str | None:
    """Return `url` when it may become a link (an absolute http or https URL with a host,
    no whitespace or control character in it), else None: the caller shows it as text."""
    if not url or _NOT_IN_URL.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host
        return None
    if parts.scheme.lower() not in WEB_SCHEMES or not parts.hostname:
        return None
    return url


def alert_links(annotations: dict[str, Any]) -> list[tuple[str, str]]:
    """Return the annotations that are an http(s) URL as (name, URL), by name, at most
    MAX_ALERT_LINKS (the summary and description are the page's text, not links)."""
    found = [
        (key, value)
        for key, value in sorted(annotations.items())
        if key not in _TEXT_ANNOTATIONS
        and isinstance(value, str)
        and web_url(value.strip()) is not None
    ]
    return [(one_line(name), one_line(url.strip())) for name, url in found[:MAX_ALERT_LINKS]]


def context_links(context: AlertContext) -> list[tuple[str, str]]:
    """Return an alert's links and images as (name, URL): a link by its text (else
    "Link"), an image as "Image: " and its alt text, then its href when it has one."""
    found = [(link["text"] or "Link", link["href"]) for link in context.links]
    for image in context.images:
        name = image["alt"] or "image"
        found.append((f"Image: {name}", image["src"]))
        if image["href"]:
            found.append((name, image["href"]))
    return [(one_line(name), one_line(url)) for name, url in found]


def picture_url(src: str) -> str | None:
    """Return an image's `src` when a page may show it as a picture (https only)."""
    url = web_url(src)
    return url if url is not None and url.lower().startswith("https:") else None


def pictures(context: AlertContext) -> list[tuple[str, str, str]]:
    """Return the images shown as pictures, as (src, alt, href), at most MAX_PICTURES."""
    shown = [
        (image["src"], one_line(image["alt"]) or "image", image["href"])
        for image in context.images
        if picture_url(image["src"]) is not None
    ]
    return shown[:MAX_PICTURES]


def detail_lines(details: Any) -> list[tuple[str, str]]:
    """Return custom_details as (name, text) lines: an object's top-level entries by name
    (at most MAX_DETAILS_SHOWN, sorted), anything else as one "Details" line; every text
    on one line, cut at MAX_DETAIL_TEXT."""
    if details is None:
        return []
    if isinstance(details, dict):
        items = sorted(details.items())[:MAX_DETAILS_SHOWN]
        return [(one_line(str(key)), _detail_text(value)) for key, value in items]
    return [("Details", _detail_text(details))]


def _detail_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = one_line(text)
    return text if len(text) <= MAX_DETAIL_TEXT else text[: MAX_DETAIL_TEXT - 1] + "…"


def _source_lines(page: Page) -> list[tuple[str, str]]:
    lines = [("Incident", page.incident_url)]
    lines += [("Source", url) for url in page.source_urls]
    if page.external_url:
        lines.append(("Alertmanager", page.external_url))
    return (
        [(name, one_line(url)) for name, url in lines]
        + alert_links(page.annotations)
        + context_links(page.context)
    )


def text_body(page: Page) -> str:
    """Return the plain-text body shared by e-mail and text-only channels."""
    if page.event == TEST_EVENT:
        return f"{page.headline}\n\n{page.summary}\n\nSent to {page.user} at {page.sent_at}\n"
    if page.event == DIGEST_EVENT:
        out = [page.headline, "", "Pages are folded into one a minute. Newest:"]
        out += [f"  #{i} {one_line(title)}" for i, title in page.incidents]
        out += ["", f"Incidents: {one_line(page.incident_url)}"]
        return "\n".join([*out, "", f"Delivery {page.delivery_id} for {page.user}"]) + "\n"
    out = [page.headline, ""]
    if page.summary:
        out.append(page.summary)
    if page.description:
        out.append(page.description)
    out += ["", f"Alerts: {page.alert_count}"]
    if page.event == "incident.triggered":
        out.append(f"Escalation level {page.level}, pass {page.repeat + 1}")
    out.append("Labels:")
    out += [_label(k, v) for k, v in sorted(page.labels.items())[:MAX_LABELS_SHOWN]]
    details = detail_lines(page.context.custom_details)
    if details:
        out += ["Details:", *(f"  {name}: {text}" for name, text in details)]
    out.append("")
    out += [f"{name}: {url}" for name, url in _source_lines(page)]
    for action, url in page.links.items():
        out.append(f"{label(action)}: {url}")
    out += ["", f"Delivery {page.delivery_id} for {page.user}"]
    return "\n".join(out) + "\n"


def _label(key: str, value: str) -> str:
    return f"  {one_line(key)}={one_line(value)}"


def _html_link(url: str, label: str | None = None, style: str = "") -> str:
    """Return an HTML link to an http(s) `url` showing `label` (the URL itself when None);
    for any other URL, the label and the URL as text. Everything escaped."""
    esc = html.escape
    shown = url if label is None else label
    if web_url(url) is None:
        return esc(url) if label is None else f"{esc(label)}: {esc(url)}"
    styled = f' style="{esc(style)}"' if style else ""
    return f'<a href="{esc(url)}"{styled}>{esc(shown)}</a>'


def _html_picture(src: str, alt: str, href: str) -> str:
    """Return an image as an HTML picture, a link to its href when that is http(s)."""
    esc = html.escape
    picture = f'<img src="{esc(src)}" alt="{esc(alt)}" style="max-width:100%">'
    if web_url(href) is not None:
        picture = f'<a href="{esc(href)}">{picture}</a>'
    return f"<p>{picture}</p>"


def html_body(page: Page) -> str:
    """Return the HTML part of the e-mail (every value escaped, only http(s) links)."""
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>"
        for k, v in sorted(page.labels.items())[:MAX_LABELS_SHOWN]
    )
    links = "".join(f"<li>{esc(n)}: {_html_link(u)}</li>" for n, u in _source_lines(page))
    details = "".join(
        f"<tr><td>{esc(n)}</td><td>{esc(t)}</td></tr>"
        for n, t in detail_lines(page.context.custom_details)
    )
    if details:
        details = f"<p>Details:</p><table>{details}</table>"
    images = "".join(_html_picture(*shown) for shown in pictures(page.context))
    buttons = " ".join(
        _html_link(u, label(a), "padding:6px 12px;border:1px solid #333")
        for a, u in page.links.items()
    )
    return (
        f"<html><body><h2>{esc(page.headline)}</h2>"
        f"<p>{esc(page.summary)}</p><p>{esc(page.description)}</p>"
        f"<p>Alerts: {page.alert_count}</p><table>{rows}</table>{details}"
        f"<ul>{links}</ul>{images}"
        f"<p>{buttons}</p><p><small>Delivery {page.delivery_id} for {esc(page.user)}"
        f"</small></p></body></html>"
    )


def webhook_json(page: Page) -> dict[str, Any]:
    """Return the webhook body: the incident, the page's level and the event type (a
    test page has no incident: `incident` is null)."""
    if page.event == TEST_EVENT:
        return {
            "event": page.event,
            "delivery": page.delivery_id,
            "incident": None,
            "message": page.title,
            "summary": page.summary,
            "user": page.user,
            "sent_at": page.sent_at,
        }
    if page.event == DIGEST_EVENT:
        return {
            "event": page.event,
            "delivery": page.delivery_id,
            "incident": None,
            "digest": {
                "title": page.title,
                "incidents_opened": page.alert_count,
                "newest": [{"id": i, "title": title} for i, title in page.incidents],
                "url": page.incident_url,
            },
            "user": page.user,
            "sent_at": page.sent_at,
        }
    return {
        "event": page.event,
        "delivery": page.delivery_id,
        "incident": {
            "id": page.incident_id,
            "status": page.status,
            "title": page.title,
            "severity": page.severity,
            "labels": page.labels,
            "annotations": page.annotations,
            "alert_count": page.alert_count,
            "url": page.incident_url,
            # Its first alert's context, structured as the API returns it.
            "custom_details": page.context.custom_details,
            "links": list(page.context.links),
            "images": list(page.context.images),
        },
        "level": page.level,
        "repeat": page.repeat,
        "user": page.user,
        "sent_at": page.sent_at,
        "links": {
            "incident": page.incident_url,
            "sources": list(page.source_urls),
            "alertmanager": page.external_url,
            # Its annotations that are http(s) URLs (a runbook_url).
            "alert": [
                {"text": name, "href": url}
                for name, url in alert_links(page.annotations)
                if web_url(url) is not None
            ],
            **page.links,
        },
    }


def slack_escape(text: str) -> str:
    """Return `text` with Slack's three markup characters as the entities Slack documents
    (`&amp;`, `&lt;`, `&gt;`): shown as written, never a link, a mention (`<!channel>`,
    `<@U123>`) or any other markup Slack parses between angle brackets."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_link(url: str, label: str) -> str:
    """Return a Slack link `<url|label>` to an http(s) `url`, or for any other URL the label
    and the URL as escaped text.

    In the URL, `&` is an entity as elsewhere, and `<`, `>` and `|` (which would end the
    URL or the link) are percent-encoded, which is how a URL carries them anyway.
    """
    if web_url(url) is None:
        return f"{slack_escape(label)}: {slack_escape(url)}"
    target = url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    return f"<{target}|{slack_escape(label)}>"


def _clip(text: str, limit: int) -> str:
    """Return escaped `text` cut to `limit` characters without leaving half an entity."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    amp = cut.rfind("&")
    return cut[:amp] if amp != -1 and ";" not in cut[amp:] else cut


def _joined(parts: list[str], separator: str, limit: int) -> str:
    """Return the whole `parts` that fit in `limit` characters, joined: a Slack link cut
    in half would show its markup."""
    text = ""
    for part in parts:
        joined = f"{text}{separator}{part}" if text else part
        if len(joined) > limit:
            break
        text = joined
    return text or (parts[0][:limit] if parts else "")


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: Slack does not turn plain words of the text into links or channel names;
    # the links wanted are written out as <url|label> (slack_link).
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def slack_json(page: Page) -> dict[str, Any]:
    """Return a Slack incoming-webhook message: title, severity, key labels, links, actions.

    Every text from the alert is `slack_escape`d; only `slack_link` writes markup.
    """
    esc = slack_escape
    headline = esc(page.headline)
    labels = ", ".join(
        f"`{esc(one_line(k))}={esc(one_line(v))}`"
        for k, v in sorted(page.labels.items())[:MAX_LABELS_SHOWN]
    )
    link_text = _joined([slack_link(u, n) for n, u in _source_lines(page)], " | ", 3000)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(headline, 150)}},
        {
            "type": "section",
            "text": _mrkdwn(
                _clip(
                    f"*Severity:* {esc(one_line(page.severity))}   *Alerts:* {page.alert_count}\n"
                    f"{esc(page.summary)}\n{labels}",
                    3000,
                )
            ),
        },
        {"type": "section", "text": _mrkdwn(link_text)},
    ]
    details = "\n".join(
        f"*{esc(name)}:* {esc(text)}" for name, text in detail_lines(page.context.custom_details)
    )
    if details:
        blocks.append({"type": "section", "text": _mrkdwn(_clip(details, 3000))})
    blocks += [
        {"type": "image", "image_url": src, "alt_text": _clip(esc(alt), 2000)}
        for src, alt, _ in pictures(page.context)
        if len(src) <= SLACK_IMAGE_URL
    ]
    buttons = [
        {
            "type": "button",
            "text": {"type": "plain_text", "text": esc(label(action))},
            "url": url,
        }
        for action, url in page.links.items()
        if web_url(url) is not None
    ]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    blocks.append(
        {
            "type": "context",
            "elements": [_mrkdwn(esc(f"delivery {page.delivery_id} for {page.user}"))],
        }
    )
    return {"text": headline, "blocks": blocks}
