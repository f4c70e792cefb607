"""The comptes rendus, in headless Chromium, against the running forum:

the secretariat schedules a plenary that took place, checks Alice in, records a decision there and another at a
later session; from the session's page, « Rédiger le compte rendu » opens the draft pre-filled from the record;
the clerk completes the debates (the preview follows as she types, the draft saves itself), a second tab saves
over it and the first tab is told so with its text kept, then keeps its text knowingly; a text typed while the
sign-in expired, kept in the browser, is offered back and saved; the clerk opens the review;
Alice, present at the session, proposes a new wording of a paragraph; the clerk accepts it with a reason; the
minutes are published, adopted by the later session's decision (the inclusion proof verified in the browser),
then corrected with a reason. The public, on a phone-sized screen, finds them in /comptes-rendus, sees both versions
and the difference, downloads the PDF (its text holds the title and the hash, and hashing the version's canonical
JSON gives that hash), follows the decision page's link to the paragraph that records it, and finds the minutes
again by searching words of their body typed without accents; `forum-ouvert verify` still accepts the public
record.

axe-core checks the editor, the review page, the minutes, the difference and the lists; no Content-Security-Policy
error in the console.
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from pypdf import PdfReader

from forum_ouvert.launcher import Stack
from forum_ouvert.verify import verify_async
from tests.web.browser.test_registration_journey import Visitor, screenshot
from tests.web.browser.test_vote_journey import verified_member
from tests.web.browser.test_waitlist_journey import local, sign_in
from tests.web.test_web_minutes import MinutesDb

pytestmark = pytest.mark.browser
PLACEHOLDER = "_Résumé des échanges à compléter par le secrétariat._"


def path_of(page: Page) -> str:
    return re.sub(r"^https?://[^/]+", "", page.url).split("#", 1)[0]


def schedule(v: Visitor, title: str, start: timedelta, hours: float) -> str:
    """A plenary session scheduled with the secretariat's form (times relative to now); its address."""
    s, now = v.page, datetime.now(UTC)
    v.goto("/secretariat/seances/nouvelle")
    s.get_by_label("Titre").fill(title)
    s.locator("label[for='kind-plenary']").click()
    s.locator("#starts_at").fill(local(now + start))
    s.locator("#ends_at").fill(local(now + start + timedelta(hours=hours)))
    s.get_by_label("Lieu (facultatif)").fill("CESE, salle 231, 9 place d'Iéna, Paris")
    s.locator("#capacity").fill("40")
    s.locator("#rsvp_opens_at").fill(local(now + start - timedelta(hours=3)))
    s.locator("#rsvp_closes_at").fill(local(now + start - timedelta(hours=1)))
    s.locator("#agenda").fill("Accueil\nDonnées de la commande publique\nQuestions diverses")
    s.get_by_role("button", name="Programmer la séance").click()
    expect(s.get_by_role("heading", level=1)).to_have_text(title)
    return path_of(s)


def record_decision(v: Visitor, session_path: str, title: str) -> tuple[str, str]:
    """A decision adopted by consensus on item 2, recorded from the session's page: (its address, its number)."""
    s = v.page
    v.goto(session_path)
    s.get_by_role("link", name="Enregistrer une décision").click()
    s.get_by_label("Point de l'ordre du jour").select_option("2")
    s.get_by_label("Titre de la décision").fill(title)
    s.get_by_label("Texte de la décision").fill("Le forum demande la publication des données des marchés publics.")
    s.locator("label[for='method-consensus']").click()
    s.locator("label[for='outcome-adopted']").click()
    s.get_by_role("button", name="Enregistrer la décision").click()
    expect(s).to_have_url(re.compile(r"/decisions/[0-9a-f-]{36}$"))
    number = re.match(r"Décision n° (\S+) :", s.get_by_role("heading", level=1).inner_text())
    assert number, s.get_by_role("heading", level=1).inner_text()
    return path_of(s), number.group(1)


def wait_proof(v: Visitor) -> None:
    """The leaf and a checkpoint covering it follow the publication by a moment."""
    proof = v.page.locator("#preuve-inclusion")
    for _ in range(4):
        try:
            expect(proof).to_have_attribute("data-verification", "ok", timeout=20_000)
            return
        except AssertionError:
            assert proof.get_attribute("data-verification") != "failed", proof.inner_text()
            v.page.reload()
    raise AssertionError(f"{proof.get_attribute('data-verification')}\n{proof.inner_text()}\n{v.console}")


def test_minutes_journey(forum: Stack, browser: Browser, clerk_email: str, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    alice_email, alice_name = f"alice-cr-{tag}@example.org", f"Alice Renaud {tag}"
    verified_member(forum, alice_email, alice_name, "civil_society")
    clerk, alice, public = Visitor(browser, forum), Visitor(browser, forum), Visitor(browser, forum)
    try:
        # -- the secretariat approves Alice, schedules the session (held this morning) and a later one
        sign_in(clerk, clerk_email)
        s = clerk.page
        clerk.goto("/secretariat/membres")
        row = s.locator("tbody tr").filter(has_text=alice_email)
        alice_id = (row.get_attribute("id") or "").removeprefix("membre-")
        row.get_by_role("button", name="Approuver").click()
        expect(s.get_by_text("est validée.")).to_be_visible()
        title = f"Plénière de la transparence {tag}"
        session_path = schedule(clerk, title, -timedelta(hours=4), 2)
        later_path = schedule(clerk, f"Plénière suivante {tag}", -timedelta(hours=1), 0.5)

        clerk.goto(f"/secretariat/seances/{session_path.rsplit('/', 1)[1]}/participants")
        s.locator("#member_id").select_option(alice_id)
        s.get_by_role("button", name="Enregistrer sa présence").click()
        expect(s.get_by_text("Présence enregistrée")).to_be_visible()
        decision_path, n1 = record_decision(clerk, session_path, f"Ouvrir les données des marchés {tag}")
        _, n2 = record_decision(clerk, later_path, f"Adoption du compte rendu de la plénière {tag}")
        session_id, decision_id = session_path.rsplit("/", 1)[1], decision_path.rsplit("/", 1)[1]
        db, deadline = MinutesDb(forum), time.monotonic() + 60
        while not db.knows(session_id=session_id, attendees=[alice_id], decisions=[decision_id]):
            assert time.monotonic() < deadline, "the minutes service does not know the session yet"
            time.sleep(0.2)

        # -- « Rédiger le compte rendu » from the session's page: the draft pre-filled from the record
        clerk.goto(session_path)
        expect(s.locator("#etat-compte-rendu")).to_contain_text("pas encore commencé sa rédaction")
        s.get_by_role("button", name="Rédiger le compte rendu").click()
        expect(s.get_by_role("heading", level=1)).to_have_text(f"Compte rendu : {title}")
        editor_path = path_of(s)
        area = s.locator("#markdown")
        draft = area.input_value()
        assert draft.startswith(f"# Compte rendu — {title}") and f"Décision n° {n1}" in draft and PLACEHOLDER in draft
        expect(s.locator("#apercu")).to_contain_text(f"Décision n° {n1}")
        clerk.axe("l'éditeur du compte rendu")

        # The clerk writes the debates: the preview follows, the draft saves itself.
        debate = f"Les échanges ont porté sur l'ouverture des données des marchés {tag}."
        area.fill(draft.replace(PLACEHOLDER, debate))
        expect(s.locator("#apercu")).to_contain_text(debate)
        expect(s.locator("#etat-enregistrement")).to_contain_text("Brouillon enregistré à", timeout=15_000)
        screenshot(s, "web-minutes-editor.png")

        # A second tab saves over it; the first tab's next save is refused, its text kept.
        other = clerk.context.new_page()
        other.goto(forum.web_url + editor_path)
        other.locator("#markdown").fill(other.locator("#markdown").input_value() + "\n\nAjout d'un autre onglet.")
        expect(other.locator("#etat-enregistrement")).to_contain_text("Brouillon enregistré à", timeout=15_000)
        mine = area.input_value() + "\n\nLa séance est levée à midi."
        area.fill(mine)
        expect(s.locator("#conflit-direct")).to_be_visible(timeout=15_000)
        expect(s.locator("#conflit-direct")).to_contain_text("modifié dans un autre onglet")
        assert area.input_value() == mine
        clerk.axe("l'éditeur, après un enregistrement refusé")
        s.get_by_role("button", name="Enregistrer mon texte à la place").click()
        expect(s.locator("#etat-enregistrement")).to_contain_text("Brouillon enregistré à")
        expect(s.locator("#conflit-direct")).to_be_hidden()
        other.close()
        s.reload()
        assert s.locator("#markdown").input_value().rstrip() == mine.rstrip()

        # A sign-in that expired while typing: the text kept in this browser is offered back, then saved.
        kept = mine + "\n\nPhrase tapée pendant que la connexion expirait."
        minutes_id = editor_path.rsplit("/", 1)[1]
        s.evaluate("([key, text]) => localStorage.setItem(key, JSON.stringify({text, revision: '0', at: Date.now()}))",
                   [f"forum-compte-rendu-{minutes_id}", kept])
        s.reload()
        expect(s.locator("#copie-locale")).to_be_visible()
        s.get_by_role("button", name="Reprendre ce texte").click()
        expect(s.locator("#etat-enregistrement")).to_contain_text("Brouillon enregistré à")
        s.reload()
        expect(s.locator("#copie-locale")).to_be_hidden()
        assert s.locator("#markdown").input_value().rstrip() == kept.rstrip()

        # -- review by the attendees, until the day after tomorrow
        s.locator("#until").fill(local(datetime.now(UTC) + timedelta(days=2)))
        s.get_by_role("button", name="Ouvrir la relecture").click()
        expect(s.get_by_text("La relecture est ouverte aux membres présents")).to_be_visible()
        expect(s.locator("#etat-relecture")).to_contain_text("Relecture ouverte jusqu'au")

        # -- Alice, present at the session, proposes a new wording of the debates' paragraph
        sign_in(alice, alice_email)
        a = alice.page
        alice.goto(session_path)
        a.get_by_role("link", name="Relire le brouillon et proposer des modifications").click()
        expect(a.get_by_role("heading", level=1)).to_have_text(f"Relecture du compte rendu : {title}")
        alice.axe("la relecture du compte rendu")
        block = a.locator(".forum-review-block").filter(has_text=debate)
        block.get_by_text("Proposer une nouvelle formulation").click()
        reworded = f"Les échanges, nourris, ont porté sur l'ouverture des données des marchés publics {tag}."
        block.get_by_label("Nouveau texte proposé pour ce paragraphe (Markdown)").fill(reworded)
        block.get_by_role("button", name="Envoyer la proposition").click()
        expect(a.get_by_text("Votre proposition est transmise au secrétariat")).to_be_visible()
        expect(a.locator("#mes-commentaires")).to_contain_text("En attente de réponse")
        alice.axe("la relecture, une proposition envoyée")

        # -- the clerk accepts it, with a reason; the draft takes the new wording
        clerk.goto(editor_path)
        comment = s.locator("article.forum-comment").filter(has_text=reworded)
        expect(comment).to_contain_text(f"Proposition de reformulation de {alice_name}")
        comment.locator("label", has_text="Accepter").click()
        comment.get_by_label("Raison (lue par l'auteur du commentaire)").fill("Plus précis, merci.")
        comment.get_by_role("button", name=re.compile("^Répondre")).click()
        expect(s.get_by_text("Réponse enregistrée : proposition acceptée.")).to_be_visible()
        assert reworded in s.locator("#markdown").input_value()
        alice.page.reload()
        expect(a.locator("#mes-commentaires")).to_contain_text("Plus précis, merci.")

        # -- published, adopted by the later session's decision
        s.locator("label[for='adoption-decision']").click()
        s.get_by_label("Numéro de la décision qui adopte le compte rendu").fill(n2)
        s.get_by_role("button", name="Publier le compte rendu").click()
        expect(s.get_by_text("Le compte rendu est publié (version 1) : adopté.")).to_be_visible()
        expect(s.get_by_role("heading", level=1)).to_have_text(f"Compte rendu : {title}")
        expect(s.locator("#adoption")).to_contain_text(f"Adopté par la décision n° {n2}")
        minutes_path = path_of(s)
        wait_proof(clerk)
        clerk.axe("le compte rendu publié")

        # -- corrected, with a reason
        s.get_by_role("link", name="Corriger ce compte rendu (secrétariat)").click()
        fixed = s.get_by_label("Texte corrigé")
        fixed.fill(fixed.input_value().replace("La séance est levée à midi.", "La séance est levée à 12 h 30."))
        s.get_by_label("Raison de la correction").fill("Heure de fin de séance corrigée")
        s.get_by_role("button", name="Publier la correction").click()
        expect(s.get_by_text("La correction est publiée : version 2")).to_be_visible()

        # -- the public, on a phone: the list, both versions, the difference, the PDF and the JSON
        p = public.page
        p.set_viewport_size({"width": 360, "height": 740})
        public.goto("/comptes-rendus")
        expect(p.get_by_role("heading", level=1)).to_have_text("Comptes rendus des séances")
        public.axe("la liste des comptes rendus (téléphone)")
        p.get_by_role("link", name=f"Compte rendu : {title}").click()
        expect(p.locator("#numero-version")).to_have_text("Version 2")
        expect(p.locator("[data-state]").first).to_have_text("Corrigé")
        expect(p.locator("#raison-correction")).to_contain_text("Heure de fin de séance corrigée")
        expect(p.locator("#table-versions tbody tr")).to_have_count(2)
        expect(p.locator("#texte-compte-rendu")).to_contain_text(reworded)
        public.axe("le compte rendu corrigé (téléphone)")
        screenshot(p, "web-minutes-phone.png")
        sha = p.locator("#empreinte").inner_text().strip()
        with p.expect_download() as download:
            p.get_by_role("link", name="Télécharger le PDF (version 2)").click()
        pdf = Path(download.value.path()).read_bytes()
        flat = re.sub(r"\s+", "", " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages))
        assert pdf.startswith(b"%PDF-") and sha in flat and re.sub(r"\s+", "", title) in flat
        canonical = p.request.get(f"{forum.web_url}{minutes_path}/v2.json").body()
        assert hashlib.sha256(canonical).hexdigest() == sha

        p.get_by_role("link", name="Version 1", exact=True).click()
        expect(p.locator("#version-ancienne")).to_contain_text("une version plus récente existe")
        expect(p.locator("#texte-compte-rendu")).to_contain_text("La séance est levée à midi.")
        p.get_by_role("link", name="Voir les différences").click()
        expect(p.get_by_role("heading", level=1)).to_contain_text("Différences entre les versions")
        change = p.locator("#liste-differences li").first
        expect(change).to_contain_text("Modifié")
        expect(change.locator(".forum-diff__source del")).to_contain_text("midi.")
        expect(change.locator(".forum-diff__source ins")).to_contain_text("12 h 30.")
        public.axe("la différence entre deux versions (téléphone)")
        screenshot(p, "web-minutes-diff.png")

        # -- from the decision's page to the paragraph that records it
        p.set_viewport_size({"width": 1280, "height": 900})
        public.goto(decision_path)
        p.locator("#lien-compte-rendu").click()
        expect(p).to_have_url(re.compile(re.escape(minutes_path) + r"#p-[0-9a-f]+"))
        anchor = p.url.split("#", 1)[1]
        target = p.locator(f"[id='{anchor}']")
        expect(target).to_contain_text(f"Décision n° {n1}")
        expect(target).to_be_in_viewport()

        # -- search: a word of the body typed without its accents finds the minutes
        public.goto("/")
        p.locator("#recherche-entete-q").fill(f"echanges marches {tag}")
        p.locator("#recherche-entete-q").press("Enter")
        expect(p).to_have_url(re.compile(r"/recherche\?"))
        hit = p.locator("#resultats li").filter(has=p.locator(f"a[href='{minutes_path}']"))
        expect(hit).to_have_count(1)
        expect(hit.locator("mark").first).to_be_visible()  # the matched words highlighted in the excerpt
        hit.locator(f"a[href='{minutes_path}']").click()
        expect(p).to_have_url(re.compile(re.escape(minutes_path) + "$"))
        public.axe("la recherche")

        clerk.goto("/secretariat/comptes-rendus")
        expect(s.locator(f"#compte-rendu-{minutes_path.rsplit('/', 1)[1]}")).to_contain_text("Corrigé")
        clerk.axe("les comptes rendus du secrétariat")

        for v in (clerk, alice, public):
            assert not v.csp_errors(), v.csp_errors()
            assert not [m for m in v.console if m.startswith("pageerror")], v.console
    finally:
        for v in (clerk, alice, public):
            v.close()

    # -- the public record still verifies, with the minutes' leaves in it
    key = httpx.get(f"{forum.web_url}/ledger/key", timeout=30).text.strip()  # an auditor gets it elsewhere
    with ThreadPoolExecutor(1) as pool:  # Playwright's loop runs in this thread: verify in its own
        result = pool.submit(asyncio.run, verify_async(forum.web_url, key, tmp_path / "verify-state.json")).result()
    assert result.ok, result.message
