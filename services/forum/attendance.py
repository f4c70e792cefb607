"""Attendance: the secretariat's check-in (walk-ins included) and the counts per college that the
session pages show once a session is over and the adoption rules check a quorum against."""
from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import case, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.forum import rules
from services.forum.models import ForumAttendance, ForumMember, ForumRsvp, ForumSession, MemberStanding
from services.forum.queries import require_secretariat
from services.forum.seats import lock_session
from shared.clock import as_utc, utcnow
from shared.contracts.forum import (
    AttendanceCounts, AttendanceRecorded, AttendanceView, CheckIn, GetAttendance, RsvpState,
)
from shared.contracts.registry import College
from shared.errors import Forbidden, NotFound
from shared.service import HandlerContext


async def sheets(tx: AsyncSession, session_ids: Sequence[str], member_id: str | None = None
                 ) -> tuple[dict[str, dict[str, int]], set[str]]:
    """Members checked in at each session, per college ("none" for accounts without one), counted by the
    database in one statement (one row per session and college) — every attendance figure the forum gives
    (a session's page, the lists, a quorum) comes from here; and, with `member_id`, the sessions that
    member was checked in at, from the same statement."""
    out = {sid: rules.attendance_by_college([]) for sid in session_ids}
    mine: set[str] = set()
    if session_ids:
        theirs = func.max(case((ForumAttendance.member_id == (member_id or ""), 1), else_=0))
        stmt = (select(ForumAttendance.session_id, ForumAttendance.college, func.count(), theirs)
                .where(col(ForumAttendance.session_id).in_(session_ids))
                .group_by(ForumAttendance.session_id, ForumAttendance.college))
        for sid, college, n, me in (await tx.exec(stmt)).all():  # type: ignore[call-overload]
            _count(out[sid], college, n)
            if me:
                mine.add(sid)
    return out, mine


def _count(per_college: dict[str, int], college: str | None, n: int) -> None:
    key = str(college) if college else rules.NO_COLLEGE
    per_college[key] = per_college.get(key, 0) + n


async def by_college(tx: AsyncSession, session_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Members checked in at each session, per college (see `sheets`)."""
    return (await sheets(tx, session_ids))[0]


async def present(tx: AsyncSession, session_id: str) -> dict[College, int]:
    """Members checked in at the session, per college (those without a college left out): what a
    quorum is checked against, at the moment it is checked."""
    counted = (await by_college(tx, [session_id]))[session_id]
    return {College(c): n for c, n in counted.items() if c != rules.NO_COLLEGE and n}


def counts(session_id: str, per_college: dict[str, int], final: bool) -> AttendanceCounts:
    return AttendanceCounts(session_id=session_id, total=sum(per_college.values()), by_college=per_college,
                            final=final)


async def sheet_now(tx: AsyncSession, session_id: str) -> AttendanceCounts:
    """The session's check-in sheet as it stands (`final` once it has ended), its end read in the same
    statement as the counts."""
    stmt = (select(ForumSession.ends_at, ForumAttendance.college, func.count(col(ForumAttendance.member_id)))
            .select_from(ForumSession)
            .outerjoin(ForumAttendance, col(ForumAttendance.session_id) == col(ForumSession.id))
            .where(ForumSession.id == session_id).group_by(ForumSession.ends_at, ForumAttendance.college))
    rows = (await tx.exec(stmt)).all()  # type: ignore[call-overload]
    if not rows:
        raise NotFound("Séance inconnue.", field="session_id")
    per_college = rules.attendance_by_college([])
    for _, college, n in rows:
        if n:  # (a session nobody checked in at: one row, no college, 0)
            _count(per_college, college, n)
    return counts(session_id, per_college, final=utcnow() >= as_utc(rows[0][0]))


async def attendance(req: GetAttendance, ctx: HandlerContext) -> AttendanceCounts:
    """Attendance per college (`final` once the session has ended)."""
    async with ctx.db.read() as tx:
        return await sheet_now(tx, req.session_id)


async def check_in(req: CheckIn, ctx: HandlerContext) -> AttendanceView:
    """Secretariat marks an approved member present (walk-ins included), or corrects a mistake."""
    now = utcnow()
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        tx = uow.tx
        await require_secretariat(tx, req.actor_id)
        fs = await lock_session(tx, req.session_id)
        rules.check_check_in_window(fs.status, fs.starts_at, fs.ends_at, now)
        member = await tx.get(ForumMember, req.member_id)
        if member is None or member.standing != MemberStanding.APPROVED:
            raise Forbidden("Cette personne n'est pas un membre validé du forum.", field="member_id")
        row = await tx.get(ForumAttendance, (fs.id, member.member_id))
        walk_in = row.walk_in if row is not None else False
        changed = req.present != (row is not None)  # asking for what is already recorded changes nothing
        if req.present and row is None:
            rsvp = await tx.get(ForumRsvp, (fs.id, member.member_id))
            walk_in = rsvp is None or rsvp.state != RsvpState.CONFIRMED
            tx.add(ForumAttendance(session_id=fs.id, member_id=member.member_id, college=member.college,
                                   walk_in=walk_in, recorded_by=req.actor_id, recorded_at=now))
        elif not req.present and row is not None:
            await tx.delete(row)
        if changed:
            uow.emit(AttendanceRecorded(session_id=fs.id, member_id=member.member_id, public_id=member.public_id,
                                        college=member.college, present=req.present, walk_in=walk_in))
        await tx.flush()
        per_college = (await by_college(tx, [fs.id]))[fs.id]
    return AttendanceView(session_id=fs.id, member_id=req.member_id, present=req.present, walk_in=walk_in,
                          counts=counts(fs.id, per_college, final=now >= fs.ends_at))
