"""All outbound HTTP goes through here: one session, one timeout, one outcome classification."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

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

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        """POST `body` to `url`; return on 2xx, raise DeliveryError otherwise.

        No response (timeout, refused, reset) and 408/429/5xx are retryable, honouring
        Retry-After; any other status is permanent. Error texts never include the URL,
        which may carry a secret (Slack webhook URLs do).
        """
        if self._session is None:
            # No cookie jar: a receiver's cookies must not ride along to the next receiver
            # (another user's endpoint), and filtering a jar cost every send.
            self._session = aiohttp.ClientSession(timeout=self.timeout,
                                                  cookie_jar=aiohttp.DummyCookieJar())
        try:
            async with self._session.post(url, data=body, allow_redirects=False,
                                          headers={"User-Agent": USER_AGENT, **headers}
                                          ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                body = await response.read()  # read whole, so the connection is reused
        except TimeoutError:
            raise DeliveryError(f"no answer within {self.timeout.total:.0f}s") from None
        except aiohttp.ClientError as error:
            raise DeliveryError(f"connection failed: {type(error).__name__}") from None
        outcome = classify_http(status)
        if outcome == DELIVERED:
            return
        snippet = body[:800].decode(errors="replace")[:200]  # decoded only to report it
        raise DeliveryError(f"HTTP {status}: {snippet}".strip(),
                            permanent=outcome == PERMANENT,
                            retry_after=parse_retry_after(retry_after, self.clock()))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
