"""All outbound HTTP goes through here: one aiohttp session, one timeout, one outcome
classification."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from oncall.clock import Clock
from oncall.notify.channels import DeliveryError
from oncall.notify.retry import DELIVERED, PERMANENT, classify_http, parse_retry_after

USER_AGENT = "oncall/0.1"
MAX_CONNECTIONS_PER_HOST = 32  # a storm's pages to one receiver wait their turn for these
MAX_ANSWER = 64 * 1024  # bytes of an answer's body read: enough to report why it failed


class HttpPoster:
    """POSTs bodies and turns every outcome into success or a DeliveryError. One per
    event loop: its session is opened on first use and closed by `close`."""

    def __init__(self, clock: Clock, timeout: float = 10.0) -> None:
        self.clock = clock
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No cookie jar: a receiver's cookies must not ride along to the next receiver
            # (another user's endpoint).
            self._session = aiohttp.ClientSession(
                timeout=self.timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
                connector=aiohttp.TCPConnector(limit_per_host=MAX_CONNECTIONS_PER_HOST),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        """POST `body` to `url`; return on 2xx, raise DeliveryError otherwise.

        No response (timeout, refused, reset) and 408/429/5xx are retryable, honouring
        Retry-After; any other status is permanent, a redirect included (it is not
        followed). Error texts never include the URL, which may carry a secret (Slack
        webhook URLs do).
        """
        try:
            async with self._open().post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                # Read (a bounded part) before leaving: a connection whose answer was read
                # to its end goes back to the pool for the next page.
                answer = await response.content.read(MAX_ANSWER)
        except TimeoutError:
            raise DeliveryError(f"no answer within {self.timeout.total:.0f}s") from None
        except (aiohttp.ClientError, OSError) as error:
            raise DeliveryError(f"connection failed: {type(error).__name__}") from None
        outcome = classify_http(status)
        if outcome == DELIVERED:
            return
        snippet = answer.decode(errors="replace")[:200]
        raise DeliveryError(
            f"HTTP {status}: {snippet}".strip(),
            permanent=outcome == PERMANENT,
            retry_after=parse_retry_after(retry_after, self.clock()),
        )

    async def get(self, url: str, timeout: float) -> None:
        """GET `url` within `timeout` seconds, its answer discarded; return on 2xx, raise
        DeliveryError otherwise (a redirect included). Error texts never include the URL."""
        try:
            async with self._open().get(
                url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as response:
                status = response.status
                answer = await response.content.read(MAX_ANSWER)
        except TimeoutError:
            raise DeliveryError(f"no answer within {timeout:g}s") from None
        except (aiohttp.ClientError, OSError) as error:
            raise DeliveryError(f"connection failed: {type(error).__name__}") from None
        outcome = classify_http(status)
        if outcome != DELIVERED:
            snippet = answer.decode(errors="replace")[:200]
            raise DeliveryError(f"HTTP {status}: {snippet}".strip(), permanent=outcome == PERMANENT)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
