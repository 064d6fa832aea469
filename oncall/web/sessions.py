"""Browser sessions of the web UI: an encrypted cookie (aiohttp-session), who is logged in,
and the CSRF token every form carries.

The cookie holds the session's random id (logging out records it as ended: a copy of the
cookie opens nothing afterwards), the user's name, a tag of their password (a new password
ends every session begun before it: `passwords.tag`) and the session's CSRF token; it is
encrypted and authenticated with a key derived from the service's secret key, `HttpOnly`,
`SameSite=Lax`, `Secure` when `public_url` is https, and expires after SESSION_LIFETIME.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import timedelta

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp_session import (
    AbstractStorage,
    Session,
    get_session,
    new_session,
    session_middleware,
)
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from oncall.directory.model import User
from oncall.web.keys import CLOCK, DIRECTORY, RUNTIME, SETTINGS

# aiohttp-session warns of every cookie it cannot decrypt (an expired key, a forged or
# truncated cookie): anyone could fill the log with them, one line a request. Such a
# cookie is simply no session.
logging.getLogger("aiohttp_session").setLevel(logging.ERROR)
COOKIE = "oncall_session"
SESSION_LIFETIME = timedelta(days=14)  # a phone stays logged in across a rotation
CSRF_FIELD = "_csrf"
CSRF_HEADER = "X-CSRF-Token"
_USER = web.RequestKey("oncall.user", User)
NO_SESSION = ("/api/", "/v2/", "/-/", "/health", "/metrics", "/feeds/", "/static/")


def session_key(secret: bytes) -> bytes:
    """Return the 32-byte cookie key derived from the service's secret key (never the key
    itself: a session cookie must not help forge an action link, nor the reverse)."""
    return hmac.new(secret, b"oncall web session cookie", hashlib.sha256).digest()


class SessionStorage(AbstractStorage):
    """aiohttp-session's encrypted cookie storage, made once the runtime has loaded the
    secret key (after the app, and its middlewares, are built)."""

    def __init__(self, app: web.Application, secure: bool) -> None:
        self.app = app
        self.secure = secure
        max_age = int(SESSION_LIFETIME.total_seconds())
        super().__init__(
            cookie_name=COOKIE, max_age=max_age, secure=secure, httponly=True, samesite="Lax"
        )
        self._inner: EncryptedCookieStorage | None = None

    def _storage(self) -> EncryptedCookieStorage:
        if self._inner is None:
            self._inner = EncryptedCookieStorage(
                session_key(self.app[RUNTIME].notifier.link_key),
                cookie_name=COOKIE,
                max_age=self.max_age,
                secure=self.secure,
                httponly=True,
                samesite="Lax",
            )
        return self._inner

    async def load_session(self, request: web.Request) -> Session:
        return await self._storage().load_session(request)

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: Session
    ) -> None:
        await self._storage().save_session(request, response, session)


def middleware(storage: AbstractStorage) -> Middleware:
    """Return aiohttp-session's middleware for the pages only: the API, ingest and ops
    routes authenticate with tokens and never read a session, so their requests (alerts at
    thousands per second among them) skip it."""
    pages = session_middleware(storage)

    @web.middleware
    async def sessions(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(NO_SESSION):
            return await handler(request)
        return await pages(request, handler)

    return sessions


def secure_cookies(public_url: str) -> bool:
    """Return whether session cookies are marked Secure: when the service is reached over
    https."""
    return public_url.lower().startswith("https://")


async def start(request: web.Request, user: User, password_tag: str) -> None:
    """Log `user` in: a new session (never the one the browser brought: no fixation) with a
    new CSRF token."""
    session = await new_session(request)
    session["id"] = secrets.token_urlsafe(24)
    session["user"] = user.name
    session["password"] = password_tag
    session["csrf"] = secrets.token_urlsafe(32)
    request[_USER] = user


async def end(request: web.Request) -> None:
    """Log out: the session is recorded as ended (a copy of its cookie, taken from a
    shared computer or a backup, is no session any more) and the cookie is emptied."""
    session = await get_session(request)
    session_id, name = session.get("id"), session.get("user")
    if isinstance(session_id, str) and isinstance(name, str):
        now = request.app[CLOCK]()
        accounts = request.app[RUNTIME].accounts
        await accounts.end_session(name, session_id, now + SESSION_LIFETIME, now)
    session.invalidate()


async def current_user(request: web.Request) -> User | None:
    """Return the logged-in user, or None (no session, an expired or forged cookie, a user
    no longer in the directory, a password changed since the login)."""
    if _USER in request:
        return request[_USER]
    session = await get_session(request)
    name, changed, session_id = session.get("user"), session.get("password"), session.get("id")
    if not isinstance(name, str) or not isinstance(changed, str):
        return None
    if not isinstance(session_id, str):
        return None
    user = request.app[DIRECTORY].current.users.get(name)
    accounts = request.app[RUNTIME].accounts
    if user is None or not await accounts.session_holds(name, changed, session_id):
        session.invalidate()
        return None
    request[_USER] = user
    return user


async def csrf_token(request: web.Request) -> str:
    """Return the session's CSRF token, giving an anonymous session one (the login form
    needs it too)."""
    session = await get_session(request)
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


async def csrf_ok(request: web.Request, presented: str | None) -> bool:
    """Return whether `presented` (the form's field, or else the X-CSRF-Token header) is
    the session's CSRF token, and the request comes from this site's own pages."""
    if not _same_origin(request):
        return False
    session = await get_session(request)
    token = session.get("csrf")
    presented = presented or request.headers.get(CSRF_HEADER)
    if not isinstance(token, str) or not presented:
        return False
    return hmac.compare_digest(token.encode(), presented.encode())


def _same_origin(request: web.Request) -> bool:
    """Return False when the browser says the request comes from another site (Origin or
    Sec-Fetch-Site); True when it says nothing (an old browser: the token decides)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site not in (None, "same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin == "null":
        # Chromium sends "null" for a form posted from a page whose Referrer-Policy is
        # no-referrer (ours): then only Sec-Fetch-Site, which no page can set, says where.
        return site == "same-origin"
    if origin is None:
        return True
    public = request.app[SETTINGS].server.public_url.rstrip("/")
    own = f"{request.scheme}://{request.host}"
    return origin in (own, public)
