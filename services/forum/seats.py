"""The seat lock, and what may only be done under it: counting seats, promoting the waitlist, giving a
place back.

A seat is never given twice: every transaction that changes who holds a seat or a waitlist place
first locks the session row (`SELECT … FOR UPDATE` on PostgreSQL; on SQLite the service's
process-wide write lock serialises write transactions) and only then counts the confirmed seats,
so the count it decides on cannot change before it commits. Member-scoped transactions lock the
member's projection row before the session row (and several sessions in id order), so the locks
are always taken in the same order and cannot deadlock.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.forum import rules
from services.forum.models import ForumRsvp, ForumSession
from services.forum.queries import scalar
from shared.contracts.forum import PromotionCause, ReleaseReason, RsvpPromoted, RsvpState, RsvpWithdrawn
from shared.errors import NotFound
from shared.outbox import UnitOfWork

Tally = dict[RsvpState, int]


async def lock_session(tx: AsyncSession, session_id: str) -> ForumSession:
    """The session row, locked until the transaction ends (the seat lock)."""
    fs = (await tx.exec(select(ForumSession).where(ForumSession.id == session_id).with_for_update())).first()
    if fs is None:
        raise NotFound("Séance inconnue.", field="session_id")
    return fs


async def tallies(tx: AsyncSession, session_ids: Sequence[str]) -> dict[str, Tally]:
    """How many RSVPs of each state every session has."""
    out: dict[str, Tally] = {sid: {st: 0 for st in RsvpState} for sid in session_ids}
    if not session_ids:
        return out
    stmt = (select(ForumRsvp.session_id, ForumRsvp.state, func.count())
            .where(col(ForumRsvp.session_id).in_(session_ids)).group_by(ForumRsvp.session_id, ForumRsvp.state))
    for sid, state, n in (await tx.exec(stmt)).all():  # type: ignore[call-overload]
        out[sid][RsvpState(state)] = n
    return out


async def tally(tx: AsyncSession, session_id: str) -> Tally:
    return (await tallies(tx, [session_id]))[session_id]


async def waitlist_position(tx: AsyncSession, rsvp: ForumRsvp) -> int | None:
    """1-based place in the queue of a waitlisted RSVP: the waitlisted tickets ahead of it, plus one."""
    if rsvp.state != RsvpState.WAITLISTED or rsvp.waitlist_seq is None:
        return None
    ahead = (await tx.exec(select(func.count()).select_from(ForumRsvp).where(  # type: ignore[call-overload]
        ForumRsvp.session_id == rsvp.session_id, ForumRsvp.state == RsvpState.WAITLISTED,
        col(ForumRsvp.waitlist_seq) < rsvp.waitlist_seq))).one()
    return scalar(ahead) + 1


async def promote(uow: UnitOfWork, fs: ForumSession, cause: PromotionCause, now: datetime) -> list[ForumRsvp]:
    """Give every free seat to the head of the waitlist, in ticket order. Caller holds the lock."""
    tx = uow.tx
    counts = await tally(tx, fs.id)  # autoflush: sees this transaction's own changes
    free = rules.seats_left(fs.capacity, counts[RsvpState.CONFIRMED])
    if free == 0 or counts[RsvpState.WAITLISTED] == 0:
        return []
    head = (await tx.exec(select(ForumRsvp).where(ForumRsvp.session_id == fs.id,
                                                  ForumRsvp.state == RsvpState.WAITLISTED)
                          .order_by(col(ForumRsvp.waitlist_seq)).limit(free))).all()
    chosen = rules.to_promote(fs.capacity, counts[RsvpState.CONFIRMED], head, started=now >= fs.starts_at)
    for r in chosen:
        r.state, r.waitlist_seq, r.confirmed_at, r.updated_at = RsvpState.CONFIRMED, None, now, now
        tx.add(r)
        uow.emit(RsvpPromoted(session_id=fs.id, member_id=r.member_id, cause=cause))
    return chosen


async def release(uow: UnitOfWork, fs: ForumSession, rsvp: ForumRsvp, reason: ReleaseReason,
                  now: datetime) -> None:
    """Take back a seat or waitlist place and, if it was a seat, promote. Caller holds the lock."""
    previous = rsvp.state
    rsvp.state, rsvp.waitlist_seq, rsvp.updated_at = RsvpState.WITHDRAWN, None, now
    if reason == ReleaseReason.MEMBER:
        rsvp.responded_at = now
    uow.tx.add(rsvp)
    uow.emit(RsvpWithdrawn(session_id=fs.id, member_id=rsvp.member_id, previous_state=previous, reason=reason))
    if previous == RsvpState.CONFIRMED:
        await promote(uow, fs, PromotionCause.SEAT_FREED, now)
