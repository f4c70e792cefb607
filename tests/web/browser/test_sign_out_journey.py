"""Signing out for real, in headless Chromium against the running forum: « Se déconnecter » ends the
session on the server (a copy of the cookie taken before is worth nothing), and « Se déconnecter
partout », in « Mon espace », signs the member out of their other browsers too."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect

from forum_ouvert.launcher import Stack
from tests.web.browser.test_registration_journey import Visitor
from tests.web.test_web_sessions_end import Person

pytestmark = pytest.mark.browser


def sent_to_sign_in(v: Visitor) -> None:
    v.goto("/espace")
    expect(v.page).to_have_url(re.compile(r"/connexion$"))
    expect(v.page.get_by_text("Connectez-vous pour accéder à cette page.")).to_be_visible()


def test_sign_out_and_sign_out_everywhere(forum: Stack, browser: Browser) -> None:
    person = Person(forum)  # registered and verified: may sign in while awaiting approval
    laptop, phone, thief = Visitor(browser, forum), Visitor(browser, forum), Visitor(browser, forum)
    try:
        # -- « Se déconnecter »: the cookie it leaves behind is worth nothing
        laptop.goto("/")
        laptop.sign_in(person.email, 1)
        stolen = laptop.context.cookies()
        laptop.sign_out()
        thief.context.add_cookies(stolen)  # type: ignore[arg-type]
        sent_to_sign_in(thief)

        # -- two browsers signed in; « Se déconnecter partout » from one signs out both
        laptop.goto("/")
        laptop.sign_in(person.email, 2)
        phone.goto("/")
        phone.sign_in(person.email, 3)
        expect(phone.page.get_by_role("heading", name="Mes connexions")).to_be_visible()
        phone.axe("l'espace membre et ses connexions")
        phone.page.get_by_role("button", name="Se déconnecter partout").click()
        expect(phone.page.get_by_text("Vous êtes déconnecté·e de tous les navigateurs")).to_be_visible()
        expect(phone.page.get_by_role("link", name="Se connecter").first).to_be_visible()
        sent_to_sign_in(laptop)
        sent_to_sign_in(phone)
        assert not laptop.csp_errors() and not phone.csp_errors() and not thief.csp_errors()
    finally:
        for v in (laptop, phone, thief):
            v.close()
        person.close()
