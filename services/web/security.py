"""Web front security: signed session cookie, CSRF tokens, security headers, rate limiting.

The session is a cookie signed with itsdangerous (never server-side state): it holds the signed-in
member's id (or nothing for a visitor), a CSRF token and the time of sign-in. A cookie that was
tampered with, signed with another key or is too old is ignored: the visitor is simply signed out.
"""
from __future__ import annotations

import hmac
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from shared.settings import Settings

COOKIE_NAME = "forum_session"
CSRF_FIELD = "csrf_token"
_SALT = "forum-ouvert.web.session"

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
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir) / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_urlsafe(48))
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_text().strip()


def valid_request_id(value: str | None) -> bool:
    return bool(value and _REQUEST_ID.match(value))


# ---------------------------------------------------------------- session
@dataclass
class Session:
    """What the cookie holds. `modified` tells the middleware to (re)write the cookie."""

    member_id: str | None = None
    csrf: str = ""
    issued_at: float = 0.0
    flash: list[str] | None = None  # [level, text] shown once on the next page
    modified: bool = False
    discard_cookie: bool = False  # the request carried a cookie we could not trust

    @property
    def signed_in(self) -> bool:
        return self.member_id is not None

    def csrf_token(self) -> str:
        if not self.csrf:
            self.csrf = secrets.token_urlsafe(32)
            self.issued_at = self.issued_at or time.time()
            self.modified = True
        return self.csrf

    def check_csrf(self, submitted: object) -> bool:
        return bool(self.csrf) and isinstance(submitted, str) and hmac.compare_digest(
            self.csrf.encode(), submitted.encode())

    def sign_in(self, member_id: str) -> None:
        """A fresh session for the member: new CSRF token (no fixation of a visitor's token)."""
        self.member_id = member_id
        self.csrf = secrets.token_urlsafe(32)
        self.issued_at = time.time()
        self.modified = True

    def sign_out(self) -> None:
        self.member_id = None
        self.csrf = secrets.token_urlsafe(32)
        self.issued_at = time.time()
        self.flash = None
        self.modified = True

    def set_flash(self, level: str, text: str) -> None:
        self.flash = [level, text]
        self.modified = True

    def pop_flash(self) -> list[str] | None:
        flash, self.flash = self.flash, None
        if flash:
            self.modified = True
        return flash


class SessionCodec:
    """Signs and reads the session cookie."""

    def __init__(self, key: str, max_age: int) -> None:
        self.serializer = URLSafeTimedSerializer(key, salt=_SALT)
        self.max_age = max_age

    def dumps(self, s: Session) -> str:
        s.issued_at = s.issued_at or time.time()
        return self.serializer.dumps({"m": s.member_id, "c": s.csrf, "i": s.issued_at, "f": s.flash})

    def loads(self, raw: str | None, now: float | None = None) -> Session:
        if not raw:
            return Session()
        try:
            data = self.serializer.loads(raw, max_age=self.max_age)
            member_id, csrf, issued_at, flash = data["m"], data["c"], float(data["i"]), data.get("f")
            if member_id is not None and not isinstance(member_id, str):
                raise TypeError("member id")
            if not isinstance(csrf, str) or len(csrf) > 128:
                raise TypeError("csrf")
            if flash is not None and not (isinstance(flash, list) and len(flash) == 2
                                          and all(isinstance(x, str) for x in flash)):
                flash = None
        except (BadSignature, KeyError, TypeError, ValueError, AttributeError):
            return Session(discard_cookie=True)
        if issued_at + self.max_age < (now or time.time()):
            return Session(discard_cookie=True)  # a sign-in does not outlive session_max_age
        return Session(member_id=member_id, csrf=csrf, issued_at=issued_at, flash=flash)

    def write(self, response: Response, s: Session, *, secure: bool) -> None:
        if s.modified:
            response.set_cookie(COOKIE_NAME, self.dumps(s), max_age=self.max_age, httponly=True, samesite="lax",
                                secure=secure, path="/")
        elif s.discard_cookie:
            response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="lax", secure=secure)


def session_of(request: Request) -> Session:
    return request.state.session  # type: ignore[no-any-return]


# ---------------------------------------------------------------- errors raised by the guards
class CsrfError(Exception):
    """A POST without the form's CSRF token (or with a stale one)."""


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("rate limited")
        self.retry_after = retry_after


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


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
