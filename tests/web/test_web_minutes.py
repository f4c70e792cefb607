"""Comptes rendus through the web front, against the running forum (every service a real process, real
NATS, the real database): the secretariat drafts the minutes of a session that took place from the
pre-filled text, saves (and is refused a save over a text changed in another tab, its own text kept),
opens the review; an attendee comments and proposes a rewording, a member who was not there cannot;
the secretariat answers, publishes (adopted by a decision of a later session), corrects with a reason;
the public reads every version as HTML, PDF and canonical JSON (hashing it gives the published SHA-256),
the difference between versions, the list with its filters, and follows the links session → minutes
and decision → paragraph. And every bad input, each a clear French page with what was typed kept.
"""
from __future__ import annotations

import asyncio
import hashlib
import html
import io
import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import create_engine
from sqlmodel import Session, col, select

from forum_ouvert.launcher import Stack
from services.minutes.models import AttendanceFact, DecisionFact, MemberFact, SessionFact
from shared.contracts.decisions import GetDecision
from shared.contracts.minutes import GetMinutesVersion, ListMinutesComments
from shared.rpc import RpcClient
from tests.web.test_web_bad_input import field_error, h1, text
from tests.web.test_web_decisions_admin import decision_form, decision_id, past_session
from tests.web.test_web_sessions import (  # noqa: F401 - fixtures
    Crowd, WebMember, admin, create_session, crowd, local,
)

pytestmark = pytest.mark.integration
PARIS = ZoneInfo("Europe/Paris")


# ================================================================ the minutes service's facts, read-only
class MinutesDb:
    """Reads the minutes service's projections: drafting waits until it knows what the forum recorded."""

    def __init__(self, forum: Stack) -> None:
        self.engine = create_engine(forum.database_urls["minutes"].replace("sqlite+aiosqlite://", "sqlite://"))

    def knows(self, *, session_id: str, attendees: tuple[str, ...] | list[str] = (),
              decisions: tuple[str, ...] | list[str] = (), secretariat: str | None = None) -> bool:
        with Session(self.engine) as tx:
            if tx.get(SessionFact, session_id) is None:
                return False
            present = {a.member_id for a in tx.exec(select(AttendanceFact).where(
                AttendanceFact.session_id == session_id, col(AttendanceFact.present).is_(True))).all()}
            known = set(tx.exec(select(DecisionFact.decision_id).where(
                col(DecisionFact.decision_id).in_(list(decisions) or [""]))).all())
            sec = tx.get(MemberFact, secretariat) if secretariat else None
            return (set(attendees) <= present and set(decisions) <= known
                    and (secretariat is None or (sec is not None and sec.role == "secretariat")))

    async def wait(self, timeout: float = 60, **kw: object) -> None:
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(lambda: self.knows(**kw)):  # type: ignore[arg-type]
            assert time.monotonic() < deadline, f"the minutes service does not know {kw}"
            await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
def minutes_db(forum: Stack) -> MinutesDb:
    return MinutesDb(forum)


# ================================================================ helpers
def minutes_id_of(r: httpx.Response) -> str:
    assert r.status_code == 303, text(r)
    m = re.fullmatch(r"/secretariat/comptes-rendus/([0-9a-f-]{36})", r.headers["location"])
    assert m, r.headers["location"]
    return m.group(1)


def textarea(r: httpx.Response, name: str = "markdown") -> str:
    m = re.search(rf'<textarea[^>]*name="{name}"[^>]*>(.*?)</textarea>', r.text, re.S)
    assert m, f"no textarea {name}"
    return html.unescape(m.group(1))


def hidden(r: httpx.Response, name: str, form_action: str | None = None) -> str:
    body = r.text
    if form_action:
        start = body.index(f'action="{form_action}"')
        body = body[start:body.index("</form>", start)]
    m = re.search(rf'name="{name}" value="([^"]*)"', body)
    assert m, f"no hidden field {name}"
    return html.unescape(m.group(1))


def prose(r: httpx.Response) -> str:
    """The page's text without the space `text()` leaves where a link ends before a comma or a full stop."""
    return re.sub(r" ([,.;:])", r"\1", text(r))


def anchors(r: httpx.Response) -> list[str]:
    return re.findall(r'<div class="cr-para" id="(p-[0-9a-f]+(?:-\d+)?)">', r.text)


def anchor_of(r: httpx.Response, contains: str) -> str:
    for anchor, body in re.findall(r'<div class="cr-para" id="(p-[0-9a-f-]+)">(.*?)</div>', r.text, re.S):
        if contains in html.unescape(body):
            return anchor
    raise AssertionError(f"no paragraph containing {contains!r}")


async def check_in(admin: WebMember, sid: str, *members: WebMember) -> None:
    for m in members:
        r = await admin.post(f"/secretariat/seances/{sid}/emargement",
                             {"member_id": m.member_id, "present": "1", "walk_in": "1"})
        assert r.status_code == 303, text(r)


async def decide(admin: WebMember, sid: str, title: str) -> str:
    r = await admin.post(f"/secretariat/decisions/nouvelle?seance={sid}",
                         decision_form(title=title, method="consensus", outcome="adopted", agenda_position="2"))
    return decision_id(r)


async def until_ok(call: Callable[[], object], check: Callable[[httpx.Response], bool], timeout: float = 30
                   ) -> httpx.Response:
    """A page that follows an event (a leaf, a projection): asked again until it shows it."""
    deadline = time.monotonic() + timeout
    while True:
        r = await call()  # type: ignore[misc]
        if check(r) or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.3)


# ================================================================ the whole flow
async def test_minutes_from_draft_to_correction(admin: WebMember, crowd: Crowd, rpc: RpcClient,
                                                minutes_db: MinutesDb, secretariat: str) -> None:
    tag = uuid.uuid4().hex[:6]
    alice, bruno, chloe = await crowd.members(3, names=[f"Alice {tag}", f"Bruno {tag}", f"Chloé {tag}"])
    # A plenary without quorum, so that a consensus may adopt (other tests change the rules).
    r = await admin.post("/secretariat/regles", {"kind": "plenary", "quorum_public_actor": "",
                                                 "quorum_civil_society": "", "quorum_citizen": ""})
    assert r.status_code == 303, text(r)
    title = f"Plénière des comptes rendus {tag}"
    sid = await past_session(admin, title=title, kind="plenary", theme="open_data")
    await check_in(admin, sid, alice, bruno)
    d1 = await decide(admin, sid, f"Ouvrir les données des marchés {tag}")
    later = await create_session(admin, title=f"Plénière suivante {tag}", start=-timedelta(hours=2), hours=1,
                                 opens=-timedelta(hours=5), closes=-timedelta(hours=3))
    d2 = await decide(admin, later, f"Adoption du compte rendu {tag}")
    n1 = (await rpc(GetDecision(decision_id=d1))).decision.number
    n2 = (await rpc(GetDecision(decision_id=d2))).decision.number
    await minutes_db.wait(session_id=sid, attendees=[alice.member_id, bruno.member_id], decisions=[d1, d2],
                          secretariat=secretariat)
    # The adopting decision's session too: its fact comes by another consumer, which may lag behind.
    await minutes_db.wait(session_id=later)

    # -- the session's page: no minutes yet; the secretariat is offered to draft them
    page = await crowd.client().get(f"/seances/{sid}")
    assert "Compte rendu en préparation : le secrétariat n'a pas encore commencé sa rédaction" in text(page)
    page = await admin.get(f"/seances/{sid}")
    assert 'action="/secretariat/comptes-rendus/rediger"' in page.text and "Rédiger le compte rendu" in text(page)
    listing = await admin.get("/secretariat/comptes-rendus")
    assert listing.status_code == 200 and f'id="sans-compte-rendu-{sid}"' in listing.text

    # -- « Rédiger le compte rendu »: the draft pre-filled from the record
    mid = minutes_id_of(await admin.post("/secretariat/comptes-rendus/rediger", {"seance": sid}))
    assert minutes_id_of(await admin.post("/secretariat/comptes-rendus/rediger", {"seance": sid})) == mid  # found again
    page = await admin.get(f"/secretariat/comptes-rendus/{mid}")
    assert page.status_code == 200 and h1(page) == f"Compte rendu : {title}"
    draft = textarea(page)
    assert draft.startswith(f"# Compte rendu — {title}")
    assert f"**Décision n° {n1} — Ouvrir les données des marchés {tag}**" in draft
    assert f"[Voir la décision](/decisions/{d1})" in draft and "2 membres présents" in draft
    assert 'id="apercu"' in page.text and anchors(page), "the preview shows the paragraphs with their anchors"
    assert 'src="/static/js/compte-rendu.js"' in page.text
    revision = hidden(page, "base_revision")

    # -- only the secretariat drafts; a draft is not public
    for who in (alice, chloe):
        r = await who.get(f"/secretariat/comptes-rendus/{mid}")
        assert r.status_code == 403 and "réservée au secrétariat" in text(r)
        r = await who.post(f"/secretariat/comptes-rendus/{mid}/brouillon", {"markdown": "Piraté", "base_revision": "0"})
        assert r.status_code == 403
        r = await who.get(f"/comptes-rendus/{mid}")
        assert r.status_code == 404 and h1(r) == "Compte rendu introuvable"
    r = await crowd.client().get(f"/comptes-rendus/{mid}")
    assert r.status_code == 404
    r = await crowd.client().get(f"/secretariat/comptes-rendus/{mid}")
    assert r.status_code == 303 and r.headers["location"] == "/connexion"
    r = await admin.get(f"/comptes-rendus/{mid}")  # the secretariat is sent to its draft
    assert r.status_code == 303 and r.headers["location"] == f"/secretariat/comptes-rendus/{mid}"

    # -- the live preview is sanitised like a published version
    r = await admin.post("/secretariat/comptes-rendus/apercu", {
        "markdown": "## Débats\n\n<script>alert(1)</script>\n\n[clic](javascript:alert(1)) "
                    "<img src=x onerror=alert(1)>"})
    assert r.status_code == 200 and "<h3>Débats</h3>" in r.text  # under the page's own headings
    assert "<script" not in r.text and "href=\"javascript" not in r.text and "<img" not in r.text
    assert (await alice.post("/secretariat/comptes-rendus/apercu", {"markdown": "x"})).status_code == 403

    # -- saving: a form save, a background (JSON) save, a stale tab refused with its text kept
    debate = f"Les échanges ont porté sur l'ouverture des données {tag}."
    mine = draft.replace("_Résumé des échanges à compléter par le secrétariat._", debate)
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/brouillon", {"markdown": mine, "base_revision": revision})
    assert r.status_code == 303 and "Brouillon enregistré à" in text(await admin.get(r.headers["location"]))
    r = await admin.http.post(f"/secretariat/comptes-rendus/{mid}/brouillon", headers={"Accept": "application/json"},
                              data={"csrf_token": admin.csrf, "markdown": mine + "\n\nAjout.",
                                    "base_revision": str(int(revision) + 1)})
    assert r.status_code == 200 and r.json()["revision"] == int(revision) + 2, r.text
    other_tab = mine + "\n\nTexte d'un autre onglet."
    r = await admin.http.post(f"/secretariat/comptes-rendus/{mid}/brouillon", headers={"Accept": "application/json"},
                              data={"csrf_token": admin.csrf, "markdown": other_tab, "base_revision": revision})
    assert r.status_code == 409 and r.json()["conflict"] is True and r.json()["revision"] == int(revision) + 2
    assert "modifié dans un autre onglet" in r.json()["message"] and r.json()["markdown"].endswith("Ajout.")
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/brouillon",
                         {"markdown": other_tab, "base_revision": revision})
    assert r.status_code == 409 and textarea(r) == other_tab  # the clerk's text is kept…
    assert "modifié dans un autre onglet" in field_error(r, "markdown")
    assert 'id="texte-ailleurs"' in r.text and "Ajout." in r.text  # …beside the text saved elsewhere
    assert hidden(r, "base_revision") == str(int(revision) + 2)  # saving again replaces it, knowingly
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/brouillon", {"markdown": "   ", "base_revision": "0"})
    assert r.status_code == 422
    assert field_error(r, "markdown") == "Écrivez le texte du compte rendu : il ne peut pas être vide."
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/brouillon",
                         {"markdown": mine, "base_revision": str(int(revision) + 2)})
    assert r.status_code == 303

    # -- review by the attendees, until a date
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/relecture", {"until": "demain"})
    assert r.status_code == 422 and field_error(r, "until").startswith("Date et heure invalides")
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/relecture",
                         {"until": local(datetime.now(UTC) - timedelta(days=1))})
    assert r.status_code == 422 and field_error(r, "until") == "La date de fin de relecture doit être dans le futur."
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/relecture",
                         {"until": local(datetime.now(UTC) + timedelta(days=3))})
    assert r.status_code == 303, text(r)
    page = await admin.get(f"/secretariat/comptes-rendus/{mid}")
    assert "Relecture ouverte jusqu'au" in text(page) and 'data-state="review"' in page.text

    assert "Relire le brouillon" in text(await alice.get(f"/seances/{sid}"))
    assert "Relire le brouillon" not in text(await chloe.get(f"/seances/{sid}"))
    r = await chloe.get(f"/comptes-rendus/{mid}/relecture")
    assert r.status_code == 403 and "membres présents à la séance" in text(r)
    review = await alice.get(f"/comptes-rendus/{mid}/relecture")
    assert review.status_code == 200 and h1(review) == f"Relecture du compte rendu : {title}"
    target = anchor_of(review, debate)
    assert f'id="rewording-{target}"' in review.text and f'id="comment-{target}"' in review.text

    r = await alice.post(f"/comptes-rendus/{mid}/relecture", {"anchor": target, "kind": "rewording", "text": " "})
    assert r.status_code == 422
    assert field_error(r, f"rewording-{target}") == "Écrivez le nouveau texte que vous proposez pour ce paragraphe."
    reworded = f"Les échanges, nourris, ont porté sur l'ouverture des données publiques {tag}."
    r = await alice.post(f"/comptes-rendus/{mid}/relecture", {"anchor": target, "kind": "rewording", "text": reworded})
    assert r.status_code == 303 and r.headers["location"].endswith("/relecture#mes-commentaires")
    first = anchors(review)[0]
    r = await bruno.post(f"/comptes-rendus/{mid}/relecture", {"anchor": first, "kind": "comment",
                                                               "text": "Le titre pourrait citer le CESE."})
    assert r.status_code == 303
    r = await chloe.post(f"/comptes-rendus/{mid}/relecture", {"anchor": first, "kind": "comment", "text": "Moi aussi"})
    assert r.status_code == 403
    r = await alice.post(f"/comptes-rendus/{mid}/relecture", {"anchor": "p-0000000000", "kind": "comment", "text": "?"})
    assert r.status_code == 404 and "Ce paragraphe n'existe pas" in text(r)
    review = await alice.get(f"/comptes-rendus/{mid}/relecture")
    assert "Mes propositions (1)" in text(review) and 'data-answer="waiting"' in review.text

    # -- the secretariat answers each, with a reason
    comments = (await rpc(ListMinutesComments(actor_id=secretariat, minutes_id=mid))).comments
    rewording = next(c for c in comments if c.kind == "rewording")
    remark = next(c for c in comments if c.kind == "comment")
    page = await admin.get(f"/secretariat/comptes-rendus/{mid}")
    assert f"Proposition de reformulation de Alice {tag}" in text(page) and f"Remarque de Bruno {tag}" in text(page)
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/commentaires/{rewording.comment_id}",
                         {f"accepted-{rewording.comment_id}": "1", "reason": ""})
    assert r.status_code == 422
    assert field_error(r, f"reason-{rewording.comment_id}").startswith("Donnez en quelques mots")
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/commentaires/{rewording.comment_id}",
                         {f"accepted-{rewording.comment_id}": "1", "reason": "Plus précis, merci."})
    assert r.status_code == 303, text(r)
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/commentaires/{remark.comment_id}",
                         {f"accepted-{remark.comment_id}": "0", "reason": "Le titre suit le modèle du forum."})
    assert r.status_code == 303
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/commentaires/{remark.comment_id}",
                         {f"accepted-{remark.comment_id}": "1", "reason": "Finalement oui."})
    assert r.status_code == 409 and "déjà reçu une réponse" in text(r)
    page = await admin.get(f"/secretariat/comptes-rendus/{mid}")
    assert reworded in textarea(page) and debate not in textarea(page)
    review = await alice.get(f"/comptes-rendus/{mid}/relecture")
    assert 'data-answer="accepted"' in review.text and "Plus précis, merci." in text(review)

    # -- publish: adopted by a decision of the later session
    request_id = hidden(page, "request_id", f"/secretariat/comptes-rendus/{mid}/publier")
    base = hidden(page, "base_revision", f"/secretariat/comptes-rendus/{mid}/publier")
    publish = {"adoption": "decision", "decision_number": "", "base_revision": base, "request_id": request_id}
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/publier", publish)
    assert r.status_code == 422 and field_error(r, "decision_number").startswith("Indiquez le numéro de la décision")
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/publier", {**publish, "decision_number": n1})
    assert r.status_code == 409 and "séance postérieure" in field_error(r, "decision_number")
    assert f'value="{n1}"' in r.text  # what was typed is kept
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/publier", {**publish, "adoption": "vote"})
    assert r.status_code == 422 and field_error(r, "vote_id") == "Choisissez le vote qui adopte le compte rendu."
    for _ in range(2):  # a double click publishes once
        r = await admin.post(f"/secretariat/comptes-rendus/{mid}/publier", {**publish, "decision_number": n2})
        assert r.status_code == 303 and r.headers["location"] == f"/comptes-rendus/{mid}", text(r)
    v1 = await rpc(GetMinutesVersion(minutes_id=mid))
    assert v1.version == 1 and len(v1.versions) == 1 and v1.adoption.decision_id == d2 and v1.adoption.reviewed

    # -- the public page of version 1
    public = crowd.client()
    page = await public.get(f"/comptes-rendus/{mid}")
    assert page.status_code == 200 and h1(page) == f"Compte rendu : {title}"
    assert 'data-state="adopted"' in page.text and "Version 1" in text(page)
    assert f"Adopté par la décision n° {n2}, prise lors d'une séance suivante, après relecture" in prose(page)
    assert reworded in text(page) and v1.sha256 in page.text
    assert [p.anchor for p in v1.paragraphs] == anchors(page)
    for suffix in ("v1", "v1.pdf", "v1.json"):
        assert f'href="/comptes-rendus/{mid}/{suffix}"' in page.text
    assert 'id="preuve-inclusion"' in page.text and 'src="/static/js/preuve.js"' in page.text
    page = await until_ok(lambda: public.get(f"/comptes-rendus/{mid}"),
                          lambda r: 'data-server-verification="ok"' in r.text)
    assert 'data-server-verification="ok"' in page.text and "(Compte rendu publié)" in text(page)

    canonical = await public.get(f"/comptes-rendus/{mid}/v1.json")
    assert canonical.status_code == 200 and canonical.headers["content-type"].startswith("application/json")
    assert hashlib.sha256(canonical.content).hexdigest() == v1.sha256
    document = json.loads(canonical.content)
    assert document["meta"]["version"] == 1 and [p["anchor"] for p in document["paragraphs"]] == anchors(page)
    pdf = await public.get(f"/comptes-rendus/{mid}/v1.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf" and pdf.content[:5] == b"%PDF-"
    assert "attachment" in pdf.headers["content-disposition"]
    pdf_text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    flat = re.sub(r"\s+", "", pdf_text)
    assert v1.sha256 in flat and re.sub(r"\s+", "", title) in flat
    assert (await public.get(f"/comptes-rendus/{mid}/v1.pdf")).content == pdf.content

    # -- links both ways: the session's page, the decision's page to its paragraph
    page = await public.get(f"/seances/{sid}")
    assert 'id="etat-compte-rendu"' in page.text and 'data-state="adopted"' in page.text
    assert f'href="/comptes-rendus/{mid}"' in page.text
    page = await public.get(f"/decisions/{d1}")
    link = re.search(rf'href="(/comptes-rendus/{mid}#(p-[0-9a-f-]+))" id="lien-compte-rendu"', page.text)
    assert link, "the decision's page links to its paragraph of the minutes"
    assert link.group(2) == anchor_of(await public.get(f"/comptes-rendus/{mid}"), f"Décision n° {n1}")

    # -- correct: a reason is required, the text must change; then version 2
    page = await admin.get(f"/secretariat/comptes-rendus/{mid}")
    assert textarea(page) == v1.markdown and 'action="/secretariat/comptes-rendus/' + mid + '/corriger"' in page.text
    correct_id = hidden(page, "request_id", f"/secretariat/comptes-rendus/{mid}/corriger")
    corrected = v1.markdown.replace(reworded, reworded + " Le CESE a rappelé le cadre légal.")
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/corriger",
                         {"markdown": corrected, "reason": "", "request_id": correct_id})
    assert r.status_code == 422 and field_error(r, "reason").startswith("Donnez la raison de la correction")
    assert textarea(r) == corrected
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/corriger",
                         {"markdown": v1.markdown, "reason": "Rien", "request_id": correct_id})
    assert r.status_code == 422 and field_error(r, "markdown") == "Le texte corrigé est identique à la version publiée."
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/corriger",
                         {"markdown": corrected, "reason": "Rappel du cadre légal ajouté", "request_id": correct_id})
    assert r.status_code == 303 and r.headers["location"] == f"/comptes-rendus/{mid}", text(r)
    page = await public.get(f"/comptes-rendus/{mid}")
    assert 'data-state="corrected"' in page.text and "Rappel du cadre légal ajouté" in text(page)
    assert 'id="version-1"' in page.text and 'id="version-2"' in page.text
    assert link.group(2) in anchors(page)  # the unchanged paragraph keeps its anchor
    old = await public.get(f"/comptes-rendus/{mid}/v1")
    assert old.status_code == 200 and "une version plus récente existe" in text(old) and reworded in text(old)
    assert "Le CESE a rappelé" not in text(old)
    diff = await public.get(f"/comptes-rendus/{mid}/difference", params={"de": "1", "a": "2"})
    assert diff.status_code == 200 and 'data-change="changed"' in diff.text and "Modifié" in text(diff)
    assert "[ajouté : Le CESE a rappelé le cadre légal." in re.sub(r"\s+", " ", text(diff))
    assert 'data-change="changed"' in (await public.get(f"/comptes-rendus/{mid}/difference")).text  # latest two
    r = await public.get(f"/comptes-rendus/{mid}/difference", params={"de": "2", "a": "2"})
    assert r.status_code == 422 and field_error(r, "a") == "Choisissez deux versions différentes."
    for params in ({"de": "1", "a": "9"}, {"de": "0", "a": "1"}):
        assert (await public.get(f"/comptes-rendus/{mid}/difference", params=params)).status_code == 404
    assert (await public.get(f"/comptes-rendus/{mid}/difference", params={"de": "un"})).status_code == 400
    for path in ("v3", "v3.pdf", "v3.json", "v0", "vdeux"):
        r = await public.get(f"/comptes-rendus/{mid}/{path}")
        assert r.status_code == 404 and h1(r) == "Version introuvable", path
    assert (await public.get(f"/comptes-rendus/{uuid.uuid4()}")).status_code == 404
    assert hashlib.sha256((await public.get(f"/comptes-rendus/{mid}/v2.json")).content).hexdigest() == \
        (await rpc(GetMinutesVersion(minutes_id=mid))).sha256

    # -- the list and its filters
    year = str(datetime.now(UTC).astimezone(PARIS).year)
    listed = await public.get("/comptes-rendus", params={"annee": year, "type": "plenary", "theme": "open_data"})
    assert listed.status_code == 200 and f'id="compte-rendu-{mid}"' in listed.text
    listed = await public.get("/comptes-rendus", params={"type": "working_group"})
    assert f'id="compte-rendu-{mid}"' not in listed.text
    for params in ({"annee": "1999"}, {"type": "conclave"}, {"theme": "<script>"}):
        assert (await public.get("/comptes-rendus", params=params)).status_code == 400
    assert f'id="compte-rendu-{mid}"' in (await admin.get("/secretariat/comptes-rendus")).text
    assert (await alice.get("/secretariat/comptes-rendus")).status_code == 403


# ================================================================ without review nor adoption; bad sessions
async def test_published_without_review_nor_adoption_and_bad_sessions(admin: WebMember, crowd: Crowd,
                                                                       minutes_db: MinutesDb,
                                                                       secretariat: str) -> None:
    tag = uuid.uuid4().hex[:6]
    sid = await past_session(admin, title=f"Groupe de travail sans relecture {tag}", kind="working_group",
                             theme="justice")
    await minutes_db.wait(session_id=sid, secretariat=secretariat)
    mid = minutes_id_of(await admin.post("/secretariat/comptes-rendus/rediger", {"seance": sid}))
    page = await admin.get(f"/secretariat/comptes-rendus/{mid}")
    assert "La page dira : « Publié sans relecture ni adoption. »" in text(page)
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/publier",
                         {"adoption": "none", "request_id": hidden(page, "request_id"),
                          "base_revision": hidden(page, "base_revision")})
    assert r.status_code == 303, text(r)
    page = await crowd.client().get(f"/comptes-rendus/{mid}")
    assert "Publié sans relecture ni adoption." in prose(page) and 'data-state="published"' in page.text
    page = await crowd.client().get(f"/comptes-rendus/{mid}/difference")
    assert page.status_code == 200 and "n'a qu'une version" in text(page)
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/brouillon", {"markdown": "Autre", "base_revision": "1"})
    assert r.status_code == 409 and "il se corrige" in text(r)

    upcoming = await create_session(admin, title=f"Séance à venir {tag}")
    await minutes_db.wait(session_id=upcoming)
    r = await admin.post("/secretariat/comptes-rendus/rediger", {"seance": upcoming})
    assert r.status_code == 409 and "n'a pas encore eu lieu" in text(r)
    for unknown in (str(uuid.uuid4()), "pas un identifiant !"):
        r = await admin.post("/secretariat/comptes-rendus/rediger", {"seance": unknown})
        assert r.status_code == 404 and h1(r) == "Séance introuvable"
    r = await admin.get(f"/secretariat/comptes-rendus/{uuid.uuid4()}")
    assert r.status_code == 404 and h1(r) == "Compte rendu introuvable"
