"""Who the forum's members are, as the registry's events tell it (the forum never asks the registry):
who may answer a session or vote, who is secretariat, the names on the secretariat's lists. Erasure
forgets the name and gives back the member's places in sessions still to come."""
from __future__ import annotations

import functools

from sqlmodel import col, select

from services.forum import rules, seats, votes
from services.forum.models import ForumMember, ForumRsvp, MemberStanding
from services.forum.queries import lock_member
from shared import preload
from shared.clock import utcnow
from shared.contracts.envelope import Envelope
from shared.contracts.forum import ReleaseReason, SessionStatus
from shared.contracts.registry import (
    MemberApproved, MemberErased, MemberRegistered, ProfileUpdated, Role, RoleGranted,
)
from shared.outbox import UnitOfWork


async def _projected(uow: UnitOfWork, member_id: str) -> ForumMember:
    """The member's row, locked (preloaded with the batch's, see `preload_members`); a new one if the forum
    has not heard of them yet."""
    return await preload.get_or_new(uow, ForumMember, member_id, fallback=lambda: lock_member(uow.tx, member_id))


# The batch's members' rows, locked as `lock_member` locks one, in one query.
preload_members = functools.partial(preload.member_rows, model=ForumMember, lock={"key_share": True})


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
    tx = uow.tx
    m = await _projected(uow, event.data.member_id)
    m.standing, m.full_name, m.organisation, m.updated_at = MemberStanding.ERASED, "", "", now
    m.public_id = m.public_id or event.data.public_id
    tx.add(m)
    await tx.flush()
    await votes.withdraw_ballots(tx, m.member_id)
    session_ids = sorted((await tx.exec(select(ForumRsvp.session_id).where(
        ForumRsvp.member_id == m.member_id, col(ForumRsvp.state).in_(rules.HOLDING)))).all())
    for sid in session_ids:  # id order: the same lock order as every other transaction
        fs = await seats.lock_session(tx, sid)
        if fs.status == SessionStatus.CANCELLED or now >= fs.starts_at:
            continue
        rsvp = await tx.get(ForumRsvp, (sid, m.member_id))
        if rsvp is not None and rsvp.state in rules.HOLDING:
            await seats.release(uow, fs, rsvp, ReleaseReason.MEMBER_ERASED, now)
