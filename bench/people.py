"""Approved members signed in on the web front, and sessions to answer, made for a benchmark.

Everything goes through the real flows, so the rush meets exactly the state the product makes (no row is
written behind a service's back): registry's `Register`, `VerifyEmail`, `ApproveMember` and
`RequestSignIn` commands over NATS, then the web front's sign-in link (`GET` + `POST /connexion/lien`),
which sets the member's signed cookie. The one-time tokens are read from registry's events on JetStream
(the events notifications turns into e-mails), which is much faster than waiting for the e-mails. The
secretariat account comes from `forum-ouvert create-secretariat`; sessions are scheduled with the
secretariat's web form. About 20-40 members/s on this machine: only the rush is measured.

The CSRF token of a member's forms is read from their cookie (Starlette's session cookie is signed
base64 JSON, not encrypted), as a browser would read it from the page's form; a `GET /seances` gives it
when the cookie cannot be read.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import nats
from nats.js.api import DeliverPolicy

from bench.load import member_address

COOKIE = "forum_session"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PARIS = ZoneInfo("Europe/Paris")


@dataclass
class Member:
    member_id: str
    email: str
    cookie: str  # the value of the forum_session cookie
    csrf: str

    @property
    def cookie_header(self) -> str:
        return f"{COOKIE}={self.cookie}"


def session_data(cookie: str) -> dict[str, Any]:
    """What the web front signed into its cookie (base64 JSON before the signature)."""
    raw = cookie.strip('"').split(".", 1)[0]
    return json.loads(base64.b64decode(raw + "=" * (-len(raw) % 4)))


def web_client(base_url: str) -> httpx.AsyncClient:
    # An idle connection is dropped before uvicorn's own 5 s keep-alive timeout closes it under our feet.
    return httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(120), follow_redirects=False,
                             limits=httpx.Limits(max_connections=1, keepalive_expiry=2.0))


def create_secretariat(stack: Any, email: str = "secretariat@bench.forum-ouvert.example") -> tuple[str, str]:
    out = subprocess.run([sys.executable, "-m", "forum_ouvert.cli", "create-secretariat", email], check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "FORUM_DATABASE_URL": stack.database_urls["registry"],
                              "FORUM_DATA_DIR": str(stack.data_dir)})
    return out.stdout.split("(id ", 1)[1].split(")", 1)[0], email


@dataclass
class People:
    """Makes signed-in members on a running `Stack`. `async with People(stack) as people: …`"""

    stack: Any
    concurrency: int = 25
    nc: Any = None
    broker: Any = None
    rpc: Any = None
    subs: list[Any] = field(default_factory=list)
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, member_id) -> token
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    secretariat_id: str = ""
    admin: Member | None = None

    async def __aenter__(self) -> People:
        from faststream.nats import NatsBroker

        from shared.rpc import RpcClient

        self.broker = NatsBroker(self.stack.nats_url, name="bench-people")
        await self.broker.connect()
        self.rpc = RpcClient(self.broker, timeout=60)
        self.nc = await nats.connect(self.stack.nats_url, name="bench-people-tokens")
        js = self.nc.jetstream()

        async def on_event(msg: Any) -> None:
            kind = "verify" if msg.subject == "registry.email_verification.requested" else "sign_in"
            data = json.loads(msg.data)["data"]
            self.tokens[(kind, data["member_id"])] = data["token"]
            self.arrived.set()

        for subject in ("registry.email_verification.requested", "registry.sign_in.requested"):
            self.subs.append(await js.subscribe(subject, cb=on_event, ordered_consumer=True,
                                                deliver_policy=DeliverPolicy.NEW))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for sub in self.subs:
            await sub.unsubscribe()
        await self.nc.drain()
        await self.broker.stop()

    async def _token(self, kind: str, member_id: str, timeout: float = 120) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (kind, member_id) not in self.tokens:
            if loop.time() > deadline:
                raise TimeoutError(f"no {kind} token for {member_id} after {timeout:.0f} s")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), 0.5)
            except TimeoutError:
                pass
        return self.tokens.pop((kind, member_id))

    async def sign_in(self, member_id: str, email: str, http: httpx.AsyncClient) -> Member:
        """The real sign-in: ask for a link, open it, press « Me connecter »."""
        from shared.contracts.registry import RequestSignIn

        http.cookies.clear()
        await self.rpc(RequestSignIn(email=email), timeout=60)
        token = await self._token("sign_in", member_id)
        page = await http.get("/connexion/lien", params={"token": token})
        m = CSRF.search(page.text)
        if page.status_code != 200 or not m:
            raise RuntimeError(f"sign-in link page: HTTP {page.status_code}")
        r = await http.post("/connexion/lien", data={"csrf_token": m.group(1), "token": token})
        cookie = r.cookies.get(COOKIE) or http.cookies.get(COOKIE)
        if r.status_code != 303 or r.headers.get("location") != "/espace" or not cookie:
            raise RuntimeError(f"sign-in: HTTP {r.status_code} {r.headers.get('location')}")
        try:
            csrf = session_data(cookie)["csrf"]
        except (ValueError, KeyError):
            page = await http.get("/seances")
            m = CSRF.search(page.text)
            if not m:
                raise RuntimeError("no CSRF token in /seances") from None
            csrf = m.group(1)
        return Member(member_id, email, cookie, csrf)

    async def members(self, n: int, *, progress: bool = True) -> list[Member]:
        from shared.contracts.registry import ApproveMember, College, Register, VerifyEmail

        secretariat_id = self.secretariat_id
        tag = uuid.uuid4().hex[:8]
        colleges = tuple(College)
        clients = [web_client(self.stack.web_url) for _ in range(self.concurrency)]
        free: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for c in clients:
            free.put_nowait(c)
        done = 0

        async def one(i: int) -> Member:
            nonlocal done
            http = await free.get()
            try:
                email = member_address(f"rush-{tag}", i)
                reg = await self.rpc(Register(full_name=f"Membre {tag} n°{i}", email=email, organisation="Banc d'essai",
                                              college=colleges[i % len(colleges)], charter_accepted=True), timeout=60)
                await self.rpc(VerifyEmail(token=await self._token("verify", reg.member_id)), timeout=60)
                await self.rpc(ApproveMember(actor_id=secretariat_id, member_id=reg.member_id), timeout=60)
                member = await self.sign_in(reg.member_id, email, http)
            finally:
                free.put_nowait(http)
            done += 1
            if progress and done % 100 == 0:
                print(f"  {done}/{n} members…", file=sys.stderr, flush=True)
            return member

        try:
            return list(await asyncio.gather(*[one(i) for i in range(n)]))
        finally:
            await asyncio.gather(*[c.aclose() for c in clients])

    async def sign_in_secretariat(self) -> Member:
        self.secretariat_id, email = await asyncio.to_thread(create_secretariat, self.stack)
        async with web_client(self.stack.web_url) as http:
            self.admin = await self.sign_in(self.secretariat_id, email, http)
        return self.admin

    async def create_session(self, seats: int, title: str | None = None) -> str:
        """A session whose RSVPs are open, scheduled through the secretariat's form; returns its id."""
        assert self.admin is not None, "sign_in_secretariat first"
        now = datetime.now(UTC)

        def local(dt: datetime) -> str:
            return dt.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M")

        form = {"csrf_token": self.admin.csrf, "title": title or f"Séance du banc d'essai {uuid.uuid4().hex[:6]}",
                "kind": "plenary", "theme": "", "description": "Séance ouverte aux réponses pour le banc d'essai.",
                "starts_at": local(now + timedelta(days=2)), "ends_at": local(now + timedelta(days=2, hours=2)),
                "place": "CESE, salle Hémicycle, 9 place d'Iéna, Paris", "online_url": "",
                "capacity": str(seats), "rsvp_opens_at": local(now - timedelta(hours=1)),
                "rsvp_closes_at": local(now + timedelta(days=1)), "agenda": "Accueil\nQuestions diverses"}
        async with web_client(self.stack.web_url) as http:
            http.cookies.set(COOKIE, self.admin.cookie)
            r = await http.post("/secretariat/seances/nouvelle", data=form)
        m = re.fullmatch(r"/seances/([0-9a-f-]{36})", r.headers.get("location", ""))
        if r.status_code != 303 or not m:
            raise RuntimeError(f"scheduling a session: HTTP {r.status_code} {r.text[:300]}")
        return m.group(1)


# ---------------------------------------------------------------- the forum's own tables, read-only
def forum_rows(database_url: str, session_id: str) -> list[tuple[str, str, int | None]]:
    """(member_id, state, waitlist_seq) of every RSVP to the session, read behind the forum service."""
    from sqlalchemy import create_engine, text

    from shared.db import sync_url

    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(text(  # type: ignore[misc]
                "SELECT member_id, state, waitlist_seq FROM forum_rsvp WHERE session_id = :s"), {"s": session_id})]
    finally:
        engine.dispose()


def approved_count(database_url: str, member_ids: list[str]) -> int:
    from sqlalchemy import bindparam, create_engine, text

    from shared.db import sync_url

    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as c:
            q = text("SELECT count(*) FROM forum_member WHERE standing = 'approved' AND member_id IN :ids") \
                .bindparams(bindparam("ids", expanding=True))
            return sum(int(c.execute(q, {"ids": member_ids[i:i + 500]}).scalar_one())
                       for i in range(0, len(member_ids), 500))
    finally:
        engine.dispose()


async def wait_approved(database_url: str, member_ids: list[str], timeout: float = 120) -> None:
    """Until the forum's projection (fed by registry's events) knows every member as approved."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (n := await asyncio.to_thread(approved_count, database_url, member_ids)) < len(member_ids):
        if loop.time() > deadline:
            raise TimeoutError(f"the forum knows {n}/{len(member_ids)} members as approved after {timeout:.0f} s")
        await asyncio.sleep(0.2)
