"""Writing to the secretariat, in headless Chromium, against the running forum:

a visitor finds « Contact » in the footer of the home page, sends the form empty (the errors are listed and
shown next to each field), fills it in and double-clicks « Envoyer le message »; the page confirms in French,
one message is stored, and the mail catcher receives two e-mails: one to the secretariat's address, whose
Reply-To is the visitor, and the visitor's copy (read in /dev/mail). The footer's other legal pages open.

axe-core checks the contact form (empty, in error), the confirmation and the legal pages; no
Content-Security-Policy error in the console.
"""
from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Browser, expect

from forum_ouvert.launcher import Stack
from tests.web.browser.test_registration_journey import Visitor, screenshot
from tests.web.browser.test_subscription_journey import plain, wait_mail
from tests.web.test_web_legal import stored_messages

pytestmark = pytest.mark.browser
SECRETARIAT = "secretariat@forum-ouvert.local"  # the setting's default, which the test forum keeps


def test_contact_journey(forum: Stack, browser: Browser) -> None:
    tag = uuid.uuid4().hex[:8]
    email, title = f"visiteuse-{tag}@example.org", f"Calendrier des ateliers {tag}"
    v = Visitor(browser, forum)
    p = v.page
    try:
        # -- the footer of every page leads to the contact form
        v.goto("/")
        footer = p.locator("#pied-de-page")
        footer.get_by_role("link", name="Contact", exact=True).click()
        expect(p).to_have_url(re.compile(r"/contact$"))
        expect(p.get_by_role("heading", level=1)).to_have_text("Contacter le secrétariat du forum")
        v.axe("le formulaire de contact")

        # -- sent empty: every field says what to write
        p.get_by_role("button", name="Envoyer le message").click()
        expect(p.get_by_text("Le formulaire contient 4 erreurs")).to_be_visible()
        expect(p.locator("#email-messages")).to_contain_text("Indiquez une adresse électronique valide")
        expect(p.get_by_label("Objet")).to_have_attribute("aria-invalid", "true")
        v.axe("le formulaire de contact en erreur")
        screenshot(p, "web-contact-errors.png")

        # -- filled in, and double-clicked: sent once
        p.get_by_label("Nom et prénom").fill("Rosa Parks")
        p.get_by_label("Adresse électronique").fill(email)
        p.get_by_label("Objet").fill(title)
        p.get_by_role("textbox", name=re.compile(r"^Votre message")).fill(
            "Bonjour,\nQuand auront lieu les prochains ateliers thématiques ?\nMerci d'avance.")
        p.get_by_role("button", name="Envoyer le message").dblclick()
        expect(p.get_by_role("heading", level=1)).to_have_text("Message envoyé")
        expect(p.get_by_role("status")).to_contain_text(f"Une copie vient d'être envoyée à {email}")
        v.axe("la confirmation d'envoi")
        assert len(stored_messages(forum, email)) == 1

        # -- the secretariat's e-mail answers to the visitor; the visitor's copy is in the mail catcher
        to_secretariat = wait_mail(forum, SECRETARIAT, title, timeout=120)
        assert to_secretariat["Reply-To"] == email
        assert str(to_secretariat["Subject"]) == f"[Contact] {title}"
        assert "Rosa Parks <" + email + ">" in plain(to_secretariat)
        wait_mail(forum, email, title, timeout=120)  # (then /dev/mail lists it at once)
        v.open_mail(email, "Votre message au forum ouvert", 1)
        expect(p.locator(".forum-mail-text")).to_contain_text("Quand auront lieu les prochains ateliers")
        expect(p.locator(".forum-mail-text")).to_contain_text(title)

        # -- the footer's legal pages
        for name, heading in (("Mentions légales", "Mentions légales"),
                              ("Données personnelles", "Données personnelles"),
                              ("Accessibilité : non conforme", "Déclaration d'accessibilité")):
            p.locator("#pied-de-page").get_by_role("link", name=name, exact=True).click()
            expect(p.get_by_role("heading", level=1)).to_have_text(heading)
            v.axe(f"la page « {heading} »")
        assert v.csp_errors() == []
    finally:
        v.close()
