"""Drafts: the secretariat opens the minutes of a session that has taken place, pre-filled from what
the forum recorded (`prefill`), and saves the text as it goes. Saves are checked against the revision
the text was loaded at: a save from a stale tab is refused, never silently laid over a newer text.

Locks: opening takes the session's row (one draft per session even when two clerks open it at once;
the UNIQUE session id settles it on any database); saving takes the minutes row.
"""
from __future__ import annotations

from collections import Counter

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.minutes import store
from services.minutes.models import (
    AttendanceFact, DecisionFact, MemberFact, MinutesRow, MinutesStatus, SessionFact, VoteFact,
)
from services.minutes.prefill import SessionRecord, draft_markdown
from services.minutes.queries import agenda_of, find_minutes, minutes_view, require_secretariat
from shared.clock import paris_datetime, utcnow
from shared.contracts.forum import SessionStatus
from shared.contracts.minutes import GetMinutes, MinutesView, OpenMinutesDraft, SaveMinutesDraft
from shared.contracts.registry import College
from shared.errors import Conflict, NotFound
from shared.service import HandlerContext


async def session_record(tx: AsyncSession, s: SessionFact) -> SessionRecord:
    """Everything the minutes service knows of a session, with where its facts are in the public record."""
    present = list((await tx.exec(select(AttendanceFact).where(
        AttendanceFact.session_id == s.session_id, col(AttendanceFact.present).is_(True)))).all())
    per_college: Counter[College | None] = Counter(College(a.college) if a.college else None for a in present)
    orgs: set[str] = set()
    if present:
        stmt = select(MemberFact.organisation).where(
            col(MemberFact.member_id).in_([a.member_id for a in present]), col(MemberFact.erased).is_(False))
        orgs = {o.strip() for o in (await tx.exec(stmt)).all() if o and o.strip()}
    decisions = list((await tx.exec(select(DecisionFact).where(DecisionFact.session_id == s.session_id).order_by(
        col(DecisionFact.agenda_position), col(DecisionFact.recorded_at), col(DecisionFact.number)))).all())
    votes = list((await tx.exec(select(VoteFact).where(VoteFact.session_id == s.session_id).order_by(
        col(VoteFact.agenda_position), col(VoteFact.closed_at)))).all())
    later = [d.superseded_by for d in decisions if d.superseded_by]
    numbers = {d.decision_id: d.number for d in decisions}
    if later:
        numbers.update({i: n for i, n in (await tx.exec(select(DecisionFact.decision_id, DecisionFact.number).where(
            col(DecisionFact.decision_id).in_(later)))).all()})
    event_ids = [d.event_id for d in decisions] + [v.event_id for v in votes]
    leaves = {e: i for e, i, _ in await store.locate(tx, event_ids)} if event_ids else {}
    return SessionRecord(session=s, agenda=agenda_of(s), present=per_college,
                         organisations=sorted(orgs, key=lambda o: (o.casefold(), o)), decisions=decisions,
                         votes=votes, numbers=numbers, leaves=leaves)


async def open_minutes_draft(req: OpenMinutesDraft, ctx: HandlerContext) -> MinutesView:
    """Secretariat opens the minutes of a session that has taken place (not cancelled), pre-filled
    from the forum's record. Opening them again returns the existing minutes, whatever their state."""
    now = utcnow()
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        tx = uow.tx
        await require_secretariat(tx, req.actor_id)
        s = (await tx.exec(select(SessionFact).where(SessionFact.session_id == req.session_id)
                           .with_for_update())).first()
        if s is None:
            raise NotFound("Séance inconnue (ou pas encore connue du service des comptes rendus).",
                           field="session_id")
        doc = (await tx.exec(select(MinutesRow).where(MinutesRow.session_id == s.session_id))).first()
        if doc is None:
            if s.status == SessionStatus.CANCELLED:
                raise Conflict("Cette séance a été annulée : elle n'a pas de compte rendu.", field="session_id")
            if now < s.ends_at:
                raise Conflict(f"Cette séance n'a pas encore eu lieu (fin le {paris_datetime(s.ends_at)}) : son "
                               "compte rendu s'ouvre une fois la séance terminée.", field="session_id")
            doc = MinutesRow(session_id=s.session_id, markdown=draft_markdown(await session_record(tx, s)),
                             created_by=req.actor_id, created_at=now, updated_by=req.actor_id, updated_at=now)
            tx.add(doc)
            await tx.flush()
        view = await minutes_view(tx, doc, req.actor_id, now)
    return view


async def save_minutes_draft(req: SaveMinutesDraft, ctx: HandlerContext) -> MinutesView:
    """Secretariat saves the draft (in preparation or in review) over the revision it was loaded at."""
    now = utcnow()
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        tx = uow.tx
        await require_secretariat(tx, req.actor_id)
        doc = await find_minutes(tx, req.minutes_id, lock=True)
        if doc.status == MinutesStatus.PUBLISHED:
            raise Conflict("Ce compte rendu est publié : il ne se modifie plus, il se corrige (nouvelle version "
                           "avec sa raison).", field="minutes_id")
        check_revision(doc, req.base_revision)
        if req.markdown != doc.markdown.strip():
            doc.markdown, doc.revision = req.markdown, doc.revision + 1
            doc.updated_by, doc.updated_at = req.actor_id, now
            tx.add(doc)
            await tx.flush()
        view = await minutes_view(tx, doc, req.actor_id, now)
    return view


def check_revision(doc: MinutesRow, base_revision: int) -> None:
    """Refuse a change made over a text that has changed since it was loaded."""
    if base_revision != doc.revision:
        raise Conflict(f"Le brouillon a été modifié ailleurs depuis que vous l'avez ouvert (révision {doc.revision}, "
                       f"la vôtre : {base_revision}) : rechargez-le et reportez vos changements, rien n'a été "
                       "enregistré.", field="base_revision")


async def get_minutes(req: GetMinutes, ctx: HandlerContext) -> MinutesView:
    """The minutes: the draft to the secretariat (and to the session's attendees while in review), the
    published versions to anyone."""
    async with ctx.db.read() as tx:
        doc = await find_minutes(tx, req.minutes_id)
        view = await minutes_view(tx, doc, req.actor_id, utcnow())
    return view
