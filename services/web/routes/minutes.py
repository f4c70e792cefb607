"""Comptes rendus (minutes of the sessions) as the public sees them: the list `/comptes-rendus` (newest
session first; by year, session kind and theme), one minutes' page (its latest version, every paragraph
with its anchor, the adoption statement, every version with its date and reason, the session's
decisions, and the inclusion proof of its publication in the public record), each version as HTML,
PDF and canonical JSON (`/comptes-rendus/{id}/v{n}`, `.pdf`, `.json`), and the difference between
two versions, paragraph by paragraph.

The minutes service freezes every version (text, anchors, canonical JSON, hash, PDF); the web front
only shows what it answers. The paragraphs are rendered again here with the same sanitiser the
service uses, from the stored Markdown, so that a tampered stored HTML could never reach a reader.
"""
from __future__ import annotations

import asyncio
import base64
import difflib
import re
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from starlette.requests import Request

from forumlib.markdown import render_markdown, render_paragraphs
from forumlib.minutes_doc import Paragraph
from shared import clock
from shared.contracts.common import ErrorCode
from shared.contracts.decisions import OUTCOME_LABELS, DecisionView, ListDecisions
from shared.contracts.forum import SessionKind, Theme
from shared.contracts.minutes import (
    DecisionMinutes, DiffMinutes, GetMinutes, GetMinutesPdf, GetMinutesVersion, ListMinutes, MinutesOfDecision,
    MinutesOfSession, MinutesVersionView, ParagraphView, SessionMinutes,
)
from shared.logging import get_logger
from shared.rpc import RpcClient, RpcError
from services.web.forms import whole_number_or_none
from services.web.pages import current_member, error_page, render, rpc
from services.web.routes._common import not_found, valid_id
from services.web.routes.record import prove_events, record_label

log = get_logger(__name__)
router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
FIRST_YEAR = 2020
MAX_VERSION = 1_000_000
BACK = [("/comptes-rendus", "Voir les comptes rendus"), ("/", "Retour à l'accueil")]
CHANGE_LABELS = {"same": "Inchangé", "added": "Ajouté", "removed": "Supprimé", "changed": "Modifié"}
# A published version never changes: its files may be kept by any cache.
FROZEN_HEADERS = {"Cache-Control": "public, max-age=31536000, immutable", "Access-Control-Allow-Origin": "*"}
LABELS: dict[str, Any] = dict(change_labels=CHANGE_LABELS, outcome_labels=OUTCOME_LABELS)
_WORDS = re.compile(r"\s+|\S+")


async def unknown_minutes(request: Request) -> Response:
    return await error_page(request, 404, "Ce compte rendu n'existe pas ou n'est pas (encore) publié. Vérifiez "
                            "l'adresse.", title="Compte rendu introuvable", actions=BACK)


async def unknown_version(request: Request) -> Response:
    return await not_found(request, "Cette version du compte rendu", "Version introuvable", BACK)


def paragraphs_html(paragraphs: list[ParagraphView]) -> Markup:
    """The paragraphs, each in its `<div class="cr-para" id="p-…">`, sanitised here again."""
    return render_paragraphs([Paragraph(anchor=p.anchor, kind=p.kind, markdown=p.markdown) for p in paragraphs])


# ---------------------------------------------------------------- for the session and decision pages
async def session_minutes(client: RpcClient, session_id: str) -> SessionMinutes | None:
    """Where the session's minutes stand (None when the minutes service does not answer)."""
    try:
        return await client(MinutesOfSession(session_id=session_id))
    except RpcError as exc:
        log.warning("minutes-of-session failed", code=str(exc.code))
        return None


async def may_review(client: RpcClient, minutes_id: str, actor_id: str) -> bool:
    """Whether the member may read (and comment on) the draft in review."""
    try:
        view = await client(GetMinutes(minutes_id=minutes_id, actor_id=actor_id))
    except RpcError:
        return False
    return view.markdown is not None


async def decision_minutes(client: RpcClient, decision_id: str) -> DecisionMinutes | None:
    """The minutes paragraph where a decision is recorded (None when the service does not answer)."""
    try:
        return await client(MinutesOfDecision(decision_id=decision_id))
    except RpcError as exc:
        log.warning("minutes-of-decision failed", code=str(exc.code))
        return None


# ---------------------------------------------------------------- the list
@router.get("/comptes-rendus")
async def minutes_list(request: Request, annee: str = Query("", max_length=4), kind: str = Query("", alias="type",
                       max_length=40), theme: str = Query("", max_length=40),
                       page: int = Query(1, ge=1, le=10_000)) -> Response:
    kinds, themes = {k.value: k for k in SessionKind}, {t.value: t for t in Theme}
    this_year = clock.as_paris(clock.utcnow()).year
    years = list(range(this_year + 1, FIRST_YEAR - 1, -1))
    year = whole_number_or_none(annee, maximum=9999) if annee else None
    if (annee and year not in years) or (kind and kind not in kinds) or (theme and theme not in themes):
        return await error_page(request, 400, "Ce filtre n'existe pas.", actions=BACK)
    listed = await rpc(request)(ListMinutes(year=year, kind=kinds.get(kind),
                                            theme=themes.get(theme), limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE))
    pages = max(1, -(-listed.total // PAGE_SIZE))
    query = {"annee": annee, "type": kind, "theme": theme}
    qs = "&".join(f"{k}={v}" for k, v in query.items() if v)
    return await render(request, "minutes_list.html", minutes=listed.minutes, total=listed.total, page=page,
                        pages=pages, f=query, qs=qs, years=years, kinds=list(SessionKind), themes=list(Theme),
                        **LABELS)


# ---------------------------------------------------------------- one minutes, one version
def version_of(raw: str) -> int | None:
    """The number after the `v` of `/v3` (None for anything that cannot be a version number)."""
    m = re.fullmatch(r"([1-9][0-9]{0,6})", raw)
    return int(m.group(1)) if m and int(m.group(1)) <= MAX_VERSION else None


async def get_version(request: Request, minutes_id: str, version: int | None) -> MinutesVersionView | Response:
    if not valid_id(minutes_id):
        return await unknown_minutes(request)
    try:
        return await rpc(request)(GetMinutesVersion(minutes_id=minutes_id, version=version))
    except RpcError as exc:
        if exc.code not in (ErrorCode.NOT_FOUND, ErrorCode.INVALID):
            raise
    return await unknown_minutes(request) if version is None else await unknown_version(request)


async def _not_published(request: Request, minutes_id: str) -> Response:
    """Minutes not published yet: the secretariat goes to its draft, an attendee to the review, others
    get « introuvable » (nobody learns that a draft exists)."""
    member = await current_member(request)
    if member is not None and valid_id(minutes_id):
        try:
            view = await rpc(request)(GetMinutes(minutes_id=minutes_id, actor_id=member.member_id))
        except RpcError as exc:
            if exc.code not in (ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN, ErrorCode.INVALID):
                raise
        else:
            if view.may_edit:
                return RedirectResponse(f"/secretariat/comptes-rendus/{minutes_id}", status_code=303)
            if view.markdown is not None:
                return RedirectResponse(f"/comptes-rendus/{minutes_id}/relecture", status_code=303)
    return await unknown_minutes(request)


async def session_decisions(client: RpcClient, session_id: str) -> list[DecisionView]:
    try:
        return (await client(ListDecisions(session_id=session_id, limit=100))).decisions
    except RpcError:
        return []


async def version_page(request: Request, v: MinutesVersionView, *, latest: bool) -> Response:
    client = rpc(request)
    (where, proof), decisions = await asyncio.gather(
        prove_events(client, [s.event_id for s in v.versions], v.event_id, must_contain=v.minutes_id),
        session_decisions(client, v.session.session_id))
    records = [{"version": s.version, "index": where[s.event_id].index, "type": record_label(where[s.event_id].type)}
               for s in v.versions if s.event_id in where]
    return await render(request, "minutes.html", v=v, latest=latest, body=paragraphs_html(v.paragraphs),
                        records=records, proof=proof, decisions=decisions, **LABELS)


@router.get("/comptes-rendus/{minutes_id}")
async def show(request: Request, minutes_id: str) -> Response:
    """The latest version (a citation `#p-…` of an unchanged paragraph lands on it in every version)."""
    if not valid_id(minutes_id):
        return await unknown_minutes(request)
    try:
        v = await rpc(request)(GetMinutesVersion(minutes_id=minutes_id))
    except RpcError as exc:
        if exc.code not in (ErrorCode.NOT_FOUND, ErrorCode.INVALID):
            raise
        return await _not_published(request, minutes_id)
    return await version_page(request, v, latest=True)


@router.get("/comptes-rendus/{minutes_id}/difference")
async def difference(request: Request, minutes_id: str, de: str = Query("", max_length=8),
                     a: str = Query("", max_length=8)) -> Response:
    latest = await get_version(request, minutes_id, None)
    if isinstance(latest, Response):
        return latest
    n = latest.latest_version
    old = whole_number_or_none(de, maximum=MAX_VERSION) if de else max(1, n - 1)
    new = whole_number_or_none(a, maximum=MAX_VERSION) if a else n
    if old is None or new is None:
        return await error_page(request, 400, "Indiquez deux numéros de version (chiffres 0 à 9).", actions=BACK)
    if not (1 <= old <= n and 1 <= new <= n):
        return await unknown_version(request)
    values = {"de": str(old), "a": str(new)}
    if old == new:
        return await render(request, "minutes_diff.html", status_code=200 if n == 1 else 422, v=latest, diff=None,
                            values=values, errors={} if n == 1 else {"a": "Choisissez deux versions différentes."},
                            **LABELS)
    diff = await rpc(request)(DiffMinutes(minutes_id=minutes_id, from_version=old, to_version=new))
    changes = [{"kind": c.kind, "old": c.old, "new": c.new,
                "old_html": render_markdown(c.old.markdown) if c.old else None,
                "new_html": render_markdown(c.new.markdown) if c.new else None,
                "words": word_diff(c.old.markdown, c.new.markdown) if c.old and c.new else None}
               for c in diff.changes if c.kind != "same"]
    same = sum(1 for c in diff.changes if c.kind == "same")
    return await render(request, "minutes_diff.html", v=latest, diff=diff, changes=changes, same=same,
                        values=values, **LABELS)


def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """The Markdown of a changed paragraph word by word: ("same" | "removed" | "added", text)."""
    a, b = _WORDS.findall(old), _WORDS.findall(new)
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("removed", "".join(a[i1:i2])))
        if j2 > j1:
            out.append(("added", "".join(b[j1:j2])))
    return out


@router.get("/comptes-rendus/{minutes_id}/v{number}.pdf")
async def version_pdf(request: Request, minutes_id: str, number: str) -> Response:
    version = version_of(number)
    if version is None or not valid_id(minutes_id):
        return await unknown_version(request)
    try:
        pdf = await rpc(request)(GetMinutesPdf(minutes_id=minutes_id, version=version), timeout=60)
    except RpcError as exc:
        if exc.code in (ErrorCode.NOT_FOUND, ErrorCode.INVALID):
            return await unknown_version(request)
        raise
    return Response(base64.b64decode(pdf.pdf), media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{pdf.filename}"', "X-Document-SHA256": pdf.sha256,
        **FROZEN_HEADERS})


@router.get("/comptes-rendus/{minutes_id}/v{number}.json")
async def version_json(request: Request, minutes_id: str, number: str) -> Response:
    """The canonical document, byte for byte: its SHA-256 is the hash in the public record."""
    version = version_of(number)
    if version is None:
        return await unknown_version(request)
    v = await get_version(request, minutes_id, version)
    if isinstance(v, Response):
        return v
    return Response(v.canonical_json.encode("utf-8"), media_type="application/json", headers={
        "Content-Disposition": f'inline; filename="compte-rendu-{v.minutes_id[:8]}-v{v.version}.json"',
        "X-Document-SHA256": v.sha256, **FROZEN_HEADERS})


@router.get("/comptes-rendus/{minutes_id}/v{number}")
async def one_version(request: Request, minutes_id: str, number: str) -> Response:
    version = version_of(number)
    if version is None:
        return await unknown_version(request)
    v = await get_version(request, minutes_id, version)
    if isinstance(v, Response):
        return v
    return await version_page(request, v, latest=v.version == v.latest_version)
