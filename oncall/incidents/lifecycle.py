"""An incident's states and what a transaction that has just opened one knows. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oncall.ingest.context import NO_CONTEXT, AlertContext

TRIGGERED, ACKNOWLEDGED, RESOLVED = "triggered", "acknowledged", "resolved"
STATUSES = (TRIGGERED, ACKNOWLEDGED, RESOLVED)


@dataclass(frozen=True)
class Opened:
    """An incident this transaction has just inserted: its row as the INSERT returned it
    and its alerts' generator URLs and first annotations and context, in insertion order.
    Its first step and pages use them instead of reading back what was just written."""

    incident: Any  # the incidents row
    generator_urls: list[str]
    first_annotations: dict[str, Any] | None
    first_context: AlertContext = NO_CONTEXT  # details, links, images of the first alert
