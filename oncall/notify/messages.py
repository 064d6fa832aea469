"""What a page says, rendered per channel. Pure: a Page value in, text or JSON out."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

MAX_LABELS_SHOWN = 12


@dataclass(frozen=True)
class Page:
    """Everything one page shows; built from the incident when the delivery job runs."""

    delivery_id: int
    event: str  # "incident.triggered" or "incident.resolved"
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
    links: dict[str, str] = field(default_factory=dict)  # acknowledge / resolve, when offered
    sent_at: str = ""  # when this attempt began (RFC 3339, UTC): its age at the receiver

    @property
    def summary(self) -> str:
        return self.annotations.get("summary", "")

    @property
    def description(self) -> str:
        return self.annotations.get("description", "")

    @property
    def headline(self) -> str:
        word = "RESOLVED" if self.event == "incident.resolved" else self.status.upper()
        return f"[{word}] [{self.severity}] {self.title} (#{self.incident_id})"


def subject(page: Page) -> str:
    """Return the e-mail subject: status, severity, title and incident number."""
    return page.headline


def _source_lines(page: Page) -> list[tuple[str, str]]:
    lines = [("Incident", page.incident_url)]
    lines += [("Source", url) for url in page.source_urls]
    if page.external_url:
        lines.append(("Alertmanager", page.external_url))
    return lines


def text_body(page: Page) -> str:
    """Return the plain-text body shared by e-mail and text-only channels."""
    out = [page.headline, ""]
    if page.summary:
        out.append(page.summary)
    if page.description:
        out.append(page.description)
    out += ["", f"Alerts: {page.alert_count}"]
    if page.event == "incident.triggered":
        out.append(f"Escalation level {page.level}, pass {page.repeat + 1}")
    out.append("Labels:")
    out += [f"  {k}={v}" for k, v in sorted(page.labels.items())[:MAX_LABELS_SHOWN]]
    out.append("")
    out += [f"{name}: {url}" for name, url in _source_lines(page)]
    for action, url in page.links.items():
        out.append(f"{action.capitalize()}: {url}")
    out += ["", f"Delivery {page.delivery_id} for {page.user}"]
    return "\n".join(out) + "\n"


def html_body(page: Page) -> str:
    """Return the HTML part of the e-mail (every value escaped)."""
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>"
        for k, v in sorted(page.labels.items())[:MAX_LABELS_SHOWN]
    )
    links = "".join(
        f'<li>{esc(n)}: <a href="{esc(u)}">{esc(u)}</a></li>' for n, u in _source_lines(page)
    )
    buttons = " ".join(
        f'<a href="{esc(u)}" style="padding:6px 12px;border:1px solid #333">'
        f"{esc(a.capitalize())}</a>"
        for a, u in page.links.items()
    )
    return (
        f"<html><body><h2>{esc(page.headline)}</h2>"
        f"<p>{esc(page.summary)}</p><p>{esc(page.description)}</p>"
        f"<p>Alerts: {page.alert_count}</p><table>{rows}</table><ul>{links}</ul>"
        f"<p>{buttons}</p><p><small>Delivery {page.delivery_id} for {esc(page.user)}"
        f"</small></p></body></html>"
    )


def webhook_json(page: Page) -> dict[str, Any]:
    """Return the webhook body: the incident, the page's level and the event type."""
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
        },
        "level": page.level,
        "repeat": page.repeat,
        "user": page.user,
        "sent_at": page.sent_at,
        "links": {
            "incident": page.incident_url,
            "sources": list(page.source_urls),
            "alertmanager": page.external_url,
            **page.links,
        },
    }


def slack_json(page: Page) -> dict[str, Any]:
    """Return a Slack incoming-webhook message: title, severity, key labels, links, actions."""
    labels = ", ".join(f"`{k}={v}`" for k, v in sorted(page.labels.items())[:MAX_LABELS_SHOWN])
    link_text = " | ".join(f"<{u}|{n}>" for n, u in _source_lines(page))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": page.headline[:150]}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": (
                    f"*Severity:* {page.severity}   *Alerts:* {page.alert_count}\n"
                    f"{page.summary}\n{labels}"
                )[:3000],
            },
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": link_text[:3000]}},
    ]
    if page.links:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": action.capitalize()},
                        "url": url,
                    }
                    for action, url in page.links.items()
                ],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"delivery {page.delivery_id} for {page.user}"}
            ],
        }
    )
    return {"text": page.headline, "blocks": blocks}
