"""The page cache's rules, on a small ASGI application that counts the pages it makes: what is kept,
for how long, for whom, and that readers arriving together share one making."""
from __future__ import annotations

import asyncio
from typing import Any

import httpx

from services.web.page_cache import MAX_PAGE_BYTES, PageCache


class Site:
    """Counts the pages it makes; `/lent` takes a moment, `/etat` leaves state for the visitor, `/absent`
    is a 404, `/gros` is bigger than a kept page may be, `/cookie` sets a cookie of its own."""

    def __init__(self) -> None:
        self.made: list[str] = []
        self.version = 1
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        self.made.append(f"{scope['method']} {path}")
        if scope["method"] == "POST":
            self.version += 1
        if path == "/decisions/lent":
            await self.release.wait()
        if path == "/seances/etat":
            scope["session"]["csrf"] = "t"
        status = 404 if path == "/votes/absent" else 200
        body = b"x" * (MAX_PAGE_BYTES + 1) if path == "/registre/gros" else f"v{self.version}".encode()
        headers = [(b"content-type", b"text/html; charset=utf-8")]
        if path == "/annonces/cookie":
            headers.append((b"Set-Cookie", b"x=1"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def with_session(app: Any, cookie_state: dict[str, Any] | None = None) -> Any:
    """What Starlette's SessionMiddleware does for the layer inside it: the visitor's state in the scope."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["session"] = dict(cookie_state or {})
        await app(scope, receive, send)

    return wrapped


def client(cache: PageCache, state: dict[str, Any] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=with_session(cache, state)), base_url="http://t")


async def test_a_public_page_is_kept_for_its_time_then_made_anew() -> None:
    site, clock = Site(), Clock()
    cache = PageCache(site, seconds=1.0, clock=clock)
    async with client(cache) as c:
        assert [(await c.get("/decisions")).text for _ in range(3)] == ["v1", "v1", "v1"]
        site.version = 2
        clock.now += 0.9
        assert (await c.get("/decisions")).text == "v1"
        clock.now += 0.2
        assert (await c.get("/decisions")).text == "v2"
        assert site.made == ["GET /decisions", "GET /decisions"]
        assert (await c.get("/decisions?page=2")).text == "v2" and len(site.made) == 3  # its own address


async def test_only_public_pages_without_visitor_state_are_kept() -> None:
    site = Site()
    cache = PageCache(site, seconds=60)
    async with client(cache) as anonymous, client(cache, {"member_id": "m-1"}) as member:
        for path in ("/espace", "/secretariat/membres", "/decisions.csv", "/votes/absent", "/seances/etat",
                     "/registre/gros", "/annonces/cookie"):
            await anonymous.get(path)
            await anonymous.get(path)
            assert site.made.count(f"GET {path}") == 2, path
        await member.get("/seances")
        await member.get("/seances")
        assert site.made.count("GET /seances") == 2  # a signed-in member's page is always made for them
        assert (await anonymous.get("/seances")).text == "v1" and site.made.count("GET /seances") == 3


async def test_a_post_forgets_every_page_even_one_made_meanwhile() -> None:
    site = Site()
    cache = PageCache(site, seconds=60)
    async with client(cache) as c:
        await c.get("/")
        assert (await c.post("/abonnements")).status_code == 200
        assert (await c.get("/")).text == "v2"
        # A page begun before a command answered may hold what the command changed: not kept.
        site.release.clear()
        slow = asyncio.create_task(c.get("/decisions/lent"))
        while "GET /decisions/lent" not in site.made:
            await asyncio.sleep(0)
        await c.post("/abonnements")
        site.release.set()
        assert (await slow).text == "v3"
        assert (await c.get("/decisions/lent")).text == "v3" and site.made.count("GET /decisions/lent") == 2


async def test_readers_arriving_together_share_one_making() -> None:
    site = Site()
    cache = PageCache(site, seconds=60)
    site.release.clear()
    async with client(cache) as c:
        readers = [asyncio.create_task(c.get("/decisions/lent")) for _ in range(20)]
        while "GET /decisions/lent" not in site.made:
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        site.release.set()
        assert {(await r).text for r in readers} == {"v1"}
        assert site.made.count("GET /decisions/lent") == 1


async def test_zero_seconds_keeps_nothing() -> None:
    site = Site()
    async with client(PageCache(site, seconds=0)) as c:
        await c.get("/")
        await c.get("/")
    assert site.made == ["GET /", "GET /"]


async def test_the_pages_kept_stay_within_their_byte_budget(monkeypatch: Any) -> None:
    from services.web import page_cache

    monkeypatch.setattr(page_cache, "MAX_BYTES", 10)  # five pages of two bytes ("v1")
    site = Site()
    cache = PageCache(site, seconds=60)
    async with client(cache) as c:
        for n in range(8):
            await c.get(f"/decisions?page={n}")
        assert cache._bytes == 10 and len(cache._pages) == 5
        await c.get("/decisions?page=7")  # still kept
        await c.get("/decisions?page=0")  # forgotten: made again
    assert site.made.count("GET /decisions") == 9
