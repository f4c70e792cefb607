"""The web front against a running forum (every service a real process, real NATS): what it does with
bad input, bad links, bad cookies and missing rights. Each case checks the clear French message and
that nothing was half-written.

Long because it is a catalogue: one case per bad input."""
from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest

from forum_ouvert.launcher import Stack
from tests.support import caught_mail, link_in
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
    [msg] = caught_mail(forum.mail_dir, email, VERIFY_SUBJECT)
    return c.get(link_in(msg, "/inscription/verifier"))


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
    assert verify(c, forum, email).status_code == 200
    r = sign_in(c, forum, email)
    assert r.status_code == 303 and r.headers["location"] == "/espace"
    return c, email


def member_id_of(secretariat: httpx.Client, email: str) -> str:
    page = secretariat.get("/secretariat/membres", params={"statut": "all"}).text
    row = re.search(r'<tr id="membre-([^"]+)">(?:(?!</tr>).)*?' + re.escape(email), page, re.S)
    assert row, f"{email} not listed"
    return row.group(1)


@pytest.fixture(scope="module")
def secretariat(forum: Stack) -> Iterator[httpx.Client]:
    """A signed-in secretariat account, created with the CLI like an operator would."""
    email = new_email("secretariat")
    subprocess.run([sys.executable, "-m", "forum_ouvert.cli", "create-secretariat", email],
                   env={**os.environ, "FORUM_DATABASE_URL": forum.database_urls["registry"],
                        "FORUM_DATA_DIR": str(forum.data_dir)}, check=True, capture_output=True, timeout=120)
    c = client(forum)
    r = sign_in(c, forum, email)
    assert r.status_code == 303
    assert "Secrétariat" in text(c.get("/espace"))
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
    email = new_email("doublon")
    with client(forum) as c:
        assert register(c, email).status_code == 200
        r = register(c, email.upper(), full_name="Quelqu'un d'autre")
        assert r.status_code == 409
        assert "Un compte existe déjà avec cette adresse électronique" in field_error(r, "email")
        assert 'value="Quelqu&#39;un d&#39;autre"' in r.text
    mails = caught_mail(forum.mail_dir, email, VERIFY_SUBJECT, count=2, timeout=4)
    assert len(mails) == 1, "the duplicate must not send a second verification e-mail"


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
    for email in rejected:
        assert caught_mail(forum.mail_dir, email, timeout=3) == [], email


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
        r = verify(c, forum, email)
        assert r.status_code == 200 and h1(r) == "Adresse confirmée"
        assert "attend la validation du secrétariat" in text(r)
        r = verify(c, forum, email)  # the same link again
        assert r.status_code == 410 and h1(r) == "Lien de confirmation expiré ou déjà utilisé"
        assert "Ce lien a déjà été utilisé" in text(r)
        assert 'href="/connexion"' in r.text


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
        page = c.get("/connexion/lien", params={"token": "y" * 43})
        assert page.status_code == 200 and h1(page) == "Connexion au forum ouvert"  # GET never redeems
        r = c.post("/connexion/lien", data={"csrf_token": csrf_in(page), "token": "y" * 43})
        assert r.status_code == 404
        [newest, *_] = caught_mail(forum.mail_dir, email, SIGN_IN_SUBJECT)
        token = link_in(newest, "/connexion/lien").split("token=", 1)[1]
        r = c.post("/connexion/lien", data={"csrf_token": csrf_in(c.get("/")), "token": token})
        assert r.status_code == 410 and h1(r) == "Lien de connexion expiré ou déjà utilisé"


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
        assert r.status_code == 403  # not a form: no token read
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
        assert (await c.get("/")).status_code == 200  # pages are not limited


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
