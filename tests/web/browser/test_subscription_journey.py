"""Following the forum without an account, in headless Chromium, against the running forum:

a reader subscribes to « Comptes rendus » on /abonnements, confirms from the caught e-mail (the link's page
only shows a button) and sees the confirmation page; the secretariat publishes the minutes of a session
held this morning and the notice arrives, with its `List-Unsubscribe` and `List-Unsubscribe-Post` headers;
the reader's mail provider makes the RFC 8058 one-click POST to the header's address (no cookie, no form
token) and nothing more arrives after another publication (which another subscriber does receive); a feed
reader's view of /flux/comptes-rendus.atom (parsed by feedparser) lists the same publication.

axe-core checks the subscription pages; no Content-Security-Policy error in the console.
"""
from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta
from email.message import EmailMessage

import feedparser
import httpx
import pytest
from playwright.sync_api import Browser, expect

from forum_ouvert.launcher import Stack
from tests.web.browser.test_minutes_journey import path_of, schedule
from tests.web.browser.test_registration_journey import Visitor, screenshot
from tests.web.browser.test_waitlist_journey import sign_in
from tests.web.test_web_bad_input import csrf_in
from tests.web.test_web_minutes import MinutesDb
from tests.web.test_web_subscriptions import mails_to

pytestmark = pytest.mark.browser
CONFIRM = "/abonnements/confirmer?token="


def plain(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def wait_mail(forum: Stack, to: str, containing: str, timeout: float = 60) -> EmailMessage:
    """The newest caught e-mail to `to` whose text holds `containing`."""
    deadline = time.monotonic() + timeout
    while not (found := mails_to(forum.mail_dir, to, containing)):
        assert time.monotonic() < deadline, f"no e-mail to {to} holding {containing!r}"
        time.sleep(0.3)
    return found[0]


def mails(forum: Stack, to: str, containing: str) -> list[EmailMessage]:
    return mails_to(forum.mail_dir, to, containing)


def link(msg: EmailMessage, fragment: str) -> str:
    m = re.search(r"(https?://\S*" + re.escape(fragment) + r"[^\s>\"]*)", plain(msg))
    assert m, f"no link with {fragment!r} in:\n{plain(msg)}"
    return m.group(1)


def subscribed(forum: Stack, email: str, topics: list[str]) -> None:
    """Another reader, subscribed and confirmed through the web front without a browser."""
    with httpx.Client(base_url=forum.web_url, timeout=30) as c:
        page = c.get("/abonnements")
        assert c.post("/abonnements", data={"csrf_token": csrf_in(page), "email": email,
                                            "topics": topics}).status_code == 200
        token = link(wait_mail(forum, email, CONFIRM), CONFIRM).split("token=", 1)[1]
        page = c.get("/abonnements/confirmer", params={"token": token})
        r = c.post("/abonnements/confirmer", data={"csrf_token": csrf_in(page), "token": token})
        assert r.status_code == 200, r.text


def publish_minutes(clerk: Visitor, forum: Stack, title: str) -> str:
    """A plenary held this morning, its minutes drafted from its page and published without adoption."""
    s = clerk.page
    session_path = schedule(clerk, title, -timedelta(hours=4), 2)
    db, deadline = MinutesDb(forum), time.monotonic() + 60
    while not db.knows(session_id=session_path.rsplit("/", 1)[1]):
        assert time.monotonic() < deadline, "the minutes service does not know the session yet"
        time.sleep(0.2)
    clerk.goto(session_path)
    s.get_by_role("button", name="Rédiger le compte rendu").click()
    expect(s.get_by_role("heading", level=1)).to_have_text(f"Compte rendu : {title}")
    s.locator("label[for='adoption-none']").click()
    s.get_by_role("button", name="Publier le compte rendu").click()
    expect(s.get_by_text("Le compte rendu est publié (version 1)")).to_be_visible()
    return path_of(s)


def test_subscription_journey(forum: Stack, browser: Browser, clerk_email: str) -> None:
    tag = uuid.uuid4().hex[:8]
    email, other = f"lectrice-{tag}@example.org", f"autre-lecteur-{tag}@example.org"
    reader, clerk = Visitor(browser, forum), Visitor(browser, forum)
    p = reader.page
    try:
        # -- subscribe to « Comptes rendus » on /abonnements
        reader.goto("/abonnements")
        expect(p.get_by_role("heading", level=1)).to_have_text("Suivre le forum ouvert")
        reader.axe("la page des abonnements")
        p.get_by_role("button", name="M'abonner").click()  # nothing filled in: errors next to the fields
        expect(p.get_by_text("Le formulaire contient 2 erreurs")).to_be_visible()
        reader.axe("la page des abonnements en erreur")
        screenshot(p, "web-subscriptions-errors.png")
        p.get_by_label("Adresse électronique").fill(email)
        p.locator("label[for='topics-minutes']").click()
        expect(p.get_by_label("Comptes rendus", exact=True)).to_be_checked()
        p.get_by_role("button", name="M'abonner").click()
        expect(p.get_by_role("heading", level=1)).to_have_text("Vérifiez votre boîte aux lettres")

        # -- confirm from the caught e-mail: the link's page only shows a button
        p.goto(link(wait_mail(forum, email, CONFIRM), CONFIRM))
        expect(p.get_by_role("heading", level=1)).to_have_text("Confirmer mon abonnement")
        reader.axe("la confirmation d'abonnement")
        p.get_by_role("button", name="Confirmer mon abonnement").click()
        expect(p.get_by_role("heading", level=1)).to_have_text("Abonnement confirmé")
        expect(p.locator("#sujets-suivis")).to_have_text("Comptes rendus")
        reader.axe("l'abonnement confirmé")
        screenshot(p, "web-subscription-confirmed.png")
        subscribed(forum, other, ["minutes"])

        # -- the secretariat publishes minutes: the notice arrives, with the one-click headers
        sign_in(clerk, clerk_email)
        first_title = f"Plénière des abonnés {tag}"
        minutes_path = publish_minutes(clerk, forum, first_title)
        notice = wait_mail(forum, email, first_title)
        unsubscribe_header = str(notice["List-Unsubscribe"])
        assert str(notice["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
        assert notice["List-Id"]
        one_click = re.search(r"<(https?://[^>]+/abonnements/desabonner\?token=[^>]+)>", unsubscribe_header)
        assert one_click, unsubscribe_header
        assert "/abonnements/desabonner?token=" in plain(notice)  # a visible link too

        # -- the reader's mail provider unsubscribes: a bare POST to the header's address
        r = httpx.post(one_click.group(1), content=b"List-Unsubscribe=One-Click", timeout=30,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200 and "Vous êtes désabonné·e" in r.text

        # -- another publication: the other subscriber gets it, the reader no longer does
        second_title = f"Plénière suivante des abonnés {tag}"
        publish_minutes(clerk, forum, second_title)
        wait_mail(forum, other, second_title)
        time.sleep(1)
        assert not mails(forum, email, second_title)
        assert len(mails(forum, email, first_title)) == 1

        # -- a feed reader's view lists the same publication
        feed = feedparser.parse(httpx.get(forum.web_url + "/flux/comptes-rendus.atom", timeout=30).content)
        assert not feed.bozo, feed.get("bozo_exception")
        entry = next((e for e in feed.entries if first_title in e.title), None)
        assert entry is not None, [e.title for e in feed.entries]
        assert entry.link.endswith(minutes_path)
        assert reader.csp_errors() == [] and clerk.csp_errors() == []
    finally:
        reader.close()
        clerk.close()
