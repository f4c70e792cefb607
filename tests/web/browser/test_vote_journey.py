"""An online majority-judgment vote, in headless Chromium, against the running forum:

the secretariat approves three members (one per college), schedules a plenary session and, from the session's
page, opens a vote on an agenda item with its form; the three members grade every option on the ballot page
(one of them on a phone-sized screen, and she changes her ballot); the secretariat may not close it before the
plenary has begun (the page says why); once it has, the secretariat closes the vote now; the
vote's page shows the merit profiles and the winner, and the decision it became (`/decisions/{id}`) shows the
merit profiles (`#profils-de-merite`), the winner (`#option-retenue`) and an inclusion proof verified in the
reader's browser (`#preuve-inclusion[data-verification="ok"]`, « Preuve vérifiée »).

axe-core checks the vote form, the ballot page (wide and narrow), the result and the decision; no
Content-Security-Policy error in the console.
"""
from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from forum_ouvert.launcher import Stack
from tests.web.browser.test_registration_journey import Visitor, screenshot
from tests.web.browser.test_waitlist_journey import local, newest_mail, sign_in
from tests.web.test_web_bad_input import register
from tests.web.test_web_sessions import ForumDb
from tests.support import confirm_address, link_in

pytestmark = pytest.mark.browser
OPTIONS = ["Données de la commande publique", "Qualité de l'air", "Horaires des transports"]




def verified_member(forum: Stack, email: str, name: str, college: str) -> None:
    """Registered (in that college) and e-mail verified through the web front, awaiting approval."""
    since = time.time_ns()
    with httpx.Client(base_url=forum.web_url, timeout=30) as c:
        assert register(c, email, full_name=name, college=college).status_code == 200
        r = confirm_address(c, link_in(newest_mail(forum, email, "Confirmez", since), "/inscription/verifier"))
        assert r.status_code == 303, r.text


def grade(page: Page, option_id: int, grade_value: str) -> None:
    page.locator(f"label[for='option-{option_id}-{grade_value}']").click()  # DSFR draws its own radios


def test_vote_journey(forum: Stack, browser: Browser, clerk_email: str) -> None:
    tag = uuid.uuid4().hex[:8]
    people = [(f"alice-{tag}@example.org", f"Alice Martin {tag}", "public_actor"),
              (f"bruno-{tag}@example.org", f"Bruno Petit {tag}", "civil_society"),
              (f"chloe-{tag}@example.org", f"Chloé Durand {tag}", "citizen")]
    for email, name, college in people:
        verified_member(forum, email, name, college)

    secretariat = Visitor(browser, forum)
    voters = [Visitor(browser, forum) for _ in people]
    try:
        # -- the secretariat approves the three members
        sign_in(secretariat, clerk_email)
        s = secretariat.page
        secretariat.goto("/secretariat/membres")
        ids = []
        for email, _, _ in people:
            row = s.locator("tbody tr").filter(has_text=email)
            ids.append((row.get_attribute("id") or "").removeprefix("membre-"))
            row.get_by_role("button", name="Approuver").click()
            expect(s.get_by_text("est validée.")).to_be_visible()

        # -- a plenary session, scheduled with its form
        title = f"Plénière des données ouvertes {tag}"
        now = datetime.now(UTC)
        secretariat.goto("/secretariat/seances/nouvelle")
        s.get_by_label("Titre").fill(title)
        s.locator("label[for='kind-plenary']").click()
        s.locator("#starts_at").fill(local(now + timedelta(days=1)))
        s.locator("#ends_at").fill(local(now + timedelta(days=1, hours=2)))
        s.get_by_label("Lieu (facultatif)").fill("CESE, hémicycle, 9 place d'Iéna, Paris")
        s.locator("#capacity").fill("100")
        s.locator("#rsvp_opens_at").fill(local(now - timedelta(hours=1)))
        s.locator("#rsvp_closes_at").fill(local(now + timedelta(hours=20)))
        s.locator("#agenda").fill("Accueil\nJeu de données à ouvrir en priorité\nQuestions diverses")
        s.get_by_role("button", name="Programmer la séance").click()
        expect(s.get_by_role("heading", level=1)).to_have_text(title)

        # -- the secretariat's decision pages pass axe too (the decision form, the rules, the commitments)
        session_path = re.sub(r"^https?://[^/]+", "", s.url)
        s.get_by_role("link", name="Enregistrer une décision").click()
        expect(s.get_by_role("heading", level=1)).to_have_text("Enregistrer une décision")
        secretariat.axe("le formulaire de décision")
        screenshot(s, "web-decision-admin-form.png")
        for path, heading in (("/secretariat/regles", "Secrétariat : règles d'adoption des décisions"),
                              ("/secretariat/engagements", "Secrétariat : engagements du plan d'action"),
                              ("/secretariat/decisions", "Secrétariat : décisions et votes")):
            secretariat.goto(path)
            expect(s.get_by_role("heading", level=1)).to_have_text(heading)
            secretariat.axe(path)
        screenshot(s, "web-decisions-admin.png")
        secretariat.goto(session_path)

        # -- « Ouvrir un vote » from the session's page
        s.get_by_role("link", name="Ouvrir un vote").click()
        expect(s.get_by_role("heading", level=1)).to_have_text("Ouvrir un vote")
        secretariat.axe("le formulaire d'ouverture d'un vote")
        s.get_by_role("button", name="Ouvrir le vote").click()  # empty: errors next to the fields
        expect(s.get_by_text(re.compile(r"Le formulaire contient \d+ erreurs?"))).to_be_visible()
        expect(s).to_have_title(re.compile("^Erreur : "))
        secretariat.axe("le formulaire d'ouverture d'un vote en erreur")
        question = f"Quel jeu de données ouvrir en priorité ? {tag}"
        s.get_by_label("Point de l'ordre du jour").select_option("2")
        s.get_by_label("Question posée").fill(question)
        s.get_by_label("Options").fill("\n".join(OPTIONS))
        s.locator("label[for='eligibility-approved_members']").click()
        s.locator("#opens_at").fill(local(datetime.now(UTC)))
        s.locator("#closes_at").fill(local(datetime.now(UTC) + timedelta(days=3)))
        screenshot(s, "web-vote-admin-form.png")
        s.get_by_role("button", name="Ouvrir le vote").click()
        expect(s.get_by_role("heading", level=1)).to_have_text(question)
        expect(s.get_by_text(f"Le vote « {question} » est ouvert")).to_be_visible()
        vote_path = re.sub(r"^https?://[^/]+", "", s.url)
        assert re.fullmatch(r"/votes/[0-9a-f-]{36}", vote_path), s.url
        db, deadline = ForumDb(forum), time.monotonic() + 30
        while db.approved(ids) < 3:  # the forum learns approvals from registry events
            assert time.monotonic() < deadline, "the forum does not know the members as approved"
            time.sleep(0.1)

        # -- three members grade every option (Chloé on a phone, and she changes her mind)
        ballots = [{1: "excellent", 2: "bien", 3: "a_rejeter"},
                   {1: "tres_bien", 2: "bien", 3: "passable"},
                   {1: "insuffisant", 2: "assez_bien", 3: "bien"}]
        for i, ((email, _, _), voter, grades) in enumerate(zip(people, voters, ballots, strict=True)):
            v = voter.page
            if i == 2:
                v.set_viewport_size({"width": 375, "height": 812})
            sign_in(voter, email)
            if i < 2:
                v.get_by_role("navigation", name="Menu principal").get_by_role("link", name="Votes").click()
            else:  # on a phone, straight to the list
                voter.goto("/votes")
            expect(v.get_by_role("heading", level=1)).to_have_text("Votes du forum")
            v.get_by_role("link", name=question).click()
            expect(v.get_by_role("heading", level=1)).to_have_text(question)
            expect(v.locator("fieldset.forum-ballot legend")).to_have_text(OPTIONS)
            expect(v.locator("#option-1 .fr-radio-group label")).to_have_text(
                ["Excellent", "Très bien", "Bien", "Assez bien", "Passable", "Insuffisant", "À rejeter"])
            if i == 0:
                # An option skipped: refused, nothing recorded, the grades given are kept.
                grade(v, 1, grades[1])
                v.get_by_role("button", name="Enregistrer mon vote").click()
                expect(v.locator("#erreur-vote")).to_contain_text("Votre vote n'a pas été enregistré")
                expect(v.locator("#option-2-messages")).to_have_text(
                    "Choisissez une mention pour « Qualité de l'air » : chaque option doit être évaluée.")
                expect(v.locator("#option-1-excellent")).to_be_checked()
                voter.axe("le bulletin en erreur")
            if i < 2:
                voter.axe("le bulletin de vote")
            for option_id, g in grades.items():
                grade(v, option_id, g)
            if i == 2:
                voter.axe("le bulletin de vote sur un téléphone")
                screenshot(v, "web-vote-ballot-phone.png")
            v.get_by_role("button", name="Enregistrer mon vote").click()
            expect(v.get_by_text("Votre vote est enregistré le")).to_be_visible()
            expect(v.locator("#etat-vote")).to_contain_text("J'ai voté")
            for option_id, g in grades.items():
                expect(v.locator(f"#option-{option_id}-{g}")).to_be_checked()  # my ballot, preselected
        c = voters[2].page
        for option_id, g in {1: "passable", 2: "tres_bien", 3: "bien"}.items():
            grade(c, option_id, g)
        c.get_by_role("button", name="Enregistrer mon vote").click()
        expect(c.get_by_text("Votre vote est modifié le")).to_be_visible()
        expect(c.locator("#option-2-tres_bien")).to_be_checked()
        expect(c.locator("#vote-participation")).to_contain_text("3 bulletins déposés")
        screenshot(voters[0].page, "web-vote-ballot.png")

        # -- too early: the plenary has not begun, so its vote cannot become its decision yet (said, not hidden)
        secretariat.goto(vote_path)
        s.get_by_role("link", name="Clôturer maintenant").click()
        expect(s.locator("#trop-tot")).to_contain_text("Ce vote ne peut pas encore être clos")
        expect(s.get_by_role("button", name="Clôturer maintenant")).to_have_count(0)
        secretariat.axe("la clôture d'un vote avant sa séance")

        # -- the plenary has begun: the secretariat closes the vote now
        db.begin_now(session_path.removeprefix("/seances/"))
        secretariat.goto(vote_path)
        s.get_by_role("link", name="Clôturer maintenant").click()
        expect(s.get_by_role("heading", level=1)).to_have_text(f"Clôturer le vote « {question} »")
        s.get_by_role("button", name="Clôturer maintenant").click()
        expect(s.get_by_text("Le résultat est publié et devient une décision.")).to_be_visible()
        expect(s.locator("#vote-option-retenue")).to_contain_text(f"Option retenue : {OPTIONS[0]}")
        expect(s.locator("#table-profils tbody tr")).to_have_count(3)
        expect(s.locator("#profil-1 td")).to_have_text(["1", "1", "1", "0", "0", "1", "0", "0", "Très bien"])
        expect(s.locator("#barre-1-texte")).to_contain_text("Excellent 1 (33,3 %)")
        expect(s.get_by_text("les bulletins sont supprimés à la clôture du vote")).to_be_visible()
        secretariat.axe("le résultat du vote")
        screenshot(s, "web-vote-result.png")

        # -- the decision it became: profiles, winner, and the inclusion proof checked in the browser
        s.get_by_role("link", name="Voir la décision issue de ce vote").click()
        expect(s).to_have_url(re.compile(r"/decisions/[0-9a-f-]{36}$"))
        expect(s.locator("#profils-de-merite")).to_be_visible()
        expect(s.locator("#profils-de-merite tbody tr")).to_have_count(3)
        expect(s.locator("#option-retenue")).to_contain_text(OPTIONS[0])
        proof = s.locator("#preuve-inclusion")
        for _ in range(3):  # the leaf and a checkpoint covering it follow the event by a moment
            try:
                expect(proof).to_have_attribute("data-verification", "ok", timeout=20_000)
                break
            except AssertionError:
                assert proof.get_attribute("data-verification") != "failed", proof.inner_text()
                s.reload()
        assert proof.get_attribute("data-verification") == "ok", (
            f"{proof.get_attribute('data-verification')} / server: {proof.get_attribute('data-server-verification')}"
            f"\n{proof.inner_text()}\n{secretariat.console}")
        expect(s.locator('#preuve-inclusion[data-verification="ok"]')).to_contain_text("Preuve vérifiée")
        secretariat.axe("la décision issue du vote")
        screenshot(s, "web-vote-decision.png")

        secretariat.goto("/secretariat/decisions")
        expect(s.locator("#table-votes tbody tr").filter(has_text=question)).to_contain_text("Clos")
        secretariat.axe("les décisions et votes du secrétariat")

        for visitor in (secretariat, *voters):
            assert not visitor.csp_errors(), visitor.csp_errors()
            assert not [m for m in visitor.console if m.startswith("pageerror")], visitor.console
    finally:
        for visitor in (secretariat, *voters):
            visitor.close()
