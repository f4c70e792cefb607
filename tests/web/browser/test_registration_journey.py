"""A newcomer's whole journey in headless Chromium, against the running forum:

register -> read the e-mail in /dev/mail -> confirm the address (which signs in) -> sign out; the secretariat
signs in the same way and approves the registration; the member signs in again and is approved.

Along the way: no Content-Security-Policy error in the console, and axe-core finds no serious or
critical accessibility violation on the main pages.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from forum_ouvert.launcher import Stack
from tests.support import caught_mail

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[3]
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(folder) if (folder := os.environ.get("FORUM_SCREENSHOT_DIR")) else None


def screenshot(page: Page, name: str) -> None:
    """A full-page picture in FORUM_SCREENSHOT_DIR when it is set (to look at the pages; it checks nothing)."""
    if SCREENSHOTS is not None:
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)




class Visitor:
    """One person's browser tab, recording what the console says."""

    def __init__(self, browser: Browser, forum: Stack) -> None:
        self.forum = forum
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
        self.page: Page = self.context.new_page()
        self.console: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))

    def goto(self, path: str) -> None:
        self.page.goto(self.forum.web_url + path)

    def axe(self, name: str) -> None:
        """Run axe-core on the current page; no serious or critical violation allowed."""
        assert AXE.exists(), "axe-core missing: run `npm ci` at the root of the repository"
        # Evaluated through the DevTools protocol: the page's CSP (rightly) refuses injected <script> tags.
        self.page.evaluate(AXE.read_text() + "\n;true")
        result = self.page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        bad = [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
               for v in result["violations"] if v["impact"] in ("serious", "critical")]
        assert not bad, f"accessibility violations on {name}:\n" + "\n".join(bad)

    def open_mail(self, to: str, subject: str, count: int) -> None:
        """Open the newest e-mail to `to` whose subject contains `subject` in /dev/mail, once `count` exist."""
        # Waited for in the mail folder (the list page is loaded once it holds them, not polled meanwhile).
        caught_mail(self.forum.mail_dir, to, subject, timeout=30, count=count)
        deadline = time.monotonic() + 30
        while True:
            self.goto("/dev/mail")
            rows = self.page.locator("tbody tr").filter(has_text=to).filter(has_text=subject)
            if rows.count() >= count:
                break
            assert time.monotonic() < deadline, f"no e-mail « {subject} » for {to}"
            time.sleep(0.3)
        rows.first.get_by_role("link").click()  # newest first
        expect(self.page.get_by_role("heading", level=1)).to_contain_text(subject)

    def sign_in(self, email: str, count: int) -> None:
        self.page.get_by_role("link", name="Se connecter").first.click()
        expect(self.page).to_have_url(re.compile(r"/connexion$"))
        self.page.get_by_label("Adresse électronique").fill(email)
        self.page.get_by_role("button", name="Recevoir un lien de connexion").click()
        expect(self.page.get_by_text("Si un compte correspond à cette adresse, un lien de connexion vient "
                                     "d'être envoyé")).to_be_visible()
        self.open_mail(email, "lien de connexion", count)
        self.page.locator("a[href*='/connexion/lien?token=']").first.click()
        expect(self.page.get_by_role("heading", level=1)).to_have_text("Connexion au forum ouvert")
        self.page.get_by_role("button", name="Me connecter").click()
        expect(self.page).to_have_url(re.compile(r"/espace$"))

    def sign_out(self) -> None:
        self.page.get_by_role("button", name="Se déconnecter", exact=True).click()
        expect(self.page.get_by_text("Vous êtes déconnecté·e.")).to_be_visible()
        expect(self.page.get_by_role("link", name="Se connecter").first).to_be_visible()

    def csp_errors(self) -> list[str]:
        return [m for m in self.console if "Content Security Policy" in m or "Content-Security-Policy" in m]

    def close(self) -> None:
        self.context.close()


def create_secretariat(forum: Stack, email: str) -> None:
    subprocess.run([sys.executable, "-m", "forum_ouvert.cli", "create-secretariat", email, "--name",
                    "Secrétariat du forum"],
                   env={**os.environ, "FORUM_DATABASE_URL": forum.database_urls["registry"],
                        "FORUM_DATA_DIR": str(forum.data_dir)}, check=True, capture_output=True, timeout=120)


def test_registration_journey(forum: Stack, browser: Browser) -> None:
    tag = uuid.uuid4().hex[:8]
    email, name = f"claire-{tag}@example.org", f"Claire Lefèvre {tag}"
    secretariat_email = f"secretariat-{tag}@example.org"
    member = Visitor(browser, forum)
    page = member.page
    try:
        # -- home, then registration
        member.goto("/")
        expect(page).to_have_title(re.compile("Accueil — Forum ouvert"))
        expect(page.locator(".fr-header__service-title")).to_have_text("Forum ouvert")
        member.axe("l'accueil")
        screenshot(page, "web-home.png")
        page.locator(".fr-header__tools-links").get_by_role("link", name="S'inscrire").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("S'inscrire au forum ouvert")
        member.axe("l'inscription")

        page.get_by_role("button", name="S'inscrire").click()  # empty form: errors next to the fields
        expect(page.get_by_text("Le formulaire contient 4 erreurs")).to_be_visible()
        expect(page).to_have_title(re.compile("^Erreur : "))
        member.axe("l'inscription en erreur")

        page.get_by_label("Nom et prénom").fill(name)
        page.get_by_label("Adresse électronique").fill(email)
        page.get_by_label("Organisation (facultatif)").fill("Association pour la transparence")
        # DSFR draws its own radios and checkboxes over the real inputs: click the labels, as a person would.
        page.locator("label[for='college-civil_society']").click()
        expect(page.get_by_label("Organisations de la société civile")).to_be_checked()
        page.locator("label[for='charter_accepted']").click()
        expect(page.get_by_label("J'ai lu et j'accepte la charte du forum ouvert")).to_be_checked()
        page.get_by_role("button", name="S'inscrire").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Vérifiez votre messagerie")

        # -- the verification e-mail, read in /dev/mail, and its link
        member.open_mail(email, "Confirmez votre adresse", 1)
        screenshot(page, "web-mail.png")
        page.locator("a[href*='/inscription/verifier?token=']").first.click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Confirmer mon adresse électronique")
        member.axe("la confirmation de l'adresse")
        # -- confirming signs in: the member space says the registration awaits approval; sign out
        page.get_by_role("button", name="Confirmer mon adresse").click()
        expect(page).to_have_url(re.compile(r"/espace$"))
        expect(page.get_by_text("Votre inscription attend la validation du secrétariat")).to_be_visible()
        expect(page.locator(".fr-badge")).to_have_text("En attente de validation")
        expect(page.get_by_role("link", name=re.compile("Mon espace")).first).to_be_visible()
        member.axe("l'espace membre")
        member.sign_out()

        # -- the secretariat approves the registration in the back-office
        create_secretariat(forum, secretariat_email)
        secretariat = Visitor(browser, forum)
        try:
            secretariat.goto("/")
            secretariat.sign_in(secretariat_email, 1)
            s = secretariat.page
            s.locator(".fr-header__tools-links").get_by_role("link", name="Secrétariat", exact=True).click()
            expect(s.get_by_role("heading", level=1)).to_have_text("Secrétariat : tableau de bord")
            secretariat.axe("le tableau de bord du secrétariat")
            s.locator("#a-valider").get_by_role("link", name="Valider ou refuser les inscriptions").click()
            expect(s.get_by_role("heading", level=1)).to_have_text("Secrétariat : membres du forum")
            secretariat.axe("le back-office")
            screenshot(s, "web-secretariat.png")
            row = s.locator("tbody tr").filter(has_text=email)
            expect(row).to_have_count(1)
            row.get_by_role("button", name="Approuver").click()
            expect(s.get_by_text(f"L'inscription de {name} est validée.")).to_be_visible()
            expect(s.locator("tbody tr").filter(has_text=email)).to_have_count(0)  # no longer pending
            s.get_by_label("Afficher").select_option("approved")
            s.get_by_role("button", name="Filtrer").click()
            expect(s.locator("tbody tr").filter(has_text=email).locator(".fr-badge")).to_have_text("Membre validé·e")
            secretariat.sign_out()
            assert not secretariat.csp_errors(), secretariat.csp_errors()
        finally:
            secretariat.close()

        # -- the member signs in again: approved
        member.goto("/")
        member.sign_in(email, 1)
        expect(page.locator(".fr-badge")).to_have_text("Membre validé·e")
        expect(page.get_by_text("Vous êtes membre du forum ouvert")).to_be_visible()
        screenshot(page, "web-espace.png")
        member.sign_out()

        assert not member.csp_errors(), member.csp_errors()
        assert not [m for m in member.console if m.startswith("pageerror")], member.console
    finally:
        member.close()
