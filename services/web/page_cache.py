"""Public pages kept a moment for visitors who are not signed in.

A list of decisions or sessions costs the services 5 to 20 ms of CPU to read and the web front as much
to render; fifty people reading at once would take two cores. Each web front keeps the pages it served to
anonymous visitors for `FORUM_PAGE_CACHE_SECONDS` (1 s by default; 0 turns it off):
- only a GET of a public page (`PUBLIC_PAGES`) answered 200 to a visitor without a cookie, whose answer
  left no state for that visitor (no CSRF token, no message, no cookie: nothing of theirs in the page),
  is kept;
- a page asked for again while it is being made waits for it instead of making it twice;
- every command that this front sends (any POST) forgets every page: what a clerk or a member just did
  shows on the next page anyone reads here. What changed elsewhere (another web front, a consumer
  catching up) shows within the time limit.
Signed-in members always get their page made for them.
"""
from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PUBLIC_PAGES = re.compile(
    r"/|/seances(/passees|/[\w-]+)?|/(decisions|votes|comptes-rendus|registre|annonces)(/[\w-]+)?")
MAX_BYTES = 64 * 1024 * 1024  # kept at most, the least recently read pages forgotten first (any query
MAX_PAGE_BYTES = 1024 * 1024  # string makes another page: a crawler's cannot take more than this)


@dataclass(frozen=True)
class Page:
    """A 200 answer as it was sent: its headers and body, and when it was made."""

    headers: list[tuple[bytes, bytes]]
    body: bytes
    made: float


class PageCache:
    """The ASGI layer: inside the session middleware (it reads whether the visitor has any state) and the
    front door (which adds the headers of each answer: its request id, the security headers)."""

    def __init__(self, app: ASGIApp, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.app, self.seconds, self.clock = app, seconds, clock
        self._pages: OrderedDict[str, Page] = OrderedDict()
        self._bytes = 0
        self._making: dict[str, asyncio.Future[Page | None]] = {}
        self._generation = 0  # moved on by every forgetting: a page begun before it is not kept

    def forget_all(self) -> None:
        self._pages.clear()
        self._bytes = 0
        self._generation += 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            self.forget_all()  # before the command runs, and once it has answered (a page begun meanwhile
            try:  # may have read the data before it changed)
                await self.app(scope, receive, send)
            finally:
                self.forget_all()
            return
        if scope["method"] != "GET" or scope.get("session") or not PUBLIC_PAGES.fullmatch(scope["path"]):
            await self.app(scope, receive, send)
            return
        key = scope["path"] + "?" + scope.get("query_string", b"").decode("latin-1")
        page = self._fresh(key)
        if page is None and (making := self._making.get(key)) is not None:
            page = await asyncio.shield(making)
        if page is not None:
            await self._replay(page, send)
            return
        await self._make(key, scope, receive, send)

    def _fresh(self, key: str) -> Page | None:
        page = self._pages.get(key)
        if page is None:
            return None
        if self.clock() - page.made >= self.seconds:
            self._forget(key)
            return None
        self._pages.move_to_end(key)
        return page

    async def _make(self, key: str, scope: Scope, receive: Receive, send: Send) -> None:
        made: asyncio.Future[Page | None] = asyncio.get_running_loop().create_future()
        self._making[key] = made
        started, generation = self.clock(), self._generation
        status, headers, body, keep = 0, [], bytearray(), True

        async def capture(message: Message) -> None:
            nonlocal status, headers, keep
            if message["type"] == "http.response.start":
                status, headers = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body" and keep:
                body.extend(message.get("body", b""))
                keep = len(body) <= MAX_PAGE_BYTES
            await send(message)

        page = None
        try:
            await self.app(scope, receive, capture)
            if (status == 200 and keep and not scope.get("session") and generation == self._generation
                    and not any(name.lower() == b"set-cookie" for name, _ in headers)):
                page = Page(headers, bytes(body), started)
                self._forget(key)
                self._pages[key] = page
                self._bytes += len(page.body)
                while self._bytes > MAX_BYTES:
                    self._forget(next(iter(self._pages)))
        finally:
            if self._making.get(key) is made:
                del self._making[key]
            made.set_result(page)  # the readers waiting for it (None: they make their own)

    def _forget(self, key: str) -> None:
        page = self._pages.pop(key, None)
        if page is not None:
            self._bytes -= len(page.body)

    async def _replay(self, page: Page, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": page.headers})
        await send({"type": "http.response.body", "body": page.body})
