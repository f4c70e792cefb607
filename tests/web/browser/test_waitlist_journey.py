"""The waitlist, in headless Chromium, against the running forum:

the secretariat schedules a working group of one seat with its form; Bruno takes the seat; Alice answers
« Je participe » on the full session and sees her place on the waitlist; Bruno withdraws; Alice's page shows
that she now holds the seat, and the e-mail the notifications service sent her (« Une place s'est libérée »,
with the invitation.ics) is caught and shown in /dev/mail.

axe-core checks the session page and the secretariat's form; no Content-Security-Policy error in the console.
"""
from __future__ import annotations

import re
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from icalendar import Calendar
from playwright.sync_api import Browser, expect

from forum_ouvert.launcher import Stack
from shared.settings import Settings
from tests.web.browser.test_registration_journey import Visitor, screenshot
from tests.web.test_web_bad_input import register
from tests.web.test_web_sessions import ForumDb
from tests.support import confirm_address, link_in

pytestmark = pytest.mark.browser
PARIS = ZoneInfo("Europe/Paris")




def local(dt: datetime) -> str:
    return dt.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M")


def newest_mail(forum: Stack, to: str, subject: str, since_ns: int, timeout: float = 120) -> EmailMessage:
    """The newest caught e-mail to `to` whose subject contains `subject`, written after `since_ns`. Reads the
    newest files only: after a rush, the mail folder holds thousands of messages."""
    deadline = time.monotonic() + timeout
    while True:
        for p in sorted(forum.mail_dir.glob("*.eml"), reverse=True):  # named <time_ns>-<random>.eml
            if int(p.name.split("-", 1)[0]) < since_ns:
                break
            msg = message_from_bytes(p.read_bytes(), policy=policy.default)
            if to.lower() in str(msg["To"]).lower() and subject in str(msg["Subject"]):
                return msg  # type: ignore[return-value]
        assert time.monotonic() < deadline, f"no e-mail « {subject} » for {to}"
        time.sleep(0.3)


def verified_member(forum: Stack, email: str, name: str) -> None:
    """Registered and e-mail verified through the web front (awaiting the secretariat's approval)."""
    since = time.time_ns()
    with httpx.Client(base_url=forum.web_url, timeout=30) as c:
        assert register(c, email, full_name=name).status_code == 200
        r = confirm_address(c, link_in(newest_mail(forum, email, "Confirmez", since), "/inscription/verifier"))
        assert r.status_code == 303, r.text


def sign_in(v: Visitor, email: str) -> None:
    """« Se connecter », the e-mailed link, « Me connecter »."""
    since = time.time_ns()
    v.goto("/connexion")
    v.page.get_by_label("Adresse électronique").fill(email)
    v.page.get_by_role("button", name="Recevoir un lien de connexion").click()
    expect(v.page.get_by_text("Si un compte correspond à cette adresse")).to_be_visible()
    v.page.goto(link_in(newest_mail(v.forum, email, "lien de connexion", since), "/connexion/lien"))
    expect(v.page.get_by_role("heading", level=1)).to_have_text("Connexion au forum ouvert")
    v.page.get_by_role("button", name="Me connecter").click()
    expect(v.page).to_have_url(re.compile(r"/espace$"))


def test_waitlist_journey(forum: Stack, browser: Browser, clerk_email: str) -> None:
    started, tag = time.time_ns(), uuid.uuid4().hex[:8]
    alice_email, bruno_email = f"alice-{tag}@example.org", f"bruno-{tag}@example.org"
    verified_member(forum, alice_email, f"Alice Martin {tag}")
    verified_member(forum, bruno_email, f"Bruno Petit {tag}")

    secretariat, alice, bruno = Visitor(browser, forum), Visitor(browser, forum), Visitor(browser, forum)
    try:
        # -- the secretariat approves both members, then schedules a working group of one seat
        sign_in(secretariat, clerk_email)
        s = secretariat.page
        secretariat.goto("/secretariat/membres")
        ids = []
        for email in (alice_email, bruno_email):
            row = s.locator("tbody tr").filter(has_text=email)
            ids.append((row.get_attribute("id") or "").removeprefix("membre-"))
            row.get_by_role("button", name="Approuver").click()
            expect(s.get_by_text("est validée.")).to_be_visible()

        nav = s.get_by_role("navigation", name="Menu principal")
        nav.get_by_role("button", name="Secrétariat").click()  # the secretariat's pages are in a sub-menu
        nav.get_by_role("link", name="Séances (secrétariat)").click()
        expect(s.get_by_role("heading", level=1)).to_have_text("Secrétariat : séances du forum")
        s.get_by_role("link", name="Programmer une séance").click()
        expect(s.get_by_role("heading", level=1)).to_have_text("Programmer une séance")
        secretariat.axe("le formulaire de séance")
        screenshot(s, "web-session-admin-form.png")
        s.get_by_role("button", name="Programmer la séance").click()  # empty: errors next to the fields
        expect(s.get_by_text(re.compile(r"Le formulaire contient \d+ erreurs"))).to_be_visible()
        expect(s).to_have_title(re.compile("^Erreur : "))
        secretariat.axe("le formulaire de séance en erreur")

        title = f"Atelier données ouvertes {tag}"
        now = datetime.now(UTC)
        start = (now + timedelta(days=3)).astimezone(PARIS).replace(hour=14, minute=0, second=0, microsecond=0)
        s.get_by_label("Titre").fill(title)
        s.locator("label[for='kind-working_group']").click()  # DSFR draws its own radios over the inputs
        s.locator("#theme").select_option("open_data")
        s.get_by_label("Présentation (facultatif)").fill("Ouvrir les données de la commande publique.")
        s.locator("#starts_at").fill(local(start))
        s.locator("#ends_at").fill(local(start + timedelta(hours=2)))
        s.get_by_label("Lieu (facultatif)").fill("CESE, salle 233, 9 place d'Iéna, Paris")
        s.locator("#capacity").fill("1")
        s.locator("#rsvp_opens_at").fill(local(now - timedelta(hours=1)))
        s.locator("#rsvp_closes_at").fill(local(start - timedelta(hours=2)))
        s.locator("#agenda").fill("Tour de table\nJeux de données prioritaires\nCalendrier")
        screenshot(s, "web-session-admin-form-errors.png")
        s.get_by_role("button", name="Programmer la séance").click()
        expect(s.get_by_role("heading", level=1)).to_have_text(title)
        expect(s.get_by_text(f"La séance « {title} » est programmée.")).to_be_visible()
        session_path = re.sub(r"^https?://[^/]+", "", s.url)
        assert re.fullmatch(r"/seances/[0-9a-f-]{36}", session_path), s.url
        db, deadline = ForumDb(forum), time.monotonic() + 30
        while db.approved(ids) < 2:  # the forum learns approvals from registry events
            assert time.monotonic() < deadline, "the forum does not know the members as approved"
            time.sleep(0.1)

        # -- Bruno takes the only seat
        sign_in(bruno, bruno_email)
        bruno.goto(session_path)
        bruno.page.get_by_role("button", name="Je participe", exact=True).click()
        expect(bruno.page.get_by_text("Votre place est confirmée.")).to_be_visible()
        expect(bruno.page.locator("#mon-etat .fr-badge")).to_have_text("Place confirmée")

        # -- Alice finds the session full and joins the waitlist
        sign_in(alice, alice_email)
        a = alice.page
        a.get_by_role("navigation", name="Menu principal").get_by_role("link", name="Séances").click()
        expect(a.get_by_role("heading", level=1)).to_have_text("Séances à venir")
        a.get_by_label("Type de séance").select_option("working_group")
        a.get_by_label("Thème").select_option("open_data")
        a.get_by_role("button", name="Filtrer").click()
        alice.axe("la liste des séances")
        screenshot(a, "web-sessions-list.png")
        a.get_by_role("link", name=title).click()
        expect(a.get_by_role("heading", level=1)).to_have_text(title)
        expect(a.locator("#seance-places")).to_contain_text("Complet (1 place)")
        expect(a.get_by_text("vous serez inscrit·e sur la liste d'attente")).to_be_visible()
        a.get_by_role("button", name="Je participe", exact=True).click()
        expect(a.get_by_text("vous êtes sur la liste d'attente, en position 1")).to_be_visible()
        expect(a.locator("#mon-etat .fr-badge")).to_have_text("Sur liste d'attente (position 1)")
        expect(a.locator("#ordre-du-jour li")).to_have_text(["Tour de table", "Jeux de données prioritaires",
                                                            "Calendrier"])
        alice.axe("la page de la séance")
        screenshot(a, "web-session.png")

        # -- Bruno withdraws: the seat goes to Alice
        bruno.page.get_by_role("button", name="Retirer ma réponse").click()
        expect(bruno.page.get_by_text("Votre réponse est retirée")).to_be_visible()
        expect(bruno.page.locator("#mon-etat .fr-badge")).to_have_text("Pas de réponse")

        a.reload()
        expect(a.locator("#mon-etat .fr-badge")).to_have_text("Place confirmée")
        expect(a.locator("#seance-places")).to_contain_text("Complet (1 place)")
        a.get_by_role("link", name="Toutes mes séances").click()
        expect(a.locator("tbody tr").filter(has_text=title).locator(".fr-badge")).to_have_text("Place confirmée")
        alice.axe("mes séances")

        # -- the secretariat sees who comes: Alice holds the seat, Bruno has withdrawn
        s.get_by_role("link", name="Participants et émargement").click()
        expect(s.get_by_role("heading", level=1)).to_have_text(f"Participants : {title}")
        expect(s.locator("#table-confirmes tbody tr")).to_have_count(1)
        expect(s.locator("#table-confirmes tbody tr")).to_contain_text(f"Alice Martin {tag}")
        expect(s.get_by_role("link", name="Exporter la liste (CSV)")).to_be_visible()
        secretariat.axe("les participants")
        screenshot(s, "web-session-participants.png")

        # -- the e-mail: sent by the notifications service, with the calendar invitation
        mail = newest_mail(forum, alice_email, "Une place s'est libérée", started)
        assert title in str(mail["Subject"])
        assert str(mail["From"]) == Settings().mail_from
        [ics] = [p for p in mail.iter_attachments() if p.get_filename() == "invitation.ics"]
        assert ics.get_content_type() == "text/calendar"
        [event] = Calendar.from_ical(ics.get_payload(decode=True)).walk("VEVENT")
        assert str(event["uid"]) == f"session-{session_path.rsplit('/', 1)[1]}@forum-ouvert"
        assert event.decoded("dtstart") == start
        alice.open_mail(alice_email, "Une place s'est libérée", 1)
        expect(a.get_by_text("une place s'est libérée, votre inscription est confirmée")).to_be_visible()

        for v in (secretariat, alice, bruno):
            assert not v.csp_errors(), v.csp_errors()
            assert not [m for m in v.console if m.startswith("pageerror")], v.console
    finally:
        for v in (secretariat, alice, bruno):
            v.close()
