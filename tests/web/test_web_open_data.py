"""Open data `/donnees`, against the running forum (every service a real process, real NATS, the real
databases): the secretariat schedules sessions, checks members in, records a decision and runs a vote
(over RPC, as the back-office does); the page lists every dataset with its licence and data dictionary;
every export, CSV and JSON, parses with `csv` / `json`, has the dictionary's columns, holds those facts
and no personal data. Then the streaming itself: the web front asks the forum for the next page only
after it has sent the rows of the one before."""
from __future__ import annotations

import asyncio
import csv
import html
import io
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from forum_ouvert.launcher import Stack
from shared import clock
from shared.contracts.common import Request as ServiceRequest
from shared.contracts.decisions import CastBallot, CloseVote, GetVote, OpenVote
from shared.contracts.common import ErrorCode
from shared.contracts.forum import CancelSession, CheckIn, SessionView
from shared.contracts.minutes import MinutesView, OpenMinutesDraft, PublishMinutes
from shared.contracts.registry import College
from shared.rpc import RpcClient, RpcError
from services.web.routes import open_data
from services.web.routes.decisions import CSV_COLUMNS as DECISION_COLUMNS
from tests.forum.harness import session_request
from tests.web.test_web_bad_input import h1, text
from tests.web.test_web_decisions import record
from tests.web.test_web_sessions import Crowd, crowd  # noqa: F401 - fixture

pytestmark = pytest.mark.integration
H = timedelta(hours=1)
SLUGS = ["seances", "presences", "decisions", "votes", "comptes-rendus"]
LICENCE_URL = "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"


@pytest.fixture
async def web(forum: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=forum.web_url, timeout=60) as c:
        yield c


async def new_session(rpc: RpcClient, secretariat: str, title: str, start: timedelta, **over: Any) -> SessionView:
    now = clock.utcnow()
    return await rpc(session_request(secretariat, title=title, starts_at=now + start, ends_at=now + start + 2 * H,
                                     rsvp_opens_at=now + start - 5 * H, rsvp_closes_at=now + start - H, **over))


def csv_rows(body: bytes) -> tuple[list[str], list[dict[str, str]]]:
    assert body.startswith("\ufeff".encode())
    reader = csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline=""), delimiter=";")
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def dictionary(page: str, slug: str) -> list[str]:
    """The column names the page's data dictionary gives for a dataset."""
    table = re.search(rf'id="dictionnaire-{slug}"(.*?)</table>', page, re.S)
    assert table, f"no data dictionary for {slug}"
    return re.findall(r'<th scope="row"><code>(.*?)</code></th>', table.group(1))


# ================================================================ the page and every export

async def published_minutes(rpc: RpcClient, secretariat: str, session_id: str) -> MinutesView:
    """Minutes of a held session, published without adoption (the minutes service learns the session from the
    forum's events: asked again until it has)."""
    for _ in range(100):
        try:
            draft = await rpc(OpenMinutesDraft(actor_id=secretariat, session_id=session_id))
            break
        except RpcError as exc:
            assert exc.code in (ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN), exc
            await asyncio.sleep(0.1)
    return await rpc(PublishMinutes(actor_id=secretariat, minutes_id=draft.minutes_id, adoption="none"))

async def test_open_data_page_and_exports(web: httpx.AsyncClient, rpc: RpcClient, crowd: Crowd,  # noqa: F811
                                          secretariat: str) -> None:
    tag = uuid.uuid4().hex[:6]
    people = await crowd.members(3, colleges=(College.PUBLIC_ACTOR, College.CITIZEN, College.CITIZEN))
    held = await new_session(rpc, secretariat, f"Plénière des données {tag}", -3 * H)
    coming = await new_session(rpc, secretariat, f"Atelier des données {tag}", 48 * H, kind="working_group",
                               theme="open_data", place=None)
    cancelled = await new_session(rpc, secretariat, f"Séance annulée {tag}", 72 * H)
    await rpc(CancelSession(actor_id=secretariat, session_id=cancelled.session_id, reason="Salle indisponible"))
    for m in people:
        await rpc(CheckIn(actor_id=secretariat, session_id=held.session_id, member_id=m.member_id))
    decision = await record(rpc, secretariat, held.session_id, title=f"Ouverture des données {tag}")
    now = clock.utcnow()
    vote = await rpc(OpenVote(actor_id=secretariat, session_id=held.session_id, agenda_position=2,
                              question=f"Quel jeu ouvrir d'abord ? {tag}", opens_at=now, closes_at=now + H,
                              options=["Commande publique", "Qualité de l'air", "Horaires des transports"]))
    vid = vote.vote.vote_id
    for m in people:
        await rpc(CastBallot(actor_id=m.member_id, vote_id=vid, grades={1: "excellent", 2: "bien", 3: "a_rejeter"}))
    closed = await rpc(CloseVote(actor_id=secretariat, vote_id=vid))
    assert closed.result is not None and closed.decision_id

    # Minutes of the held session, published (the minutes service learns the session from the forum's events).
    minutes = await published_minutes(rpc, secretariat, held.session_id)

    # The page: every dataset, its two files, the licence and a dictionary.
    r = await web.get("/donnees")
    assert r.status_code == 200 and h1(r) == "Données ouvertes"
    assert f'href="{LICENCE_URL}" rel="license' in r.text and "Licence Ouverte / Etalab 2.0" in r.text
    for slug in SLUGS:
        assert f'href="/donnees/{slug}.csv"' in r.text and f'href="/donnees/{slug}.json"' in r.text
        assert dictionary(r.text, slug) == open_data.DATASETS[slug].names
    assert dictionary(r.text, "decisions") == DECISION_COLUMNS  # the same columns as the register's exports
    assert "Aucune donnée personnelle" in text(r)
    assert 'href="/donnees"' in (await web.get("/")).text  # linked from every page's footer

    today = clock.as_paris(clock.utcnow()).date().isoformat()
    personal = [x for m in people for x in (m.member_id, m.email, m.name)] + [secretariat]
    csvs: dict[str, list[dict[str, str]]] = {}
    jsons: dict[str, list[dict[str, Any]]] = {}
    for slug in SLUGS:
        columns = open_data.DATASETS[slug].names
        r = await web.get(f"/donnees/{slug}.csv")
        assert r.status_code == 200, text(r)
        assert r.headers["content-type"] == "text/csv; charset=utf-8"
        assert r.headers["content-disposition"] == f'attachment; filename="forum-ouvert-{slug}-{today}.csv"'
        assert "content-length" not in r.headers and r.headers["transfer-encoding"] == "chunked"  # streamed
        assert LICENCE_URL in r.headers["link"]
        header, csvs[slug] = csv_rows(r.content)
        assert header == columns
        bodies = [r.content.decode("utf-8-sig")]
        r = await web.get(f"/donnees/{slug}.json")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert r.headers["content-disposition"] == f'inline; filename="forum-ouvert-{slug}-{today}.json"'
        assert "content-length" not in r.headers
        jsons[slug] = json.loads(r.content)
        assert isinstance(jsons[slug], list) and all(list(row) == columns for row in jsons[slug])
        for body in [*bodies, r.text]:
            assert not [x for x in personal if x in body], f"personal data in {slug}"

    # Sessions: one row each, times in UTC, the agenda as a list (one item a line in CSV).
    row = next(x for x in csvs["seances"] if x["identifiant"] == held.session_id)
    assert row["titre"] == f"Plénière des données {tag}" and row["type"] == "plenary" and row["statut"] == "scheduled"
    assert row["debut"] == held.starts_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert row["fin"].endswith("Z") and row["deroulement"] == "past" and row["presents"] == "3"
    assert row["ordre_du_jour"] == "Accueil\nBilan des engagements\nQuestions diverses"
    assert row["capacite"] == "50" and row["url"].endswith(f"/seances/{held.session_id}")
    item = next(x for x in jsons["seances"] if x["identifiant"] == held.session_id)
    assert item["ordre_du_jour"] == ["Accueil", "Bilan des engagements", "Questions diverses"]
    assert item["presents"] == 3 and item["capacite"] == 50 and item["theme"] is None
    row = next(x for x in csvs["seances"] if x["identifiant"] == coming.session_id)
    assert (row["type"], row["theme"], row["theme_libelle"]) == ("working_group", "open_data",
                                                                  "Données ouvertes et numérique")
    assert row["presents"] == "" and row["deroulement"] == "upcoming" and row["lieu"] == ""
    row = next(x for x in csvs["seances"] if x["identifiant"] == cancelled.session_id)
    assert row["statut"] == "cancelled" and row["motif_annulation"] == "Salle indisponible"

    # Attendance: counts per college of the held session only (nothing for sessions still to come).
    counts = {x["college"]: x["presents"] for x in csvs["presences"] if x["seance_id"] == held.session_id}
    assert counts == {"public_actor": "1", "civil_society": "0", "citizen": "2"}
    assert {x["presents_total_seance"] for x in csvs["presences"] if x["seance_id"] == held.session_id} == {"3"}
    assert not [x for x in jsons["presences"] if x["seance_id"] in (coming.session_id, cancelled.session_id)]
    assert sum(x["presents"] for x in jsons["presences"] if x["seance_id"] == held.session_id) == 3

    # Decisions: the recorded one and the one the vote became.
    row = next(x for x in csvs["decisions"] if x["identifiant"] == decision.decision.decision_id)
    assert row["numero"] == decision.decision.number and row["issue"] == "adopted" and row["regle_respectee"] == "oui"
    item = next(x for x in jsons["decisions"] if x["identifiant"] == closed.decision_id)
    assert item["methode"] == "online_vote" and item["vote_id"] == vid and item["regle_respectee"] is True

    # Votes: one row per option, the counts per grade, the majority grade and the winner.
    rows = {int(x["option_id"]): x for x in csvs["votes"] if x["vote_id"] == vid}
    assert sorted(rows) == [1, 2, 3]
    assert [rows[i]["mention_majoritaire"] for i in (1, 2, 3)] == ["excellent", "bien", "a_rejeter"]
    assert [rows[i]["gagnante"] for i in (1, 2, 3)] == ["oui", "non", "non"]
    assert [rows[i]["rang"] for i in (1, 2, 3)] == ["1", "2", "3"]
    assert (rows[1]["nb_excellent"], rows[2]["nb_bien"], rows[3]["nb_a_rejeter"]) == ("3", "3", "3")
    for x in rows.values():
        assert x["bulletins"] == "3" and x["egalite"] == "non" and x["decision_id"] == closed.decision_id
        assert sum(int(x[f"nb_{g}"]) for g in ("excellent", "tres_bien", "bien", "assez_bien", "passable",
                                                  "insuffisant", "a_rejeter")) == 3
    result = (await rpc(GetVote(vote_id=vid))).result
    assert result is not None and int(rows[1]["inscrits"]) == result.eligible
    item = next(x for x in jsons["votes"] if x["vote_id"] == vid and x["option_id"] == 1)
    assert item["mention_majoritaire_libelle"] == "Excellent" and item["gagnante"] is True and item["nb_bien"] == 0

    # Minutes metadata: the published minutes, with the address of its canonical document.
    row = next(x for x in csvs["comptes-rendus"] if x["identifiant"] == minutes.minutes_id)
    assert row["seance_id"] == held.session_id and row["etat"] == "published" and row["version"] == "1"
    assert row["adoption"] == "none" and row["relu"] == "non"
    assert row["document_json"].endswith(f"/comptes-rendus/{minutes.minutes_id}/v1.json")
    item = next(x for x in jsons["comptes-rendus"] if x["identifiant"] == minutes.minutes_id)
    assert item["premiere_publication"].endswith("Z") and item["relu"] is False


async def test_unknown_files_are_french_404_pages(web: httpx.AsyncClient) -> None:
    for path in ("/donnees/inconnu.csv", "/donnees/seances.xml", "/donnees/seances", "/donnees/.csv",
                 "/donnees/seances.csv.json"):
        r = await web.get(path)
        assert r.status_code == 404 and "Fichier introuvable" in text(r), path
        assert 'href="/donnees"' in r.text


# ================================================================ streaming: one page at a time
class Recording:
    """The real RPC client, noting each page the web front asks for in a log the response shares."""

    def __init__(self, client: RpcClient, log: list[tuple[str, Any]]) -> None:
        self.client, self.log = client, log

    async def __call__(self, request: ServiceRequest[Any], *, timeout: float | None = None) -> Any:
        self.log.append(("ask", getattr(request, "offset", None)))
        return await self.client(request, timeout=timeout)


async def asgi_get(app: Any, path: str, log: list[tuple[str, Any]]) -> tuple[int, dict[str, str], bytes]:
    """Drive the ASGI app by hand (httpx's ASGI transport gathers the whole body before returning):
    each body message the app sends is noted in `log` as it goes."""
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError("unreachable")

    status, headers, body = 0, {}, bytearray()

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body" and message.get("body"):
            log.append(("sent", len(message["body"])))
            body.extend(message["body"])

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"host", b"forum.test")], "client": ("127.0.0.1", 50000),
             "server": ("forum.test", 80)}
    await asyncio.wait_for(app(scope, receive, send), 60)
    return status, headers, bytes(body)


async def test_exports_stream_page_by_page(rpc: RpcClient, secretariat: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from services.web.app import create_app
    from shared.settings import Settings

    tag = uuid.uuid4().hex[:6]
    for i in range(5):
        await new_session(rpc, secretariat, f"Séance en flux {tag} n°{i}", (100 + i) * H)
    monkeypatch.setattr(open_data, "PAGE_SIZE", 2)
    monkeypatch.setattr(open_data, "CHUNK", 1)  # send every row as soon as it is written
    app = create_app(Settings(data_dir=tmp_path))
    for extension in ("csv", "json"):
        log: list[tuple[str, Any]] = []
        app.state.web.rpc = Recording(rpc, log)
        status, headers, body = await asgi_get(app, f"/donnees/seances.{extension}", log)
        assert status == 200 and "content-length" not in headers
        items = csv_rows(body)[1] if extension == "csv" else json.loads(body)
        total = len(items)
        assert total >= 5 and sum(1 for x in items if f"Séance en flux {tag}" in x["titre"]) == 5
        offsets = [offset for kind, offset in log if kind == "ask"]
        assert offsets == list(range(0, total, 2))
        # Before asking for the page at `offset`, the web front has sent the rows before it (one body
        # message a row here; the middleware hands a message on while the next page may already be
        # asked for, hence the one-row slack): it never holds more than a page.
        for i, (kind, offset) in enumerate(log):
            if kind == "ask":
                assert sum(1 for k, _ in log[:i] if k == "sent") >= offset - 1, log
        assert log[-1][0] == "sent"
