"""A newcomer's first visit and the secretariat's home, in headless Chromium, against the running forum:

- the address-verification link opens a page with one button; a mail scanner that opens the link first spends
  nothing; « Confirmer mon adresse », in a browser other than the one that registered, signs the newcomer in to
  « Mon espace », which says the registration awaits the secretariat; the same link again says it was used and
  offers « Se connecter » (and signs nobody in); signing out ends that session like any other;
- the home page shows the next sessions (seats left or « Complet »), the latest decisions and minutes, and how
  to follow the forum;
- the secretariat's home lists what needs doing, each made here through the real forms: a registration to
  approve, a session and its RSVPs, a session held without minutes, a decision awaiting its follow-up, a vote
  closing soon, a failed e-mail (the local mail catcher refuses the address); each link leads where the work
  is done, and a task done (a registration approved, a follow-up given, minutes started, a vote closed) leaves
  its list.
"""
from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from forum_ouvert.launcher import Stack
from forum_ouvert.mailcatcher import REFUSED_PREFIX
from tests.support import link_in
from tests.web.browser.test_minutes_journey import path_of, record_decision, schedule
from tests.web.browser.test_registration_journey import Visitor
from tests.web.browser.test_vote_journey import verified_member
from tests.web.browser.test_waitlist_journey import local, newest_mail, sign_in
from tests.web.test_web_bad_input import register

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def patient_expect() -> Iterator[None]:
    """These journeys make many pages on a shared, busy machine: wait longer than the default 5 s for each."""
    expect.set_options(timeout=20_000)
    yield
    expect.set_options(timeout=5_000)  # Playwright's default, for the other modules


def test_confirming_the_address_signs_in_once(forum: Stack, browser: Browser) -> None:
    tag = uuid.uuid4().hex[:8]
    email, name = f"premiere-{tag}@example.org", f"Paule Premier {tag}"
    since = time.time_ns()
    with httpx.Client(base_url=forum.web_url, timeout=30) as registering_browser:
        assert register(registering_browser, email, full_name=name).status_code == 200
    link = link_in(newest_mail(forum, email, "Confirmez", since), "/inscription/verifier")

    # A mail scanner opens the link before the person: it only sees the button, and spends nothing.
    with httpx.Client(timeout=30) as scanner:
        scanned = scanner.get(link)
        assert scanned.status_code == 200 and "Confirmer mon adresse" in scanned.text
        assert "/connexion" in str(scanner.get(forum.web_url + "/espace", follow_redirects=True).url)

    person, other = Visitor(browser, forum), Visitor(browser, forum)
    try:
        page = person.page
        page.goto(link)  # another browser than the one that registered: holding the link is what counts
        expect(page.get_by_role("heading", level=1)).to_have_text("Confirmer mon adresse électronique")
        person.axe("la confirmation de l'adresse")
        page.get_by_role("button", name="Confirmer mon adresse").click()
        expect(page).to_have_url(re.compile(r"/espace$"))
        expect(page.get_by_text("votre adresse électronique est confirmée et vous êtes connecté·e")).to_be_visible()
        awaiting = "Votre inscription attend la validation du secrétariat"
        expect(page.get_by_role("heading", name=awaiting)).to_be_visible()
        expect(page.locator(".fr-badge")).to_have_text("En attente de validation")
        person.axe("l'espace d'un membre en attente de validation")

        # The same link again, elsewhere: used, « Se connecter » offered, nobody signed in.
        o = other.page
        o.goto(link)
        expect(o.get_by_role("heading", level=1)).to_have_text("Lien de confirmation expiré ou déjà utilisé")
        expect(o.get_by_text("Ce lien a déjà été utilisé")).to_be_visible()
        expect(o.get_by_role("button", name="Confirmer mon adresse")).to_have_count(0)
        other.axe("le lien de confirmation déjà utilisé")
        o.locator("#contenu").get_by_role("link", name="Se connecter").click()
        expect(o).to_have_url(re.compile(r"/connexion$"))
        other.goto("/espace")
        expect(o).to_have_url(re.compile(r"/connexion"))  # still a visitor

        # The session opened by the confirmation is a session like any other: signing out ends it.
        cookies = person.context.cookies()
        person.sign_out()
        thief = browser.new_context()
        try:
            thief.add_cookies(cookies)  # the cookie as it was before signing out
            t = thief.new_page()
            t.goto(forum.web_url + "/espace")
            expect(t).to_have_url(re.compile(r"/connexion"))
        finally:
            thief.close()

        # The normal sign-in link still works for the owner of the address.
        sign_in(other, email)
        expect(o.get_by_role("heading", name=awaiting)).to_be_visible()
        assert not person.csp_errors() and not other.csp_errors(), person.console + other.console
    finally:
        person.close()
        other.close()


def section_count(page: Page, section: str) -> int:
    """The count in the title of one of the dashboard's sections (`a-valider`, `suivis`…)."""
    badge = page.locator(f"#{section}-titre .fr-badge")
    expect(badge).to_have_text(re.compile(r"^\d+$"))
    return int(badge.inner_text())


def schedule_small(v: Visitor, title: str, start: timedelta, capacity: int) -> str:
    """A plenary session open to answers now, with `capacity` seats, scheduled with the form; its address."""
    s, now = v.page, datetime.now(UTC)
    v.goto("/secretariat/seances/nouvelle")
    s.get_by_label("Titre").fill(title)
    s.locator("label[for='kind-plenary']").click()
    s.locator("#starts_at").fill(local(now + start))
    s.locator("#ends_at").fill(local(now + start + timedelta(hours=1)))
    s.get_by_label("Lieu (facultatif)").fill("CESE, salle 228, 9 place d'Iéna, Paris")
    s.locator("#capacity").fill(str(capacity))
    s.locator("#rsvp_opens_at").fill(local(now - timedelta(hours=1)))
    s.locator("#rsvp_closes_at").fill(local(now + start - timedelta(minutes=10)))
    s.locator("#agenda").fill("Accueil\nPriorités du plan d'action\nQuestions diverses")
    s.get_by_role("button", name="Programmer la séance").click()
    expect(s.get_by_role("heading", level=1)).to_have_text(title)
    return path_of(s)


def open_vote(v: Visitor, session_path: str, question: str, closes_in: timedelta) -> str:
    """A vote on item 2 of the session, opened now with the form; its id."""
    s = v.page
    v.goto(session_path)
    s.get_by_role("link", name="Ouvrir un vote").click()
    s.get_by_label("Point de l'ordre du jour").select_option("2")
    s.get_by_label("Question posée").fill(question)
    s.get_by_label("Options").fill("Ouvrir les données\nAttendre la fin du plan")
    s.locator("label[for='eligibility-approved_members']").click()
    s.locator("#opens_at").fill(local(datetime.now(UTC)))
    s.locator("#closes_at").fill(local(datetime.now(UTC) + closes_in))
    s.get_by_role("button", name="Ouvrir le vote").click()
    expect(s.get_by_role("heading", level=1)).to_have_text(question)
    return path_of(s).rsplit("/", 1)[1]


def test_home_page_and_the_secretariat_dashboard(forum: Stack, browser: Browser, clerk_email: str) -> None:
    tag = uuid.uuid4().hex[:8]
    alice_email, waiting_email = f"alice-tdb-{tag}@example.org", f"attente-tdb-{tag}@example.org"
    verified_member(forum, alice_email, f"Alice Tableau {tag}", "citizen")
    verified_member(forum, waiting_email, f"Gaston Attente {tag}", "public_actor")
    bounced_email = f"{REFUSED_PREFIX}{tag}@example.org"  # the local mail catcher refuses it (550)
    with httpx.Client(base_url=forum.web_url, timeout=30) as c:
        assert register(c, bounced_email, full_name=f"Adresse Refusée {tag}").status_code == 200
    clerk, alice, public = Visitor(browser, forum), Visitor(browser, forum), Visitor(browser, forum)
    try:
        sign_in(clerk, clerk_email)
        s = clerk.page

        # -- the secretariat's home is the dashboard, first in the back-office's menu
        s.locator(".fr-header__tools-links").get_by_role("link", name="Secrétariat", exact=True).click()
        expect(s).to_have_url(re.compile(r"/secretariat$"))
        expect(s.get_by_role("heading", level=1)).to_have_text("Secrétariat : tableau de bord")
        nav = s.get_by_role("navigation", name="Menu principal")
        nav.get_by_role("button", name="Secrétariat").click()
        expect(nav.locator("#menu-secretariat a").first).to_have_text("Tableau de bord")
        expect(nav.locator("#menu-secretariat a").first).to_have_attribute("aria-current", "page")
        # -- registrations to approve. Other journeys leave some waiting too: the count is checked against the
        #    members list, and the oldest ones are listed (the registry's test checks the order), each a link to
        #    its row there; the one approved leaves the count.
        waiting = section_count(s, "a-valider")
        assert waiting >= 2
        listed = s.locator("#a-valider li")
        expect(listed).to_have_count(min(waiting, 5))
        oldest_id = (listed.first.get_attribute("id") or "").removeprefix("a-valider-")
        listed.first.get_by_role("link").click()
        expect(s.get_by_role("heading", level=1)).to_have_text("Secrétariat : membres du forum")
        expect(s.locator(f"#membre-{oldest_id}")).to_be_visible()
        expect(s.locator("caption")).to_contain_text(f"En attente de validation ({waiting})")
        clerk.goto("/secretariat")
        s.locator("#a-valider").get_by_role("link", name="Valider ou refuser les inscriptions").click()
        row = s.locator("tbody tr").filter(has_text=alice_email)
        alice_id = (row.get_attribute("id") or "").removeprefix("membre-")
        row.get_by_role("button", name="Approuver").click()
        expect(s.get_by_text("est validée.")).to_be_visible()
        clerk.goto("/secretariat")
        assert section_count(s, "a-valider") == waiting - 1  # done: off the list
        expect(s.locator(f"#a-valider-{alice_id}")).to_have_count(0)

        # -- the work: a session of one seat (Alice takes it), a session held without minutes, its decision
        #    and a vote closing in two days
        full_title, held_title = f"Plénière d'une place {tag}", f"Plénière tenue {tag}"
        full_path = schedule_small(clerk, full_title, timedelta(minutes=70), capacity=1)
        held_path = schedule(clerk, held_title, -timedelta(minutes=65), 1)  # ended a moment ago: listed first
        decision_path, number = record_decision(clerk, held_path, f"Publier les avis du forum {tag}")
        question = f"Quelle priorité pour le plan ? {tag}"
        vote_id = open_vote(clerk, held_path, question, timedelta(days=2))  # a session begun: closable now
        full_id, held_id = full_path.rsplit("/", 1)[1], held_path.rsplit("/", 1)[1]
        decision_id = decision_path.rsplit("/", 1)[1]

        sign_in(alice, alice_email)
        deadline = time.monotonic() + 30
        while True:  # the forum learns the approval from the registry's event
            alice.goto(full_path)
            if alice.page.get_by_role("button", name="Je participe", exact=True).count():
                break
            assert time.monotonic() < deadline, "the forum does not know Alice as approved"
            time.sleep(0.3)
        alice.page.get_by_role("button", name="Je participe", exact=True).click()
        expect(alice.page.get_by_text("Votre place est confirmée.")).to_be_visible()

        # -- the home page: the next sessions (seats, « Complet »), latest decisions and minutes, how to follow
        public.goto("/")
        p = public.page
        upcoming = p.locator("#prochaines-seances")
        expect(upcoming.get_by_role("link", name=full_title)).to_have_attribute("href", full_path)
        expect(p.locator(f"#accueil-seance-{full_id}")).to_contain_text("Complet")
        expect(p.locator(f"#accueil-seance-{full_id}")).to_contain_text("CESE, salle 228")
        expect(p.locator("#dernieres-decisions").get_by_role("link", name=re.compile(
            f"Décision n° {re.escape(number)}"))).to_have_attribute("href", decision_path)
        # The latest published minutes: the first three of the public list, whatever the other journeys published.
        minutes_list = httpx.get(forum.web_url + "/comptes-rendus", timeout=30).text
        newest = re.findall(r'<h2 class="fr-card__title"><a href="(/comptes-rendus/[^"]+)">', minutes_list)[:3]
        shown = [a.get_attribute("href") for a in p.locator("#derniers-comptes-rendus li a").all()]
        assert shown == newest
        if not newest:
            expect(p.locator("#derniers-comptes-rendus")).to_contain_text("Aucun compte rendu n'a encore été publié.")
        follow = p.locator("#suivre")
        for label, href in (("S'abonner par courriel", "/abonnements"), ("flux Atom", "/flux/tout.atom"),
                            ("flux RSS", "/flux/tout.rss"), ("agenda iCalendar", "/seances.ics"),
                            ("registre public", "/registre")):
            expect(follow.get_by_role("link", name=label, exact=True)).to_have_attribute("href", href)
        public.axe("l'accueil")
        p.locator("#prochaines-seances").get_by_role("link", name=full_title).click()
        expect(p.get_by_role("heading", level=1)).to_have_text(full_title)

        # -- the dashboard lists each task with its link
        clerk.goto("/secretariat")
        clerk.axe("le tableau de bord du secrétariat")
        expect(s.locator(f"#prochaine-{full_id}")).to_contain_text("1 inscrit sur 1 place")
        expect(s.locator(f"#prochaine-{full_id}")).to_contain_text("(complet)")
        expect(s.locator(f"#sans-compte-rendu-{held_id}")).to_contain_text(held_title)
        expect(s.locator(f"#vote-{vote_id}")).to_contain_text(question)

        s.locator(f"#prochaine-{full_id}").get_by_role("link", name=re.compile("^Participants")).click()
        expect(s).to_have_url(re.compile(rf"/secretariat/seances/{full_id}/participants$"))
        expect(s.get_by_text(f"Alice Tableau {tag}").first).to_be_visible()

        # Decisions awaiting their follow-up (the oldest first: other journeys' may come before this one).
        clerk.goto("/secretariat")
        due = section_count(s, "suivis")
        assert due >= 1
        expect(s.locator("#suivis li")).to_have_count(min(due, 5))
        first = s.locator("#suivis li").first
        first_id = (first.get_attribute("id") or "").removeprefix("suivi-")
        first.get_by_role("link", name=re.compile("^Mettre à jour le suivi")).click()
        expect(s).to_have_url(re.compile(rf"/secretariat/decisions/{first_id}/suivi$"))
        clerk.goto(f"/secretariat/decisions/{decision_id}/suivi")  # this one's follow-up, given: it leaves the list
        s.locator("label[for='status-in_progress']").click()
        s.get_by_label("Note de suivi").fill("Les avis seront publiés sur le site du forum.")
        s.get_by_role("button", name="Publier la mise à jour").click()
        expect(s).to_have_url(re.compile(rf"/decisions/{decision_id}$"))
        clerk.goto("/secretariat")
        assert section_count(s, "suivis") == due - 1
        expect(s.locator(f"#suivi-{decision_id}")).to_have_count(0)

        # A failed e-mail: listed with the server's answer, a link to the delivery log filtered on failures.
        deadline = time.monotonic() + 60
        while True:  # the refused address's confirmation e-mail fails at the first attempt (a 550)
            clerk.goto("/secretariat")
            if s.locator("#envois-en-echec li").filter(has_text=bounced_email).count():
                break
            assert time.monotonic() < deadline, "the refused e-mail is not listed as failed"
            time.sleep(0.5)
        failed = s.locator("#envois-en-echec li").filter(has_text=bounced_email)
        expect(failed).to_contain_text("Confirmez votre adresse")
        expect(failed).to_contain_text("550 5.1.1")
        s.locator("#envois-en-echec").get_by_role("link", name="Voir les envois en échec").click()
        expect(s).to_have_url(re.compile(r"/secretariat/envois\?etat=failed$"))
        expect(s.locator("tbody tr").filter(has_text=bounced_email)).to_have_count(1)

        # -- acting from the dashboard: the minutes started, the vote closed; each leaves its list
        clerk.goto("/secretariat")
        s.locator(f"#sans-compte-rendu-{held_id}").get_by_role("button", name=re.compile("^Rédiger")).click()
        expect(s).to_have_url(re.compile(r"/secretariat/comptes-rendus/[0-9a-f-]{36}$"))
        clerk.goto("/secretariat")
        expect(s.locator(f"#sans-compte-rendu-{held_id}")).to_have_count(0)
        expect(s.locator("#sans-compte-rendu").get_by_role("link", name=held_title)).to_be_visible()  # a draft now

        s.locator(f"#vote-{vote_id}").get_by_role("link", name=re.compile("^Clôturer le vote")).click()
        expect(s).to_have_url(re.compile(rf"/secretariat/votes/{vote_id}/cloturer$"))
        s.get_by_role("button", name="Clôturer maintenant").click()
        expect(s).to_have_url(re.compile(rf"/votes/{vote_id}$"))
        clerk.goto("/secretariat")
        expect(s.locator(f"#vote-{vote_id}")).to_have_count(0)
        for v in (clerk, alice, public):
            assert not v.csp_errors(), v.console
    finally:
        for v in (clerk, alice, public):
            v.close()
