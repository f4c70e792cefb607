"""The published minutes, for anyone: the list (newest session first, by year, session kind and theme),
each version with its HTML, paragraphs, canonical JSON and hash, its PDF, the difference between two
versions paragraph by paragraph, and the links the session and decision pages need. Drafts never
leave through these reads (except to the secretariat's list)."""
from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func
from sqlmodel import col, select

from forumlib.minutes_doc import diff_paragraphs
from services.minutes.models import DecisionFact, MinutesRow, MinutesStatus, SessionFact, VersionRow
from services.minutes.prefill import decision_page
from services.minutes.queries import (
    find_minutes, find_version, paragraph_views, public_state, require_secretariat, session_view, state_label,
    stored_paragraphs, version_summaries,
)
from shared.clock import PARIS
from shared.contracts.minutes import (
    Adoption, DecisionMinutes, DiffMinutes, GetMinutesPdf, GetMinutesVersion, ListMinutes, MinutesDiff, MinutesList,
    MinutesOfDecision, MinutesOfSession, MinutesPdf, MinutesSummary, MinutesVersionView, ParagraphChangeView,
    ParagraphView, SessionMinutes,
)
from shared.errors import Invalid
from shared.service import HandlerContext


def _year_bounds(year: int) -> tuple[datetime, datetime]:
    """The year as people in Paris count it, in UTC."""
    return (datetime(year, 1, 1, tzinfo=PARIS).astimezone(UTC), datetime(year + 1, 1, 1, tzinfo=PARIS).astimezone(UTC))


async def list_minutes(req: ListMinutes, ctx: HandlerContext) -> MinutesList:
    """Published minutes, newest session first; the secretariat may ask for drafts too."""
    conds: list[Any] = []
    if req.kind:
        conds.append(SessionFact.kind == req.kind.value)
    if req.theme:
        conds.append(SessionFact.theme == req.theme.value)
    if req.year:
        start, end = _year_bounds(req.year)
        conds += [col(SessionFact.starts_at) >= start, col(SessionFact.starts_at) < end]
    on = col(SessionFact.session_id) == col(MinutesRow.session_id)
    async with ctx.db.read() as tx:
        if req.include_unpublished:
            await require_secretariat(tx, req.actor_id or "")
        else:
            conds.append(MinutesRow.status == MinutesStatus.PUBLISHED)
        stmt = (select(MinutesRow, SessionFact).join(SessionFact, on).where(*conds)
                .order_by(col(SessionFact.starts_at).desc(), col(MinutesRow.id)).offset(req.offset).limit(req.limit))
        rows = list((await tx.exec(stmt)).all())
        total = (await tx.exec(select(func.count()).select_from(MinutesRow).join(SessionFact, on).where(*conds))).one()
        versions = await version_summaries(tx, [doc.id for doc, _ in rows])
    out = []
    for doc, s in rows:
        vs = versions.get(doc.id, [])
        state = public_state(doc)
        out.append(MinutesSummary(
            minutes_id=doc.id, session=session_view(s), state=state, state_label=state_label(state),
            latest_version=vs[-1].version if vs else None, first_published_at=vs[0].published_at if vs else None,
            latest_published_at=vs[-1].published_at if vs else None, adoption=vs[0].adoption if vs else None))
    return MinutesList(minutes=out, total=int(total[0] if isinstance(total, tuple) else total))


async def get_minutes_version(req: GetMinutesVersion, ctx: HandlerContext) -> MinutesVersionView:
    """One published version (the latest without `version`), with everything needed to cite and check it."""
    async with ctx.db.read() as tx:
        doc = await find_minutes(tx, req.minutes_id)
        v = await find_version(tx, doc, req.version)
        s = await tx.get(SessionFact, doc.session_id)
        assert s is not None
        summaries = (await version_summaries(tx, [doc.id]))[doc.id]
    state = public_state(doc)
    return MinutesVersionView(
        minutes_id=doc.id, session=session_view(s), version=v.version, latest_version=doc.latest_version, state=state,
        state_label=state_label(state), published_at=v.published_at, reason=v.reason,
        adoption=Adoption.model_validate_json(v.adoption), markdown=v.markdown, html=v.html,
        paragraphs=paragraph_views(stored_paragraphs(v.paragraphs)), canonical_json=bytes(v.canonical).decode("utf-8"),
        sha256=v.sha256, event_id=v.event_id, versions=summaries)


async def get_minutes_pdf(req: GetMinutesPdf, ctx: HandlerContext) -> MinutesPdf:
    """The PDF of one published version: the bytes stored when it was published."""
    async with ctx.db.read() as tx:
        doc = await find_minutes(tx, req.minutes_id)
        v = await find_version(tx, doc, req.version, with_pdf=True)
    return MinutesPdf(minutes_id=doc.id, version=v.version, sha256=v.sha256,
                      filename=f"compte-rendu-{doc.id[:8]}-v{v.version}.pdf",
                      pdf=base64.b64encode(bytes(v.pdf)).decode("ascii"))


def _view(p: Any) -> ParagraphView | None:
    return None if p is None else ParagraphView(anchor=p.anchor, kind=p.kind, markdown=p.markdown)


async def diff_minutes(req: DiffMinutes, ctx: HandlerContext) -> MinutesDiff:
    """What changed between two published versions, paragraph by paragraph, in document order."""
    if req.from_version == req.to_version:
        raise Invalid("Choisissez deux versions différentes.", field="to_version")
    async with ctx.db.read() as tx:
        doc = await find_minutes(tx, req.minutes_id)
        old = await find_version(tx, doc, req.from_version, field="from_version")
        new = await find_version(tx, doc, req.to_version, field="to_version")
    changes = diff_paragraphs(stored_paragraphs(old.paragraphs), stored_paragraphs(new.paragraphs))
    return MinutesDiff(minutes_id=doc.id, from_version=old.version, to_version=new.version,
                       changes=[ParagraphChangeView(kind=c.kind, old=_view(c.old), new=_view(c.new)) for c in changes])


async def minutes_of_session(req: MinutesOfSession, ctx: HandlerContext) -> SessionMinutes:
    """Where the session's minutes stand, for its page (all None: no minutes opened yet)."""
    async with ctx.db.read() as tx:
        doc = (await tx.exec(select(MinutesRow).where(MinutesRow.session_id == req.session_id))).first()
    if doc is None:
        return SessionMinutes(session_id=req.session_id)
    state = public_state(doc)
    return SessionMinutes(session_id=req.session_id, minutes_id=doc.id, state=state, state_label=state_label(state),
                          latest_version=doc.latest_version or None)


async def minutes_of_decision(req: MinutesOfDecision, ctx: HandlerContext) -> DecisionMinutes:
    """The paragraph of the session's latest published minutes that records the decision (the one that
    links to its page, else the first naming its number)."""
    # One query (every decision page asks): the decision, its session's published minutes, their latest text.
    published = and_(col(MinutesRow.session_id) == col(DecisionFact.session_id),
                     col(MinutesRow.status) == MinutesStatus.PUBLISHED)
    latest = and_(col(VersionRow.minutes_id) == col(MinutesRow.id),
                  col(VersionRow.version) == col(MinutesRow.latest_version))
    stmt = (select(DecisionFact.number, MinutesRow.id, MinutesRow.latest_version, VersionRow.paragraphs)
            .select_from(DecisionFact).join(MinutesRow, published).join(VersionRow, latest)
            .where(DecisionFact.decision_id == req.decision_id))
    async with ctx.db.read() as tx:
        row = (await tx.exec(stmt)).first()  # type: ignore[call-overload]
    if row is None:
        return DecisionMinutes(decision_id=req.decision_id)
    number_, minutes_id, version, stored = row
    paragraphs = stored_paragraphs(stored)
    link, number = f"]({decision_page(req.decision_id)})", f"n° {number_}"
    found = (next((p for p in paragraphs if link in p.markdown), None)
             or next((p for p in paragraphs if number in p.markdown), None))
    return DecisionMinutes(decision_id=req.decision_id, minutes_id=minutes_id, version=version,
                           anchor=found.anchor if found else None)
