"""Web front security: who the visitor is (signed cookie), CSRF tokens, security headers, the client's
address, rate limiting, and the cap on request bodies.

The cookie is Starlette's SessionMiddleware's (signed with the site's key): it holds a CSRF token and,
once signed in, the member's id, the id of the session the registry opened at sign-in, and the time of
sign-in. Visitors who are not signed in have no state on the server. A signed-in page is shown only while
the registry says the session is live, so signing out (here, everywhere, or by erasure) ends every copy
of the cookie. A cookie that was tampered with, signed with another key or is too old is ignored: the
visitor is simply signed out.
"""
from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.secret_files import generated_secret
from shared.settings import Settings

COOKIE_NAME = "forum_session"
CSRF_FIELD = "csrf_token"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; font-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'self'; object-src 'none'"
)
PERMISSIONS_POLICY = ("accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
                      "microphone=(), payment=(), usb=()")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # Sign-in and verification tokens travel in URLs: never hand them to another site.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": PERMISSIONS_POLICY,
    "Cross-Origin-Opener-Policy": "same-origin",
}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def secret_key(settings: Settings) -> str:
    """settings.secret_key, or a key generated once into <data_dir>/secret.key (mode 0600)."""
    return settings.secret_key or generated_secret(Path(settings.data_dir) / "secret.key")


def valid_request_id(value: str | None) -> bool:
    return bool(value and _REQUEST_ID.match(value))


# ---------------------------------------------------------------- the visitor
class Visitor:
    """Who is browsing, as the signed cookie tells it: the signed-in member's id and session (or nobody),
    the CSRF token of their forms, and a one-time message for the next page.

    A view over `request.session`, the dict Starlette's SessionMiddleware signs into the cookie;
    assigning to it is what makes the middleware write the cookie again."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def member_id(self) -> str | None:
        value = self._data.get("member_id")
        return value if isinstance(value, str) else None

    @property
    def session_id(self) -> str | None:
        """The id of the registry's session for this sign-in (checked on every page)."""
        value = self._data.get("session")
        return value if isinstance(value, str) else None

    def csrf_token(self) -> str:
        token = self._data.get("csrf")
        if not isinstance(token, str) or not token:
            token = self._data["csrf"] = secrets.token_urlsafe(32)
            self._data.setdefault("since", time.time())
        return token

    def check_csrf(self, submitted: object) -> bool:
        token = self._data.get("csrf")
        return isinstance(token, str) and bool(token) and isinstance(submitted, str) and hmac.compare_digest(
            token.encode(), submitted.encode())

    def sign_in(self, member_id: str, session: str) -> None:
        """A fresh cookie for the member, with a new CSRF token (a visitor's token is never carried over)."""
        self._data.clear()
        self._data.update(member_id=member_id, session=session, csrf=secrets.token_urlsafe(32), since=time.time())

    def sign_out(self) -> None:
        self._data.clear()
        self._data.update(csrf=secrets.token_urlsafe(32), since=time.time())

    def set_flash(self, level: str, text: str) -> None:
        self._data["flash"] = [level, text]
        self._data.setdefault("since", time.time())

    def pop_flash(self) -> list[str] | None:
        flash = self._data.pop("flash", None)
        return flash if isinstance(flash, list) and len(flash) == 2 else None

    def forget_if_older_than(self, max_age: float, now: float | None = None) -> None:
        """A sign-in does not outlive `max_age`. The middleware's own age check counts from the cookie's
        last write (every new flash message writes it), so the time of sign-in is checked here."""
        since = self._data.get("since")
        if self._data and (not isinstance(since, int | float) or since + max_age < (now or time.time())):
            self._data.clear()


def visitor(request: Request) -> Visitor:
    return Visitor(request.session)


# ---------------------------------------------------------------- errors raised by the guards
class CsrfError(Exception):
    """A POST without the form's CSRF token (or with a stale one)."""


# ---------------------------------------------------------------- rate limit
class SlidingWindowLimiter:
    """At most `limit` hits per `window` seconds per key, counted over a sliding window.

    In-process: each web replica counts on its own, which is enough to slow down one client
    hammering the registration or sign-in forms (the mail sender also caps what leaves)."""

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 50_000) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str) -> bool:
        """Count one attempt; False when the key is over its limit (the attempt is then not counted)."""
        now = self.clock()
        q = self._hits.get(key)
        if q is None:
            if len(self._hits) >= self.max_keys:
                self._prune(now)
            q = self._hits[key] = deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        if len(q) >= self.limit:
            return False
        q.append(now)
        return True

    def retry_after(self, key: str) -> int:
        q = self._hits.get(key)
        if not q:
            return 0
        return max(1, int(q[0] + self.window - self.clock()) + 1)

    def _prune(self, now: float) -> None:
        for k in [k for k, q in self._hits.items() if not q or q[-1] <= now - self.window]:
            del self._hits[k]
        if len(self._hits) >= self.max_keys:  # still full of live keys: forget the oldest
            for k in sorted(self._hits, key=lambda k: self._hits[k][-1])[: len(self._hits) // 2]:
                del self._hits[k]


# ---------------------------------------------------------------- the client's address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _trusted(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in networks)


def forwarded_client(peer: str, forwarded_for: list[str], proxies: tuple[str, ...]) -> str:
    """The client's address: the connection's peer, unless that peer is one of our trusted `proxies`.
    Then X-Forwarded-For is read from its right end (each proxy appends the address it received the
    request from), skipping our own proxies: the first address that is not one is the client. What lies
    further left was written by the client itself and is never believed."""
    networks = _networks(proxies)
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [h.strip() for value in forwarded_for for h in value.split(",")]
    client = peer
    for hop in reversed([h for h in hops if h]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # not an address: nothing to its left can be trusted either
        client = hop
        if not _trusted(hop, networks):
            break
    return client


def client_address(request: Request) -> str:
    """Who sent the request, for rate limits and the subscription log (see `forwarded_client`)."""
    peer = request.client.host if request.client else "unknown"
    web = getattr(request.app.state, "web", None)
    proxies = tuple(web.settings.trusted_proxies) if web is not None else ()
    return forwarded_client(peer, request.headers.getlist("x-forwarded-for"), proxies)


# ---------------------------------------------------------------- request bodies
class BodyTooLarge(HTTPException):
    """More bytes were sent than the form may hold (FastAPI lets HTTPExceptions through as they are)."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


class BodyLimit:
    """Counts the body bytes the application actually receives, whatever Content-Length said (a chunked
    body has none), and stops the request with a 413 once `limit_for(path)` bytes are passed: the
    application never holds more than that in memory. The exception is raised where the body is read
    (the form parser), so the usual French error page answers."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge()
            return message

        await self.app(scope, counted, send)
