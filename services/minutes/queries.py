"""Reads every minutes capability shares: the actor's rights (from the projection of registry and
forum events), a session or minutes by id, the public state of minutes, and their views."""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import defer
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from forumlib.minutes_doc import Paragraph, split_paragraphs
from services.minutes.models import AttendanceFact, MemberFact, MinutesRow, MinutesStatus, SessionFact, VersionRow
from shared.contracts.minutes import (
    MINUTES_STATE_LABELS, Adoption, AdoptionKind, MinutesSession, MinutesState, MinutesView, ParagraphView,
    VersionSummary,
)
from shared.contracts.registry import Role
from shared.errors import Forbidden, NotFound


# ---------------------------------------------------------------- who may do what
async def is_secretariat(tx: AsyncSession, actor_id: str | None) -> bool:
    if not actor_id:
        return False
    m = await tx.get(MemberFact, actor_id)
    return m is not None and m.role == Role.SECRETARIAT and not m.erased


async def require_secretariat(tx: AsyncSession, actor_id: str) -> None:
    if not await is_secretariat(tx, actor_id):
        raise Forbidden("Seul le secrétariat du forum peut rédiger, publier ou corriger un compte rendu.",
                        field="actor_id")


async def is_attendee(tx: AsyncSession, session_id: str, actor_id: str | None) -> bool:
    """Checked in at the session (and not erased since): who reviews its minutes."""
    if not actor_id:
        return False
    row = await tx.get(AttendanceFact, (session_id, actor_id))
    if row is None or not row.present:
        return False
    m = await tx.get(MemberFact, actor_id)
    return m is None or not m.erased


# ---------------------------------------------------------------- by id
async def find_session(tx: AsyncSession, session_id: str, field: str = "session_id") -> SessionFact:
    s = await tx.get(SessionFact, session_id)
    if s is None:
        raise NotFound("Séance inconnue.", field=field)
    return s


async def find_minutes(tx: AsyncSession, minutes_id: str, *, lock: bool = False) -> MinutesRow:
    """The minutes, locked when `lock` (every change to one minutes takes its row lock first)."""
    stmt = select(MinutesRow).where(MinutesRow.id == minutes_id)
    doc = (await tx.exec(stmt.with_for_update() if lock else stmt)).first()
    if doc is None:
        raise NotFound("Compte rendu inconnu.", field="minutes_id")
    return doc


async def find_version(tx: AsyncSession, doc: MinutesRow, version: int | None, field: str = "version", *,
                       with_pdf: bool = False) -> VersionRow:
    """One published version (the latest for None); its PDF is read only when asked for."""
    number = version if version is not None else doc.latest_version
    stmt = select(VersionRow).where(VersionRow.minutes_id == doc.id, VersionRow.version == number)
    row = (await tx.exec(stmt if with_pdf else stmt.options(defer(VersionRow.pdf)))).first() if number >= 1 else None
    if row is None:
        if doc.latest_version == 0:
            raise NotFound("Ce compte rendu n'a pas encore été publié.", field=field)
        raise NotFound(f"Ce compte rendu n'a pas de version {number} (dernière version : {doc.latest_version}).",
                       field=field)
    return row


# ---------------------------------------------------------------- state and views
def public_state(doc: MinutesRow) -> MinutesState:
    if doc.status == MinutesStatus.DRAFT:
        return MinutesState.DRAFT
    if doc.status == MinutesStatus.REVIEW:
        return MinutesState.REVIEW
    if doc.latest_version > 1:
        return MinutesState.CORRECTED
    return MinutesState.PUBLISHED if doc.adoption_kind in (None, AdoptionKind.NONE) else MinutesState.ADOPTED


def state_label(state: MinutesState) -> str:
    return MINUTES_STATE_LABELS[state]


def session_view(s: SessionFact) -> MinutesSession:
    return MinutesSession(session_id=s.session_id, title=s.title, kind=s.kind, theme=s.theme, starts_at=s.starts_at,
                          ends_at=s.ends_at, place=s.place, online_url=s.online_url)


def agenda_of(s: SessionFact) -> list[str]:
    return list(json.loads(s.agenda))


def paragraph_views(paragraphs: Sequence[Paragraph]) -> list[ParagraphView]:
    return [ParagraphView(anchor=p.anchor, kind=p.kind, markdown=p.markdown) for p in paragraphs]


def stored_paragraphs(paragraphs: str) -> list[Paragraph]:
    """The paragraphs of a version, as stored (`VersionRow.paragraphs`)."""
    return [Paragraph(**p) for p in json.loads(paragraphs)]


def paragraphs_json(paragraphs: Sequence[Paragraph]) -> str:
    return json.dumps([{"anchor": p.anchor, "kind": p.kind, "markdown": p.markdown} for p in paragraphs],
                      ensure_ascii=False)


async def version_summaries(tx: AsyncSession, minutes_ids: Sequence[str]) -> dict[str, list[VersionSummary]]:
    """Published versions of each minutes, oldest first (without their documents: no PDF is read)."""
    out: dict[str, list[VersionSummary]] = defaultdict(list)
    if not minutes_ids:
        return out
    stmt = (select(VersionRow.minutes_id, VersionRow.version, VersionRow.published_at, VersionRow.sha256,
                   VersionRow.reason, VersionRow.adoption, VersionRow.event_id)
            .where(col(VersionRow.minutes_id).in_(list(minutes_ids)))
            .order_by(col(VersionRow.minutes_id), col(VersionRow.version)))
    for mid, version, published_at, sha, reason, adoption, event_id in (await tx.exec(stmt)).all():
        out[mid].append(VersionSummary(version=version, published_at=published_at, sha256=sha, reason=reason,
                                       adoption=Adoption.model_validate_json(adoption), event_id=event_id))
    return out


async def minutes_view(tx: AsyncSession, doc: MinutesRow, actor_id: str | None, now: datetime) -> MinutesView:
    """The minutes as `actor_id` may see them: the draft's text to the secretariat, and to the session's
    attendees while it is in review; published versions to anyone. Nobody else learns a draft's text."""
    secretariat = await is_secretariat(tx, actor_id)
    attendee = await is_attendee(tx, doc.session_id, actor_id)
    in_review = doc.status == MinutesStatus.REVIEW
    may_read = secretariat or (in_review and attendee)
    if not may_read and doc.status != MinutesStatus.PUBLISHED:
        raise Forbidden("Ce compte rendu n'est pas encore publié : seul le secrétariat le lit, et, pendant sa "
                        "relecture, les membres présents à la séance.", field="minutes_id")
    session = await find_session(tx, doc.session_id)
    state = public_state(doc)
    return MinutesView(
        minutes_id=doc.id, session=session_view(session), state=state, state_label=state_label(state),
        revision=doc.revision, markdown=doc.markdown if may_read else None,
        paragraphs=paragraph_views(split_paragraphs(doc.markdown)) if may_read else [],
        review_until=doc.review_until, versions=(await version_summaries(tx, [doc.id]))[doc.id],
        created_at=doc.created_at, updated_at=doc.updated_at,
        may_edit=secretariat and doc.status != MinutesStatus.PUBLISHED,
        may_comment=attendee and in_review and doc.review_until is not None and now < doc.review_until)
