"""The visitor's signed cookie (Starlette's SessionMiddleware) and what the pages build on it: the
cookie's flags (Secure and HSTS exactly behind an https public address), CSRF tokens, sign-in by link,
sign-out (which ends the registry's session), a tampered or foreign cookie, and a sign-in that outlived
`session_max_age`. No NATS: the web front's RPC client is replaced by `FakeRegistry`.
"""
from __future__ import annotations

import json
import re
import time
from base64 import b64decode, b64encode
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from itsdangerous import TimestampSigner

from services.web.security import COOKIE_NAME, Visitor
from shared.contracts.common import ErrorBody, ErrorCode, Request
from shared.contracts.notifications import GetMemberPreferences, MemberNoticeKind, MemberPreferences
from shared.contracts.registry import (
    Accepted, CheckSession, CheckSignInLink, College, EndAllSessions, EndSession, MemberStatus, MemberView, RedeemSignIn,
    RequestSignIn, Role, SignedIn,
)
from shared.rpc import RpcError

KEY = "k" * 40
MEMBER = MemberView(member_id="m-1", public_id="0123456789abcdef", full_name="Camille Dupont", email="c@example.fr",
                    organisation="", college=College.CITIZEN, role=Role.MEMBER, status=MemberStatus.APPROVED,
                    registered_at=datetime(2030, 7, 1, 8, 0, tzinfo=UTC))
TOKEN = "t" * 43
SESSION = "s" * 43


def make_cookie(data: dict[str, Any], key: str = KEY) -> str:
    """A cookie as the middleware writes it: base64 JSON, signed with a timestamp."""
    return TimestampSigner(key).sign(b64encode(json.dumps(data).encode())).decode()


def read_cookie(value: str, key: str = KEY) -> dict[str, Any]:
    return json.loads(b64decode(TimestampSigner(key).unsign(value)))  # type: ignore[no-any-return]


def csrf_in(response: httpx.Response) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
    assert m, "no CSRF token in the page"
    return m.group(1)


class FakeRegistry:
    """The registry as the web front sees it: each redeemed link opens a session, which pages check and
    sign-out ends."""

    def __init__(self) -> None:
        self.known = {MEMBER.member_id}
        self.live: set[str] = set()
        self.opened = 0
        self.calls: list[str] = []

    async def __call__(self, request: Request[Any], *, timeout: float | None = None) -> Any:
        self.calls.append(request.OP)
        if isinstance(request, RedeemSignIn):
            self.opened += 1
            session = SESSION if self.opened == 1 else f"{SESSION[:-3]}{self.opened:03d}"
            self.live.add(session)
            return SignedIn(member=MEMBER, session=session)
        if isinstance(request, CheckSession):
            if request.member_id in self.known and request.session in self.live:
                return MEMBER
            raise RpcError(ErrorBody(code=ErrorCode.NOT_FOUND, message="Session terminée."))
        if isinstance(request, EndSession):
            self.live.discard(request.session)
            return Accepted()
        if isinstance(request, EndAllSessions):
            self.live.clear()
            return Accepted()
        if isinstance(request, (RequestSignIn, CheckSignInLink)):  # every link is good here
            return Accepted()
        if isinstance(request, GetMemberPreferences):  # « Mon espace » shows the member's e-mail choices
            return MemberPreferences(enabled={k: True for k in MemberNoticeKind})
        raise AssertionError(f"unexpected RPC {request.OP}")


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


def site(registry: FakeRegistry, tmp_path: Path, **settings: Any) -> httpx.AsyncClient:
    from services.web.app import create_app
    from shared.settings import Settings

    app = create_app(Settings(secret_key=KEY, data_dir=tmp_path, **settings))
    app.state.web.rpc = registry
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://forum.test")


async def sign_in(c: httpx.AsyncClient) -> httpx.Response:
    page = await c.get("/connexion/lien", params={"token": TOKEN})
    return await c.post("/connexion/lien", data={"csrf_token": csrf_in(page), "token": TOKEN})


async def test_cookie_flags(registry: FakeRegistry, tmp_path: Path) -> None:
    async with site(registry, tmp_path) as c:
        r = await c.get("/connexion")  # a page with a form opens an anonymous cookie
        cookie = r.headers["set-cookie"].lower()
        assert cookie.startswith(f"{COOKIE_NAME}=") and "httponly" in cookie and "samesite=lax" in cookie
        assert "secure" not in cookie and "path=/" in cookie
        assert (await c.get("/static/css/forum.css")).headers.get("set-cookie") is None
    async with site(registry, tmp_path, cookie_secure=True) as c:
        assert "; secure" in (await c.get("/connexion")).headers["set-cookie"].lower()


@pytest.mark.parametrize("public_url, secure", [("https://forum-ouvert.example.fr", True),
                                                 ("http://127.0.0.1:8000", False)])
async def test_secure_cookie_and_hsts_exactly_behind_https(registry: FakeRegistry, tmp_path: Path,
                                                           public_url: str, secure: bool) -> None:
    async with site(registry, tmp_path, public_url=public_url) as c:
        r = await c.get("/connexion")
        assert ("; secure" in r.headers["set-cookie"].lower()) is secure
        assert ("strict-transport-security" in r.headers) is secure
    # Said explicitly, the setting wins (e.g. trying an https address's configuration over plain HTTP).
    async with site(registry, tmp_path, public_url=public_url, cookie_secure=False) as c:
        assert "; secure" not in (await c.get("/connexion")).headers["set-cookie"].lower()


async def test_a_cookie_without_a_registry_session_is_a_visitor(registry: FakeRegistry, tmp_path: Path) -> None:
    """A cookie written before the registry kept sessions (member id only) signs nobody in."""
    async with site(registry, tmp_path) as c:
        c.cookies.set(COOKIE_NAME, make_cookie({"member_id": MEMBER.member_id, "csrf": "x" * 43,
                                                "since": time.time()}))
        r = await c.get("/espace")
        assert r.status_code == 303 and r.headers["location"] == "/connexion"
        assert "member_id" not in read_cookie(r.cookies[COOKIE_NAME])
        assert "registry.check-session" not in registry.calls


async def test_a_visitor_costs_the_registry_nothing(registry: FakeRegistry, tmp_path: Path) -> None:
    """Pages for everyone keep no state for a visitor who is not signed in, and ask the registry nothing;
    a signed-in page asks it once."""
    async with site(registry, tmp_path) as c:
        await c.get("/connexion")
        await c.post("/connexion", data={"csrf_token": csrf_in(await c.get("/connexion")), "email": "c@example.fr"})
        assert registry.calls == ["registry.request-sign-in"]
        await sign_in(c)
        registry.calls.clear()
        assert (await c.get("/espace")).status_code == 200
        assert registry.calls.count("registry.check-session") == 1


def same_site(registry: FakeRegistry, tmp_path: Path, browsers: int, **settings: Any) -> list[httpx.AsyncClient]:
    """`browsers` cookie jars on one web front (one app: what it keeps between requests is shared)."""
    from services.web.app import create_app
    from shared.settings import Settings

    app = create_app(Settings(secret_key=KEY, data_dir=tmp_path, **settings))
    app.state.web.rpc = registry
    return [httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://forum.test")
            for _ in range(browsers)]


async def test_the_session_check_is_kept_a_few_seconds(registry: FakeRegistry, tmp_path: Path) -> None:
    """The registry's answer that a session is live serves the next pages for FORUM_SESSION_CHECK_SECONDS;
    with 0, every page asks."""
    for seconds, asked in ((10, 1), (0, 3)):
        async with site(registry, tmp_path, session_check_seconds=seconds) as c:
            await sign_in(c)
            registry.calls.clear()
            for _ in range(3):
                assert "Camille Dupont" in (await c.get("/espace")).text
            assert registry.calls.count("registry.check-session") == asked


async def test_a_kept_session_check_is_forgotten_on_sign_out_everywhere_and_on_the_registrys_notice(
        registry: FakeRegistry, tmp_path: Path) -> None:
    from nats.aio.msg import Msg

    from shared.contracts.registry import MembersChanged

    laptop, phone = same_site(registry, tmp_path, 2)
    async with laptop, phone:
        await sign_in(laptop)
        await sign_in(phone)
        assert (await phone.get("/espace")).status_code == 200  # its answer is kept now
        page = await laptop.get("/espace")
        r = await laptop.post("/espace/deconnexion-partout", data={"csrf_token": csrf_in(page)})
        assert r.status_code == 303 and not registry.live
        assert (await phone.get("/espace")).status_code == 303  # asked again: the session has ended

        await sign_in(phone)
        assert (await phone.get("/espace")).status_code == 200
        registry.live.clear()  # ended by another front, which this one hears about by the notice
        checks = phone._transport.app.state.web.session_checks  # type: ignore[attr-defined]
        await checks.heard(Msg(None, subject=MembersChanged.SUBJECT,  # type: ignore[arg-type]
                               data=MembersChanged(member_ids=[MEMBER.member_id]).model_dump_json().encode()))
        assert (await phone.get("/espace")).status_code == 303

        await sign_in(phone)
        assert (await phone.get("/espace")).status_code == 200
        registry.live.clear()
        # A notice that cannot be read may have named anyone: every kept check is forgotten.
        garbled = Msg(None, subject=MembersChanged.SUBJECT, data=b'{"member_ids": "pas une liste"')  # type: ignore[arg-type]
        await checks.heard(garbled)
        assert (await phone.get("/espace")).status_code == 303


async def test_csrf_sign_in_and_sign_out(registry: FakeRegistry, tmp_path: Path) -> None:
    async with site(registry, tmp_path) as c:
        visitor_token = csrf_in(await c.get("/connexion"))
        assert (await c.post("/connexion", data={"email": "c@example.fr"})).status_code == 403
        assert (await c.post("/connexion", data={"email": "c@example.fr", "csrf_token": "faux"})).status_code == 403
        r = await c.post("/connexion", data={"email": "c@example.fr", "csrf_token": visitor_token})
        assert r.status_code == 200

        r = await sign_in(c)
        assert r.status_code == 303 and r.headers["location"] == "/espace"
        data = read_cookie(c.cookies[COOKIE_NAME])
        assert data["member_id"] == MEMBER.member_id and data["csrf"] != visitor_token  # no token fixation
        assert data["session"] == SESSION and registry.live == {SESSION}
        page = await c.get("/espace")
        assert page.status_code == 200 and "Bonjour Camille Dupont, vous êtes connecté·e." in page.text
        assert "flash" not in read_cookie(c.cookies[COOKIE_NAME])  # shown once
        assert (await c.post("/deconnexion", data={"csrf_token": visitor_token})).status_code == 403
        member_token = csrf_in(page)

        r = await c.post("/deconnexion", data={"csrf_token": member_token})
        assert r.status_code == 303 and r.headers["location"] == "/"
        data = read_cookie(c.cookies[COOKIE_NAME])
        assert "member_id" not in data and "session" not in data and data["csrf"] != member_token
        assert registry.live == set()  # ended in the registry, not only forgotten by this browser
        assert "Vous êtes déconnecté·e." in (await c.get("/")).text
        r = await c.get("/espace")
        assert r.status_code == 303 and r.headers["location"] == "/connexion"


@pytest.mark.parametrize("bad", ["nimportequoi", "", "a.b.c", "tampered", "other-key"])
async def test_untrusted_cookie_is_a_visitor(registry: FakeRegistry, tmp_path: Path, bad: str) -> None:
    async with site(registry, tmp_path) as c:
        await sign_in(c)
        good = c.cookies[COOKIE_NAME]
        value = {"tampered": good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),
                 "other-key": make_cookie(read_cookie(good), key="une-autre-clef")}.get(bad, bad)
    async with site(registry, tmp_path) as c:
        c.cookies.set(COOKIE_NAME, value)
        r = await c.get("/espace")
        assert r.status_code == 303 and r.headers["location"] == "/connexion"
        assert "Se connecter" in (await c.get("/")).text


async def test_sign_in_does_not_outlive_max_age(registry: FakeRegistry, tmp_path: Path) -> None:
    """Every new flash message rewrites the cookie (and its signature's time): the sign-in's own time counts."""
    registry.live.add(SESSION)
    fresh = {"member_id": MEMBER.member_id, "session": SESSION, "csrf": "x" * 43, "since": time.time()}
    stale = {**fresh, "since": time.time() - 3601}
    async with site(registry, tmp_path, session_max_age=3600) as c:
        c.cookies.set(COOKIE_NAME, make_cookie(fresh))
        assert (await c.get("/espace")).status_code == 200
        c.cookies.set(COOKIE_NAME, make_cookie(stale))
        r = await c.get("/espace")
        assert r.status_code == 303 and r.headers["location"] == "/connexion"
        assert "member_id" not in read_cookie(r.cookies[COOKIE_NAME])


async def test_an_erased_member_is_signed_out(registry: FakeRegistry, tmp_path: Path) -> None:
    async with site(registry, tmp_path) as c:
        await sign_in(c)
        registry.known.clear()
        r = await c.get("/espace")
        assert r.status_code == 303 and r.headers["location"] == "/connexion"
        assert "member_id" not in read_cookie(c.cookies[COOKIE_NAME])


def test_visitor_over_the_cookie_dict() -> None:
    data: dict[str, Any] = {}
    who = Visitor(data)
    assert who.member_id is None and who.pop_flash() is None and not who.check_csrf(None)
    token = who.csrf_token()
    assert who.csrf_token() == token and who.check_csrf(token) and not who.check_csrf(token + "x")
    who.sign_in("m-1", SESSION)
    assert who.member_id == "m-1" and who.session_id == SESSION and not who.check_csrf(token)
    who.set_flash("info", "Bonjour")
    assert who.pop_flash() == ["info", "Bonjour"] and who.pop_flash() is None
    who.forget_if_older_than(60, now=data["since"] + 30)
    assert who.member_id == "m-1"
    who.forget_if_older_than(60, now=data["since"] + 61)
    assert data == {} and who.member_id is None
