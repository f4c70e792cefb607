"""The web front against a running forum (every service a real process, real NATS): what it does with
bad input, bad links, bad cookies and missing rights. Each case checks the clear French message and
that nothing was half-written.

Long because it is a catalogue: one case per bad input."""
from __future__ import annotations

import asyncio
import html
import os
import random
import re
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from forum_ouvert.launcher import Stack
from tests.support import caught_mail, confirm_address, link_in
from tests.web.test_web_visitor import make_cookie

pytestmark = pytest.mark.integration

EXPECTED_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; font-src 'self'; "
                "frame-ancestors 'none'; form-action 'self'; base-uri 'self'; object-src 'none'")
VERIFY_SUBJECT = "Confirmez"
SIGN_IN_SUBJECT = "connexion"


# ---------------------------------------------------------------- helpers
def new_email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.org"


def text(response: httpx.Response) -> str:
    """The page as plain text (tags dropped, entities decoded, spaces squeezed)."""
    body = re.sub(r"<[^>]+>", " ", response.text)
    return re.sub(r"\s+", " ", html.unescape(body))


def h1(response: httpx.Response) -> str:
    found = re.findall(r"<h1[^>]*>(.*?)</h1>", response.text, re.S)
    assert len(found) == 1, f"expected one h1, got {found}"
    return html.unescape(found[0]).strip()


def csrf_in(response: httpx.Response) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
    assert m, "no CSRF token in the page"
    return m.group(1)


def field_error(response: httpx.Response, field: str) -> str:
    """The error message shown in the field's message group, which the field (or its radio group) refers to."""
    assert re.search(rf'aria-(describedby|labelledby)="([^"]* )?{re.escape(field)}-messages"', response.text), \
        f"{field}: message not linked to the field"
    m = re.search(rf'id="{re.escape(field)}-messages"[^>]*>\s*<p class="fr-message fr-message--error">(.*?)</p>',
                  response.text, re.S)
    assert m, f"no error message for {field}"
    return html.unescape(m.group(1)).strip()


def client(forum: Stack) -> httpx.Client:
    return httpx.Client(base_url=forum.web_url, timeout=20)


def register(c: httpx.Client, email: str, **fields: str) -> httpx.Response:
    data = {"full_name": "Camille Dupont", "email": email, "organisation": "Association Transparence",
            "college": "civil_society", "charter_accepted": "on"}
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not None}
    return c.post("/inscription", data={"csrf_token": csrf_in(c.get("/inscription")), **data})


def verify(c: httpx.Client, forum: Stack, email: str) -> httpx.Response:
    """Open the verification link and confirm (which signs `c` in): the redirect to « Mon espace »."""
    [msg] = caught_mail(forum.mail_dir, email, VERIFY_SUBJECT)
    return confirm_address(c, link_in(msg, "/inscription/verifier"))


def sign_in(c: httpx.Client, forum: Stack, email: str) -> httpx.Response:
    before = len(caught_mail(forum.mail_dir, email, SIGN_IN_SUBJECT, timeout=0))
    r = c.post("/connexion", data={"csrf_token": csrf_in(c.get("/connexion")), "email": email})
    assert r.status_code == 200, text(r)
    mails = caught_mail(forum.mail_dir, email, SIGN_IN_SUBJECT, count=before + 1)
    assert len(mails) == before + 1, f"no sign-in e-mail for {email}"
    page = c.get(link_in(mails[0], "/connexion/lien"))  # newest first
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token
    return c.post("/connexion/lien", data={"csrf_token": csrf_in(page), "token": token.group(1)})


def member(forum: Stack, tag: str) -> tuple[httpx.Client, str]:
    """A registered, verified, signed-in member (awaiting approval)."""
    c, email = client(forum), new_email(tag)
    assert register(c, email).status_code == 200
    assert verify(c, forum, email).status_code == 303
    r = sign_in(c, forum, email)
    assert r.status_code == 303 and r.headers["location"] == "/espace"
    return c, email


def member_id_of(secretariat: httpx.Client, email: str) -> str:
    page = secretariat.get("/secretariat/membres", params={"statut": "all"}).text
    row = re.search(r'<tr id="membre-([^"]+)">(?:(?!</tr>).)*?' + re.escape(email), page, re.S)
    assert row, f"{email} not listed"
    return row.group(1)


def new_secretariat(forum: Stack) -> httpx.Client:
    """A signed-in secretariat account, created with the CLI like an operator would."""
    email = new_email("secretariat")
    subprocess.run([sys.executable, "-m", "forum_ouvert.cli", "create-secretariat", email],
                   env={**os.environ, "FORUM_DATABASE_URL": forum.database_urls["registry"],
                        "FORUM_DATA_DIR": str(forum.data_dir)}, check=True, capture_output=True, timeout=120)
    c = client(forum)
    r = sign_in(c, forum, email)
    assert r.status_code == 303
    assert "Secrétariat" in text(c.get("/espace"))
    return c


@pytest.fixture(scope="module")
def secretariat(forum: Stack) -> Iterator[httpx.Client]:
    c = new_secretariat(forum)
    yield c
    c.close()


def listed(secretariat: httpx.Client, email: str) -> bool:
    return email in secretariat.get("/secretariat/membres", params={"statut": "all"}).text


# ---------------------------------------------------------------- headers, health, local mail
def test_security_headers_on_every_response(forum: Stack) -> None:
    with client(forum) as c:
        for path in ("/", "/inscription", "/page-qui-n-existe-pas", "/static/css/forum.css",
                     "/static/dsfr/dsfr.min.css", "/sante"):
            r = c.get(path)
            assert r.headers["content-security-policy"] == EXPECTED_CSP, path
            assert r.headers["x-content-type-options"] == "nosniff", path
            assert r.headers["referrer-policy"] == "same-origin", path
            assert r.headers["x-frame-options"] == "DENY", path
            assert "camera=()" in r.headers["permissions-policy"], path
    with client(forum) as c:  # a first visit to a page with a form gives the visitor a cookie
        r = c.get("/inscription")
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        assert r.headers["cache-control"] == "no-store"


def test_not_found_is_a_french_page(forum: Stack) -> None:
    with client(forum) as c:
        r = c.get("/page-qui-n-existe-pas")
        assert r.status_code == 404 and h1(r) == "Page introuvable"
        assert '<html lang="fr">' in r.text


def test_health(forum: Stack) -> None:
    r = httpx.get(f"{forum.web_url}/sante", timeout=10)
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "services": {s: "ok" for s in ("registry", "forum", "minutes",
                                                                       "notifications")}}


def test_request_id_is_echoed(forum: Stack) -> None:
    r = httpx.get(f"{forum.web_url}/", headers={"X-Request-ID": "test-request-0001"})
    assert r.headers["x-request-id"] == "test-request-0001"
    r = httpx.get(f"{forum.web_url}/", headers={"X-Request-ID": "pas valable; <script>"})
    assert re.fullmatch(r"[0-9a-f-]{36}", r.headers["x-request-id"])


def test_dev_mail_in_local_mode(forum: Stack) -> None:
    with client(forum) as c:
        email = new_email("devmail")
        assert register(c, email).status_code == 200
        caught_mail(forum.mail_dir, email, VERIFY_SUBJECT)
        listing = c.get("/dev/mail")
        assert listing.status_code == 200 and h1(listing) == "Courriels reçus (mode local)"
        m = re.search(r'<td>' + re.escape(email) + r'</td>\s*<td><a href="(/dev/mail/[^"]+)">', listing.text)
        assert m, "the caught e-mail is not listed"
        shown = c.get(m.group(1))
        assert shown.status_code == 200 and "Confirmez votre adresse" in h1(shown)
        assert re.search(r'<a href="http://[^"]+/inscription/verifier\?token=[^"]+">', shown.text)
        frame = c.get(m.group(1) + "/html")
        assert frame.status_code == 200
        assert "sandbox" in frame.headers["content-security-policy"]
        assert "script-src" not in frame.headers["content-security-policy"]  # default-src 'none' covers it
        assert c.get("/dev/mail/inconnu-1234").status_code == 404
        assert c.get("/dev/mail/..%2F..%2Fsecret").status_code == 404


# ---------------------------------------------------------------- registration
def test_register_invalid_email_keeps_input(forum: Stack, secretariat: httpx.Client) -> None:
    with client(forum) as c:
        r = register(c, "pas-une-adresse", full_name="Jeanne Invalide")
        assert r.status_code == 422
        assert field_error(r, "email") == "Adresse électronique invalide."
        assert 'value="Jeanne Invalide"' in r.text and 'value="pas-une-adresse"' in r.text
        assert re.search(r'value="civil_society"\s+checked', r.text)  # the chosen college stays chosen
        assert h1(r) == "S'inscrire au forum ouvert"
        assert "<title>Erreur : " in r.text
    assert not listed(secretariat, "pas-une-adresse")


def test_register_missing_fields(forum: Stack) -> None:
    with client(forum) as c:
        r = c.post("/inscription", data={"csrf_token": csrf_in(c.get("/inscription"))})
        assert r.status_code == 422
        assert field_error(r, "full_name") == "Ce champ est obligatoire."
        assert field_error(r, "email") == "Ce champ est obligatoire."
        assert field_error(r, "college") == "Choisissez votre collège."
        assert field_error(r, "charter_accepted") == "Vous devez accepter la charte du forum pour vous inscrire."
        assert "Le formulaire contient 4 erreurs" in text(r)


def test_register_names_without_hidden_characters(forum: Stack, secretariat: httpx.Client) -> None:
    """The registry refuses them too (its request contract is the web front's): here through the web."""
    cases = {
        "Camille\r\nDupont": "Ce champ tient sur une seule ligne : retirez les retours à la ligne.",
        "Camille\u202eeliF": "Ce champ contient un caractère qui inverse le sens d'écriture (contrôle bidirectionnel) : "
                             "retirez-le.",
        "\u200b\u200c\u200d\ufeff": "Ce champ ne contient que des caractères invisibles : écrivez un texte.",
    }
    emails = []
    with client(forum) as c:
        for name, message in cases.items():
            emails.append(email := new_email("nom-cache"))
            r = register(c, email, full_name=name)
            assert r.status_code == 422 and field_error(r, "full_name") == message, name
            r = register(c, email, organisation=name)
            assert r.status_code == 422 and field_error(r, "organisation") == message, name
        email = new_email("nom-nfc")
        assert register(c, email, full_name="Ame\u0301lie Lefe\u0300vre").status_code == 200
    assert "Amélie Lefèvre" in secretariat.get("/secretariat/membres", params={"statut": "all"}).text  # NFC
    for email in emails:
        assert not listed(secretariat, email)


def test_numbers_are_ascii_digits(forum: Stack, secretariat: httpx.Client) -> None:
    token = csrf_in(secretariat.get("/secretariat/seances/nouvelle"))
    for capacity in ("²", "٣", "１２", "-1", "1_000"):
        r = secretariat.post("/secretariat/seances/nouvelle", data={"csrf_token": token, "capacity": capacity})
        assert r.status_code == 422, capacity
        assert field_error(r, "capacity") == "Saisissez un nombre entier (chiffres 0 à 9).", capacity
    for path in ("/registre/9223372036854775807", "/registre/9223372036854775808", "/registre/²", "/registre/٣"):
        r = secretariat.get(path)
        assert r.status_code == 404 and h1(r) == "Enregistrement introuvable", path
    for path in ("/flux/seances/archives/².atom", "/comptes-rendus?annee=²", "/comptes-rendus?annee=٢٠٢٥"):
        assert secretariat.get(path).status_code in (400, 404), path
    r = secretariat.get("/ledger/entries", params={"start": "9223372036854775807", "end": "9223372036854775808"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "end"]
    r = secretariat.get("/ledger/proof/inclusion", params={"index": "0", "size": "9223372036854775807"})
    assert r.status_code == 404 and "detail" in r.json()


def test_register_over_long_fields(forum: Stack, secretariat: httpx.Client) -> None:
    email = new_email("long")
    with client(forum) as c:
        r = register(c, email, full_name="N" * 121, organisation="O" * 161)
        assert r.status_code == 422
        assert field_error(r, "full_name") == "Ce champ ne doit pas dépasser 120 caractères."
        assert field_error(r, "organisation") == "Ce champ ne doit pas dépasser 160 caractères."
        r = register(c, "a" * 250 + "@example.org")
        assert r.status_code == 422
        assert field_error(r, "email") == "Ce champ ne doit pas dépasser 254 caractères."
        r = register(c, new_email("control"), full_name="Nom\x00avec un octet nul")
        assert r.status_code == 422
        assert field_error(r, "full_name") == "Ce champ contient des caractères non autorisés."
    assert not listed(secretariat, email)


def test_register_without_accepting_the_charter(forum: Stack, secretariat: httpx.Client) -> None:
    email = new_email("charte")
    with client(forum) as c:
        r = register(c, email, charter_accepted=None)
        assert r.status_code == 422
        assert field_error(r, "charter_accepted") == "Vous devez accepter la charte du forum pour vous inscrire."
        assert f'value="{email}"' in r.text
        r = register(c, email, college="martians")
        assert r.status_code == 422 and field_error(r, "college") == "Choisissez votre collège."
    assert not listed(secretariat, email)


def test_duplicate_registration(forum: Stack) -> None:
    """A known address gets the page a new one gets (a 409 would tell anyone who is a member); its owner,
    whose address is still unconfirmed, is mailed a new verification link, and no second account is made."""
    email = new_email("doublon")
    with client(forum) as c:
        first = register(c, email)
        again = register(c, email.upper(), full_name="Quelqu'un d'autre")
        assert first.status_code == again.status_code == 200 and h1(first) == h1(again)
    mails = caught_mail(forum.mail_dir, email, VERIFY_SUBJECT, count=2)
    assert len(mails) == 2, "the owner of the address hears of the second registration"


def test_rejected_registrations_send_no_mail(forum: Stack) -> None:
    """After each rejected registration, asking for a sign-in link for that address sends nothing:
    no account was half-created."""
    rejected = [new_email("refus-charte"), new_email("refus-csrf"), new_email("refus-long")]
    with client(forum) as c:
        assert register(c, rejected[0], charter_accepted=None).status_code == 422
        r = c.post("/inscription", data={"full_name": "Sans Jeton", "email": rejected[1], "college": "citizen",
                                         "charter_accepted": "on"})
        assert r.status_code == 403
        assert register(c, rejected[2], full_name="N" * 500).status_code == 422
        for email in rejected:
            r = c.post("/connexion", data={"csrf_token": csrf_in(c.get("/connexion")), "email": email})
            assert r.status_code == 200
        control = new_email("temoin")  # a valid registration in the same window does get its e-mail
        assert register(c, control).status_code == 200
    assert caught_mail(forum.mail_dir, control, VERIFY_SUBJECT)
    quiet_until = time.monotonic() + 3  # one wait for the three: what they were sent would have arrived by then
    for email in rejected:
        assert caught_mail(forum.mail_dir, email, timeout=max(0.0, quiet_until - time.monotonic())) == [], email


# ---------------------------------------------------------------- links
def test_verification_links(forum: Stack) -> None:
    email = new_email("lien")
    with client(forum) as c:
        assert register(c, email).status_code == 200
        r = c.get("/inscription/verifier", params={"token": "abc"})
        assert r.status_code == 404 and h1(r) == "Lien de confirmation non valable"
        assert 'href="/connexion"' in r.text  # a way to get a new link
        r = c.get("/inscription/verifier")
        assert r.status_code == 404
        r = c.get("/inscription/verifier", params={"token": "x" * 43})
        assert r.status_code == 404
        assert "Ce lien n'est pas valable" in text(r)
        r = verify(c, forum, email)  # confirming signs in
        assert r.status_code == 303 and r.headers["location"] == "/espace"
        assert "attend la validation du secrétariat" in text(c.get("/espace"))
        [msg] = caught_mail(forum.mail_dir, email, VERIFY_SUBJECT)
        r = c.get(link_in(msg, "/inscription/verifier"))  # the same link again: said at once, no button
        assert r.status_code == 410 and h1(r) == "Lien de confirmation expiré ou déjà utilisé"
        assert "Ce lien a déjà été utilisé" in text(r)
        assert 'href="/connexion"' in r.text and 'name="token"' not in r.text


def test_sign_in_gives_nothing_away(forum: Stack) -> None:
    known = new_email("connu")
    with client(forum) as c:
        assert register(c, known).status_code == 200
        answers = []
        for email in (known, new_email("inconnu")):
            r = c.post("/connexion", data={"csrf_token": csrf_in(c.get("/connexion")), "email": email})
            assert r.status_code == 200
            answers.append(re.search(r"<main.*</main>", r.text, re.S).group(0))  # type: ignore[union-attr]
        assert answers[0] == answers[1]
        assert "Si un compte correspond à cette adresse, un lien de connexion vient d'être envoyé" in html.unescape(
            answers[0])
        r = c.post("/connexion", data={"csrf_token": csrf_in(c.get("/connexion")), "email": "nimporte quoi"})
        assert r.status_code == 422 and field_error(r, "email") == "Adresse électronique invalide."
    # the unverified member got a fresh verification link rather than a sign-in link
    assert len(caught_mail(forum.mail_dir, known, VERIFY_SUBJECT, count=2)) == 2


def test_sign_in_links(forum: Stack) -> None:
    c, email = member(forum, "relien")
    with closing(c):
        r = c.get("/connexion/lien", params={"token": "court"})
        assert r.status_code == 404 and h1(r) == "Lien de connexion non valable"
        r = c.get("/connexion/lien", params={"token": "y" * 43})
        assert r.status_code == 404 and h1(r) == "Lien de connexion non valable"  # unknown: said on opening
        r = c.post("/connexion/lien", data={"csrf_token": csrf_in(c.get("/")), "token": "y" * 43})
        assert r.status_code == 404
        [newest, *_] = caught_mail(forum.mail_dir, email, SIGN_IN_SUBJECT)
        token = link_in(newest, "/connexion/lien").split("token=", 1)[1]
        r = c.post("/connexion/lien", data={"csrf_token": csrf_in(c.get("/")), "token": token})
        assert r.status_code == 410 and h1(r) == "Lien de connexion expiré ou déjà utilisé"
        r = c.get("/connexion/lien", params={"token": token})  # opened again: said at once, no button
        assert r.status_code == 410 and h1(r) == "Lien de connexion expiré ou déjà utilisé"
        assert "Me connecter</button>" not in r.text


# ---------------------------------------------------------------- the visitor's cookie and CSRF
def test_tampered_cookie_is_signed_out(forum: Stack) -> None:
    c, _ = member(forum, "cookie")
    with closing(c):
        assert c.get("/espace").status_code == 200
        value = c.cookies["forum_session"]
        tampered = value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB")
        for bad in (tampered, "nimportequoi", "", "a.b.c"):
            with client(forum) as other:
                other.cookies.set("forum_session", bad)
                r = other.get("/espace")
                assert r.status_code == 303 and r.headers["location"] == "/connexion", bad
                r = other.get("/")
                assert r.status_code == 200 and "Se connecter" in text(r)
        # a well-formed cookie, signed with another key
        forged = make_cookie({"member_id": "quelqu-un", "csrf": "x" * 43, "since": 9e9}, key="une-autre-clef")
        with client(forum) as other:
            other.cookies.set("forum_session", forged)
            r = other.get("/espace")
            assert r.status_code == 303
            assert "forum_session=" in r.headers["set-cookie"]
        assert c.get("/espace").status_code == 200


def test_missing_or_wrong_csrf_token(forum: Stack, secretariat: httpx.Client) -> None:
    email = new_email("csrf")
    with client(forum) as c:
        c.get("/inscription")
        data = {"full_name": "Sans Jeton", "email": email, "college": "citizen", "charter_accepted": "on"}
        for token in (None, "faux-jeton"):
            r = c.post("/inscription", data={**data, **({"csrf_token": token} if token else {})})
            assert r.status_code == 403
            assert h1(r) == "Formulaire expiré, rechargez la page"
        r = c.post("/inscription", json={**data, "csrf_token": csrf_in(c.get("/inscription"))})
        assert r.status_code == 415 and h1(r) == "Format d'envoi non pris en charge"  # not a form
    assert not listed(secretariat, email)
    m, _ = member(forum, "csrf-membre")
    with closing(m):
        r = m.post("/deconnexion", data={})
        assert r.status_code == 403
        assert m.get("/espace").status_code == 200  # still signed in
        r = m.post("/espace/suppression", data={"csrf_token": "faux"})
        assert r.status_code == 403
        assert m.get("/espace").status_code == 200  # not erased


def test_member_pages_need_a_sign_in(forum: Stack) -> None:
    with client(forum) as c:
        for path in ("/espace", "/espace/donnees", "/espace/suppression", "/secretariat/membres"):
            r = c.get(path)
            assert r.status_code == 303 and r.headers["location"] == "/connexion", path
        assert "Connectez-vous pour accéder à cette page" in text(c.get("/connexion"))


def test_profile_update_errors(forum: Stack) -> None:
    c, _ = member(forum, "profil")
    with closing(c):
        token = csrf_in(c.get("/espace"))
        r = c.post("/espace/profil", data={"csrf_token": token, "full_name": "X", "organisation": "Mon asso"})
        assert r.status_code == 422
        assert field_error(r, "full_name") == "Ce champ doit contenir au moins 2 caractères."
        assert 'value="Mon asso"' in r.text
        r = c.post("/espace/profil", data={"csrf_token": token, "full_name": "Camille Martin",
                                           "organisation": "Y" * 161})
        assert r.status_code == 422 and field_error(r, "organisation").startswith("Ce champ ne doit pas dépasser")
        assert "Camille Dupont" in text(c.get("/espace"))  # nothing changed
        r = c.post("/espace/profil", data={"csrf_token": token, "full_name": "Camille Martin", "organisation": ""})
        assert r.status_code == 303
        assert "Camille Martin" in text(c.get("/espace"))


def test_erased_member_is_signed_out(forum: Stack) -> None:
    c, email = member(forum, "efface")
    with closing(c):
        data = c.get("/espace/donnees")
        assert data.status_code == 200 and "attachment" in data.headers["content-disposition"]
        assert data.json()["registry"]["member"]["email"] == email
        assert any(m["kind"] == "verify_email" for m in data.json()["notifications"]["emails"])
        old_cookie = c.cookies["forum_session"]
        r = c.post("/espace/suppression", data={"csrf_token": csrf_in(c.get("/espace/suppression"))})
        assert r.status_code == 200 and h1(r) == "Votre compte a été supprimé"
    with client(forum) as other:  # the cookie of before the erasure opens nothing
        other.cookies.set("forum_session", old_cookie)
        assert other.get("/espace").status_code == 303
        before = len(caught_mail(forum.mail_dir, email, timeout=0))
        other.post("/connexion", data={"csrf_token": csrf_in(other.get("/connexion")), "email": email})
    assert len(caught_mail(forum.mail_dir, email, count=before + 1, timeout=3)) == before


# ---------------------------------------------------------------- secretariat
def test_approval_by_a_non_secretariat_member(forum: Stack, secretariat: httpx.Client) -> None:
    target, target_email = member(forum, "cible")
    target.close()
    target_id = member_id_of(secretariat, target_email)
    c, _ = member(forum, "intrus")
    with closing(c):
        token = csrf_in(c.get("/espace"))
        r = c.post(f"/secretariat/membres/{target_id}/approuver", data={"csrf_token": token})
        assert r.status_code == 403 and h1(r) == "Accès refusé"
        assert "réservée au secrétariat" in text(r)
        r = c.post(f"/secretariat/membres/{target_id}/refuser", data={"csrf_token": token, "reason": "parce que"})
        assert r.status_code == 403
        assert c.get("/secretariat/membres").status_code == 403
    pending = secretariat.get("/secretariat/membres").text
    assert target_email in pending  # still awaiting a decision


def test_secretariat_errors(forum: Stack, secretariat: httpx.Client) -> None:
    token = csrf_in(secretariat.get("/secretariat/membres"))
    r = secretariat.post(f"/secretariat/membres/{uuid.uuid4()}/approuver", data={"csrf_token": token})
    assert r.status_code == 404 and "Membre inconnu" in text(r)
    r = secretariat.post(f"/secretariat/membres/{'z' * 300}/approuver", data={"csrf_token": token})
    assert r.status_code == 404
    assert secretariat.get("/secretariat/membres", params={"statut": "n-importe"}).status_code == 400

    m, email = member(forum, "decision")
    m.close()
    target_id = member_id_of(secretariat, email)
    r = secretariat.post(f"/secretariat/membres/{target_id}/refuser", data={"csrf_token": token, "reason": " "})
    assert r.status_code == 422
    assert field_error(r, f"reason-{target_id}").startswith("Indiquez le motif du refus")
    assert email in secretariat.get("/secretariat/membres").text  # still pending
    r = secretariat.post(f"/secretariat/membres/{target_id}/approuver", data={"csrf_token": token})
    assert r.status_code == 303
    r = secretariat.post(f"/secretariat/membres/{target_id}/refuser", data={"csrf_token": token,
                                                                            "reason": "Trop tard"})
    assert r.status_code == 409 and "déjà été traitée" in text(r)

    unverified = new_email("non-confirme")
    with client(forum) as c:
        assert register(c, unverified).status_code == 200
    uid = member_id_of(secretariat, unverified)
    r = secretariat.post(f"/secretariat/membres/{uid}/approuver", data={"csrf_token": token})
    assert r.status_code == 409 and "pas encore confirmé son adresse" in text(r)


# ---------------------------------------------------------------- rate limit (no running forum needed)
def test_sliding_window_limiter() -> None:
    from services.web.security import SlidingWindowLimiter

    now = [1000.0]
    limiter = SlidingWindowLimiter(3, window=60, clock=lambda: now[0])
    assert [limiter.hit("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.hit("b")  # per client address
    assert limiter.retry_after("a") == 61
    now[0] += 30
    assert not limiter.hit("a")
    now[0] += 30.5  # the first three hits left the window
    assert limiter.hit("a") and limiter.hit("a") and limiter.hit("a") and not limiter.hit("a")


def test_sliding_window_limiter_forgets_idle_clients() -> None:
    from services.web.security import SlidingWindowLimiter

    now = [0.0]
    limiter = SlidingWindowLimiter(1, window=60, clock=lambda: now[0], max_keys=10)
    for i in range(10):
        limiter.hit(f"client-{i}")
    now[0] = 120
    assert limiter.hit("nouveau")
    assert len(limiter._hits) == 1


async def test_rate_limited_page(tmp_path) -> None:  # noqa: ANN001
    from services.web.app import create_app
    from shared.settings import Settings

    app = create_app(Settings(secret_key="k" * 40, data_dir=tmp_path, rate_limit_per_minute=2))
    # ASGITransport does not run the lifespan: no NATS needed, and none is reached before the limiter.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web") as c:
        for _ in range(2):
            assert (await c.post("/connexion", data={"email": "a@example.org"})).status_code == 403  # counted
        r = await c.post("/connexion", data={"email": "a@example.org"})
        assert r.status_code == 429
        assert h1(r) == "Trop de tentatives" and "Patientez une minute" in text(r)
        assert int(r.headers["retry-after"]) > 0
        assert r.headers["content-security-policy"] == EXPECTED_CSP
        assert (await c.post("/inscription", data={})).status_code == 403  # its own window
        assert (await c.get("/charte")).status_code == 200  # pages are not limited (one that needs no service)


async def test_unexpected_error_is_a_french_page(tmp_path) -> None:  # noqa: ANN001
    from services.web.app import create_app
    from shared.settings import Settings

    app = create_app(Settings(secret_key="k" * 40, data_dir=tmp_path))

    @app.get("/boum")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://web") as c:
        r = await c.get("/boum")
        assert r.status_code == 500 and h1(r) == "Erreur inattendue"
        assert "secret internals" not in r.text and "Traceback" not in r.text
        assert r.headers["content-security-policy"] == EXPECTED_CSP
        r = await c.get("/espace")  # no RPC client (no lifespan) and not signed in: sign in first
        assert r.status_code == 303


async def test_a_request_bad_input_could_not_make_is_a_400(tmp_path) -> None:  # noqa: ANN001
    """A route that builds a service request from unchecked input answers a French 400 naming the field;
    any other model that does not validate stays a 500 (our bug, not the visitor's)."""
    from pydantic import BaseModel

    from services.web.app import create_app
    from shared.contracts.forum import CheckIn
    from shared.settings import Settings

    app = create_app(Settings(secret_key="k" * 40, data_dir=tmp_path))

    class Reply(BaseModel):
        size: int

    @app.get("/unchecked/{member_id}")
    async def unchecked(member_id: str) -> None:
        CheckIn(actor_id="a", session_id="s", member_id=member_id)

    @app.get("/bad-reply")
    async def bad_reply() -> None:
        Reply.model_validate({"size": "beaucoup"})

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://web") as c:
        r = await c.get("/unchecked/a%00b")
        assert r.status_code == 400 and h1(r) == "Requête incorrecte"
        assert "La requête est incorrecte : ce champ n'a pas la forme attendue (champ « member_id »)." in text(r)
        r = await c.get("/bad-reply")
        assert r.status_code == 500 and h1(r) == "Erreur inattendue"


def test_secret_key_is_generated_once(tmp_path) -> None:  # noqa: ANN001
    from services.web.security import secret_key
    from shared.settings import Settings

    settings = Settings(secret_key="", data_dir=tmp_path)
    key = secret_key(settings)
    assert len(key) >= 40 and secret_key(settings) == key
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    assert secret_key(Settings(secret_key="fixe", data_dir=tmp_path)) == "fixe"


async def test_theme_folder_can_be_swapped(tmp_path) -> None:  # noqa: ANN001
    from services.web.app import create_app
    from shared.settings import Settings

    (tmp_path / "theme" / "templates").mkdir(parents=True)
    (tmp_path / "theme" / "static").mkdir()
    (tmp_path / "theme" / "templates" / "base.html").write_text(
        '<!doctype html><html lang="fr"><title>{% block title %}{% endblock %}</title>'
        "<body><p>Autre thème</p>{% block content %}{% endblock %}</body></html>")
    (tmp_path / "theme" / "static" / "theme.css").write_text("body { color: black; }")
    app = create_app(Settings(secret_key="k" * 40, data_dir=tmp_path, theme_dir=tmp_path / "theme"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web") as c:
        r = await c.get("/charte")
        assert "Autre thème" in r.text and "fr-header" not in r.text
        assert h1(r) == "Charte du forum ouvert"  # page templates fall back to the default theme
        assert (await c.get("/static/theme.css")).status_code == 200


# ================================================================ every route, hostile input
# The web front's routes are read from the app itself, so a new route is fuzzed without being listed here.
# Real addresses and forms are found by crawling the site as a signed-in secretariat member; each form is
# posted as its page fills it, one field at a time replaced by a hostile value, with a valid CSRF token so
# that the form is really processed; every path and query parameter is replaced by hostile values too.
# The bar: no 5xx, and every refusal an HTML page in French (or JSON, for the JSON API).
HOSTILE = {
    "int64 max": "9223372036854775807", "-1": "-1", "0": "0", "²": "²", "٣": "٣", "NaN": "NaN",
    "controls": "a\r\nb\x00\x1b[0m", "bidi": "abc\u202egnp.exe", "zero-width": "\u200b\u200c\u200d\u2060\ufeff",
    "10k": "x" * 10_000,
}
PATH_HOSTILE = {**HOSTILE, "int64+1": "9223372036854775808", "10k": "x" * 2_000, "..": "..", "%": "%"}
# Every route × every parameter is fuzzed; by default with one value of each kind, drawn from a seed printed
# with the figures (FORUM_FUZZ_SEED=<seed> draws the same again), so that successive runs try the others.
# FORUM_FUZZ_VALUES=all sends every value to every parameter (about twice as long).
VALUE_KINDS = {
    "overflow": ("int64 max", "int64+1"),
    "other digits": ("²", "٣"),
    "signs": ("-1", "0", "NaN"),
    "characters": ("controls", "bidi", "zero-width"),
    "length": ("10k",),
    "path": ("..", "%"),
}
EVERY_VALUE = os.environ.get("FORUM_FUZZ_VALUES", "") == "all"
FUZZ_SEED = int(os.environ.get("FORUM_FUZZ_SEED") or random.randrange(10**6))


def sampled(values: dict[str, str], rng: random.Random) -> dict[str, str]:
    """The hostile values one parameter gets: one of each kind (all of them with EVERY_VALUE)."""
    if EVERY_VALUE:
        return values
    chosen = {rng.choice(kind) for kind in ([n for n in k if n in values] for k in VALUE_KINDS.values()) if kind}
    return {n: values[n] for n in values if n in chosen}
BAD_BODIES: dict[str, dict[str, Any]] = {
    "json": {"json": {"a": 1}},
    "text/plain": {"content": b"csrf_token=x", "headers": {"content-type": "text/plain"}},
    "garbage multipart": {"content": b"\x00\xff--", "headers": {"content-type": "multipart/form-data"}},
    "garbage form": {"content": b"%%%=\xff\xfe&&=%zz", "headers": {"content-type": "application/x-www-form-urlencoded"}},
}
# Posted last, one route after the other: they end the secretariat's session (or account).
SIGNS_OUT = re.compile(r"deconnexion|suppression")
# With a real id this sends a notice to every subscriber of the forum under test: hostile ids only.
HOSTILE_IDS_ONLY = ("/secretariat/annonces/{announcement_id}/envoyer",)
TEMPLATES = Path(__file__).resolve().parents[2] / "services" / "web" / "theme" / "templates"


@dataclass
class WebRoute:
    methods: set[str]
    path: str                  # the template, e.g. /seances/{session_id}
    regex: re.Pattern[str]
    params: list[str]          # path parameters
    query: list[str]           # declared query parameters
    source: str                # its module's source (to guess the fields of a form no page shows)


@dataclass
class Form:
    action: str                # path and query, as the page posts it
    fields: dict[str, str]     # as the page fills them (the CSRF token left out)
    limits: dict[str, int] = field(default_factory=dict)  # the fields' maxlength


@dataclass
class Tally:
    sent: int = 0
    by_class: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    signed_out: list[str] = field(default_factory=list)


class PageParser(HTMLParser):
    """Links and forms of a page, with the values the page fills the fields with."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.forms: list[tuple[str, str, dict[str, str], dict[str, int]]] = []  # (method, action, fields, limits)
        self._form: tuple[str, str, dict[str, str], dict[str, int]] | None = None
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in ("a", "link") and a.get("href", "").startswith("/") and not a["href"].startswith(("//", "/static")):
            self.links.append(a["href"].split("#", 1)[0])
        elif tag == "form":
            self._form = (a.get("method", "get").lower(), a.get("action", ""), {}, {})
            self.forms.append(self._form)
        elif self._form is not None and (name := a.get("name")):
            fields = self._form[2]
            if a.get("maxlength", "").isdigit():
                self._form[3][name] = int(a["maxlength"])
            if tag == "input":
                kind = a.get("type", "text").lower()
                if kind in ("checkbox", "radio"):
                    if "checked" in a or name not in fields:
                        fields[name] = a.get("value", "on") if "checked" in a else ""
                elif kind not in ("submit", "button", "file"):
                    fields[name] = a.get("value", "")
            elif tag == "textarea":
                self._textarea, fields[name] = name, ""
            elif tag == "select":
                self._select = name
                fields.setdefault(name, "")
        elif tag == "option" and self._form is not None and self._select:
            fields = self._form[2]
            if "selected" in a or not fields.get(self._select):
                fields[self._select] = a.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._form is not None and self._textarea:
            self._form[2][self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def web_routes(tmp: Path) -> list[WebRoute]:
    """Every FastAPI route of the web front, as the app declares it."""
    import inspect

    from fastapi.routing import APIRoute, iter_route_contexts

    from services.web.app import create_app
    from shared.settings import Settings

    app = create_app(Settings(secret_key="k" * 40, data_dir=tmp))
    routes = []
    for r in iter_route_contexts(app.routes):
        original = r.original_route
        if not isinstance(original, APIRoute):
            continue
        dependant = original.dependant
        routes.append(WebRoute(set(r.methods or ()) - {"HEAD"}, r.path, r.path_regex,
                               [p.name for p in dependant.path_params],
                               [p.alias or p.name for p in dependant.query_params],
                               inspect.getsource(inspect.getmodule(original.endpoint))))  # type: ignore[arg-type]
    return routes


def match(routes: list[WebRoute], method: str, url: str) -> tuple[WebRoute, dict[str, str]] | None:
    path = urlsplit(url).path
    for route in routes:
        if method in route.methods and (m := route.regex.match(path)):
            return route, {k: unquote(v) for k, v in m.groupdict().items()}
    return None


def fill(path: str, params: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: quote(params.get(m.group(1), "x"), safe=""), path)


def with_query(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name] + [(name, value)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def guessed_fields(route: WebRoute) -> dict[str, str]:
    """For a form no crawled page shows: the field names of the site's templates that its module reads."""
    names = set(re.findall(r'name="([a-z_]+)"', "".join(p.read_text() for p in TEMPLATES.glob("*.html"))))
    return {n: "" for n in sorted(names) if f'"{n}"' in route.source and n != "csrf_token"}


def seed(c: httpx.Client, forum: Stack) -> dict[str, str]:
    """A future session (with the secretariat's RSVP), a past one with a decision, a vote and a minutes
    draft, an announcement draft, a commitment and a member waiting for approval: so that every page and
    form has something real."""
    now = datetime.now(UTC)
    paris = ZoneInfo("Europe/Paris")

    def local(delta: timedelta) -> str:
        return (now + delta).astimezone(paris).strftime("%Y-%m-%dT%H:%M")

    def post(path: str, data: dict[str, str], *, until_known: bool = False) -> httpx.Response:
        # 403 until each service has learnt the secretariat's role; with until_known, 404 until the service
        # has learnt of the session (it arrives by event, not by the request that created it)
        waiting = {403, 404} if until_known else {403}
        deadline = time.monotonic() + 60
        while (r := c.post(path, data={"csrf_token": csrf_in(c.get("/espace")), **data})).status_code in waiting:
            assert time.monotonic() < deadline, text(r)
            time.sleep(0.2)
        return r

    def session(start: timedelta) -> str:
        form = {"title": f"Séance fuzz {uuid.uuid4().hex[:6]}", "kind": "plenary", "theme": "", "description": "",
                "starts_at": local(start), "ends_at": local(start + timedelta(hours=2)), "place": "CESE",
                "online_url": "", "capacity": "20", "rsvp_opens_at": local(start - timedelta(days=3)),
                "rsvp_closes_at": local(start - timedelta(hours=1)), "agenda": "Accueil\nBilan"}
        r = post("/secretariat/seances/nouvelle", form)
        assert r.status_code == 303, text(r)
        return r.headers["location"].rsplit("/", 1)[1]

    ids = {"future": session(timedelta(days=3)), "past": session(-timedelta(hours=3))}
    past = ids["past"]
    r = post(f"/secretariat/decisions/nouvelle?seance={past}",
             {"agenda_position": "1", "title": "Décision du fuzz", "text": "Texte.", "method": "consensus",
              "outcome": "adopted", "commitment_code": ""})
    assert r.status_code == 303, text(r)
    r = post(f"/secretariat/votes/nouveau?seance={past}",
             {"agenda_position": "2", "question": "Question du fuzz", "options": "Oui\nNon",
              "eligibility": "approved_members", "opens_at": local(timedelta(0)), "closes_at": local(timedelta(days=7))})
    assert r.status_code == 303, text(r)
    r = post("/secretariat/comptes-rendus/rediger", {"seance": past}, until_known=True)
    assert r.status_code == 303, text(r)
    r = post("/secretariat/annonces/nouvelle", {"title": "Annonce du fuzz", "body": "Texte.", "topic": "announcements"})
    assert r.status_code == 303, text(r)
    r = post("/secretariat/engagements", {"code": f"8.{uuid.uuid4().hex[:3]}", "title": "Engagement du fuzz",
                                          "plan": "2024-2026"})
    assert r.status_code == 303, text(r)
    r = post(f"/seances/{ids['future']}/reponse", {"answer": "attend"})
    assert r.status_code == 303, text(r)
    with httpx.Client(base_url=str(c.base_url), timeout=20) as other:
        email = new_email("fuzz")
        assert register(other, email).status_code == 200
        assert verify(other, forum, email).status_code == 303
    return ids


def crawl(c: httpx.Client, routes: list[WebRoute], seeds: list[str], per_route: int = 2
          ) -> tuple[dict[str, dict[str, str]], dict[str, Form], dict[str, set[str]]]:
    """Real path parameters (per route template), the first post form of each POST route and the query
    names of each GET route, found on the pages of the site: the pages linked from `seeds`, one or two
    per route, then one of each GET route not reached by a link."""
    params: dict[str, dict[str, str]] = {}
    forms: dict[str, Form] = {}
    query_names: dict[str, set[str]] = defaultdict(set)
    visits: Counter[str] = Counter()
    by_name: dict[str, str] = {}  # a real value of each path parameter name

    def visit(url: str) -> list[str]:
        found = match(routes, "GET", url)
        if found is None:
            return []
        route, values = found
        query_names[route.path].update(k for k, _ in parse_qsl(urlsplit(url).query))
        if visits[route.path] >= per_route:
            return []
        visits[route.path] += 1
        params.setdefault(route.path, values)
        by_name.update({k: v for k, v in values.items() if k not in by_name})
        r = c.get(url)
        if "text/html" not in r.headers.get("content-type", ""):
            return []
        page = PageParser()
        page.feed(r.text)
        for method, action, fields, limits in page.forms:
            fields.pop("csrf_token", None)
            if method == "post" and (target := match(routes, "POST", action or url)):
                forms.setdefault(target[0].path, Form(action or url, fields, limits))
                params.setdefault(target[0].path, target[1])
            elif method == "get" and (target := match(routes, "GET", action or url)):
                query_names[target[0].path].update(fields)
        return page.links

    queue, seen = list(seeds), set()
    while queue:
        url = queue.pop(0)
        if url not in seen:
            seen.add(url)
            queue.extend(visit(url))
    for route in routes:
        if "GET" in route.methods and not visits[route.path] and all(p in by_name for p in route.params):
            visit(fill(route.path, by_name))
    for route in routes:  # POST routes whose page was not found: the ids of a GET route with the same names
        if route.path not in params and all(p in by_name for p in route.params):
            params[route.path] = {p: by_name[p] for p in route.params}
    return params, forms, query_names


def fuzz_jobs(routes: list[WebRoute], params: dict[str, dict[str, str]], forms: dict[str, Form],
              query_names: dict[str, set[str]], csrf: str, rng: random.Random,
              ) -> list[tuple[str, str, dict[str, Any], str]]:
    """(method, url, httpx arguments, what) of every hostile request, the routes that sign out last."""
    jobs: list[tuple[str, str, dict[str, Any], str]] = []
    for route in sorted(routes, key=lambda r: bool(SIGNS_OUT.search(r.path))):
        real = params.get(route.path, {})
        if "GET" in route.methods:
            base = fill(route.path, real)
            for name in route.params:
                for what, value in sampled(PATH_HOSTILE, rng).items():
                    jobs.append(("GET", fill(route.path, {**real, name: value}), {}, f"{name}={what}"))
            for name in sorted(set(route.query) | query_names.get(route.path, set())):
                for what, value in sampled(HOSTILE, rng).items():
                    jobs.append(("GET", with_query(base, name, value), {}, f"?{name}={what}"))
        if "POST" in route.methods:
            form = forms.get(route.path) or Form(fill(route.path, real), guessed_fields(route))
            query = urlsplit(form.action).query
            if route.path in HOSTILE_IDS_ONLY:
                form = Form(fill(route.path, {}), form.fields)
            base = {"csrf_token": csrf, **form.fields}
            for name in route.params:
                for what, value in sampled(PATH_HOSTILE, rng).items():
                    url = fill(route.path, {**real, name: value}) + (f"?{query}" if query else "")
                    jobs.append(("POST", url, {"data": base}, f"{name}={what}"))
            for name in sorted(form.fields):
                for what, value in sampled(HOSTILE, rng).items():
                    jobs.append(("POST", form.action, {"data": {**base, name: value}}, f"{name}={what}"))
            for name, limit in form.limits.items():  # the server refuses what the page's maxlength refuses
                jobs.append(("POST", form.action, {"data": {**base, name: "1" * (limit + 1)}},
                             f"{name}: {limit + 1} characters, maxlength {limit}"))
            for what, kw in BAD_BODIES.items():
                jobs.append(("POST", form.action, kw, what))
            jobs.append(("POST", form.action, {"files": {"fichier": ("a.txt", b"x" * 100)}, "data": base},
                         "multipart with a file"))
            jobs.append(("POST", form.action, {"data": {**base, "csrf_token": "faux"}}, "wrong CSRF token"))
    return jobs


def test_the_fuzz_tries_each_kind_of_hostile_value_on_each_parameter() -> None:
    kinds = [n for names in VALUE_KINDS.values() for n in names]
    assert sorted(kinds) == sorted(set(kinds)) == sorted(PATH_HOSTILE), "each hostile value has one kind"
    rng, drawn = random.Random(0), Counter[str]()
    for values in (HOSTILE, PATH_HOSTILE):
        for _ in range(300):
            chosen = sampled(values, rng)
            drawn.update(chosen.keys())
            if EVERY_VALUE:
                assert chosen == values
                continue
            for names in VALUE_KINDS.values():
                assert len(chosen.keys() & set(names)) == (1 if set(names) & values.keys() else 0), (names, chosen)
    assert set(drawn) == set(PATH_HOSTILE)  # over many parameters, every value is tried


def field_message(r: httpx.Response, name: str) -> str | None:
    """The error shown next to a field (its id is the field's name, or starts with it), if any."""
    m = re.search(rf'id="{re.escape(name)}(-[\w-]+)?-messages"[^>]*>\s*<p class="fr-message fr-message--error">(.*?)</p>',
                  r.text, re.S)
    return html.unescape(m.group(2)).strip() if m else None


async def blast(client: httpx.AsyncClient, tally: Tally, jobs: list[tuple[str, str, dict[str, Any], str]],
                concurrency: int = 4) -> None:
    """Send the jobs, those that sign out one after the other at the end; count the answers, note the 5xx,
    the refusals that are not a French page, the wrong CSRF tokens not refused, the requests signed out."""
    gate = asyncio.Semaphore(concurrency)

    async def one(method: str, url: str, kw: dict[str, Any], what: str) -> None:
        async with gate:
            try:
                r = await client.request(method, url, **kw)
            except httpx.HTTPError as exc:
                tally.failures.append(f"{method} {url[:120]} [{what}]: {type(exc).__name__}")
                return
        tally.sent += 1
        tally.by_class[f"{r.status_code // 100}xx"] += 1
        where = f"{method} {url[:120]} [{what}]"
        if r.status_code >= 500:
            tally.failures.append(f"{where}: {r.status_code}")
        elif r.status_code >= 400 and "text/html" in r.headers.get("content-type", "") \
                and '<html lang="fr">' not in r.text:
            tally.failures.append(f"{where}: {r.status_code} without the French page")
        elif what == "wrong CSRF token" and r.status_code != 403 and urlsplit(url).path != "/abonnements/desabonner":
            tally.failures.append(f"{where}: {r.status_code}, not 403")
        elif m := re.search(r"^(\w+): \d+ characters, maxlength (\d+)$", what):
            name, limit = m.groups()
            if r.status_code < 400:
                tally.failures.append(f"{where}: {r.status_code}, accepted")
            elif (said := field_message(r, name)) is not None and limit not in re.sub(r"(?<=\d)\s(?=\d{3}\b)", "", said):
                tally.failures.append(f"{where}: {r.status_code}, « {said} » does not give the limit")
        if r.status_code == 303 and r.headers.get("location") == "/connexion":
            tally.signed_out.append(where)

    last = [j for j in jobs if SIGNS_OUT.search(urlsplit(j[1]).path)]
    await asyncio.gather(*(one(*j) for j in jobs if j not in last))
    for job in last:
        await one(*job)


async def test_every_route_with_hostile_input(forum: Stack, tmp_path: Path) -> None:
    started = time.monotonic()
    routes = web_routes(tmp_path)
    secretariat = new_secretariat(forum)  # its own: the fuzz ends by signing it out and erasing it
    ids = seed(secretariat, forum)
    params, forms, query_names = crawl(secretariat, routes, [
        "/", "/espace", "/secretariat/membres", f"/seances/{ids['future']}", f"/seances/{ids['past']}",
        f"/secretariat/seances/{ids['past']}/participants",
        *(r.path for r in routes if "GET" in r.methods and not r.params)])
    crawled = time.monotonic()
    tally = Tally()
    async with httpx.AsyncClient(base_url=forum.web_url, timeout=60, cookies=secretariat.cookies) as c:
        jobs = fuzz_jobs(routes, params, forms, query_names, csrf_in(await c.get("/espace")), random.Random(FUZZ_SEED))
        await blast(c, tally, jobs)
    guessed = sorted(r.path for r in routes if "POST" in r.methods and r.path not in forms)
    values = "every value" if EVERY_VALUE else f"sampled values, FORUM_FUZZ_SEED={FUZZ_SEED}"
    print(f"\nfuzz: {len(routes)} routes, {len(forms)} forms found on the pages ({len(guessed)} POST routes with "
          f"guessed fields: {', '.join(guessed)}); {tally.sent} requests ({values}) in "
          f"{time.monotonic() - crawled:.0f} s (seed and crawl: {crawled - started:.0f} s): "
          + ", ".join(f"{k} {v}" for k, v in sorted(tally.by_class.items())))
    secretariat.close()
    assert not tally.failures, (f"{len(tally.failures)} failures ({values}):\n"
                                + "\n".join(tally.failures[:80]))
    # Forms must have been processed as the secretariat's: signed out only by the routes that sign out.
    early = [w for w in tally.signed_out if not SIGNS_OUT.search(w.split(" ")[1])]
    assert not early, f"{len(early)} requests signed out:\n" + "\n".join(early[:20])
