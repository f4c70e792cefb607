"""Subscriptions, announcements and the delivery log through the web front, against the running forum
(every service a real process, real NATS, the real database, e-mails caught by the mail catcher):

the public subscribes on /abonnements (same answer for a new and a known address), confirms from the
caught e-mail (opening the link confirms nothing, its button does), changes topics on the manage page,
opens the unsubscribe link (which unsubscribes no one) and unsubscribes by the RFC 8058 one-click POST a
mail provider makes (no cookie, no form token); forged, expired and reused links, a malformed address and
a topic that does not exist each get a clear French page and nothing is sent. The secretariat writes an
announcement, previews it, mails itself a test, sends it and watches the progress and the log; members
choose the notices they receive in « Mon espace »; the one-click path is the only one without CSRF.
"""
from __future__ import annotations

import asyncio
import re
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import create_engine
from sqlmodel import Session, select

from forum_ouvert.launcher import Stack
from services.notifications import links
from services.notifications.models import Subscriber, SubscriberTopic
from shared.contracts.notifications import GetMemberPreferences, MemberNoticeKind
from shared.rpc import RpcClient
from shared.settings import Settings
from tests.support import caught
from tests.web.test_web_bad_input import EXPECTED_CSP, csrf_in, field_error, h1, text
from tests.web.test_web_sessions import (  # noqa: F401 - fixtures
    SECRETARIAT_EMAIL, Crowd, WebMember, admin, crowd,
)

pytestmark = pytest.mark.integration
CONFIRM = "/abonnements/confirmer?token="
SENT_TITLE = "Vérifiez votre boîte aux lettres"


# ================================================================ what the notifications service stored
class NotificationsDb:
    """Reads the notifications service's subscriber tables, to check what a page did (or did not) do."""

    def __init__(self, forum: Stack) -> None:
        self.engine = create_engine(forum.database_urls["notifications"].replace("sqlite+aiosqlite://", "sqlite://"))

    def subscriber(self, email: str) -> Subscriber | None:
        with Session(self.engine) as tx:
            return tx.exec(select(Subscriber).where(Subscriber.email == email)).first()

    def status(self, email: str) -> str | None:
        sub = self.subscriber(email)
        return sub.status if sub else None

    def topics(self, email: str) -> set[str]:
        sub = self.subscriber(email)
        assert sub is not None, f"{email} is not a subscriber"
        with Session(self.engine) as tx:
            return set(tx.exec(select(SubscriberTopic.topic).where(SubscriberTopic.subscriber_id == sub.id)).all())


@pytest.fixture(scope="module")
def notifications_db(forum: Stack) -> NotificationsDb:
    return NotificationsDb(forum)


# ================================================================ caught e-mails
def plain(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def mails_to(mail_dir: Path, to: str, containing: str = "") -> list[EmailMessage]:
    """Caught messages to `to` whose text holds `containing`, newest first."""
    return [m for m in caught(mail_dir, to) if containing in plain(m)]


async def wait_mails(mail_dir: Path, to: str, containing: str = "", count: int = 1,
                     timeout: float = 30) -> list[EmailMessage]:
    deadline = time.monotonic() + timeout
    while len(found := await asyncio.to_thread(mails_to, mail_dir, to, containing)) < count:
        assert time.monotonic() < deadline, f"{len(found)}/{count} e-mails to {to} holding {containing!r}"
        await asyncio.sleep(0.2)
    return found


def link(msg: EmailMessage, fragment: str) -> str:
    """The path and query of the first link of the text part holding `fragment`."""
    m = re.search(r"https?://[^/\s]+(" + re.escape(fragment) + r"[^\s>\"]*)", plain(msg))
    assert m, f"no link with {fragment!r} in:\n{plain(msg)}"
    return m.group(1)


def token_of(path: str) -> str:
    return path.split("token=", 1)[1]


# ================================================================ the visitor's side
def new_address(tag: str) -> str:
    return f"abonne-{tag}-{uuid.uuid4().hex[:8]}@example.org"


async def subscribe(c: httpx.AsyncClient, email: str, topics: list[str]) -> httpx.Response:
    page = await c.get("/abonnements")
    assert page.status_code == 200
    return await c.post("/abonnements", data={"csrf_token": csrf_in(page), "email": email, "topics": topics})


def main_text(r: httpx.Response) -> str:
    m = re.search(r'<main[^>]*>(.*)</main>', r.text, re.S)
    assert m
    return text(httpx.Response(200, text=m.group(1)))


async def confirmed_subscriber(c: httpx.AsyncClient, mail_dir: Path, email: str, topics: list[str]) -> str:
    """Subscribes and confirms like a person would; the confirmation page's manage link."""
    assert (await subscribe(c, email, topics)).status_code == 200
    [msg] = await wait_mails(mail_dir, email, CONFIRM)
    page = await c.get(link(msg, CONFIRM))
    r = await c.post("/abonnements/confirmer", data={"csrf_token": csrf_in(page), "token": token_of(link(msg, CONFIRM))})
    assert r.status_code == 200 and h1(r) == "Abonnement confirmé", text(r)
    m = re.search(r'href="(/abonnements/gerer\?token=[^"]+)"', r.text)
    assert m
    return m.group(1).replace("&amp;", "&")


def unsubscribe_token(forum: Stack, db: NotificationsDb, email: str) -> str:
    """The token of the subscriber's unsubscribe link, signed with the service's key as in its e-mails."""
    sub = db.subscriber(email)
    assert sub is not None
    return links.token(Settings(data_dir=forum.data_dir), links.Purpose.UNSUBSCRIBE, sub.id)


# ================================================================ subscribe, confirm, manage, unsubscribe
async def test_subscribe_confirm_manage_and_one_click_unsubscribe(crowd: Crowd, forum: Stack, mail_dir: Path,
                                                                   notifications_db: NotificationsDb) -> None:
    c = crowd.client()
    page = await c.get("/abonnements")
    assert h1(page) == "Suivre le forum ouvert"
    for topic in ("minutes", "theme:health", "announcements"):
        assert f'name="topics" value="{topic}"' in page.text
    assert "Groupes de travail" in text(page) and 'href="/donnees-personnelles"' in page.text
    assert "/flux/comptes-rendus.atom" in page.text  # the feeds beside the form

    email = new_address("parcours")
    first = await subscribe(c, email, ["minutes", "theme:health"])
    assert first.status_code == 200 and h1(first) == SENT_TITLE
    [msg] = await wait_mails(mail_dir, email, CONFIRM)
    assert notifications_db.status(email) == "pending"
    # A known address gets the very same page (no way to learn who subscribed), from another browser too.
    again = await subscribe(crowd.client(), email, ["minutes", "decisions"])
    assert again.status_code == 200 and main_text(again) == main_text(first)

    confirm_path = link((await wait_mails(mail_dir, email, CONFIRM, count=2))[0], CONFIRM)  # the newest works
    page = await c.get(confirm_path)
    assert page.status_code == 200 and h1(page) == "Confirmer mon abonnement"
    assert "Confirmer mon abonnement" in text(page) and 'method="post"' in page.text
    await asyncio.sleep(0.5)
    assert notifications_db.status(email) == "pending", "opening the link must not confirm"
    r = await c.post("/abonnements/confirmer", data={"csrf_token": csrf_in(page), "token": token_of(confirm_path)})
    assert r.status_code == 200 and h1(r) == "Abonnement confirmé", text(r)
    assert notifications_db.status(email) == "confirmed"
    assert re.findall(r"<li>(.*?)</li>", r.text.split('id="sujets-suivis"', 1)[1].split("</ul>", 1)[0]) == [
        "Décisions", "Comptes rendus"]
    manage_path = re.search(r'href="(/abonnements/gerer\?token=[^"]+)"', r.text).group(1)  # type: ignore[union-attr]

    # A confirmed address still gets the same answer.
    third = await subscribe(crowd.client(), email, ["minutes"])
    assert third.status_code == 200 and main_text(third) == main_text(first)

    # The manage page: current topics checked; saving changes them.
    page = await c.get(manage_path.replace("&amp;", "&"))
    assert page.status_code == 200 and h1(page) == "Gérer mon abonnement" and email in text(page)
    checked = set(re.findall(r'name="topics" value="([^"]+)" checked', page.text))
    assert checked == notifications_db.topics(email)
    token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = await c.post("/abonnements/gerer", data={"csrf_token": csrf_in(page), "token": token,
                                                 "topics": ["announcements", "theme:justice"]})
    assert r.status_code == 200 and "Vos choix sont enregistrés." in text(r)
    assert notifications_db.topics(email) == {"announcements", "theme:justice"}
    r = await c.post("/abonnements/gerer", data={"csrf_token": csrf_in(page), "token": token,
                                                 "topics": ["announcements", "theme:atlantis"]})
    assert r.status_code == 400 and "n'existe pas" in field_error(r, "topics")
    assert notifications_db.topics(email) == {"announcements", "theme:justice"}

    # The unsubscribe link of a notice (signed as the service signs its List-Unsubscribe header): its page
    # shows who and what, and unsubscribes no one.
    unsubscribe_path = "/abonnements/desabonner?token=" + unsubscribe_token(forum, notifications_db, email)
    for _ in range(2):
        page = await crowd.client().get(unsubscribe_path)
        assert page.status_code == 200 and h1(page) == "Me désabonner" and email in text(page)
    assert notifications_db.status(email) == "confirmed"

    # The RFC 8058 one-click POST, as a mail provider makes it: no cookie, no form token.
    async with httpx.AsyncClient(base_url=str(c.base_url)) as provider:
        r = await provider.post(unsubscribe_path, content=b"List-Unsubscribe=One-Click",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and h1(r) == "Vous êtes désabonné·e", text(r)
    assert r.headers["content-security-policy"] == EXPECTED_CSP
    assert notifications_db.status(email) == "unsubscribed"
    page = await crowd.client().get(unsubscribe_path)
    assert page.status_code == 200 and "déjà désabonnée" in text(page)
    # The confirmation link, used again after the unsubscription, no longer subscribes.
    r = await c.post("/abonnements/confirmer", data={"csrf_token": csrf_in(await c.get("/abonnements")),
                                                     "token": token_of(confirm_path)})
    assert r.status_code == 409 and h1(r) == "Lien de confirmation remplacé ou périmé", text(r)
    assert notifications_db.status(email) == "unsubscribed"
    await c.aclose()


async def test_the_page_button_unsubscribes_too(crowd: Crowd, mail_dir: Path,
                                                notifications_db: NotificationsDb) -> None:
    c = crowd.client()
    email = new_address("bouton")
    manage_path = await confirmed_subscriber(c, mail_dir, email, ["sessions"])
    manage = await c.get(manage_path)
    assert "Me désabonner de tout" in text(manage)
    action = re.search(r'action="(/abonnements/desabonner\?token=[^"]+)"', manage.text).group(1)  # type: ignore[union-attr]
    r = await c.post(action.replace("&amp;", "&"), data={"csrf_token": csrf_in(manage)})
    assert r.status_code == 200 and h1(r) == "Vous êtes désabonné·e", text(r)
    assert notifications_db.status(email) == "unsubscribed"
    await c.aclose()


async def test_bad_links_are_clear_pages(crowd: Crowd, forum: Stack, mail_dir: Path,
                                         notifications_db: NotificationsDb, monkeypatch: pytest.MonkeyPatch) -> None:
    c = crowd.client()
    email = new_address("liens")
    assert (await subscribe(c, email, ["decisions"])).status_code == 200
    [msg] = await wait_mails(mail_dir, email, CONFIRM)
    good = token_of(link(msg, CONFIRM))

    # Forged: a signature that does not match, and something that is not a token at all.
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    # (The confirmation link's page is only a button: the token is checked when it is pressed.)
    for path, bads in (("/abonnements/confirmer", ("", "court")),
                       ("/abonnements/gerer", (forged, "n'importe quoi", "")),
                       ("/abonnements/desabonner", (forged, "n'importe quoi", ""))):
        for bad in bads:
            r = await c.get(path, params={"token": bad})
            assert r.status_code in (400, 404), (path, bad, r.status_code)
            assert "non valable" in h1(r) and "Vérifiez qu'il a été copié en entier" in text(r)
            assert "Traceback" not in r.text
    r = await c.post("/abonnements/confirmer", data={"csrf_token": csrf_in(await c.get("/abonnements")),
                                                     "token": forged})
    assert r.status_code == 400 and h1(r) == "Lien de confirmation non valable"
    assert 'href="/abonnements"' in r.text  # a way to start again
    r = await c.post("/abonnements/desabonner", params={"token": forged}, content=b"List-Unsubscribe=One-Click",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and h1(r) == "Lien de désabonnement non valable"
    assert notifications_db.status(email) == "pending"

    # Expired: a link signed with the service's own key, long ago.
    sub = notifications_db.subscriber(email)
    assert sub is not None
    settings = Settings(data_dir=forum.data_dir)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - 400 * 24 * 3600)
    old = {p: links.token(settings, p, sub.id, sub.link_nonce) for p in links.Purpose}
    monkeypatch.undo()
    r = await c.post("/abonnements/confirmer", data={"csrf_token": csrf_in(await c.get("/abonnements")),
                                                     "token": old[links.Purpose.CONFIRM]})
    assert r.status_code == 410 and h1(r) == "Lien de confirmation expiré" and "a expiré" in text(r)
    r = await c.get("/abonnements/gerer", params={"token": old[links.Purpose.MANAGE]})
    assert r.status_code == 410 and h1(r) == "Lien de gestion expiré"
    assert 'href="/abonnements/lien"' in r.text
    r = await c.post("/abonnements/desabonner", params={"token": old[links.Purpose.UNSUBSCRIBE]},
                     content=b"List-Unsubscribe=One-Click",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 410 and h1(r) == "Lien de désabonnement expiré"
    assert notifications_db.status(email) == "pending"

    # Reused: a confirmation link replaced by a newer request no longer works.
    assert (await subscribe(c, email, ["decisions"])).status_code == 200
    newest = await wait_mails(mail_dir, email, CONFIRM, count=2)
    assert token_of(link(newest[0], CONFIRM)) != good
    r = await c.post("/abonnements/confirmer", data={"csrf_token": csrf_in(await c.get("/abonnements")),
                                                     "token": good})
    assert r.status_code == 409 and h1(r) == "Lien de confirmation remplacé ou périmé", text(r)
    assert "remplacé par un plus récent" in text(r) and 'href="/abonnements"' in r.text
    assert notifications_db.status(email) == "pending"
    await c.aclose()


async def test_bad_address_and_unknown_topic_send_nothing(crowd: Crowd, mail_dir: Path,
                                                          notifications_db: NotificationsDb) -> None:
    c = crowd.client()
    for bad in ("pas-une-adresse", "deux@@example.org", "espace dans@example.org", "a@b", "x" * 250 + "@example.org"):
        r = await subscribe(c, bad, ["minutes"])
        assert r.status_code == 422, (bad, r.status_code)
        assert field_error(r, "email") and f'value="{bad}"' in r.text  # what was typed is kept
        assert 'value="minutes" checked' in r.text
    email = new_address("sujet")
    r = await subscribe(c, email, ["minutes", "theme:atlantis"])
    assert r.status_code == 400 and "n'existe pas" in field_error(r, "topics") and email in r.text
    r = await subscribe(c, email, [])
    assert r.status_code == 422 and field_error(r, "topics") == "Cochez au moins un sujet à suivre."
    page = await c.get("/abonnements/lien")
    r = await c.post("/abonnements/lien", data={"csrf_token": csrf_in(page), "email": "pas-une-adresse"})
    assert r.status_code == 422 and field_error(r, "email")
    await asyncio.sleep(1)
    assert notifications_db.subscriber(email) is None
    assert not mails_to(mail_dir, email)
    # The form's CSRF token is required (only the one-click unsubscribe goes without).
    r = await c.post("/abonnements", data={"email": email, "topics": ["minutes"]})
    assert r.status_code == 403
    await c.aclose()


async def test_manage_link_on_request(crowd: Crowd, mail_dir: Path) -> None:
    c = crowd.client()
    email = new_address("lien")
    await confirmed_subscriber(c, mail_dir, email, ["minutes"])
    stranger = new_address("inconnu")
    answers = []
    for who in (email, stranger):
        page = await c.get("/abonnements/lien")
        r = await c.post("/abonnements/lien", data={"csrf_token": csrf_in(page), "email": who})
        assert r.status_code == 200 and h1(r) == SENT_TITLE
        answers.append(main_text(r))
    assert answers[0] == answers[1]
    [msg] = await wait_mails(mail_dir, email, "/abonnements/gerer?token=")
    page = await c.get(link(msg, "/abonnements/gerer?token="))
    assert page.status_code == 200 and h1(page) == "Gérer mon abonnement"
    await asyncio.sleep(1)
    assert not mails_to(mail_dir, stranger)
    await c.aclose()


async def test_rate_limited_subscriptions(tmp_path: Path) -> None:
    from services.web.app import create_app

    app = create_app(Settings(secret_key="k" * 40, data_dir=tmp_path, rate_limit_per_minute=2))
    # ASGITransport does not run the lifespan: no NATS needed, and none is reached before the limiter.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web") as c:
        for path in ("/abonnements", "/abonnements/lien"):
            for _ in range(2):
                assert (await c.post(path, data={"email": "a@example.org"})).status_code == 403  # counted
            r = await c.post(path, data={"email": "a@example.org"})
            assert r.status_code == 429 and h1(r) == "Trop de tentatives"
            assert "Patientez une minute" in text(r) and "secondes" in text(r)
            assert int(r.headers["retry-after"]) > 0
            assert f'href="{path}"' in r.text  # back to the form


# ================================================================ the secretariat: announcements and the log
async def test_announcement_written_previewed_tested_sent_and_logged(admin: WebMember, crowd: Crowd,
                                                                      mail_dir: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    readers = [new_address(f"annonce-{tag}-{i}") for i in range(3)]
    for email in readers:
        await confirmed_subscriber(crowd.client(), mail_dir, email, ["announcements"])

    r = await admin.get("/secretariat/annonces")
    assert r.status_code == 200 and h1(r) == "Secrétariat : annonces"
    assert 'href="/secretariat/annonces"' in r.text and 'href="/secretariat/envois"' in r.text  # in the menu
    r = await admin.get("/secretariat/annonces/nouvelle")
    assert r.status_code == 200 and h1(r) == "Nouvelle annonce"

    # Bad input: kept, next to its field; nothing saved.
    r = await admin.post("/secretariat/annonces/nouvelle", {"title": "ab", "body": "", "topic": "nulle-part"})
    assert r.status_code == 422
    assert field_error(r, "title") and field_error(r, "body") and field_error(r, "topic")
    assert 'value="ab"' in r.text

    subject = f"Rencontre des associations {tag}"
    body = f"## Programme {tag}\n\nRendez-vous **au CESE** le 3 mars.\n\n- accueil\n- ateliers\n\n<script>alert(1)</script>"
    r = await admin.post("/secretariat/annonces/nouvelle", {"title": subject, "body": body,
                                                            "topic": "announcements"})
    assert r.status_code == 303, text(r)
    path = r.headers["location"].split("#", 1)[0]
    aid = path.rsplit("/", 1)[1]
    page = await admin.get(path)
    assert page.status_code == 200 and subject in h1(page)
    preview = re.search(r'id="apercu-texte"[^>]*>(.*?)</div>', page.text, re.S).group(1)  # type: ignore[union-attr]
    assert "<strong>au CESE</strong>" in preview and "<li>" in preview and "<script>" not in preview
    assert f"Programme {tag}" in preview

    # Edit the draft.
    r = await admin.post(path, {"title": subject, "body": body.replace("3 mars", "4 mars"), "topic": "announcements"})
    assert r.status_code == 303
    assert "4 mars" in (await admin.get(path)).text

    # A test to oneself, caught.
    r = await admin.post(f"{path}/essai")
    assert r.status_code == 303
    await wait_mails(mail_dir, SECRETARIAT_EMAIL, f"Programme {tag}")
    assert not any(mails_to(mail_dir, e, f"Programme {tag}") for e in readers)

    # Send: a confirm step naming the topic, then the send.
    page = await admin.get(f"{path}/envoyer")
    assert page.status_code == 200 and "Annonces du secrétariat" in text(page) and subject in text(page)
    r = await admin.post(f"{path}/envoyer")
    assert r.status_code == 303, text(r)
    for email in readers:
        [msg] = await wait_mails(mail_dir, email, f"Programme {tag}", timeout=60)
        assert msg["List-Unsubscribe"] and "One-Click" in str(msg["List-Unsubscribe-Post"])

    # Progress: the page's figures, and the JSON the script polls.
    deadline = time.monotonic() + 60
    while True:
        figures = (await admin.http.get(f"{path}/progression")).json()
        if figures["finished"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    assert figures["state"] == "sent" and figures["sent"] >= len(readers) and figures["total"] >= len(readers)
    page = await admin.get(path)
    assert "envoyée" in text(page) and 'id="redaction"' not in page.text  # no longer editable
    assert re.search(r'data-figure="sent">\d+<', page.text)
    r = await admin.post(path, {"title": "Autre", "body": "Autre", "topic": "announcements"})
    assert r.status_code == 409 and "n'est plus un brouillon" in text(r)
    r = await admin.post(f"{path}/pause")  # a finished send cannot be paused: said plainly
    assert r.status_code == 409 and h1(r) == "Action impossible" and f'href="{path}"' in r.text

    # The list, and the log filtered by the announcement, by address and by state.
    listing = await admin.get("/secretariat/annonces")
    assert subject in text(listing) and f"/secretariat/envois?annonce={aid}" in listing.text
    log = await admin.get("/secretariat/envois", params={"annonce": aid})
    assert log.status_code == 200 and h1(log) == "Journal des envois"
    for email in readers:
        assert email in log.text
    assert "envoyé" in text(log) and subject in text(log)
    log = await admin.get("/secretariat/envois", params={"adresse": readers[0], "etat": "sent"})
    assert readers[0] in log.text and readers[1] not in log.text
    log = await admin.get("/secretariat/envois", params={"etat": "perdu", "sujet": "nulle-part", "annonce": "a b"})
    assert log.status_code == 422
    assert field_error(log, "etat") and field_error(log, "sujet") and field_error(log, "annonce")


async def test_secretariat_pages_refused_to_members_and_visitors(crowd: Crowd) -> None:
    [member] = await crowd.members(1)
    for path in ("/secretariat/annonces", "/secretariat/annonces/nouvelle", "/secretariat/envois",
                 f"/secretariat/annonces/{uuid.uuid4()}"):
        r = await member.get(path)
        assert r.status_code == 403 and h1(r) == "Accès refusé", path
    r = await member.post("/secretariat/annonces/nouvelle", {"title": "Pirate", "body": "x", "topic": "minutes"})
    assert r.status_code == 403
    r = await member.http.get(f"/secretariat/annonces/{uuid.uuid4()}/progression")
    assert r.status_code == 403 and "error" in r.json()
    r = await crowd.client().get("/secretariat/annonces", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/connexion"


async def test_unknown_announcement(admin: WebMember) -> None:
    for aid in (str(uuid.uuid4()), "pas un identifiant"):
        r = await admin.get(f"/secretariat/annonces/{aid}")
        assert r.status_code == 404 and h1(r) == "Annonce introuvable"
        r = await admin.post(f"/secretariat/annonces/{aid}/envoyer")
        assert r.status_code == 404 and h1(r) == "Annonce introuvable"
        r = await admin.http.get(f"/secretariat/annonces/{aid}/progression")
        assert r.status_code == 404 and "error" in r.json()


# ================================================================ members' own notices
async def test_member_notice_preferences(crowd: Crowd, rpc: RpcClient) -> None:
    [member] = await crowd.members(1)
    page = await member.get("/espace")
    assert "Courriels que je reçois" in text(page) and "toujours envoyés" in text(page)
    deadline = time.monotonic() + 30
    while 'name="notices"' not in page.text:  # until the notifications service knows the member
        assert time.monotonic() < deadline, "preferences never shown"
        await asyncio.sleep(0.3)
        page = await member.get("/espace")
    assert set(re.findall(r'name="notices" value="([^"]+)" checked', page.text)) == {k.value for k in MemberNoticeKind}

    kept = ["rsvp", "votes"]
    r = await member.http.post("/espace/courriels", data={"csrf_token": member.csrf, "notices": kept})
    assert r.status_code == 303 and r.headers["location"] == "/espace#courriels", text(r)
    page = await member.get("/espace")
    assert "Vos choix de courriels sont enregistrés." in text(page)
    assert set(re.findall(r'name="notices" value="([^"]+)" checked', page.text)) == set(kept)
    prefs = await rpc(GetMemberPreferences(actor_id=member.member_id))
    assert {k.value for k, on in prefs.enabled.items() if on} == set(kept)

    r = await member.http.post("/espace/courriels", data={"csrf_token": member.csrf, "notices": ["sign_in"]})
    assert r.status_code == 400 and "n'existe pas" in field_error(r, "notices")
    prefs = await rpc(GetMemberPreferences(actor_id=member.member_id))
    assert {k.value for k, on in prefs.enabled.items() if on} == set(kept)
    r = await member.http.post("/espace/courriels", data={"notices": ["rsvp"]})
    assert r.status_code == 403
