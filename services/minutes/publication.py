"""Adoption and publication: the secretariat publishes the draft as version 1 — adopted by a decision
of a later session, by a closed vote among the session's attendees, or without adoption — and
corrects it later with a version n+1 and its reason. A version is frozen when published: its
Markdown, its paragraphs and their anchors, its canonical JSON document and that document's SHA-256,
its HTML and its PDF are stored once and never modified. Each publication and correction is a
`minutes.published` / `minutes.corrected` event (the hash, not the text), which the public record
appends as a leaf.

A repeated command publishes once: the same `request_id` answers with the version it made, and
anything else is checked, under the minutes row lock, against the state the version was frozen from
(a draft already published, or a text changed since, is refused). The PDF is rendered before that
lock is taken, so a slow rendering never holds up other writers.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from forumlib.markdown import render_paragraphs
from forumlib.minutes_doc import Paragraph, canonical_document, document_sha256, split_paragraphs
from services.minutes import search
from services.minutes.models import DecisionFact, MinutesRow, MinutesStatus, SessionFact, VersionRow, VoteFact
from services.minutes.pdf import render_pdf
from services.minutes.queries import (
    find_minutes, find_session, find_version, minutes_view, paragraphs_json, require_secretariat, state_label,
)
from services.minutes.records import utc_timestamp
from shared.clock import paris_span, utcnow
from shared.contracts.decisions import Eligibility, Outcome
from shared.contracts.forum import KIND_LABELS, THEME_LABELS
from shared.contracts.minutes import (
    Adoption, AdoptionKind, CorrectMinutes, MinutesCorrected, MinutesPublished, MinutesState, MinutesView,
    PublishMinutes,
)
from shared.errors import Conflict, Invalid, NotFound
from shared.outbox import UnitOfWork
from shared.service import HandlerContext

DOCUMENT_SCHEMA = 1
"""Version of the canonical document's `meta` (only ever added to)."""


@dataclass(frozen=True)
class Frozen:
    """One version, as it will be stored and served forever."""

    version: int
    markdown: str
    paragraphs: list[Paragraph]
    canonical: bytes
    sha256: str
    html: str
    pdf: bytes
    published_at: datetime
    adoption: Adoption
    reason: str | None


def version_state(version: int, adoption: Adoption) -> MinutesState:
    if version > 1:
        return MinutesState.CORRECTED
    return MinutesState.PUBLISHED if adoption.kind == AdoptionKind.NONE else MinutesState.ADOPTED


def document_meta(minutes_id: str, s: SessionFact, version: int, published_at: datetime, adoption: Adoption,
                  reason: str | None) -> dict[str, Any]:
    """What the canonical document says besides its paragraphs (JSON values only; instants in the
    public record's one textual form)."""
    return {"schema": DOCUMENT_SCHEMA, "minutes_id": minutes_id, "version": version,
            "session": {"session_id": s.session_id, "title": s.title, "kind": str(s.kind),
                        "starts_at": utc_timestamp(s.starts_at), "ends_at": utc_timestamp(s.ends_at)},
            "published_at": utc_timestamp(published_at), "adoption": adoption.model_dump(mode="json"),
            "reason": reason}


def session_label(s: SessionFact) -> str:
    theme = f" — {THEME_LABELS[s.theme]}" if s.theme else ""
    place = f", {s.place}" if s.place else ""
    return f"{KIND_LABELS[s.kind]}{theme}, {paris_span(s.starts_at, s.ends_at)}{place}"


async def freeze(minutes_id: str, s: SessionFact, version: int, markdown: str, published_at: datetime,
                 adoption: Adoption, reason: str | None) -> Frozen:
    paragraphs = split_paragraphs(markdown)
    canonical = canonical_document(document_meta(minutes_id, s, version, published_at, adoption, reason), paragraphs)
    sha = document_sha256(canonical)
    html = str(render_paragraphs(paragraphs))
    # WeasyPrint works for a while on the CPU: in a thread, so that the service keeps answering.
    pdf = await asyncio.to_thread(
        render_pdf, title=f"Compte rendu — {s.title}", session_label=session_label(s), version=version,
        published_at=published_at, sha256=sha, body_html=html,
        status_label=state_label(version_state(version, adoption)))
    return Frozen(version, markdown, paragraphs, canonical, sha, html, pdf, published_at, adoption, reason)


async def _replayed(tx: AsyncSession, minutes_id: str, request_id: str | None) -> bool:
    """The command was carried out already (same request id): answer as it was answered then."""
    if not request_id:
        return False
    stmt = select(VersionRow.version).where(VersionRow.minutes_id == minutes_id, VersionRow.request_id == request_id)
    return (await tx.exec(stmt)).first() is not None


def _store(uow: UnitOfWork, doc: MinutesRow, f: Frozen, actor: str, request_id: str | None) -> None:
    """Write the frozen version, its event, and the minutes' new state, in the caller's transaction."""
    event_cls = MinutesPublished if f.version == 1 else MinutesCorrected
    env = uow.emit(event_cls(minutes_id=doc.id, session_id=doc.session_id, version=f.version, sha256=f.sha256,
                             published_at=f.published_at, adoption=f.adoption, reason=f.reason))
    uow.tx.add(VersionRow(
        minutes_id=doc.id, version=f.version, markdown=f.markdown, paragraphs=paragraphs_json(f.paragraphs),
        canonical=f.canonical, sha256=f.sha256, html=f.html, pdf=f.pdf, published_at=f.published_at,
        published_by=actor, reason=f.reason, adoption=f.adoption.model_dump_json(), request_id=request_id,
        event_id=str(env.event_id)))
    if f.markdown != doc.markdown:
        doc.markdown, doc.revision = f.markdown, doc.revision + 1
    doc.status, doc.latest_version, doc.adoption_kind = MinutesStatus.PUBLISHED, f.version, f.adoption.kind.value
    doc.updated_by, doc.updated_at = actor, f.published_at
    uow.tx.add(doc)


# ---------------------------------------------------------------- adoption
async def _adoption(tx: AsyncSession, doc: MinutesRow, s: SessionFact, req: PublishMinutes) -> Adoption:
    """How the minutes were adopted, checked against what the forum recorded."""
    if req.adoption == AdoptionKind.NONE:
        return Adoption(kind=AdoptionKind.NONE, reviewed=doc.reviewed)
    if req.adoption == AdoptionKind.DECISION:
        d = (await tx.exec(select(DecisionFact).where(DecisionFact.number == req.decision_number))).first()
        if d is None:
            raise NotFound(f"Aucune décision n° {req.decision_number} n'est enregistrée.", field="decision_number")
        held = await tx.get(SessionFact, d.session_id)
        if d.session_id == s.session_id or held is None or held.starts_at <= s.starts_at:
            raise Conflict(f"La décision n° {d.number} n'a pas été prise lors d'une séance postérieure à celle-ci : "
                           "un compte rendu est adopté par une séance suivante.", field="decision_number")
        if d.outcome != Outcome.ADOPTED or d.superseded_by:
            raise Conflict(f"La décision n° {d.number} n'est pas une décision adoptée en vigueur.",
                           field="decision_number")
        return Adoption(kind=AdoptionKind.DECISION, decision_id=d.decision_id, decision_number=d.number,
                        reviewed=doc.reviewed)
    v = await tx.get(VoteFact, req.vote_id)
    if v is None:
        raise NotFound("Vote inconnu, ou pas encore clos.", field="vote_id")
    if v.session_id != s.session_id or v.eligibility != Eligibility.ATTENDEES:
        raise Conflict("Ce vote n'était pas ouvert aux membres présents à cette séance : il ne peut pas en adopter "
                       "le compte rendu.", field="vote_id")
    if v.ballots == 0 or v.winner_label is None:
        raise Conflict("Ce vote n'a pas de résultat (aucun bulletin, ou égalité parfaite).", field="vote_id")
    number = None
    if v.decision_id and (d := await tx.get(DecisionFact, v.decision_id)) is not None:
        number = d.number
    return Adoption(kind=AdoptionKind.VOTE, vote_id=v.vote_id, decision_id=v.decision_id, decision_number=number,
                    reviewed=doc.reviewed)


# ---------------------------------------------------------------- commands
async def publish_minutes(req: PublishMinutes, ctx: HandlerContext) -> MinutesView:
    """Secretariat publishes the draft as version 1 (see the module's notes on repeated commands)."""
    now = utcnow()
    async with ctx.db.read() as tx:
        await require_secretariat(tx, req.actor_id)
        doc = await find_minutes(tx, req.minutes_id)
        if await _replayed(tx, doc.id, req.request_id):
            return await minutes_view(tx, doc, req.actor_id, now)
        _check_publishable(doc, req.base_revision if req.base_revision is not None else doc.revision)
        s = await find_session(tx, doc.session_id)
        adoption = await _adoption(tx, doc, s, req)
    frozen = await freeze(doc.id, s, 1, doc.markdown, now, adoption, None)
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        tx = uow.tx
        locked = await find_minutes(tx, doc.id, lock=True)
        if not await _replayed(tx, doc.id, req.request_id):
            _check_publishable(locked, doc.revision)  # what was frozen is still the draft
            _store(uow, locked, frozen, req.actor_id, req.request_id)
            await search.index_minutes(tx, locked, s, frozen.markdown)
            await tx.flush()
        view = await minutes_view(tx, locked, req.actor_id, now)
    return view


def _check_publishable(doc: MinutesRow, revision: int) -> None:
    if doc.status == MinutesStatus.PUBLISHED:
        raise Conflict(f"Ce compte rendu est déjà publié (version {doc.latest_version}) : une modification passe "
                       "désormais par une correction.", field="minutes_id")
    if revision != doc.revision:
        raise Conflict(f"Le brouillon a été modifié depuis que vous l'avez ouvert (révision {doc.revision}) : "
                       "relisez-le avant de le publier ; rien n'a été publié.", field="base_revision")


async def correct_minutes(req: CorrectMinutes, ctx: HandlerContext) -> MinutesView:
    """Secretariat publishes a corrected text as the next version, with the reason; every earlier version
    stays public and unchanged. The adoption of the minutes carries over."""
    now = utcnow()
    async with ctx.db.read() as tx:
        await require_secretariat(tx, req.actor_id)
        doc = await find_minutes(tx, req.minutes_id)
        if await _replayed(tx, doc.id, req.request_id):
            return await minutes_view(tx, doc, req.actor_id, now)
        if doc.status != MinutesStatus.PUBLISHED:
            raise Conflict("Ce compte rendu n'est pas encore publié : modifiez son brouillon.", field="minutes_id")
        latest = await find_version(tx, doc, None, field="minutes_id")
        if req.markdown == latest.markdown.strip() or _same_paragraphs(req.markdown, latest.markdown):
            raise Invalid("Le texte corrigé est identique à la version publiée.", field="markdown")
        s = await find_session(tx, doc.session_id)
        adoption = Adoption.model_validate_json(latest.adoption)
    frozen = await freeze(doc.id, s, latest.version + 1, req.markdown, now, adoption, req.reason)
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        tx = uow.tx
        locked = await find_minutes(tx, doc.id, lock=True)
        if not await _replayed(tx, doc.id, req.request_id):
            if locked.latest_version != latest.version:
                raise Conflict(f"Une autre correction vient d'être publiée (version {locked.latest_version}) : "
                               "relisez-la ; rien n'a été publié.", field="minutes_id")
            _store(uow, locked, frozen, req.actor_id, req.request_id)
            await search.index_minutes(tx, locked, s, frozen.markdown)
            await tx.flush()
        view = await minutes_view(tx, locked, req.actor_id, now)
    return view


def _same_paragraphs(a: str, b: str) -> bool:
    return [(p.kind, p.markdown) for p in split_paragraphs(a)] == [(p.kind, p.markdown) for p in split_paragraphs(b)]

