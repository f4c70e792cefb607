"""Forum commands and queries (request/reply from the web front) and the projection of approved
members built from registry events.

A seat is never given twice: every transaction that changes who holds a seat or a waitlist place
first locks the session row (`SELECT … FOR UPDATE` on PostgreSQL; on SQLite the service's
process-wide write lock serialises write transactions) and only then counts the confirmed seats,
so the count it decides on cannot change before it commits. Member-scoped transactions lock the
member's projection row before the session row (and several sessions in id order), so the locks
are always taken in the same order and cannot deadlock.

The handlers only use the `Service` they are given (`ctx.service`, the unit of work), so `wire()`
can put them on another `Service` (the integration tests run the forum in-process that way).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.forum import decisions, rules
from services.forum.queries import find_session, lock_member, require_secretariat, scalar
from services.forum.models import (
    ForumAgendaItem, ForumAttendance, ForumMember, ForumRsvp, ForumSession, MemberStanding,
)
from shared.contracts.forum import (
    FORUM_EVENTS, AgendaItem, AnswerRsvp, AttendanceCounts, AttendanceEntry, AttendanceRecorded, AttendanceView,
    CancelSession, CheckIn, CreateSession, GetAttendance, GetSession, ListRsvps, ListSessions, MyRsvp,
    PromotionCause, ReleaseReason, RsvpAnswer, RsvpConfirmed, RsvpDeclined, RsvpEntry, RsvpList, RsvpPromoted,
    RsvpState, RsvpView, RsvpWaitlisted, RsvpWithdrawn, SessionCancelled, SessionFields, SessionInfo,
    SessionList, SessionPeriod, SessionPhase, SessionScheduled, SessionStatus, SessionUpdated, SessionView,
    UpdateSession, WithdrawRsvp,
)
from shared.contracts.decisions import DECISION_EVENTS
from shared.contracts.registry import (
    MemberApproved, MemberErased, MemberRegistered, ProfileUpdated, Role, RoleGranted,
)
from shared.contracts.envelope import Envelope
from shared.clock import utcnow
from shared.errors import Forbidden, NotFound
from shared.outbox import UnitOfWork
from shared.service import HandlerContext, Service

TITLE = "Séances et décisions"
EDITABLE = ("title", "kind", "theme", "description", "starts_at", "ends_at", "place", "online_url", "capacity",
            "rsvp_opens_at", "rsvp_closes_at")
Tally = dict[RsvpState, int]


# ================================================================ reading helpers
async def _lock_session(s: AsyncSession, session_id: str) -> ForumSession:
    """The session row, locked until the transaction ends (the seat lock)."""
    fs = (await s.exec(select(ForumSession).where(ForumSession.id == session_id).with_for_update())).first()
    if fs is None:
        raise NotFound("Séance inconnue.", field="session_id")
    return fs








async def _tallies(s: AsyncSession, session_ids: Sequence[str]) -> dict[str, Tally]:
    out: dict[str, Tally] = {sid: {st: 0 for st in RsvpState} for sid in session_ids}
    if not session_ids:
        return out
    stmt = (select(ForumRsvp.session_id, ForumRsvp.state, func.count())
            .where(col(ForumRsvp.session_id).in_(session_ids)).group_by(ForumRsvp.session_id, ForumRsvp.state))
    for sid, state, n in (await s.exec(stmt)).all():  # type: ignore[call-overload]
        out[sid][RsvpState(state)] = n
    return out


async def _tally(s: AsyncSession, session_id: str) -> Tally:
    return (await _tallies(s, [session_id]))[session_id]


async def _agendas(s: AsyncSession, session_ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {sid: [] for sid in session_ids}
    if session_ids:
        stmt = (select(ForumAgendaItem).where(col(ForumAgendaItem.session_id).in_(session_ids))
                .order_by(col(ForumAgendaItem.session_id), col(ForumAgendaItem.position)))
        for item in (await s.exec(stmt)).all():
            out[item.session_id].append(item.text)
    return out


async def _waitlist_position(s: AsyncSession, rsvp: ForumRsvp) -> int | None:
    if rsvp.state != RsvpState.WAITLISTED or rsvp.waitlist_seq is None:
        return None
    ahead = (await s.exec(select(func.count()).select_from(ForumRsvp).where(  # type: ignore[call-overload]
        ForumRsvp.session_id == rsvp.session_id, ForumRsvp.state == RsvpState.WAITLISTED,
        col(ForumRsvp.waitlist_seq) < rsvp.waitlist_seq))).one()
    return scalar(ahead) + 1


async def _attendance(s: AsyncSession, session_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    by: dict[str, list[Any]] = defaultdict(list)
    if session_ids:
        stmt = select(ForumAttendance.session_id, ForumAttendance.college).where(
            col(ForumAttendance.session_id).in_(session_ids))
        for sid, college in (await s.exec(stmt)).all():  # type: ignore[call-overload]
            by[sid].append(college)
    return {sid: rules.attendance_by_college(by.get(sid, [])) for sid in session_ids}


async def _holders(s: AsyncSession, session_id: str) -> list[str]:
    """Members holding a seat or a waitlist place (whom a change of time or place concerns)."""
    stmt = (select(ForumRsvp.member_id).where(ForumRsvp.session_id == session_id,
                                              col(ForumRsvp.state).in_(rules.HOLDING))
            .order_by(col(ForumRsvp.member_id)))
    return list((await s.exec(stmt)).all())


# ================================================================ views
def _counts(session_id: str, by_college: dict[str, int], final: bool) -> AttendanceCounts:
    return AttendanceCounts(session_id=session_id, total=sum(by_college.values()), by_college=by_college,
                            final=final)


def _info(fs: ForumSession, agenda: list[str]) -> SessionInfo:
    return SessionInfo(session_id=fs.id, revision=fs.revision, status=fs.status, title=fs.title, kind=fs.kind,
                       theme=fs.theme, description=fs.description, starts_at=rules.as_utc(fs.starts_at),
                       ends_at=rules.as_utc(fs.ends_at), place=fs.place, online_url=fs.online_url,
                       capacity=fs.capacity, rsvp_opens_at=rules.as_utc(fs.rsvp_opens_at),
                       rsvp_closes_at=rules.as_utc(fs.rsvp_closes_at), agenda=agenda,
                       cancel_reason=fs.cancel_reason, updated_at=rules.as_utc(fs.updated_at))


def _view(fs: ForumSession, agenda: list[str], tally: Tally, now: datetime, *, my: MyRsvp | None = None,
          attendance: dict[str, int] | None = None) -> SessionView:
    ph = rules.phase(fs.starts_at, fs.ends_at, now)
    confirmed = tally[RsvpState.CONFIRMED]
    show_attendance = attendance is not None and ph == SessionPhase.PAST and fs.status == SessionStatus.SCHEDULED
    return SessionView(
        session_id=fs.id, revision=fs.revision, status=fs.status, phase=ph, title=fs.title, kind=fs.kind,
        theme=fs.theme, description=fs.description, starts_at=rules.as_utc(fs.starts_at),
        ends_at=rules.as_utc(fs.ends_at), place=fs.place, online_url=fs.online_url, capacity=fs.capacity,
        rsvp_opens_at=rules.as_utc(fs.rsvp_opens_at), rsvp_closes_at=rules.as_utc(fs.rsvp_closes_at),
        rsvp_open=rules.rsvp_open(fs.status, fs.starts_at, fs.rsvp_opens_at, fs.rsvp_closes_at, now),
        confirmed_count=confirmed, waitlist_count=tally[RsvpState.WAITLISTED],
        seats_left=rules.seats_left(fs.capacity, confirmed),
        agenda=[AgendaItem(position=i, text=t) for i, t in enumerate(agenda, start=1)],
        cancel_reason=fs.cancel_reason, cancelled_at=fs.cancelled_at, created_at=rules.as_utc(fs.created_at),
        updated_at=rules.as_utc(fs.updated_at), my_rsvp=my,
        attendance=_counts(fs.id, attendance, True) if show_attendance and attendance is not None else None)


async def _full_view(s: AsyncSession, fs: ForumSession, now: datetime, actor_id: str | None = None) -> SessionView:
    my = None
    if actor_id:
        rsvp = await s.get(ForumRsvp, (fs.id, actor_id))
        if rsvp is not None:
            my = MyRsvp(state=rsvp.state, waitlist_position=await _waitlist_position(s, rsvp),
                        responded_at=rules.as_utc(rsvp.responded_at))
    attendance = (await _attendance(s, [fs.id]))[fs.id] if rules.phase(fs.starts_at, fs.ends_at, now) \
        == SessionPhase.PAST else None
    return _view(fs, (await _agendas(s, [fs.id]))[fs.id], await _tally(s, fs.id), now, my=my, attendance=attendance)


def _fields(req: SessionFields) -> dict[str, Any]:
    return {k: getattr(req, k) for k in EDITABLE}


def _current(fs: ForumSession) -> dict[str, Any]:
    values = {k: getattr(fs, k) for k in EDITABLE}
    for k in ("starts_at", "ends_at", "rsvp_opens_at", "rsvp_closes_at"):
        values[k] = rules.as_utc(values[k])
    return values


# ================================================================ seats
async def _promote(uow: UnitOfWork, fs: ForumSession, cause: PromotionCause, now: datetime) -> list[ForumRsvp]:
    """Give every free seat to the head of the waitlist, in ticket order. Caller holds the lock."""
    s = uow.tx
    tally = await _tally(s, fs.id)  # autoflush: sees this transaction's own changes
    free = rules.seats_left(fs.capacity, tally[RsvpState.CONFIRMED])
    if free == 0 or tally[RsvpState.WAITLISTED] == 0:
        return []
    head = (await s.exec(select(ForumRsvp).where(ForumRsvp.session_id == fs.id,
                                                 ForumRsvp.state == RsvpState.WAITLISTED)
                         .order_by(col(ForumRsvp.waitlist_seq)).limit(free))).all()
    chosen = rules.to_promote(fs.capacity, tally[RsvpState.CONFIRMED], head, started=now >= rules.as_utc(fs.starts_at))
    for r in chosen:
        r.state, r.waitlist_seq, r.confirmed_at, r.updated_at = RsvpState.CONFIRMED, None, now, now
        s.add(r)
        uow.emit(RsvpPromoted(session_id=fs.id, member_id=r.member_id, cause=cause))
    return chosen


async def _release(uow: UnitOfWork, fs: ForumSession, rsvp: ForumRsvp, reason: ReleaseReason,
                   now: datetime) -> RsvpState:
    """Take back a seat or waitlist place and, if it was a seat, promote. Caller holds the lock."""
    previous = rsvp.state
    rsvp.state, rsvp.waitlist_seq, rsvp.updated_at = RsvpState.WITHDRAWN, None, now
    if reason == ReleaseReason.MEMBER:
        rsvp.responded_at = now
    uow.tx.add(rsvp)
    uow.emit(RsvpWithdrawn(session_id=fs.id, member_id=rsvp.member_id, previous_state=previous, reason=reason))
    if previous == RsvpState.CONFIRMED:
        await _promote(uow, fs, PromotionCause.SEAT_FREED, now)
    return previous


# ================================================================ secretariat: sessions
async def create_session(req: CreateSession, ctx: HandlerContext) -> SessionView:
    """Secretariat schedules a plenary or a working group, with its ordered agenda."""
    now = utcnow()
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        await require_secretariat(uow.tx, req.actor_id)
        fs = ForumSession(**_fields(req), created_by=req.actor_id, created_at=now, updated_at=now)
        uow.tx.add(fs)
        await uow.tx.flush()  # agenda items reference the session
        uow.tx.add_all([ForumAgendaItem(session_id=fs.id, position=i, text=t)
                             for i, t in enumerate(req.agenda, start=1)])
        uow.emit(SessionScheduled(session=_info(fs, list(req.agenda))))
    return _view(fs, list(req.agenda), {st: 0 for st in RsvpState}, now)


async def update_session(req: UpdateSession, ctx: HandlerContext) -> SessionView:
    """Secretariat edits a session (every field). Lowering the capacity below the confirmed seats
    is refused; raising it promotes from the waitlist. Members holding a seat or a waitlist place
    are listed in the event so they can be told of a change of time or place."""
    now = utcnow()
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        s = uow.tx
        await require_secretariat(s, req.actor_id)
        fs = await _lock_session(s, req.session_id)
        rules.check_editable(fs.status)
        rules.check_revision(req.expected_revision, fs.revision)
        agenda = (await _agendas(s, [fs.id]))[fs.id]
        new = _fields(req)
        changes = rules.changed_fields(_current(fs), new)
        if list(req.agenda) != agenda:
            changes.append("agenda")
        if changes:
            tally = await _tally(s, fs.id)
            if "capacity" in changes:
                rules.check_capacity(req.capacity, tally[RsvpState.CONFIRMED])
            for k, v in new.items():
                setattr(fs, k, v)
            fs.revision += 1
            fs.updated_at = now
            s.add(fs)
            if "agenda" in changes:
                await s.exec(delete(ForumAgendaItem).where(col(ForumAgendaItem.session_id) == fs.id))  # type: ignore[call-overload]
                s.add_all([ForumAgendaItem(session_id=fs.id, position=i, text=t)
                           for i, t in enumerate(req.agenda, start=1)])
                agenda = list(req.agenda)
            if "capacity" in changes:
                await _promote(uow, fs, PromotionCause.CAPACITY_RAISED, now)
            uow.emit(SessionUpdated(session=_info(fs, agenda), changes=changes,
                                    time_or_place_changed=rules.time_or_place_changed(changes),
                                    notify_member_ids=await _holders(s, fs.id)))
        view = _view(fs, agenda, await _tally(s, fs.id), now)
    return view


async def cancel_session(req: CancelSession, ctx: HandlerContext) -> SessionView:
    """Secretariat cancels a session, with a reason every member holding a place will read."""
    now = utcnow()
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        s = uow.tx
        await require_secretariat(s, req.actor_id)
        fs = await _lock_session(s, req.session_id)
        rules.check_cancellable(fs.status, fs.ends_at, now)
        fs.status, fs.cancel_reason, fs.cancelled_at = SessionStatus.CANCELLED, req.reason, now
        fs.revision += 1
        fs.updated_at = now
        s.add(fs)
        agenda = (await _agendas(s, [fs.id]))[fs.id]
        uow.emit(SessionCancelled(session=_info(fs, agenda), reason=req.reason,
                                  notify_member_ids=await _holders(s, fs.id)))
        view = _view(fs, agenda, await _tally(s, fs.id), now)
    return view


# ================================================================ public queries
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
    if conds:
        stmt, count = stmt.where(*conds), count.where(*conds)
    order = col(ForumSession.starts_at).desc() if req.when == SessionPeriod.PAST else col(ForumSession.starts_at)
    stmt = stmt.order_by(order, col(ForumSession.id)).offset(req.offset).limit(req.limit)
    async with ctx.service.db.read() as s:
        sessions = list((await s.exec(stmt)).all())
        total = (await s.exec(count)).one()  # type: ignore[call-overload]
        ids = [fs.id for fs in sessions]
        tallies, agendas = await _tallies(s, ids), await _agendas(s, ids)
        past = [fs.id for fs in sessions if rules.phase(fs.starts_at, fs.ends_at, now) == SessionPhase.PAST]
        attendance = await _attendance(s, past)
        mine: dict[str, MyRsvp] = {}
        if req.actor_id and ids:
            for r in (await s.exec(select(ForumRsvp).where(ForumRsvp.member_id == req.actor_id,
                                                           col(ForumRsvp.session_id).in_(ids)))).all():
                mine[r.session_id] = MyRsvp(state=r.state, waitlist_position=await _waitlist_position(s, r),
                                            responded_at=rules.as_utc(r.responded_at))
    return SessionList(total=scalar(total), sessions=[
        _view(fs, agendas[fs.id], tallies[fs.id], now, my=mine.get(fs.id), attendance=attendance.get(fs.id))
        for fs in sessions])


async def get_session(req: GetSession, ctx: HandlerContext) -> SessionView:
    """One session: agenda, seats left, and (with `actor_id`) the member's RSVP and waitlist position."""
    async with ctx.service.db.read() as s:
        return await _full_view(s, await find_session(s, req.session_id), utcnow(), req.actor_id)


async def attendance(req: GetAttendance, ctx: HandlerContext) -> AttendanceCounts:
    """Attendance per college (`final` once the session has ended)."""
    now = utcnow()
    async with ctx.service.db.read() as s:
        fs = await find_session(s, req.session_id)
        counts = (await _attendance(s, [fs.id]))[fs.id]
    return _counts(fs.id, counts, final=now >= rules.as_utc(fs.ends_at))


# ================================================================ members: RSVP
async def answer_rsvp(req: AnswerRsvp, ctx: HandlerContext) -> RsvpView:
    """An approved member answers "I attend" (a seat if one is left, else the waitlist, in arrival
    order) or "I decline" (which gives a confirmed seat back to the waitlist's head)."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        s = uow.tx
        member = await lock_member(s, req.actor_id)
        rules.check_approved(member.standing if member else None)
        fs = await _lock_session(s, req.session_id)
        now = utcnow()  # read under the lock: answers are stamped in the order they got their seat or ticket
        rules.check_rsvp_window(fs.status, fs.starts_at, fs.rsvp_opens_at, fs.rsvp_closes_at, now)
        rsvp = await s.get(ForumRsvp, (fs.id, req.actor_id))
        previous = rsvp.state if rsvp is not None else None
        rules.check_answer(previous, req.answer)
        tally = await _tally(s, fs.id)
        if rsvp is None:
            rsvp = ForumRsvp(session_id=fs.id, member_id=req.actor_id, state=RsvpState.DECLINED)
        rsvp.responded_at = rsvp.updated_at = now
        position = None
        if req.answer == RsvpAnswer.ATTEND:
            rsvp.state = rules.allocate(fs.capacity, tally[RsvpState.CONFIRMED], tally[RsvpState.WAITLISTED])
            if rsvp.state == RsvpState.CONFIRMED:
                rsvp.waitlist_seq, rsvp.confirmed_at = None, now
                tally[RsvpState.CONFIRMED] += 1
                uow.emit(RsvpConfirmed(session_id=fs.id, member_id=req.actor_id,
                                       seats_left=rules.seats_left(fs.capacity, tally[RsvpState.CONFIRMED])))
            else:
                fs.waitlist_seq = rsvp.waitlist_seq = rules.next_ticket(fs.waitlist_seq)
                s.add(fs)
                position = tally[RsvpState.WAITLISTED] + 1  # every other ticket is older
                uow.emit(RsvpWaitlisted(session_id=fs.id, member_id=req.actor_id, position=position))
            s.add(rsvp)
        else:
            rsvp.state, rsvp.waitlist_seq = RsvpState.DECLINED, None
            s.add(rsvp)
            uow.emit(RsvpDeclined(session_id=fs.id, member_id=req.actor_id, previous_state=previous))
            if previous == RsvpState.CONFIRMED:
                await _promote(uow, fs, PromotionCause.SEAT_FREED, now)
            tally = await _tally(s, fs.id)
    return RsvpView(session_id=fs.id, member_id=req.actor_id, state=rsvp.state, waitlist_position=position,
                    seats_left=rules.seats_left(fs.capacity, tally[RsvpState.CONFIRMED]), responded_at=now)


async def withdraw_rsvp(req: WithdrawRsvp, ctx: HandlerContext) -> RsvpView:
    """A member gives back their seat (the waitlist's head is promoted at once) or waitlist place."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        s = uow.tx
        member = await lock_member(s, req.actor_id)
        if member is None:
            raise Forbidden("Seuls les membres du forum peuvent répondre à une séance.")
        fs = await _lock_session(s, req.session_id)
        now = utcnow()
        rules.check_rsvp_window(fs.status, fs.starts_at, fs.rsvp_opens_at, fs.rsvp_closes_at, now)
        rsvp = await s.get(ForumRsvp, (fs.id, req.actor_id))
        rules.check_withdrawable(rsvp.state if rsvp is not None else None)
        assert rsvp is not None
        await _release(uow, fs, rsvp, ReleaseReason.MEMBER, now)
        tally = await _tally(s, fs.id)
    return RsvpView(session_id=fs.id, member_id=req.actor_id, state=RsvpState.WITHDRAWN,
                    seats_left=rules.seats_left(fs.capacity, tally[RsvpState.CONFIRMED]), responded_at=now)


# ================================================================ secretariat: lists and check-in
def _entry_member(m: ForumMember | None) -> dict[str, Any]:
    return {"public_id": m.public_id if m else None, "full_name": m.full_name if m else "",
            "organisation": m.organisation if m else "", "college": m.college if m else None}


async def list_rsvps(req: ListRsvps, ctx: HandlerContext) -> RsvpList:
    """Secretariat: confirmed, waitlisted (in order), declined, and who checked in."""
    now = utcnow()
    async with ctx.service.db.read() as s:
        await require_secretariat(s, req.actor_id)
        fs = await find_session(s, req.session_id)
        view = await _full_view(s, fs, now)
        rows = (await s.exec(
            select(ForumRsvp, ForumMember).join(ForumMember, col(ForumMember.member_id) == col(ForumRsvp.member_id))
            .where(ForumRsvp.session_id == fs.id)
            .order_by(col(ForumRsvp.waitlist_seq), col(ForumRsvp.confirmed_at), col(ForumRsvp.responded_at)))).all()
        came = {a.member_id: (a, m) for a, m in (await s.exec(
            select(ForumAttendance, ForumMember)
            .join(ForumMember, col(ForumMember.member_id) == col(ForumAttendance.member_id))
            .where(ForumAttendance.session_id == fs.id).order_by(col(ForumAttendance.recorded_at)))).all()}
    out: dict[RsvpState, list[RsvpEntry]] = defaultdict(list)
    for r, m in rows:
        state = RsvpState(r.state)
        out[state].append(RsvpEntry(
            member_id=r.member_id, **_entry_member(m), state=state, responded_at=rules.as_utc(r.responded_at),
            waitlist_position=len(out[state]) + 1 if state == RsvpState.WAITLISTED else None,
            attended=r.member_id in came))
    attendees = [AttendanceEntry(member_id=a.member_id, **(_entry_member(m) | {"college": a.college}),
                                 walk_in=a.walk_in, recorded_at=rules.as_utc(a.recorded_at))
                 for a, m in came.values()]
    return RsvpList(session=view, confirmed=out[RsvpState.CONFIRMED], waitlisted=out[RsvpState.WAITLISTED],
                    declined=out[RsvpState.DECLINED], attendees=attendees)


async def check_in(req: CheckIn, ctx: HandlerContext) -> AttendanceView:
    """Secretariat marks an approved member present (walk-ins included), or corrects a mistake."""
    now = utcnow()
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        s = uow.tx
        await require_secretariat(s, req.actor_id)
        fs = await _lock_session(s, req.session_id)
        rules.check_check_in_window(fs.status, fs.starts_at, fs.ends_at, now)
        member = await s.get(ForumMember, req.member_id)
        if member is None or member.standing != MemberStanding.APPROVED:
            raise Forbidden("Cette personne n'est pas un membre validé du forum.", field="member_id")
        row = await s.get(ForumAttendance, (fs.id, member.member_id))
        walk_in = row.walk_in if row is not None else False
        changed = req.present != (row is not None)  # asking for what is already recorded changes nothing
        if req.present and row is None:
            rsvp = await s.get(ForumRsvp, (fs.id, member.member_id))
            walk_in = rsvp is None or rsvp.state != RsvpState.CONFIRMED
            s.add(ForumAttendance(session_id=fs.id, member_id=member.member_id, college=member.college,
                                  walk_in=walk_in, recorded_by=req.actor_id, recorded_at=now))
        elif not req.present and row is not None:
            await s.delete(row)
        if changed:
            uow.emit(AttendanceRecorded(session_id=fs.id, member_id=member.member_id, public_id=member.public_id,
                                        college=member.college, present=req.present, walk_in=walk_in))
        await s.flush()
        counts = (await _attendance(s, [fs.id]))[fs.id]
    return AttendanceView(session_id=fs.id, member_id=req.member_id, present=req.present, walk_in=walk_in,
                          counts=_counts(fs.id, counts, final=now >= rules.as_utc(fs.ends_at)))


# ================================================================ projection of members (registry events)
async def _projected(uow: UnitOfWork, member_id: str) -> ForumMember:
    m = await lock_member(uow.tx, member_id)
    if m is None:
        m = ForumMember(member_id=member_id)
    return m


async def on_member_registered(event: Envelope[MemberRegistered], uow: UnitOfWork) -> None:
    """Remember a new account; secretariat accounts are approved from the start."""
    d = event.data
    m = await _projected(uow, d.member_id)
    if m.standing == MemberStanding.ERASED:
        return
    m.public_id, m.college, m.role = d.public_id, d.college, d.role
    m.full_name, m.organisation, m.updated_at = d.full_name, d.organisation, utcnow()
    if d.role == Role.SECRETARIAT:
        m.standing = MemberStanding.APPROVED
    uow.tx.add(m)


async def on_member_approved(event: Envelope[MemberApproved], uow: UnitOfWork) -> None:
    """The member may now RSVP (this may arrive before the registration: both create the row)."""
    d = event.data
    m = await _projected(uow, d.member_id)
    if m.standing == MemberStanding.ERASED:
        return
    m.public_id, m.college, m.standing, m.updated_at = d.public_id, d.college, MemberStanding.APPROVED, utcnow()
    uow.tx.add(m)


async def on_profile_updated(event: Envelope[ProfileUpdated], uow: UnitOfWork) -> None:
    """Keep the name shown on the secretariat's lists current."""
    d = event.data
    m = await _projected(uow, d.member_id)
    if m.standing == MemberStanding.ERASED:
        return
    m.full_name, m.organisation, m.updated_at = d.full_name, d.organisation, utcnow()
    uow.tx.add(m)


async def on_role_granted(event: Envelope[RoleGranted], uow: UnitOfWork) -> None:
    """An existing account became secretariat: it may now run sessions."""
    m = await _projected(uow, event.data.member_id)
    if m.standing == MemberStanding.ERASED:
        return
    m.role, m.updated_at = event.data.role, utcnow()
    if event.data.role == Role.SECRETARIAT:
        m.standing = MemberStanding.APPROVED
    uow.tx.add(m)


async def on_member_erased(event: Envelope[MemberErased], uow: UnitOfWork) -> None:
    """Forget the member's name, release their seats and waitlist places in sessions still to come
    (promoting the waitlist) and withdraw their ballots from votes still open. Past RSVPs and
    check-ins stay, for the attendance counts."""
    now = utcnow()
    s = uow.tx
    m = await _projected(uow, event.data.member_id)
    m.standing, m.full_name, m.organisation, m.updated_at = MemberStanding.ERASED, "", "", now
    m.public_id = m.public_id or event.data.public_id
    s.add(m)
    await s.flush()
    await decisions.withdraw_ballots(s, m.member_id)
    session_ids = sorted((await s.exec(select(ForumRsvp.session_id).where(
        ForumRsvp.member_id == m.member_id, col(ForumRsvp.state).in_(rules.HOLDING)))).all())
    for sid in session_ids:  # id order: the same lock order as every other transaction
        fs = await _lock_session(s, sid)
        if fs.status == SessionStatus.CANCELLED or now >= rules.as_utc(fs.starts_at):
            continue
        rsvp = await s.get(ForumRsvp, (sid, m.member_id))
        if rsvp is not None and rsvp.state in rules.HOLDING:
            await _release(uow, fs, rsvp, ReleaseReason.MEMBER_ERASED, now)


# ================================================================ wiring
RPCS = {
    "create-session": create_session,
    "update-session": update_session,
    "cancel-session": cancel_session,
    "list-sessions": list_sessions,
    "get-session": get_session,
    "attendance": attendance,
    "rsvp": answer_rsvp,
    "withdraw-rsvp": withdraw_rsvp,
    "list-rsvps": list_rsvps,
    "check-in": check_in,
}
CONSUMERS = [
    (MemberRegistered, on_member_registered),
    (MemberApproved, on_member_approved),
    (ProfileUpdated, on_profile_updated),
    (RoleGranted, on_role_granted),
    (MemberErased, on_member_erased),
]


def wire(service: Service) -> Service:
    """Put the forum's request handlers (sessions, then decisions and votes), consumers, published
    events and the vote closer on `service`."""
    service.produces(*FORUM_EVENTS, *DECISION_EVENTS)
    for op, fn in (RPCS | decisions.RPCS).items():
        service.rpc(op)(fn)
    for event, fn in CONSUMERS:
        service.consume(event)(fn)
    async def close_due_votes() -> None:  # votes past their closing time, every `vote_close_interval` s
        await decisions.close_due_votes(service)

    service.every(lambda: service.settings.vote_close_interval)(close_due_votes)
    return service


svc = wire(Service("forum", title=TITLE))
