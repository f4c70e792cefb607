"""The RSVP desk: « Je participe » answers to one session are decided together.

When a popular session opens, hundreds of members answer within a minute and every answer needs the
session's seat lock. One transaction per answer makes the lock the bottleneck: each holder waits for
its process to get round to its next statement while the other answers queue behind it. The desk
(`shared.desk`) instead queues the answers per session and lets one task decide them: the answers that arrived while
a transaction ran go together in the next one — the members' rows locked (in id order, as every
member-scoped transaction does), then the session row, the tally counted once, each answer decided in
arrival order by the same rules as one alone (`rules.allocate`, `rules.next_ticket`), the RSVP rows,
events, idempotency keys and replies written, one commit.

An answer the rules refuse (not approved, already answered, RSVPs closed) gets its own error and
writes nothing; the others go on. If the transaction itself fails, every answer of the group gets the
error and nothing of it is written, exactly as if each had failed alone.
"""
from __future__ import annotations

from pydantic import BaseModel
from sqlmodel import col, select

from services.forum import rules, seats
from services.forum.models import ForumMember, ForumRsvp
from shared.clock import utcnow
from shared.contracts.envelope import SYSTEM
from shared.contracts.forum import AnswerRsvp, RsvpConfirmed, RsvpState, RsvpView, RsvpWaitlisted
from shared.errors import DomainError
from shared.idempotency import KeyTaken, Once, replied_with, store_replies, take_keys
from shared.desk import Grouped, Pending

_Answer = Pending[AnswerRsvp, RsvpView]


async def _decide(session_id: str, group: list[_Answer]) -> None:
    refused: list[tuple[_Answer, Exception]] = []
    decided: list[tuple[_Answer, RsvpView]] = []
    async with group[0].ctx.service.unit_of_work(actor=SYSTEM) as uow:
        tx = uow.tx
        keyed = [a for a in group if a.ctx.once is not None]
        free = await take_keys(tx, [a.ctx.once for a in keyed])  # type: ignore[misc]
        repeats = {id(a) for i, a in enumerate(keyed) if i not in free}
        live = [a for a in group if id(a) not in repeats]
        refused += [(a, KeyTaken()) for a in group if id(a) in repeats]

        member_ids = sorted({a.req.actor_id for a in live})
        members = {m.member_id: m for m in (await tx.exec(
            select(ForumMember).where(col(ForumMember.member_id).in_(member_ids))
            .order_by(col(ForumMember.member_id)).with_for_update(key_share=True))).all()}
        fs = await seats.lock_session(tx, session_id)
        held = {r.member_id: r for r in (await tx.exec(select(ForumRsvp).where(
            ForumRsvp.session_id == session_id, col(ForumRsvp.member_id).in_(member_ids)))).all()}
        tally = await seats.tally(tx, session_id)
        for a in live:
            now = utcnow()  # under the lock: answers are stamped in the order they got their seat or ticket
            member, rsvp = members.get(a.req.actor_id), held.get(a.req.actor_id)
            try:
                rules.check_approved(member.standing if member else None)
                rules.check_rsvp_window(fs.status, fs.starts_at, fs.rsvp_opens_at, fs.rsvp_closes_at, now)
                rules.check_answer(rsvp.state if rsvp else None, a.req.answer)
            except DomainError as exc:
                refused.append((a, exc))
                continue
            if rsvp is None:
                rsvp = held[a.req.actor_id] = ForumRsvp(session_id=fs.id, member_id=a.req.actor_id,
                                                        state=RsvpState.DECLINED)
            rsvp.responded_at = rsvp.updated_at = now
            rsvp.state = rules.allocate(fs.capacity, tally[RsvpState.CONFIRMED], tally[RsvpState.WAITLISTED])
            position = None
            if rsvp.state == RsvpState.CONFIRMED:
                rsvp.waitlist_seq, rsvp.confirmed_at = None, now
                tally[RsvpState.CONFIRMED] += 1
                event: RsvpConfirmed | RsvpWaitlisted = RsvpConfirmed(
                    session_id=fs.id, member_id=a.req.actor_id,
                    seats_left=rules.seats_left(fs.capacity, tally[RsvpState.CONFIRMED]))
            else:
                fs.waitlist_seq = rsvp.waitlist_seq = rules.next_ticket(fs.waitlist_seq)
                tally[RsvpState.WAITLISTED] += 1
                position = tally[RsvpState.WAITLISTED]  # every other ticket is older
                event = RsvpWaitlisted(session_id=fs.id, member_id=a.req.actor_id, position=position)
            tx.add(rsvp)
            uow.emit(event, actor=a.req.actor_id, correlation_id=a.ctx.correlation_id)
            decided.append((a, RsvpView(
                session_id=fs.id, member_id=a.req.actor_id, state=rsvp.state, waitlist_position=position,
                seats_left=rules.seats_left(fs.capacity, tally[RsvpState.CONFIRMED]), responded_at=now)))
        tx.add(fs)
        replies: list[tuple[Once, BaseModel]] = [(a.ctx.once, view) for a, view in decided if a.ctx.once]
        await store_replies(tx, replies, [a.ctx.once for a, _ in refused
                                          if a.ctx.once and id(a) not in repeats])
    replied_with(replies)
    for a, view in decided:
        a.settle(view)
    for a, exc in refused:
        a.refuse(exc)


ATTEND: Grouped[AnswerRsvp, RsvpView] = Grouped(_decide, group=200)
"""« Je participe » answers to one session (the desk's key), up to 200 decided in one transaction."""
