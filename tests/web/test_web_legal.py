"""The legal pages, the contact form, robots.txt and the sitemap, over HTTP against the running forum
(every service a real process, real NATS, the real databases, e-mails caught by the mail catcher):

the mentions légales name the publisher, the director of publication and the host; the privacy page names
the data controller, the data protection officer, purposes and legal bases, recipients, retention periods,
the rights with the links that exercise them, and the CNIL; the accessibility statement has the RGAA
statement's parts and is dated; every page's footer links them. The contact form refuses bad input with
French messages next to the fields, sends once per one-time token, limits each address (and each client);
robots.txt closes what must not be indexed; sitemap.xml is sitemaps.org 0.9 with absolute addresses, lists
every kind of public page, and each address answers 200. An operator's file replaces a default text.
"""
from __future__ import annotations

import asyncio
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlmodel import Session, select

from forum_ouvert.launcher import Stack
from services.notifications.models import ContactMessage
from services.web.app import create_app
from shared import clock
from shared.contracts.decisions import OpenVote
from shared.rpc import RpcClient
from shared.settings import Settings
from tests.web.test_web_bad_input import csrf_in, field_error, h1, text
from tests.web.test_web_decisions import record
from tests.web.test_web_open_data import new_session, published_minutes
from tests.web.test_web_subscriptions import mails_to

pytestmark = pytest.mark.integration
H = timedelta(hours=1)
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
LEGAL_PAGES = ("/mentions-legales", "/donnees-personnelles", "/accessibilite", "/contact")


@pytest.fixture
async def web(forum: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=forum.web_url, timeout=60) as c:
        yield c


def stored_messages(forum: Stack, email: str) -> list[ContactMessage]:
    engine = create_engine(forum.database_urls["notifications"].replace("sqlite+aiosqlite://", "sqlite://"))
    try:
        with Session(engine) as tx:
            return list(tx.exec(select(ContactMessage).where(ContactMessage.email == email)).all())
    finally:
        engine.dispose()


# ================================================================ the legal pages
async def test_the_legal_pages_say_what_the_law_asks(web: httpx.AsyncClient) -> None:
    r = await web.get("/mentions-legales")
    assert r.status_code == 200 and h1(r) == "Mentions légales"
    page = text(r)
    for mention in ("Éditeur du site", "Conseil économique, social et environnemental (CESE)",
                    "9, place d'Iéna, 75775 Paris Cedex 16", "Directeur de la publication",
                    "Thierry Beaudet, président du CESE", "Hébergement", "Licence Ouverte / Etalab 2.0"):
        assert mention in page, mention

    r = await web.get("/donnees-personnelles")
    assert r.status_code == 200 and h1(r) == "Données personnelles"
    page = text(r)
    for mention in ("Responsable du traitement", "Délégué à la protection des données",
                    "Délégué à la protection des données du CESE", "Base légale", "mission d'intérêt public",
                    "consentement", "Qui reçoit vos données", "Combien de temps elles sont conservées",
                    "14 jours au plus", "Demande d'abonnement non confirmée 7 jours",
                    "Message envoyé par le formulaire de contact 365 jours", "Réclamation auprès de la CNIL",
                    "l'adresse et l'objet de chaque envoi le sont au plus tard 365 jours après l'envoi",
                    "3, place de Fontenoy, TSA 80715, 75334 Paris Cedex 07"):
        assert mention in page, mention
    for link in ("/espace/donnees", "/espace/suppression", "/abonnements/lien", "https://www.cnil.fr/fr/plaintes"):
        assert f'href="{link}"' in r.text, link

    r = await web.get("/accessibilite")
    assert r.status_code == 200 and h1(r) == "Déclaration d'accessibilité"
    page = text(r)
    for mention in ("État de conformité", "non conforme", "RGAA), version 4.1.2", "Résultats des tests",
                    "axe-core", "Contenus non accessibles", "Établissement de cette déclaration",
                    "Cette déclaration a été établie le", "Voies de recours", "Défenseur des droits"):
        assert mention in page, mention
    assert re.search(r"établie le \d{1,2} \w+ 20\d\d", page)

    home = (await web.get("/")).text
    footer = home.split('id="pied-de-page"', 1)[1]
    for path, label in (("/accessibilite", "Accessibilité : non conforme"), ("/mentions-legales", "Mentions légales"),
                        ("/donnees-personnelles", "Données personnelles"), ("/contact", "Contact")):
        assert f'href="{path}">{label}</a>' in footer, label


async def test_an_operators_file_replaces_a_default_text(tmp_path: Path) -> None:
    """No forum needed: the pages render from the files and the settings alone."""
    texts = tmp_path / "textes"
    texts.mkdir()
    (texts / "mentions_legales.html").write_text(
        "<h2>Éditeur</h2><p>Texte de l'opérateur : {{ site.publisher }}, dirigé par {{ site.director }}.</p>",
        encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data", legal_dir=texts, site_publisher="Préfecture de l'Exemple",
                        publication_director="Camille Dupont", accessibility_status="partiellement conforme")
    client = TestClient(create_app(settings))  # no lifespan: these pages ask no service

    r = client.get("/mentions-legales")
    assert r.status_code == 200
    assert "Texte de l'opérateur : Préfecture de l'Exemple, dirigé par Camille Dupont." in text(r)
    assert "Directeur de la publication" not in r.text  # the default text is gone
    assert 'href="/accessibilite">Accessibilité : partiellement conforme</a>' in r.text

    # The texts the operator did not replace stay the defaults, with the operator's facts.
    r = client.get("/donnees-personnelles")
    assert "Responsable du traitement" in r.text and "Préfecture de l'Exemple" in text(r)
    assert "partiellement conforme</strong>" in client.get("/accessibilite").text

    # An edit shows at the next request: no restart.
    (texts / "mentions_legales.html").write_text("<p>Nouvelle version du texte.</p>", encoding="utf-8")
    assert "Nouvelle version du texte." in client.get("/mentions-legales").text

    # A status the RGAA does not know is refused at start.
    with pytest.raises(ValueError):
        Settings(accessibility_status="conforme à peu près")


# ================================================================ the contact form
def contact_form(page: httpx.Response, **fields: str) -> dict[str, str]:
    token = re.search(r'name="request_id" value="([^"]+)"', page.text)
    assert token, "the contact form carries no one-time token"
    return {"csrf_token": csrf_in(page), "request_id": token.group(1), **fields}


async def test_the_contact_form_refuses_bad_input_in_french(web: httpx.AsyncClient) -> None:
    page = await web.get("/contact")
    assert page.status_code == 200 and h1(page) == "Contacter le secrétariat du forum"

    r = await web.post("/contact", data=contact_form(page))
    assert r.status_code == 422
    assert "Le formulaire contient 4 erreurs" in text(r)
    assert field_error(r, "name") == "Indiquez votre nom (2 à 120 caractères)."
    assert field_error(r, "email").startswith("Indiquez une adresse électronique valide")
    assert field_error(r, "title") == "Indiquez l'objet de votre message (3 à 200 caractères)."
    assert field_error(r, "message") == "Écrivez votre message (10 à 5 000 caractères)."

    page = await web.get("/contact")
    fields = {"name": "Léa Martin", "email": "lea@", "title": "Une question", "message": "x" * 5001}
    r = await web.post("/contact", data=contact_form(page, **fields))
    assert r.status_code == 422
    assert field_error(r, "message") == "Ce champ ne doit pas dépasser 5000 caractères."
    assert 'value="Léa Martin"' in r.text and 'value="Une question"' in r.text  # what was typed is kept

    fields["message"] = "Bonjour, une question sur la prochaine séance."
    r = await web.post("/contact", data=contact_form(page, **fields))
    assert r.status_code == 422  # the service's address check, next to the field
    assert field_error(r, "email").startswith("Cette adresse électronique n'est pas valide")

    fields["name"] = "Léa\u202eMartin"
    fields["email"] = "lea@exemple.fr"
    r = await web.post("/contact", data=contact_form(page, **fields))
    assert r.status_code == 422 and "sens d'écriture" in field_error(r, "name")

    r = await web.post("/contact", data={"name": "Léa Martin"})  # no CSRF token: refused, in French
    assert r.status_code == 403 and "Formulaire expiré" in text(r)


async def test_a_message_is_sent_once_and_each_address_is_limited(web: httpx.AsyncClient, forum: Stack) -> None:
    tag = uuid.uuid4().hex[:8]
    email = f"ecrivaine-{tag}@example.org"
    page = await web.get("/contact")
    form = contact_form(page, name="Ada Lovelace", email=email, title=f"Question {tag}",
                        message="Bonjour,\nComment proposer un sujet pour un groupe de travail ?")
    first = await web.post("/contact", data=form)
    assert first.status_code == 303 and first.headers["location"] == "/contact/envoye"
    done = await web.get("/contact/envoye")
    assert h1(done) == "Message envoyé" and f"Une copie vient d'être envoyée à {email}" in text(done)
    again = await web.post("/contact", data=form)  # a double click: the same form, the same token
    assert again.status_code == 303 and again.headers["location"] == "/contact/envoye"
    assert len(stored_messages(forum, email)) == 1

    # The secretariat's e-mail answers to the sender; the sender has a copy.
    deadline = asyncio.get_running_loop().time() + 60
    while not (mails_to(forum.mail_dir, "secretariat@forum-ouvert.local", f"Question {tag}")
               and mails_to(forum.mail_dir, email, f"Question {tag}")):
        assert asyncio.get_running_loop().time() < deadline, "the contact e-mails did not arrive"
        await asyncio.sleep(0.3)
    [to_secretariat] = mails_to(forum.mail_dir, "secretariat@forum-ouvert.local", f"Question {tag}")
    assert to_secretariat["Reply-To"] == email
    assert len(mails_to(forum.mail_dir, email, f"Question {tag}")) == 1

    # Three messages a day from one address (the default): the fourth is refused on the address field.
    for n in (2, 3):
        page = await web.get("/contact")
        r = await web.post("/contact", data=contact_form(page, name="Ada Lovelace", email=email, title=f"Suite {n}",
                                                          message="Encore une précision, merci."))
        assert r.status_code == 303
    page = await web.get("/contact")
    r = await web.post("/contact", data=contact_form(page, name="Ada Lovelace", email=email.upper(),
                                                      title="Suite 4", message="Encore une précision, merci."))
    assert r.status_code == 429
    assert "Vous avez déjà envoyé 3 messages aujourd'hui" in field_error(r, "email")
    assert 'value="Suite 4"' in r.text  # the message is not lost: it can be sent tomorrow
    assert len(stored_messages(forum, email)) == 3


def test_contact_posts_are_limited_per_client(tmp_path: Path) -> None:
    """The same limiter as registration and sign-in: past it, a French 429 before anything is read."""
    client = TestClient(create_app(Settings(data_dir=tmp_path, rate_limit_per_minute=2)))
    for _ in range(2):
        assert client.post("/contact", data={"name": "x"}).status_code == 403  # (no CSRF token: refused after)
    r = client.post("/contact", data={"name": "x"})
    assert r.status_code == 429 and "Trop de tentatives" in r.text and r.headers["retry-after"]
    assert 'href="/contact">Revenir au formulaire' in r.text


# ================================================================ robots.txt and sitemap.xml
async def test_robots_closes_what_must_not_be_indexed(web: httpx.AsyncClient, forum: Stack) -> None:
    r = await web.get("/robots.txt")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    lines = r.text.splitlines()
    assert lines[:2] == ["User-agent: *", "Allow: /"]
    disallowed = {line.removeprefix("Disallow: ") for line in lines if line.startswith("Disallow: ")}
    assert {"/espace", "/secretariat", "/connexion", "/deconnexion", "/dev", "/abonnements/desabonner",
            "/votes/*/bulletin", "/seances/*/reponse", "/comptes-rendus/*/relecture"} <= disallowed
    assert not disallowed & {"/", "/seances", "/decisions", "/contact", "/mentions-legales"}
    assert f"Sitemap: {forum.web_url}/sitemap.xml" in lines


async def test_the_sitemap_lists_every_public_page(web: httpx.AsyncClient, rpc: RpcClient, secretariat: str,
                                                   forum: Stack) -> None:
    tag = uuid.uuid4().hex[:6]
    held = await new_session(rpc, secretariat, f"Plénière du plan du site {tag}", -3 * H)
    decision = await record(rpc, secretariat, held.session_id, title=f"Décision du plan du site {tag}")
    now = clock.utcnow()
    vote = await rpc(OpenVote(actor_id=secretariat, session_id=held.session_id, agenda_position=2,
                              question=f"Quelle page d'abord ? {tag}", opens_at=now, closes_at=now + H,
                              options=["Les séances", "Les décisions"]))
    minutes = await published_minutes(rpc, secretariat, held.session_id)

    r = await web.get("/sitemap.xml")
    assert r.status_code == 200 and r.headers["content-type"] == "application/xml; charset=utf-8"
    root = ET.fromstring(r.content)
    assert root.tag == f"{SITEMAP}urlset"
    entries = {u.findtext(f"{SITEMAP}loc"): u.findtext(f"{SITEMAP}lastmod") for u in root.findall(f"{SITEMAP}url")}
    assert all(loc.startswith(forum.web_url + "/") for loc in entries)  # absolute, from the public address
    for path in ("/", "/seances", "/decisions", "/comptes-rendus", "/votes", "/registre", *LEGAL_PAGES):
        assert forum.web_url + path in entries, path
    for path in (f"/seances/{held.session_id}", f"/decisions/{decision.decision.decision_id}",
                 f"/comptes-rendus/{minutes.minutes_id}", f"/votes/{vote.vote.vote_id}"):
        lastmod = entries[forum.web_url + path]
        assert lastmod and datetime.fromisoformat(lastmod).tzinfo is not None, path  # W3C datetime, with its zone
    assert not [loc for loc in entries if "/secretariat" in loc or "/espace" in loc]

    # Every address answers.
    limit = asyncio.Semaphore(6)

    async def status(loc: str) -> tuple[str, int]:
        async with limit:
            return loc, (await web.get(loc.removeprefix(forum.web_url))).status_code

    answers = await asyncio.gather(*(status(loc) for loc in entries))
    assert [a for a in answers if a[1] != 200] == []
