"""All outbound HTTP goes through here: one timeout, one outcome classification.

Plain `http://` URLs go through the lighter client of `oncall.http1` (a page's send
shares the event loop's core with ingest); HTTPS, and any answer that client cannot read,
through one aiohttp session.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from oncall import http1
from oncall.channels import DeliveryError
from oncall.clock import Clock
from oncall.retry import DELIVERED, PERMANENT, classify_http, parse_retry_after

USER_AGENT = "oncall/0.1"


class HttpPoster:
    """POSTs bodies and turns every outcome into success or a DeliveryError."""

    def __init__(self, clock: Clock, timeout: float = 10.0) -> None:
        self.clock = clock
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._plain = http1.Client()  # plain http: the lighter client (see oncall.http1)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        """POST `body` to `url`; return on 2xx, raise DeliveryError otherwise.

        No response (timeout, refused, reset) and 408/429/5xx are retryable, honouring
        Retry-After; any other status is permanent. Error texts never include the URL,
        which may carry a secret (Slack webhook URLs do).
        """
        headers = {"User-Agent": USER_AGENT, **headers}
        answer = None
        where = http1.target(url)
        try:
            if where is not None:
                try:
                    answer = await self._plain.post(where, body, headers, self.timeout.total)
                except http1.Unsupported:  # an answer it cannot read: aiohttp sends again
                    answer = None
            if answer is None:
                answer = await self._post_aiohttp(url, body, headers)
        except TimeoutError:
            raise DeliveryError(f"no answer within {self.timeout.total:.0f}s") from None
        except (aiohttp.ClientError, OSError) as error:
            raise DeliveryError(f"connection failed: {type(error).__name__}") from None
        status, answer_headers, body = answer
        retry_after = answer_headers.get("retry-after")
        outcome = classify_http(status)
        if outcome == DELIVERED:
            return
        snippet = body[:800].decode(errors="replace")[:200]  # decoded only to report it
        raise DeliveryError(f"HTTP {status}: {snippet}".strip(),
                            permanent=outcome == PERMANENT,
                            retry_after=parse_retry_after(retry_after, self.clock()))

    async def _post_aiohttp(self, url: str, body: bytes, headers: Mapping[str, str]
                            ) -> http1.Answer:
        if self._session is None:
            # No cookie jar: a receiver's cookies must not ride along to the next receiver
            # (another user's endpoint), and filtering a jar cost every send.
            self._session = aiohttp.ClientSession(timeout=self.timeout,
                                                  cookie_jar=aiohttp.DummyCookieJar())
        async with self._session.post(url, data=body, allow_redirects=False,
                                      headers=headers) as response:
            retry_after = response.headers.get("Retry-After")
            # Read whole, so the connection is reused.
            return http1.Answer(response.status,
                                {} if retry_after is None else {"retry-after": retry_after},
                                await response.read())

    async def close(self) -> None:
        self._plain.close()
        if self._session is not None:
            await self._session.close()
