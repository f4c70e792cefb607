"""Decisions as the public sees them: the decision register `/decisions` (filters, pagination), its
open data exports `/decisions.csv` and `/decisions.json` (Licence Ouverte / Etalab 2.0), and a
decision's page `/decisions/{id}`: its text (Markdown, sanitised), outcome and the rule check beside
it, the show of hands or the online vote's merit profiles, corrections, follow-up, the paragraph of
the session's minutes that records it, and its record in the public log with the inclusion proof
verified (by the server, and again in the reader's browser).

The forum service decides and computes everything (outcome, rule check, majority judgment); the web
front only shows what it answers, in French, in Europe/Paris time.
"""
from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from starlette.requests import Request

from forumlib.majority_judgment import GRADE_LABELS
from forumlib.markdown import render_markdown
from shared import clock
from shared.contracts.common import ErrorCode
from shared.contracts.decisions import (
    ELIGIBILITY_LABELS, FOLLOW_UP_LABELS, METHOD_LABELS, OUTCOME_LABELS, SIDE_LABELS, DecisionView, FollowUpStatus,
    GetDecision, ListCommitments, ListDecisions, Outcome,
)
from shared.rpc import RpcClient, RpcError
from services.web.pages import error_page, render, rpc, web
from services.web.routes._common import csv_cell, csv_response, fetch, not_found
from services.web.routes.minutes import decision_minutes
from services.web.routes.record import Proof, prove_events, record_label, record_time

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
EXPORT_PAGE = 500
EXPORT_MAX = 20_000
LICENCE = "Licence Ouverte / Etalab 2.0"
LICENCE_URL = "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"
OPEN_DATA_HEADERS = {"Link": f'<{LICENCE_URL}>; rel="license"', "Access-Control-Allow-Origin": "*"}
_CODE = re.compile(r"^[0-9A-Za-z.-]{1,12}$")
BACK = [("/decisions", "Voir le registre des décisions"), ("/", "Retour à l'accueil")]
OUTCOME_KINDS = {Outcome.ADOPTED: "success", Outcome.REJECTED: "error", Outcome.DEFERRED: "info"}
FOLLOW_UP_KINDS = {FollowUpStatus.TODO: "new", FollowUpStatus.IN_PROGRESS: "info",
                   FollowUpStatus.DONE: "success", FollowUpStatus.ABANDONED: "warning"}
LABELS = dict(outcome_labels=OUTCOME_LABELS, outcome_kinds=OUTCOME_KINDS, follow_up_labels=FOLLOW_UP_LABELS,
              follow_up_kinds=FOLLOW_UP_KINDS, method_labels=METHOD_LABELS, side_labels=SIDE_LABELS,
              grade_labels=GRADE_LABELS, eligibility_labels=ELIGIBILITY_LABELS)


async def unknown_decision(request: Request) -> Response:
    return await not_found(request, "Cette décision", "Décision introuvable", BACK)


# ---------------------------------------------------------------- filters
class BadFilter(Exception):
    pass


def _filters(engagement: str, issue: str, suivi: str, masquer: str) -> dict[str, Any]:
    """The ListDecisions filters from the query string (BadFilter for a value that cannot be one)."""
    outcomes = {o.value: o for o in Outcome}
    statuses = {s.value: s for s in FollowUpStatus}
    if (engagement and not _CODE.match(engagement)) or (issue and issue not in outcomes) \
            or (suivi and suivi not in statuses) or masquer not in ("", "0", "1"):
        raise BadFilter()
    return {"commitment_code": engagement or None, "outcome": outcomes.get(issue), "follow_up": statuses.get(suivi),
            "include_superseded": masquer != "1"}


async def _all_decisions(client: RpcClient, filters: dict[str, Any]) -> list[DecisionView]:
    out: list[DecisionView] = []
    while len(out) < EXPORT_MAX:
        page = await client(ListDecisions(**filters, limit=EXPORT_PAGE, offset=len(out)))
        out.extend(page.decisions)
        if len(page.decisions) < EXPORT_PAGE or len(out) >= page.total:
            break
    return out


async def session_decisions(client: RpcClient, session_id: str) -> list[DecisionView] | None:
    """A session's decisions, for its page (None when the forum does not answer: the page still shows)."""
    try:
        return (await client(ListDecisions(session_id=session_id, limit=100))).decisions
    except RpcError:
        return None


# ---------------------------------------------------------------- the register
@router.get("/decisions")
async def register(request: Request, engagement: str = Query("", max_length=40), issue: str = Query("", max_length=40),
                   suivi: str = Query("", max_length=40), masquer_corrigees: str = Query("", max_length=5),
                   page: int = Query(1, ge=1, le=10_000)) -> Response:
    try:
        filters = _filters(engagement, issue, suivi, masquer_corrigees)
    except BadFilter:
        return await error_page(request, 400, "Ce filtre n'existe pas.", actions=BACK)
    client = rpc(request)
    listing, listed = await asyncio.gather(  # independent: one round trip's wait
        client(ListCommitments()), client(ListDecisions(**filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)))
    commitments = listing.commitments
    pages = max(1, -(-listed.total // PAGE_SIZE))
    if page > pages:  # past the last page: a clear page, never an empty register
        return await error_page(request, 404, "Cette page du registre des décisions n'existe pas.",
                                title="Page introuvable", actions=BACK)
    query = {"engagement": engagement, "issue": issue, "suivi": suivi, "masquer_corrigees": masquer_corrigees}
    qs = "&".join(f"{k}={v}" for k, v in query.items() if v)
    return await render(request, "decisions.html", decisions=listed.decisions, total=listed.total, page=page,
                        pages=pages, commitments=commitments, f=query, qs=qs, outcomes=list(Outcome),
                        statuses=list(FollowUpStatus), **LABELS)


# ---------------------------------------------------------------- open data
def open_data_row(d: DecisionView, base_url: str) -> dict[str, Any]:
    """One decision in the open data exports (the same fields in CSV and JSON)."""
    info = d.decision
    return {
        "numero": info.number,
        "identifiant": info.decision_id,
        "titre": info.title,
        "date": clock.as_paris(info.recorded_at).isoformat(),
        "seance_id": info.session_id,
        "seance": info.session_title,
        "point_ordre_du_jour": info.agenda_position,
        "point_ordre_du_jour_texte": info.agenda_text,
        "issue": info.outcome.value,
        "issue_libelle": OUTCOME_LABELS[info.outcome],
        "methode": info.method.value,
        "regle_respectee": info.rule_check.met,
        "regle_resume": info.rule_check.summary,
        "engagement_code": info.commitment.code if info.commitment else None,
        "engagement_titre": info.commitment.title if info.commitment else None,
        "suivi": d.follow_up.value,
        "suivi_libelle": FOLLOW_UP_LABELS[d.follow_up],
        "corrige": info.supersedes,
        "corrigee_par": d.superseded_by,
        "vote_id": info.vote_id,
        "texte": info.text,
        "url": f"{base_url}/decisions/{info.decision_id}",
    }


CSV_COLUMNS = [
    "numero", "identifiant", "titre", "date", "seance_id", "seance", "point_ordre_du_jour",
    "point_ordre_du_jour_texte", "issue", "issue_libelle", "methode", "regle_respectee", "regle_resume",
    "engagement_code", "engagement_titre", "suivi", "suivi_libelle", "corrige", "corrigee_par", "vote_id",
    "texte", "url",
]


async def _export(request: Request, engagement: str, issue: str, suivi: str, masquer: str
                  ) -> list[dict[str, Any]] | Response:
    try:
        filters = _filters(engagement, issue, suivi, masquer)
    except BadFilter:
        return await error_page(request, 400, "Ce filtre n'existe pas.", actions=BACK)
    base = web(request).settings.public_url.rstrip("/")
    return [open_data_row(d, base) for d in await _all_decisions(rpc(request), filters)]


@router.get("/decisions.csv")
async def decisions_csv(request: Request, engagement: str = Query("", max_length=40),
                        issue: str = Query("", max_length=40), suivi: str = Query("", max_length=40),
                        masquer_corrigees: str = Query("", max_length=5)) -> Response:
    """UTF-8 with a BOM and `;` separators (what French spreadsheets open as is); formula-safe cells."""
    rows = await _export(request, engagement, issue, suivi, masquer_corrigees)
    if isinstance(rows, Response):
        return rows
    cells = ([csv_cell({True: "oui", False: "non"}.get(v, v) if isinstance(v, bool) else v)
              for v in (row[c] for c in CSV_COLUMNS)] for row in rows)
    return csv_response([CSV_COLUMNS, *cells], "forum-ouvert-decisions.csv", headers=OPEN_DATA_HEADERS)


@router.get("/decisions.json")
async def decisions_json(request: Request, engagement: str = Query("", max_length=40),
                         issue: str = Query("", max_length=40), suivi: str = Query("", max_length=40),
                         masquer_corrigees: str = Query("", max_length=5)) -> Response:
    rows = await _export(request, engagement, issue, suivi, masquer_corrigees)
    if isinstance(rows, Response):
        return rows
    body = {"licence": LICENCE, "licence_url": LICENCE_URL, "producteur": "Forum ouvert du Partenariat pour un "
            "gouvernement ouvert (CESE)", "source": web(request).settings.public_url.rstrip("/") + "/decisions",
            "genere_le": clock.as_paris(clock.utcnow()).isoformat(), "total": len(rows), "decisions": rows}
    return Response(json.dumps(body, ensure_ascii=False, indent=1), media_type="application/json; charset=utf-8",
                    headers={"Content-Disposition": 'inline; filename="forum-ouvert-decisions.json"',
                             **OPEN_DATA_HEADERS})


# ---------------------------------------------------------------- one decision
@router.get("/decisions/{decision_id}")
async def show(request: Request, decision_id: str) -> Response:
    d = await fetch(request, decision_id, lambda: GetDecision(decision_id=decision_id), unknown_decision,
                    not_found_codes=(ErrorCode.NOT_FOUND, ErrorCode.INVALID))
    if isinstance(d, Response):
        return d
    client = rpc(request)
    info = d.decision
    events: list[tuple[str, str]] = [(d.event_id, "Enregistrement de la décision")]
    if d.vote:
        events.insert(0, (d.vote.opened_event_id, "Ouverture du vote"))
        if d.vote.closed_event_id:
            events.insert(1, (d.vote.closed_event_id, "Clôture du vote et profils de mérite"))
    events += [(f.event_id, f"Suivi : {FOLLOW_UP_LABELS[f.status]}") for f in d.follow_ups]
    if d.superseded_event_id:
        events.append((d.superseded_event_id, "Correction par une nouvelle décision"))
    (where, proof), minutes = await asyncio.gather(
        prove_events(client, [e for e, _ in events], d.event_id, must_contain=info.decision_id),
        decision_minutes(client, info.decision_id))
    records = sorted(({"what": what, "index": where[e].index, "type": record_label(where[e].type)}
                      for e, what in events if e in where), key=lambda r: r["index"])
    own = where.get(d.event_id)
    winner = None
    if d.vote and d.vote.result and d.vote.result.winner_option_id is not None:
        winner = next((o for o in d.vote.result.options if o.option_id == d.vote.result.winner_option_id), None)
    return await render(request, "decision.html", d=d, info=info, text_html=render_markdown(info.text),
                        supersedes_number=d.supersedes_number, superseded_by_number=d.superseded_by_number,
                        records=records, proof=proof, winner=winner, minutes=minutes, attendance=d.attendance_now,
                        record_status=record_status(proof, own is not None),
                        recorded_in_log_at=record_time(proof.record) if proof.record else None, **LABELS)


def record_status(proof: Proof, located: bool) -> str:
    """Where the decision stands in the public record, in one word the page turns into a sentence: "ok"
    (its leaf is under a signed checkpoint, proof verified), "pending" (not in the log yet, or not yet under
    a signed checkpoint), "failed" or "unavailable". Never "in progress" beside a verified proof."""
    if proof.status == "ok":
        return "ok"
    if proof.status in ("failed", "unavailable"):
        return proof.status
    return "pending_checkpoint" if located else "pending"
