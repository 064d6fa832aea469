"""Real endpoints for channels: an HTTP receiver with scripted answers, an SMTP server."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """Answers each POST with the next scripted status (then `default`), recording it."""

    statuses: list[int] = field(default_factory=list)
    default: int = 200
    reply_headers: dict[str, str] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            Received(time.monotonic(), request.path, dict(request.headers), await request.read())
        )
        status = self.statuses.pop(0) if self.statuses else self.default
        return web.Response(
            status=status, text="ok" if status < 300 else "nope", headers=self.reply_headers
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        return app


class MailSink:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 Message accepted"
