"""The importers' one HTTP client: JSON GETs against a vendor's API, page by page.

Pages are followed by a vendor's own rule (`next_page`): new query parameters for the same
path (PagerDuty's `offset`/`more`), or the absolute URL of the next page (Opsgenie's
`paging.next`, Grafana OnCall's `next`). A next URL must stay on the base URL's origin, so
the API token is never sent anywhere else. Bodies are bounded; errors name the method,
path and status, never the token.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

MAX_BODY = 16 * 1024 * 1024  # bytes of one response
MAX_PAGES = 1000  # of one listing: a vendor whose `next` never ends stops here
MAX_RETRIES = 3  # of one request answered 429 or 5xx
MAX_RETRY_AFTER = 30.0  # seconds waited for one Retry-After
TIMEOUT = aiohttp.ClientTimeout(total=60)

Params = Sequence[tuple[str, str]]
# Given a page's decoded body and the query parameters it was fetched with, return the next
# page: new parameters for the same path, an absolute URL (its own query included), or None.
NextPage = Callable[[Any, Params], "Params | str | None"]
Items = Callable[[Any], list[Any]]


class FetchError(Exception):
    """The vendor's API could not be read; the message says what to do about it."""


def _params(params: Mapping[str, Any] | Params | None) -> list[tuple[str, str]]:
    """Return query parameters as pairs; a list value repeats its key (`include[]`)."""
    if params is None:
        return []
    pairs = params.items() if isinstance(params, Mapping) else params
    found: list[tuple[str, str]] = []
    for key, value in pairs:
        values = value if isinstance(value, (list, tuple)) else [value]
        found += [(key, str(v).lower() if isinstance(v, bool) else str(v)) for v in values]
    return found


class ApiClient:
    """GETs JSON from `base_url` with `headers` (the vendor's authentication)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        headers: Mapping[str, str],
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/") + "/"
        self.headers = dict(headers)
        self._origin = urlsplit(self.base_url)[:2]
        self._sleep = sleep

    def url(self, path: str) -> str:
        """Return the absolute URL of `path` (relative to the base URL's path)."""
        return urljoin(self.base_url, path.lstrip("/"))

    async def get(self, path: str, params: Mapping[str, Any] | Params | None = None) -> Any:
        """Return the decoded JSON body of GET `path`."""
        return await self._get(self.url(path), _params(params))

    async def get_pages(
        self,
        path: str,
        items: str | Items,
        next_page: NextPage,
        params: Mapping[str, Any] | Params | None = None,
    ) -> list[Any]:
        """Return the items of every page of the listing at `path`: `items` is the key of
        the list in a page's body (or a function returning it)."""
        take: Items = (lambda body: body.get(items)) if isinstance(items, str) else items
        url, query = self.url(path), _params(params)
        found: list[Any] = []
        for _ in range(MAX_PAGES):
            body = await self._get(url, query)
            listed = take(body) if isinstance(body, dict) else None
            if not isinstance(listed, list):
                raise FetchError(f"GET {urlsplit(url).path}: the answer has no list of items")
            found += listed
            following = next_page(body, query)
            if following is None:
                return found
            if isinstance(following, str):
                url, query = self._same_origin(urljoin(url, following)), []
            else:
                query = list(following)
        raise FetchError(f"GET {urlsplit(url).path}: more than {MAX_PAGES} pages")

    def _same_origin(self, url: str) -> str:
        if urlsplit(url)[:2] != self._origin:
            raise FetchError(
                f"the next page is on {urlsplit(url).netloc}, not on the base URL's host: "
                "not following it with the API token"
            )
        return url

    async def _get(self, url: str, query: Params) -> Any:
        where = f"GET {urlsplit(url).path}"
        for attempt in range(MAX_RETRIES + 1):
            try:
                async with self.session.get(
                    url, params=list(query), headers=self.headers, allow_redirects=False
                ) as response:
                    body = await _read(response, where)
                    status = response.status
                    retry_after = response.headers.get("Retry-After", "")
            except aiohttp.ClientError as exc:
                raise FetchError(f"{where}: {exc.__class__.__name__}: {exc}") from None
            except TimeoutError:
                raise FetchError(f"{where}: no answer within {TIMEOUT.total:.0f}s") from None
            if (status == 429 or status >= 500) and attempt < MAX_RETRIES:
                await self._sleep(_retry_delay(retry_after, attempt))
                continue
            break
        if status in (401, 403):
            raise FetchError(f"{where}: {status}: the API token was refused{_excerpt(body)}")
        if not 200 <= status < 300:
            raise FetchError(f"{where}: {status}{_excerpt(body)}")
        try:
            return json.loads(body)
        except ValueError:
            raise FetchError(f"{where}: the answer is not JSON") from None


def _retry_delay(header: str, attempt: int) -> float:
    try:
        given = float(header)
    except ValueError:
        given = float(2**attempt)
    return min(max(given, 0.0), MAX_RETRY_AFTER)


async def _read(response: aiohttp.ClientResponse, where: str) -> bytes:
    if (response.content_length or 0) > MAX_BODY:
        raise FetchError(f"{where}: the answer is larger than {MAX_BODY} bytes")
    chunks = []
    size = 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_BODY:
            raise FetchError(f"{where}: the answer is larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _excerpt(body: bytes) -> str:
    text = " ".join(body[:300].decode("utf-8", "replace").split())
    return f": {text}" if text else ""


def offset_pages(body: Any, params: Params) -> Params | None:
    """PagerDuty's classic pagination: `more` says another page follows at `offset` plus
    the items of this one."""
    if not isinstance(body, dict) or not body.get("more"):
        return None
    current = dict(params)
    offset = int(body.get("offset", current.get("offset", 0)) or 0)
    limit = int(body.get("limit", current.get("limit", 0)) or 0)
    step = limit or len(next((v for v in body.values() if isinstance(v, list)), []))
    if step <= 0:
        return None
    rest = [(k, v) for k, v in params if k != "offset"]
    return [*rest, ("offset", str(offset + step))]


@asynccontextmanager
async def open_client(base_url: str, headers: Mapping[str, str]) -> AsyncIterator[ApiClient]:
    """Yield a client with its own session, closed afterwards."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FetchError(f"--base-url: {base_url!r} is not an http(s) URL")
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        yield ApiClient(session, base_url, headers)
