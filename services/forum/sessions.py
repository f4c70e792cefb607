"""Sessions: the secretariat schedules, edits and cancels plenaries and working groups with their
ordered agendas; anyone lists them and reads one, with its seats left, its attendance once over and
(for a member) their own RSVP."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.forum import attendance, rules, seats, vote_rules, votes
from services.forum.models import ForumAgendaItem, ForumAttendance, ForumRsvp, ForumSession
from services.forum.queries import find_session, require_secretariat, scalar
from shared.clock import utcnow
from shared.contracts.forum import (
    AgendaItem, CancelSession, CreateSession, GetSession, ListSessions, MyRsvp, PromotionCause, RsvpState,
    SessionCancelled, SessionInfo, SessionList, SessionPeriod, SessionPhase, SessionScheduled, SessionStatus,
    SessionUpdated, SessionView, UpdateSession,
)
from shared.service import HandlerContext

EDITABLE = ("title", "kind", "theme", "description", "starts_at", "ends_at", "place", "online_url", "capacity",
            "rsvp_opens_at", "rsvp_closes_at")


# ================================================================ reading
async def agendas(tx: AsyncSession, session_ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {sid: [] for sid in session_ids}
    if session_ids:
        stmt = (select(ForumAgendaItem).where(col(ForumAgendaItem.session_id).in_(session_ids))
                .order_by(col(ForumAgendaItem.session_id), col(ForumAgendaItem.position)))
        for item in (await tx.exec(stmt)).all():
            out[item.session_id].append(item.text)
    return out


async def _holders(tx: AsyncSession, session_id: str) -> list[str]:
    """Members holding a seat or a waitlist place (whom a change of time or place concerns)."""
    stmt = (select(ForumRsvp.member_id).where(ForumRsvp.session_id == session_id,
                                              col(ForumRsvp.state).in_(rules.HOLDING))
            .order_by(col(ForumRsvp.member_id)))
    return list((await tx.exec(stmt)).all())


async def _my_rsvps(tx: AsyncSession, member_id: str, session_ids: Sequence[str]) -> dict[str, MyRsvp]:
    """A member's RSVPs to these sessions, with their waitlist positions: two queries for any number of
    sessions (a position is the waitlisted tickets ahead plus one, as `seats.waitlist_position` counts)."""
    rsvps = list((await tx.exec(select(ForumRsvp).where(ForumRsvp.member_id == member_id,
                                                        col(ForumRsvp.session_id).in_(session_ids)))).all())
    waiting = [r.session_id for r in rsvps if r.state == RsvpState.WAITLISTED and r.waitlist_seq is not None]
    ahead: dict[str, int] = {}
    if waiting:
        me, other = aliased(ForumRsvp), aliased(ForumRsvp)
        stmt = (select(me.session_id, func.count(other.member_id))
                .join(other, and_(other.session_id == me.session_id, other.state == RsvpState.WAITLISTED,
                                  col(other.waitlist_seq) < col(me.waitlist_seq)))
                .where(me.member_id == member_id, col(me.session_id).in_(waiting)).group_by(me.session_id))
        ahead = {sid: n for sid, n in (await tx.exec(stmt)).all()}  # type: ignore[call-overload]
    return {r.session_id: MyRsvp(state=r.state, responded_at=r.responded_at,
                                 waitlist_position=ahead.get(r.session_id, 0) + 1 if r.session_id in waiting else None)
            for r in rsvps}


async def _my_rsvp(tx: AsyncSession, rsvp: ForumRsvp) -> MyRsvp:
    return MyRsvp(state=rsvp.state, waitlist_position=await seats.waitlist_position(tx, rsvp),
                  responded_at=rsvp.responded_at)


# ================================================================ views
def _info(fs: ForumSession, agenda: list[str]) -> SessionInfo:
    """The session as its events tell it."""
    return SessionInfo(session_id=fs.id, revision=fs.revision, status=fs.status, title=fs.title, kind=fs.kind,
                       theme=fs.theme, description=fs.description, starts_at=fs.starts_at, ends_at=fs.ends_at,
                       place=fs.place, online_url=fs.online_url, capacity=fs.capacity,
                       rsvp_opens_at=fs.rsvp_opens_at, rsvp_closes_at=fs.rsvp_closes_at, agenda=agenda,
                       cancel_reason=fs.cancel_reason, updated_at=fs.updated_at)


def _view(fs: ForumSession, agenda: list[str], tally: seats.Tally, now: datetime, *, my: MyRsvp | None = None,
          per_college: dict[str, int] | None = None, checked_in: bool | None = None) -> SessionView:
    """`checked_in`: with an actor, whether they were checked in (None without one)."""
    ph = rules.phase(fs.starts_at, fs.ends_at, now)
    confirmed = tally[RsvpState.CONFIRMED]
    show_attendance = per_college is not None and ph == SessionPhase.PAST and fs.status == SessionStatus.SCHEDULED
    return SessionView(
        session_id=fs.id, revision=fs.revision, status=fs.status, phase=ph, title=fs.title, kind=fs.kind,
        theme=fs.theme, description=fs.description, starts_at=fs.starts_at, ends_at=fs.ends_at, place=fs.place,
        online_url=fs.online_url, capacity=fs.capacity, rsvp_opens_at=fs.rsvp_opens_at,
        rsvp_closes_at=fs.rsvp_closes_at,
        rsvp_open=rules.rsvp_open(fs.status, fs.starts_at, fs.rsvp_opens_at, fs.rsvp_closes_at, now),
        confirmed_count=confirmed, waitlist_count=tally[RsvpState.WAITLISTED],
        seats_left=rules.seats_left(fs.capacity, confirmed),
        agenda=[AgendaItem(position=i, text=t) for i, t in enumerate(agenda, start=1)],
        cancel_reason=fs.cancel_reason, cancelled_at=fs.cancelled_at, created_at=fs.created_at,
        updated_at=fs.updated_at, my_rsvp=my,
        attendance=attendance.counts(fs.id, per_college, True)
        if show_attendance and per_college is not None else None,
        my_attendance=None if checked_in is None else rules.attendance_mark(
            fs.status, fs.starts_at, fs.ends_at, now, checked_in=checked_in,
            anyone_checked_in=bool(per_college and sum(per_college.values()))))


async def full_view(tx: AsyncSession, fs: ForumSession, now: datetime, actor_id: str | None = None) -> SessionView:
    """One session as its page shows it (with `actor_id`, that member's RSVP)."""
    my = None
    if actor_id:
        rsvp = await tx.get(ForumRsvp, (fs.id, actor_id))
        if rsvp is not None:
            my = await _my_rsvp(tx, rsvp)
    per_college, checked_in = None, None
    if now >= fs.starts_at:  # the check-in sheet only matters once the session has started
        counted, mine = await attendance.sheets(tx, [fs.id], actor_id)
        per_college = counted[fs.id] if rules.phase(fs.starts_at, fs.ends_at, now) == SessionPhase.PAST else None
        checked_in = fs.id in mine if actor_id else None
    elif actor_id:
        checked_in = False
    return _view(fs, (await agendas(tx, [fs.id]))[fs.id], await seats.tally(tx, fs.id), now, my=my,
                 per_college=per_college, checked_in=checked_in)


def _editable(source: Any) -> dict[str, Any]:
    """The fields the secretariat sets, from a request or from the session row."""
    return {k: getattr(source, k) for k in EDITABLE}


# ================================================================ secretariat
async def create_session(req: CreateSession, ctx: HandlerContext) -> SessionView:
    """Secretariat schedules a plenary or a working group, with its ordered agenda."""
    now = utcnow()
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        tx = uow.tx
        await require_secretariat(tx, req.actor_id)
        fs = ForumSession(**_editable(req), created_by=req.actor_id, created_at=now, updated_at=now)
        tx.add(fs)
        await tx.flush()  # agenda items reference the session
        tx.add_all([ForumAgendaItem(session_id=fs.id, position=i, text=t) for i, t in enumerate(req.agenda, start=1)])
        uow.emit(SessionScheduled(session=_info(fs, list(req.agenda))))
    return _view(fs, list(req.agenda), {st: 0 for st in RsvpState}, now)


async def update_session(req: UpdateSession, ctx: HandlerContext) -> SessionView:
    """Secretariat edits a session (every field). Lowering the capacity below the confirmed seats
    is refused; raising it promotes from the waitlist. Members holding a seat or a waitlist place
    are listed in the event so they can be told of a change of time or place."""
    now = utcnow()
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        tx = uow.tx
        await require_secretariat(tx, req.actor_id)
        fs = await seats.lock_session(tx, req.session_id)
        rules.check_editable(fs.status)
        rules.check_revision(req.expected_revision, fs.revision)
        agenda = (await agendas(tx, [fs.id]))[fs.id]
        new = _editable(req)
        changes = rules.changed_fields(_editable(fs), new)
        if list(req.agenda) != agenda:
            changes.append("agenda")
        if changes:
            if "starts_at" in changes:
                vote_rules.check_new_start(new["starts_at"], await votes.closings_pending(tx, fs.id))
            if "capacity" in changes:
                rules.check_capacity(req.capacity, (await seats.tally(tx, fs.id))[RsvpState.CONFIRMED])
            for k, v in new.items():
                setattr(fs, k, v)
            fs.revision += 1
            fs.updated_at = now
            tx.add(fs)
            if "agenda" in changes:
                stale = delete(ForumAgendaItem).where(col(ForumAgendaItem.session_id) == fs.id)
                await tx.exec(stale)  # type: ignore[call-overload]
                tx.add_all([ForumAgendaItem(session_id=fs.id, position=i, text=t)
                            for i, t in enumerate(req.agenda, start=1)])
                agenda = list(req.agenda)
            if "capacity" in changes:
                await seats.promote(uow, fs, PromotionCause.CAPACITY_RAISED, now)
            uow.emit(SessionUpdated(session=_info(fs, agenda), changes=changes,
                                    time_or_place_changed=rules.time_or_place_changed(changes),
                                    notify_member_ids=await _holders(tx, fs.id)))
        view = _view(fs, agenda, await seats.tally(tx, fs.id), now)
    return view


async def cancel_session(req: CancelSession, ctx: HandlerContext) -> SessionView:
    """Secretariat cancels a session, with a reason every member holding a place will read."""
    now = utcnow()
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        tx = uow.tx
        await require_secretariat(tx, req.actor_id)
        fs = await seats.lock_session(tx, req.session_id)
        rules.check_cancellable(fs.status, fs.ends_at, now)
        fs.status, fs.cancel_reason, fs.cancelled_at = SessionStatus.CANCELLED, req.reason, now
        await votes.cancel_with_session(uow, fs.id, req.reason, now)
        fs.revision += 1
        fs.updated_at = now
        tx.add(fs)
        agenda = (await agendas(tx, [fs.id]))[fs.id]
        uow.emit(SessionCancelled(session=_info(fs, agenda), reason=req.reason,
                                  notify_member_ids=await _holders(tx, fs.id)))
        view = _view(fs, agenda, await seats.tally(tx, fs.id), now)
    return view


# ================================================================ anyone
async def list_sessions(req: ListSessions, ctx: HandlerContext) -> SessionList:
    """Upcoming (soonest first), past (latest first) or all sessions, with seats left; past ones
    with their attendance per college."""
    now = utcnow()
    stmt = select(ForumSession)
    count = select(func.count()).select_from(ForumSession)
    conds = []
    if req.when == SessionPeriod.UPCOMING:
        conds.append(col(ForumSession.ends_at) > now)
    elif req.when == SessionPeriod.PAST:
        conds.append(col(ForumSession.ends_at) <= now)
    if req.kind:
        conds.append(ForumSession.kind == req.kind)
    if req.theme:
        conds.append(ForumSession.theme == req.theme)
    if not req.include_cancelled:
        conds.append(ForumSession.status == SessionStatus.SCHEDULED)
    if req.mine:  # answered (not withdrawn) or checked in: a walk-in's sessions are theirs too
        answered = select(ForumRsvp.session_id).where(ForumRsvp.member_id == (req.actor_id or ""),
                                                      ForumRsvp.state != RsvpState.WITHDRAWN)
        attended = select(ForumAttendance.session_id).where(ForumAttendance.member_id == (req.actor_id or ""))
        conds.append(or_(col(ForumSession.id).in_(answered), col(ForumSession.id).in_(attended)))
    if conds:
        stmt, count = stmt.where(*conds), count.where(*conds)
    order = col(ForumSession.starts_at).desc() if req.when == SessionPeriod.PAST else col(ForumSession.starts_at)
    stmt = stmt.order_by(order, col(ForumSession.id)).offset(req.offset).limit(req.limit)
    async with ctx.db.read() as tx:
        sessions = list((await tx.exec(stmt)).all())
        total = (await tx.exec(count)).one()  # type: ignore[call-overload]
        ids = [fs.id for fs in sessions]
        by_id = {fs.id: fs for fs in sessions}
        tallies, agenda_of = await seats.tallies(tx, ids), await agendas(tx, ids)
        # The check-in sheets of the sessions that have started (past ones show theirs), with the actor's mark.
        started = [fs.id for fs in sessions if now >= fs.starts_at]
        sheets, present = await attendance.sheets(tx, started, req.actor_id)
        per_college = {sid: sheets[sid] for sid in started
                       if rules.phase(by_id[sid].starts_at, by_id[sid].ends_at, now) == SessionPhase.PAST}
        mine = await _my_rsvps(tx, req.actor_id, ids) if req.actor_id and ids else {}
    return SessionList(total=scalar(total), sessions=[
        _view(fs, agenda_of[fs.id], tallies[fs.id], now, my=mine.get(fs.id), per_college=per_college.get(fs.id),
              checked_in=fs.id in present if req.actor_id else None)
        for fs in sessions])


async def get_session(req: GetSession, ctx: HandlerContext) -> SessionView:
    """One session: agenda, seats left, and (with `actor_id`) the member's RSVP and waitlist position."""
    async with ctx.db.read() as tx:
        return await full_view(tx, await find_session(tx, req.session_id), utcnow(), req.actor_id)
