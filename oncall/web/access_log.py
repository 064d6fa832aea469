"""The access log: one line per request, never its headers, body or query string, where
tokens travel."""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse


class AccessLogger(AbstractAccessLogger):
    """Access log with method, path (no query string: signed links carry tokens), status, time."""

    @property
    def enabled(self) -> bool:
        # aiohttp then skips `log` altogether when the level hides access lines.
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        path = request.rel_url.path
        if path.startswith("/a/"):
            path = "/a/<signed link>"  # the token in the path acts as a user
        elif path.startswith("/feeds/"):
            path = "/feeds/<feed secret>"  # the secret in the path reads calendar feeds
        self.logger.info(
            "request",
            extra={
                "method": request.method,
                "path": path,
                "status": response.status,
                "ms": round(time * 1000, 1),
                "remote": request.remote,
            },
        )
