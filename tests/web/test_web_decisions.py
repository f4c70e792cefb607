"""The public pages of decisions and of the public record, against the running forum (every service a
real process, real NATS, the real databases): a decision recorded by the secretariat (over RPC, as the
back-office does) appears in the register `/decisions` and on its page with the rule check; the open
data exports parse; its record reaches the public log, the explorer lists it, `/registre/{i}` shows
it, and the server-side inclusion proof on both pages is verified; a correction shows the banner on
the old decision; bad ids and parameters give French 404/400 pages, never a stack trace."""
from __future__ import annotations

import asyncio
import csv
import html
import io
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from forum_ouvert.launcher import Stack
from shared.contracts.common import ErrorCode
from shared.contracts.decisions import DecisionView, RecordDecision, UpdateFollowUp
from shared.contracts.forum import SessionView
from shared.clock import utcnow
from shared.rpc import RpcClient, RpcError
from tests.forum.harness import session_request

pytestmark = pytest.mark.integration
H = timedelta(hours=1)
SERVER_OK = 'data-server-verification="ok"'


@pytest.fixture
async def web(forum: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=forum.web_url, timeout=30) as c:
        yield c


async def started_session(rpc: RpcClient, secretariat: str, title: str) -> SessionView:
    """A session that began an hour ago (decisions may be recorded on it). On a fresh forum, the forum
    service learns of the secretariat account from the registry's events a moment later: retry."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        now = utcnow()
        try:
            return await rpc(session_request(secretariat, title=title, rsvp_opens_at=now - 4 * H,
                                             rsvp_closes_at=now - 2 * H, starts_at=now - H, ends_at=now + H))
        except RpcError as exc:
            if exc.code != ErrorCode.FORBIDDEN or loop.time() > deadline:
                raise
            await asyncio.sleep(0.3)


async def record(rpc: RpcClient, secretariat: str, session_id: str, **over: object) -> DecisionView:
    fields = dict(actor_id=secretariat, session_id=session_id, agenda_position=1, outcome="adopted",
                  method="consensus", title="Calendrier du plan d'action",
                  text="Le forum adopte le **calendrier** proposé.\n\n<script>alert(1)</script>") | over
    return await rpc(RecordDecision.model_validate(fields))


async def until(web: httpx.AsyncClient, path: str, needle: str, timeout: float = 60) -> httpx.Response:
    """GET `path` until its body holds `needle` (the log is eventually consistent)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        r = await web.get(path)
        if needle in r.text:
            return r
        assert loop.time() < deadline, f"{path} never showed {needle!r}"
        await asyncio.sleep(0.5)


async def test_decision_register_page_exports_and_public_record(web: httpx.AsyncClient, rpc: RpcClient,
                                                                secretariat: str) -> None:
    s = await started_session(rpc, secretariat, "Plénière des décisions publiques")
    d = await record(rpc, secretariat, s.session_id)
    did, number = d.decision.decision_id, d.decision.number

    # The register, newest first, with the outcome, the rule check and the follow-up.
    r = await web.get("/decisions")
    assert r.status_code == 200 and f'id="decision-{did}"' in r.text
    card = r.text.split(f'id="decision-{did}"', 1)[1].split('<li class="fr-mb-3w">', 1)[0]
    assert f"Décision n° {number}" in card and "Adoptée" in card and "Règle respectée" in card
    assert "Suivi : À faire" in card and "Plénière des décisions publiques" in card
    r = await web.get("/decisions?issue=rejected")
    assert f'id="decision-{did}"' not in r.text

    # The session's page lists it.
    r = await web.get(f"/seances/{s.session_id}")
    assert 'id="decisions-seance"' in r.text and f'href="/decisions/{did}"' in r.text

    # Open data.
    r = await web.get("/decisions.csv")
    assert r.status_code == 200 and r.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")), delimiter=";"))
    row = next(x for x in rows if x["identifiant"] == did)
    assert row["numero"] == number and row["issue"] == "adopted" and row["regle_respectee"] == "oui"
    body = (await web.get("/decisions.json")).json()
    assert body["licence"] == "Licence Ouverte / Etalab 2.0"
    assert next(x for x in body["decisions"] if x["identifiant"] == did)["seance_id"] == s.session_id

    # Its page; the record reaches the log and the proof is verified server-side.
    r = await until(web, f"/decisions/{did}", SERVER_OK)
    t = html.unescape(r.text)
    assert f"Décision n° {number} : Calendrier du plan d'action" in t
    assert "<strong>calendrier</strong>" in r.text and "<script>alert" not in r.text
    assert "Règle du forum respectée" in t and f'href="/seances/{s.session_id}"' in t
    assert 'id="preuve-inclusion"' in t and f'data-expect="{did}"' in t
    index = int(re.search(r'id="preuve-inclusion"[^>]*data-index="(\d+)"', t, re.S).group(1))  # type: ignore[union-attr]

    # The explorer lists it, and /registre/{i} shows it with its proof.
    r = await until(web, "/registre", f'id="enregistrement-{index}"')
    row_html = r.text.split(f'id="enregistrement-{index}"', 1)[1].split("</tr>", 1)[0]
    assert "Décision enregistrée" in row_html and number in row_html and f'href="/decisions/{did}"' in row_html
    r = await web.get(f"/registre/{index}")
    assert r.status_code == 200 and did in r.text and d.event_id in r.text and SERVER_OK in r.text
    # The JSON API serves the same leaf.
    entries = (await web.get("/ledger/entries", params={"start": index, "end": index + 1})).json()["entries"]
    assert entries[0]["record"]["event_id"] == d.event_id and entries[0]["leaf"] in r.text
    r = await web.get("/registre/verifier")
    assert "forum-ouvert verify" in r.text and (await web.get("/ledger/key")).text.strip() in r.text


async def test_correction_and_follow_up_are_shown(web: httpx.AsyncClient, rpc: RpcClient, secretariat: str) -> None:
    s = await started_session(rpc, secretariat, "Plénière des corrections")
    old = await record(rpc, secretariat, s.session_id, title="Première version")
    await rpc(UpdateFollowUp(actor_id=secretariat, decision_id=old.decision.decision_id, status="in_progress",
                             note="Travaux lancés"))
    new = await record(rpc, secretariat, s.session_id, title="Version corrigée", supersedes=old.decision.decision_id)
    r = await web.get(f"/decisions/{old.decision.decision_id}")
    assert 'id="decision-corrigee"' in r.text and f"Corrigée par la décision n° {new.decision.number}" in r.text
    assert "Travaux lancés" in r.text and 'id="historique-suivi"' in r.text
    r = await web.get(f"/decisions/{new.decision.decision_id}")
    assert f'href="/decisions/{old.decision.decision_id}"' in r.text
    r = await web.get("/decisions?masquer_corrigees=1")
    assert f'id="decision-{old.decision.decision_id}"' not in r.text
    assert f'id="decision-{new.decision.decision_id}"' in r.text
    # Every step of it is in the log, each linked from the page.
    r = await until(web, f"/decisions/{old.decision.decision_id}", "Correction par une nouvelle décision")
    assert "Suivi : En cours" in r.text


@pytest.mark.parametrize(("path", "status", "title"), [
    ("/decisions/00000000-0000-0000-0000-000000000000", 404, "Décision introuvable"),
    ("/decisions/pas%20une%20d%C3%A9cision", 404, "Décision introuvable"),
    ("/registre/999999999", 404, "Enregistrement introuvable"),
    ("/registre/abc", 404, "Enregistrement introuvable"),
    ("/decisions?issue=peut-etre", 400, "Requête incorrecte"),
    ("/decisions?page=x", 400, "Requête incorrecte"),
    ("/decisions?page=0", 400, "Requête incorrecte"),
    ("/decisions.csv?suivi=jamais", 400, "Requête incorrecte"),
    ("/registre?page=-1", 400, "Requête incorrecte"),
])
async def test_bad_ids_and_parameters_are_french_pages(web: httpx.AsyncClient, path: str, status: int,
                                                       title: str) -> None:
    r = await web.get(path)
    assert r.status_code == status and f"<h1>{title}</h1>" in r.text
    assert "Traceback" not in r.text and r.headers["content-type"].startswith("text/html")
