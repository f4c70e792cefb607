"""RSVPs: an approved member attends (a seat while seats are left, else the waitlist, in arrival
order), declines or withdraws; the secretariat lists who answered what and who came. Every change of
a seat happens under the seat lock (see `seats`)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlmodel import col, select

from services.forum import rsvp_desk, rules, seats
from services.forum.models import ForumAttendance, ForumMember, ForumRsvp
from services.forum.queries import find_session, lock_member, require_secretariat
from services.forum.sessions import full_view
from shared.clock import utcnow
from shared.contracts.forum import (
    AnswerRsvp, AttendanceEntry, ListRsvps, PromotionCause, ReleaseReason, RsvpAnswer, RsvpDeclined, RsvpEntry,
    RsvpList, RsvpState, RsvpView, WithdrawRsvp,
)
from shared.errors import Forbidden
from shared.idempotency import records_key_first
from shared.service import HandlerContext


@records_key_first
@rsvp_desk.ATTEND
async def answer_rsvp(req: AnswerRsvp, ctx: HandlerContext) -> RsvpView:
    """An approved member answers "I attend" (a seat if one is left, else the waitlist, in arrival
    order) or "I decline" (which gives a confirmed seat back to the waitlist's head). "I attend" answers
    to one session are decided in groups (see `rsvp_desk`)."""
    if req.answer == RsvpAnswer.ATTEND:
        return await rsvp_desk.ATTEND.submit(ctx, req.session_id, req)
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        tx = uow.tx
        member = await lock_member(tx, req.actor_id)
        rules.check_approved(member.standing if member else None)
        fs = await seats.lock_session(tx, req.session_id)
        now = utcnow()  # read under the lock: answers are stamped in the order they got their seat or ticket
        rules.check_rsvp_window(fs.status, fs.starts_at, fs.rsvp_opens_at, fs.rsvp_closes_at, now)
        rsvp = await tx.get(ForumRsvp, (fs.id, req.actor_id))
        previous = rsvp.state if rsvp is not None else None
        rules.check_answer(previous, req.answer)
        if rsvp is None:
            rsvp = ForumRsvp(session_id=fs.id, member_id=req.actor_id, state=RsvpState.DECLINED)
        rsvp.responded_at = rsvp.updated_at = now
        rsvp.state, rsvp.waitlist_seq = RsvpState.DECLINED, None
        tx.add(rsvp)
        uow.emit(RsvpDeclined(session_id=fs.id, member_id=req.actor_id, previous_state=previous))
        if previous == RsvpState.CONFIRMED:
            await seats.promote(uow, fs, PromotionCause.SEAT_FREED, now)
        tally = await seats.tally(tx, fs.id)
    return RsvpView(session_id=fs.id, member_id=req.actor_id, state=rsvp.state, waitlist_position=None,
                    seats_left=rules.seats_left(fs.capacity, tally[RsvpState.CONFIRMED]), responded_at=now)


async def withdraw_rsvp(req: WithdrawRsvp, ctx: HandlerContext) -> RsvpView:
    """A member gives back their seat (the waitlist's head is promoted at once) or waitlist place."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        tx = uow.tx
        member = await lock_member(tx, req.actor_id)
        if member is None:
            raise Forbidden("Seuls les membres du forum peuvent répondre à une séance.")
        fs = await seats.lock_session(tx, req.session_id)
        now = utcnow()
        rules.check_rsvp_window(fs.status, fs.starts_at, fs.rsvp_opens_at, fs.rsvp_closes_at, now)
        rsvp = await tx.get(ForumRsvp, (fs.id, req.actor_id))
        rules.check_withdrawable(rsvp.state if rsvp is not None else None)
        assert rsvp is not None
        await seats.release(uow, fs, rsvp, ReleaseReason.MEMBER, now)
        tally = await seats.tally(tx, fs.id)
    return RsvpView(session_id=fs.id, member_id=req.actor_id, state=RsvpState.WITHDRAWN,
                    seats_left=rules.seats_left(fs.capacity, tally[RsvpState.CONFIRMED]), responded_at=now)


def _who(m: ForumMember | None) -> dict[str, Any]:
    return {"public_id": m.public_id if m else None, "full_name": m.full_name if m else "",
            "organisation": m.organisation if m else "", "college": m.college if m else None}


async def list_rsvps(req: ListRsvps, ctx: HandlerContext) -> RsvpList:
    """Secretariat: confirmed, waitlisted (in order), declined, and who checked in."""
    now = utcnow()
    async with ctx.db.read() as tx:
        await require_secretariat(tx, req.actor_id)
        fs = await find_session(tx, req.session_id)
        view = await full_view(tx, fs, now)
        rows = (await tx.exec(
            select(ForumRsvp, ForumMember).join(ForumMember, col(ForumMember.member_id) == col(ForumRsvp.member_id))
            .where(ForumRsvp.session_id == fs.id)
            .order_by(col(ForumRsvp.waitlist_seq), col(ForumRsvp.confirmed_at), col(ForumRsvp.responded_at)))).all()
        came = {a.member_id: (a, m) for a, m in (await tx.exec(
            select(ForumAttendance, ForumMember)
            .join(ForumMember, col(ForumMember.member_id) == col(ForumAttendance.member_id))
            .where(ForumAttendance.session_id == fs.id).order_by(col(ForumAttendance.recorded_at)))).all()}
    out: dict[RsvpState, list[RsvpEntry]] = defaultdict(list)
    for r, m in rows:  # waitlisted rows come in ticket order: their rank in the list is their position
        state = RsvpState(r.state)
        out[state].append(RsvpEntry(
            member_id=r.member_id, **_who(m), state=state, responded_at=r.responded_at,
            waitlist_position=len(out[state]) + 1 if state == RsvpState.WAITLISTED else None,
            attended=r.member_id in came))
    attendees = [AttendanceEntry(member_id=a.member_id, **(_who(m) | {"college": a.college}),
                                 walk_in=a.walk_in, recorded_at=a.recorded_at)
                 for a, m in came.values()]
    return RsvpList(session=view, confirmed=out[RsvpState.CONFIRMED], waitlisted=out[RsvpState.WAITLISTED],
                    declined=out[RsvpState.DECLINED], attendees=attendees)
