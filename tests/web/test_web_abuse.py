"""Limits that stop the abuser, not the person abused.

- A request body is capped on the bytes actually received: a chunked body (no Content-Length) of 1 MiB
  posted to a form gets the French 413 page, and nothing is created.
- The client address that rate limits count by is the connection's peer; X-Forwarded-For is believed
  only from a configured trusted proxy (its rightmost address that is not one of ours). Checked on the
  real server (uvicorn must not read the header itself) and in process with a proxy's address.
- Sign-in links are capped per e-mail address: flooding someone's address with requests (from as many
  machines as one likes) mails at most `link_mail_limit` links an hour, and the last one mailed still
  signs them in.
- Registering with a known address answers exactly as for a new one; the owner of the address is
  mailed that they already have an account, with a sign-in link.

The server tests run a small forum of their own (registry, notifications, web front, own NATS) with low
limits, so that the shared one keeps its generous ones.
"""
from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.nats import NatsBroker

from forum_ouvert.launcher import WEB, Stack, port_open
from services.web.security import forwarded_client
from shared.contracts.registry import Accepted, Register, RequestSignIn, VerifyEmail
from shared.rpc import RpcClient
from tests.support import caught_mail, database_urls, database_value, drop_schemas, link_in
from tests.web.test_web_visitor import KEY, FakeRegistry

LINK_LIMIT = 3
RATE_LIMIT = 5
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
H1 = re.compile(r"<h1[^>]*>(.*?)</h1>", re.S)


def csrf_in(response: httpx.Response) -> str:
    m = CSRF.search(response.text)
    assert m, f"no CSRF token in {response.request.url}"
    return m.group(1)


def h1(response: httpx.Response) -> str:
    m = H1.search(response.text)
    assert m, "no <h1>"
    return " ".join(re.sub(r"<[^>]+>", "", m.group(1)).split())


# ================================================================ the client's address, in process
def test_the_rightmost_address_that_is_not_our_proxy_is_the_client() -> None:
    proxies = ("10.0.0.0/8", "2001:db8::/32")
    # Not from a trusted proxy: the header is the client's own words.
    assert forwarded_client("203.0.113.9", ["198.51.100.7"], proxies) == "203.0.113.9"
    assert forwarded_client("203.0.113.9", ["198.51.100.7"], ()) == "203.0.113.9"
    # From our proxy: the address it saw, whatever the client wrote further left.
    assert forwarded_client("10.0.0.2", ["6.6.6.6, 198.51.100.7"], proxies) == "198.51.100.7"
    assert forwarded_client("10.0.0.2", ["6.6.6.6", "198.51.100.7, 10.1.1.1"], proxies) == "198.51.100.7"
    assert forwarded_client("2001:db8::1", ["2001:db8:1::5, 2a01:e0a::1"], proxies) == "2a01:e0a::1"
    # Nothing usable in it: the proxy itself (or the last proxy named) is the client.
    assert forwarded_client("10.0.0.2", [], proxies) == "10.0.0.2"
    assert forwarded_client("10.0.0.2", ["nimportequoi, 10.3.3.3"], proxies) == "10.3.3.3"


def site(registry: FakeRegistry, tmp_path: Path, peer: str, **settings: Any) -> httpx.AsyncClient:
    from services.web.app import create_app
    from shared.settings import Settings

    app = create_app(Settings(secret_key=KEY, data_dir=tmp_path, **settings))
    app.state.web.rpc = registry
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(peer, 40000)),
                             base_url="http://forum.test")


async def ask_links(c: httpx.AsyncClient, forwarded_for: str | None, n: int = 1) -> list[int]:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    token = csrf_in(await c.get("/connexion"))
    return [(await c.post("/connexion", data={"csrf_token": token, "email": "c@example.fr"}, headers=headers))
            .status_code for _ in range(n)]


async def test_x_forwarded_for_is_believed_from_a_trusted_proxy_only(tmp_path: Path) -> None:
    async with site(FakeRegistry(), tmp_path, "10.1.2.3", rate_limit_per_minute=2,
                    trusted_proxies=["10.0.0.0/8"]) as proxy:
        assert await ask_links(proxy, "198.51.100.7", 3) == [200, 200, 429]
        assert await ask_links(proxy, "198.51.100.8", 2) == [200, 200]  # another client behind the proxy
        # What a client writes to the left of what our proxy appended changes nothing.
        assert await ask_links(proxy, "192.0.2.1, 198.51.100.7") == [429]
    # Straight from a client, the header is its own words: a new one on each request is still one client.
    async with site(FakeRegistry(), tmp_path, "203.0.113.9", rate_limit_per_minute=2,
                    trusted_proxies=["10.0.0.0/8"]) as c:
        assert [(await ask_links(c, f"198.51.100.{i}"))[0] for i in range(3)] == [200, 200, 429]


# ================================================================ a small forum with low limits
@pytest.fixture(scope="module")
def small_forum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("abuse")
    urls = database_urls(data, f"abuse_{uuid.uuid4().hex[:6]}")
    # Only the services these pages use: the web front's health page (which wants them all) is not waited for.
    stack = Stack(data, database_urls=urls, log_dir=data / "logs", services=("registry", "notifications"), web=False,
                  env={"FORUM_RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT), "FORUM_LINK_MAIL_LIMIT": str(LINK_LIMIT),
                       # a proxy that is not this test: the requests' peer (127.0.0.1) is not trusted
                       "FORUM_TRUSTED_PROXIES": '["10.0.0.0/8"]', "FORUM_OUTBOX_POLL_INTERVAL": "0.5"})
    try:
        stack.start()
        stack.start_service(WEB)
        deadline = time.monotonic() + 60
        while not port_open(stack.web_port):
            assert time.monotonic() < deadline, "the web front did not start"
            time.sleep(0.1)
        yield stack
    finally:
        stack.stop()
        drop_schemas(urls)


@pytest.fixture(scope="module")
async def small_rpc(small_forum: Stack) -> AsyncIterator[RpcClient]:
    async with NatsBroker(small_forum.nats_url) as broker:
        yield RpcClient(broker, timeout=10)


def registry_value(forum: Stack, sql: str, **params: str) -> Any:
    return database_value(forum.database_urls["registry"], sql, **params)


async def verified_member(rpc: RpcClient, forum: Stack) -> tuple[str, str]:
    email = f"abus-{uuid.uuid4().hex[:10]}@example.org"
    reg = await rpc(Register(full_name="Alex Garnier", email=email, organisation="", college="citizen",
                             charter_accepted=True))
    [mail] = await asyncio.to_thread(caught_mail, forum.mail_dir, email, "Confirmez")
    await rpc(VerifyEmail(token=link_in(mail, "/inscription/verifier").split("token=", 1)[1]))
    return reg.member_id, email


def redeem(b: httpx.Client, link: str) -> httpx.Response:
    b.get(link)  # opened first, as a person does (a link no longer good says so there, without a form)
    return b.post("/connexion/lien", data={"csrf_token": csrf_in(b.get("/connexion")),
                                           "token": link.split("token=", 1)[1]})


@pytest.mark.integration
def test_a_chunked_body_is_capped_on_the_bytes_received(small_forum: Stack) -> None:
    email = f"gros-{uuid.uuid4().hex[:10]}@example.org"
    with httpx.Client(base_url=small_forum.web_url, timeout=60) as b:
        form = (f"csrf_token={csrf_in(b.get('/inscription'))}&full_name=Gros+Envoi&email={email}"
                "&organisation=&college=citizen&charter_accepted=on&bourrage=").encode()

        def body() -> Iterator[bytes]:  # no Content-Length: sent chunked
            yield form
            for _ in range(16):
                yield b"a" * 65536

        r = b.post("/inscription", content=body(), headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.request.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.request.headers
        assert r.status_code == 413 and h1(r) == "Envoi trop volumineux", r.text[:500]
        # The same form, small, goes through: the limit, not the form, refused it.
        r = b.post("/inscription", content=iter([form.replace(b"&bourrage=", b"")]),
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200
    assert registry_value(small_forum, "SELECT count(*) FROM member WHERE email = :e", e=email) == 1


@pytest.mark.integration
def test_x_forwarded_for_from_an_untrusted_peer_changes_nothing(small_forum: Stack) -> None:
    """A client that writes a new X-Forwarded-For on each request still counts as one client."""
    with httpx.Client(base_url=small_forum.web_url, timeout=20) as b:
        statuses = [b.post("/abonnements/lien", data={"email": "x@example.org"},
                           headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code for i in range(RATE_LIMIT + 1)]
    assert statuses == [403] * RATE_LIMIT + [429]  # (no form token: refused, but counted first)


@pytest.mark.integration
async def test_flooding_an_address_stops_the_mails_not_its_owner(small_forum: Stack, small_rpc: RpcClient) -> None:
    """Requests that a per-client limit cannot stop (as many machines as one likes: here, the service's
    own request subject) mail at most LINK_LIMIT links an hour; the last one mailed still signs in."""
    member, email = await verified_member(small_rpc, small_forum)
    replies = [await small_rpc(RequestSignIn(email=email)) for _ in range(3 * LINK_LIMIT)]
    assert all(isinstance(r, Accepted) for r in replies)  # the same answer, whatever happened
    issued = registry_value(small_forum, "SELECT count(*) FROM email_token WHERE member_id = :m AND purpose = :p",
                            m=member, p="sign_in")
    assert issued == LINK_LIMIT
    mails = await asyncio.to_thread(caught_mail, small_forum.mail_dir, email, "lien de connexion", count=LINK_LIMIT)
    assert len(mails) == LINK_LIMIT
    links = {link_in(m, "/connexion/lien") for m in mails}
    with httpx.Client(base_url=small_forum.web_url, timeout=20) as b:
        outcomes = {link: redeem(b, link).status_code for link in links}
        assert sorted(outcomes.values()) == [303] + [410] * (LINK_LIMIT - 1)  # only the latest link works
        assert b.get("/espace").status_code == 200


@pytest.mark.integration
async def test_registering_with_a_known_address_answers_as_for_a_new_one(small_forum: Stack,
                                                                         small_rpc: RpcClient) -> None:
    _, known = await verified_member(small_rpc, small_forum)
    new = f"nouveau-{uuid.uuid4().hex[:10]}@example.org"
    pages = {}
    with httpx.Client(base_url=small_forum.web_url, timeout=20) as b:
        for email in (new, known):
            pages[email] = b.post("/inscription", data={
                "csrf_token": csrf_in(b.get("/inscription")), "full_name": "Quelqu'un d'autre", "email": email,
                "organisation": "", "college": "civil_society", "charter_accepted": "on"})
    assert pages[new].status_code == pages[known].status_code == 200
    assert pages[new].text.replace(new, "ADDRESS") == pages[known].text.replace(known, "ADDRESS")

    # The owner of the known address hears of it, with a sign-in link; the newcomer, as usual.
    [told] = await asyncio.to_thread(caught_mail, small_forum.mail_dir, known, "Vous avez déjà un compte")
    body = told.get_body(preferencelist=("plain",))
    assert body is not None and "Vous avez déjà un compte" in body.get_content()
    assert await asyncio.to_thread(caught_mail, small_forum.mail_dir, new, "Confirmez")
    with httpx.Client(base_url=small_forum.web_url, timeout=20) as b:
        r = redeem(b, link_in(told, "/connexion/lien"))
        assert r.status_code == 303 and r.headers["location"] == "/espace"
    # No second account: the known address still names one member, unchanged.
    assert registry_value(small_forum, "SELECT count(*) FROM member WHERE email = :e", e=known) == 1
    assert registry_value(small_forum, "SELECT full_name FROM member WHERE email = :e", e=known) == "Alex Garnier"
