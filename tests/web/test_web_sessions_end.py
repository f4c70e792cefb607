"""Sign-ins that end, against the running forum (every service a real process, real NATS, the real
database, e-mails read from the mail catcher): each sign-in is a session the registry keeps, so

- « Se déconnecter » ends it there: a copy of the cookie taken before signs nobody in;
- « Se déconnecter partout » ends the member's sessions in every other browser too;
- erasing the account ends (and forgets) all of them;
- a sign-in link works once, and mailing a newer one makes the older ones useless.
"""
from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from forum_ouvert.launcher import WEB, Stack
from services.web.security import COOKIE_NAME
from tests.support import caught_mail, confirm_address, database_value, link_in

pytestmark = pytest.mark.integration
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SIGN_IN_SUBJECT = "lien de connexion"


def csrf_in(response: httpx.Response) -> str:
    m = CSRF.search(response.text)
    assert m, f"no CSRF token in {response.request.url}"
    return m.group(1)


class Person:
    """Someone with an account, and the browsers (cookie jars) they sign in from."""

    def __init__(self, forum: Stack) -> None:
        self.forum = forum
        self.email = f"session-{uuid.uuid4().hex[:10]}@example.org"
        self.browsers: list[httpx.Client] = []
        with self.browser() as b:
            r = b.post("/inscription", data={
                "csrf_token": csrf_in(b.get("/inscription")), "full_name": "Dominique Martin", "email": self.email,
                "organisation": "", "college": "citizen", "charter_accepted": "on"})
            assert r.status_code == 200, r.text
            [mail] = caught_mail(forum.mail_dir, self.email, "Confirmez")
            assert confirm_address(b, link_in(mail, "/inscription/verifier")).status_code == 303
            # Confirming signed that browser in: out again, so each test counts only its own sessions.
            assert b.post("/deconnexion", data={"csrf_token": csrf_in(b.get("/espace"))}).status_code == 303

    def browser(self) -> httpx.Client:
        b = httpx.Client(base_url=self.forum.web_url, timeout=20)
        self.browsers.append(b)
        return b

    def mailed_links(self, count: int) -> list[str]:
        """The sign-in links mailed so far, newest first, once there are `count`."""
        mails = caught_mail(self.forum.mail_dir, self.email, SIGN_IN_SUBJECT, count=count)
        assert len(mails) >= count, f"expected {count} sign-in e-mails to {self.email}"
        return [link_in(m, "/connexion/lien") for m in mails]

    def ask_link(self, b: httpx.Client) -> str:
        sent = len(caught_mail(self.forum.mail_dir, self.email, SIGN_IN_SUBJECT, timeout=0))
        r = b.post("/connexion", data={"csrf_token": csrf_in(b.get("/connexion")), "email": self.email})
        assert r.status_code == 200, r.text
        return self.mailed_links(sent + 1)[0]

    @staticmethod
    def redeem(b: httpx.Client, link: str) -> httpx.Response:
        b.get(link)  # opened first, as a person does (a link no longer good says so there, without a form)
        token = link.split("token=", 1)[1]
        return b.post("/connexion/lien", data={"csrf_token": csrf_in(b.get("/connexion")), "token": token})

    def signed_in_browser(self) -> httpx.Client:
        b = self.browser()
        r = self.redeem(b, self.ask_link(b))
        assert r.status_code == 303 and r.headers["location"] == "/espace", r.text
        assert signed_in(b)
        return b

    def close(self) -> None:
        for b in self.browsers:
            b.close()


@pytest.fixture
def person(forum: Stack) -> Iterator[Person]:
    p = Person(forum)
    yield p
    p.close()


def signed_in(b: httpx.Client) -> bool:
    """Whether « Mon espace » opens (a visitor is sent to sign in)."""
    r = b.get("/espace")
    if r.status_code == 303:
        assert r.headers["location"] == "/connexion"
        return False
    assert r.status_code == 200, r.text
    return True


def copy_of(b: httpx.Client, forum: Stack) -> httpx.Client:
    """Another browser holding a copy of `b`'s cookie, as a thief or a forgotten tab would."""
    thief = httpx.Client(base_url=forum.web_url, timeout=20)
    thief.cookies.set(COOKIE_NAME, b.cookies[COOKIE_NAME])
    return thief


def registry_value(forum: Stack, sql: str, **params: str) -> Any:
    return database_value(forum.database_urls["registry"], sql, **params)


def member_id(forum: Stack, email: str) -> str:
    return str(registry_value(forum, "SELECT id FROM member WHERE email = :e", e=email))


def live_sessions(forum: Stack, email: str) -> int:
    """The member's sessions still live in the registry."""
    sql = "SELECT count(*) FROM web_session WHERE member_id = :m AND ended_at IS NULL"
    return int(registry_value(forum, sql, m=member_id(forum, email)))


def sessions_of(forum: Stack, member: str) -> int:
    """The member's sessions in the registry, ended or not."""
    return int(registry_value(forum, "SELECT count(*) FROM web_session WHERE member_id = :m", m=member))


# ================================================================ signing out
def test_signing_out_ends_the_session_for_every_copy_of_the_cookie(forum: Stack, person: Person) -> None:
    b = person.signed_in_browser()
    thief = copy_of(b, forum)
    assert signed_in(thief)  # the copy works while the session lives

    r = b.post("/deconnexion", data={"csrf_token": csrf_in(b.get("/espace"))})
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "Vous êtes déconnecté·e." in b.get("/").text
    assert not signed_in(b)
    assert not signed_in(thief)  # the old cookie no longer signs anyone in
    assert live_sessions(forum, person.email) == 0
    thief.close()


def test_another_web_front_forgets_the_session_at_once(forum: Stack, person: Person) -> None:
    """Web fronts keep the registry's answer that a session is live for a few seconds
    (services/web/session_checks.py); the registry's notice makes every front forget it when the session
    ends, so the copy of the cookie used on another front stops working a moment later, not 10 s later."""
    web2 = forum.add_instance(WEB)
    try:
        forum.wait_instance(web2)
        b = person.signed_in_browser()
        elsewhere = httpx.Client(base_url=f"http://127.0.0.1:{forum.instance_ports[web2]}", timeout=20)
        elsewhere.cookies.set(COOKIE_NAME, b.cookies[COOKIE_NAME])
        assert signed_in(elsewhere) and signed_in(elsewhere)  # the second page within the time limit

        r = b.post("/deconnexion", data={"csrf_token": csrf_in(b.get("/espace"))})
        assert r.status_code == 303
        # The notice reaches the other front on its own connection, a moment after this one's answer:
        # within two seconds, not after FORUM_SESSION_CHECK_SECONDS (10).
        deadline = time.monotonic() + 2
        while signed_in(elsewhere):
            assert time.monotonic() < deadline, "the other web front still signs the ended session in"
            time.sleep(0.05)
        elsewhere.close()
    finally:
        forum.remove_instance(web2)


def test_signing_out_everywhere_ends_the_other_browsers_sessions(forum: Stack, person: Person) -> None:
    laptop, phone = person.signed_in_browser(), person.signed_in_browser()
    assert signed_in(laptop) and signed_in(phone) and live_sessions(forum, person.email) == 2

    page = phone.get("/espace")
    assert "Se déconnecter partout" in page.text
    r = phone.post("/espace/deconnexion-partout", data={"csrf_token": csrf_in(page)})
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "Vous êtes déconnecté·e de tous les navigateurs" in phone.get("/").text
    assert not signed_in(phone) and not signed_in(laptop)
    assert live_sessions(forum, person.email) == 0

    # Without a valid form token, nothing is ended.
    again = person.signed_in_browser()
    assert again.post("/espace/deconnexion-partout", data={"csrf_token": "faux"}).status_code == 403
    assert signed_in(again)


def test_erasing_the_account_ends_and_forgets_every_session(forum: Stack, person: Person) -> None:
    laptop, phone = person.signed_in_browser(), person.signed_in_browser()
    mid = member_id(forum, person.email)
    assert sessions_of(forum, mid) == 2

    r = laptop.post("/espace/suppression", data={"csrf_token": csrf_in(laptop.get("/espace/suppression"))})
    assert r.status_code == 200, r.text
    assert not signed_in(phone) and not signed_in(laptop)
    assert sessions_of(forum, mid) == 0  # not even the times of sign-in are kept


# ================================================================ sign-in links
def test_a_newer_link_makes_older_ones_useless_and_a_link_works_once(forum: Stack, person: Person) -> None:
    b = person.browser()
    first = person.ask_link(b)
    second = person.ask_link(b)
    assert first != second

    r = person.redeem(b, first)
    assert r.status_code == 410 and "Un lien plus récent vous a été envoyé" in r.text
    assert not signed_in(b)

    r = person.redeem(b, second)
    assert r.status_code == 303 and r.headers["location"] == "/espace"
    other = person.browser()
    r = person.redeem(other, second)
    assert r.status_code == 410 and "Ce lien a déjà été utilisé" in r.text
    assert not signed_in(other) and signed_in(b)
    assert live_sessions(forum, person.email) == 1
