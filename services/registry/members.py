"""Members: registration and address verification, the secretariat's approval or rejection, profiles,
roles, and the member records the web front reads."""
from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry import rules
from services.registry.links import mail_link, use_link
from services.registry.models import Member
from shared.clock import utcnow
from shared.contracts.registry import (
    ApproveMember, EmailVerified, GetMember, ListMembers, MemberApproved, MemberList, MemberRegistered,
    MembersChanged, MemberRejected, MemberStatus, MemberView, ProfileUpdated, Register, Registered,
    RegistrationRepeated, RejectMember, Role, RoleGranted, UpdateProfile, VerifyEmail,
)
from shared.errors import NotFound
from shared.outbox import UnitOfWork
from shared.service import HandlerContext


def view(m: Member) -> MemberView:
    return MemberView(member_id=m.id, public_id=m.public_id, full_name=m.full_name, email=m.email,
                      organisation=m.organisation, college=m.college, role=m.role, status=m.status,
                      rejection_reason=m.rejection_reason, registered_at=m.registered_at,
                      verified_at=m.verified_at, decided_at=m.decided_at)


async def find_member(tx: AsyncSession, member_id: str, *, lock: bool = False) -> Member:
    """A member who is still on the register (erased ones are not found)."""
    stmt = select(Member).where(Member.id == member_id)
    if lock:
        stmt = stmt.with_for_update()
    m = (await tx.exec(stmt)).first()
    if m is None or m.status == MemberStatus.ERASED:
        raise NotFound("Membre inconnu.", field="member_id")
    return m


async def member_by_email(tx: AsyncSession, email: str, *, lock: bool = False) -> Member | None:
    stmt = select(Member).where(Member.email == rules.normalise_email(email))
    if lock:
        stmt = stmt.with_for_update()
    return (await tx.exec(stmt)).first()


def _registered(m: Member) -> MemberRegistered:
    return MemberRegistered(member_id=m.id, public_id=m.public_id, full_name=m.full_name, email=m.email or "",
                            organisation=m.organisation, college=m.college, role=m.role)


async def _secretariat(tx: AsyncSession, actor_id: str) -> Member:
    actor = await tx.get(Member, actor_id)
    rules.check_can_decide(actor.role if actor else None, actor.status if actor else None)
    assert actor is not None
    return actor


# ---------------------------------------------------------------- joining
async def register(req: Register, ctx: HandlerContext) -> Registered:
    """Register a member; a single-use verification link is mailed to them.

    An address already on the register is not an error: the web front shows the same page as for a new
    registration, so the form tells nobody who is a member. The owner of the address is mailed instead
    (see `_registered_again`), and the reply names the existing account."""
    try:
        async with ctx.unit_of_work() as uow:
            if (known := await member_by_email(uow.tx, req.email, lock=True)) is not None:
                await _registered_again(uow, known, ctx)
                return Registered(member_id=known.id, status=known.status)
            m = Member(full_name=req.full_name, email=rules.normalise_email(req.email),
                       organisation=req.organisation, college=req.college, charter_accepted_at=utcnow())
            uow.tx.add(m)
            await uow.tx.flush()  # the token row references the member
            uow.actor = m.id
            uow.emit(_registered(m))
            await mail_link(uow, m, rules.VERIFY_EMAIL, ctx.settings, new_member=True)
    except IntegrityError as exc:  # a concurrent registration with the same address won the race
        if "email" not in str(exc.orig).lower() and "member" not in str(exc.orig).lower():
            raise
        async with ctx.unit_of_work() as uow:
            known = await member_by_email(uow.tx, req.email, lock=True)
            if known is None:  # the winner was rolled back meanwhile: nothing to say to anyone
                raise
            await _registered_again(uow, known, ctx)
            return Registered(member_id=known.id, status=known.status)
    return Registered(member_id=m.id, status=m.status)


async def _registered_again(uow: UnitOfWork, m: Member, ctx: HandlerContext) -> None:
    """A registration with the address of an existing account: its owner gets what they can use — a new
    verification link while the address is unconfirmed, else a sign-in link saying they already have an
    account (within the address's hourly share of links, like any link)."""
    if m.status == MemberStatus.PENDING_VERIFICATION:
        await mail_link(uow, m, rules.VERIFY_EMAIL, ctx.settings)
    elif rules.can_sign_in(m.status):
        await mail_link(uow, m, rules.SIGN_IN, ctx.settings, event=RegistrationRepeated)


async def verify_email(req: VerifyEmail, ctx: HandlerContext) -> MemberView:
    """Redeem an e-mail verification link: the member then awaits the secretariat's decision."""
    async with ctx.unit_of_work() as uow:
        m = await verify_address(uow, req.token)
    await ctx.broadcast(MembersChanged(member_ids=[m.id]))
    return view(m)


async def verify_address(uow: UnitOfWork, token: str) -> Member:
    """Spend a verification link in the caller's transaction; the member, their address confirmed."""
    m = await find_member(uow.tx, await use_link(uow.tx, token, rules.VERIFY_EMAIL))
    if m.status == MemberStatus.PENDING_VERIFICATION:
        m.status = MemberStatus.PENDING_APPROVAL
        m.verified_at = utcnow()
        uow.tx.add(m)
        uow.emit(EmailVerified(member_id=m.id), actor=m.id)
    return m


# ---------------------------------------------------------------- reading the register
async def get_member(req: GetMember, ctx: HandlerContext) -> MemberView:
    """One member's current record (the web front calls it on each signed-in page)."""
    async with ctx.db.read() as tx:
        return view(await find_member(tx, req.member_id))


async def list_members(req: ListMembers, ctx: HandlerContext) -> MemberList:
    """Members for the secretariat back-office, optionally filtered by status, latest registration
    first; one page of them with `limit` (one query for the page, one for the total)."""
    where = [Member.status == req.status] if req.status else [col(Member.status) != MemberStatus.ERASED]
    order = ((col(Member.registered_at).asc(), col(Member.id).asc()) if req.oldest_first
             else (col(Member.registered_at).desc(), col(Member.id).desc()))
    stmt = select(Member).where(*where).order_by(*order)
    async with ctx.db.read() as tx:
        await _secretariat(tx, req.actor_id)
        if req.limit is None:
            members = [view(m) for m in (await tx.exec(stmt.offset(req.offset))).all()]
            return MemberList(members=members, total=req.offset + len(members))
        members = [view(m) for m in (await tx.exec(stmt.offset(req.offset).limit(req.limit))).all()]
        total = (await tx.exec(select(func.count()).select_from(Member).where(*where))).one()
    return MemberList(members=members, total=int(total[0] if isinstance(total, tuple) else total))


# ---------------------------------------------------------------- the secretariat's decision
async def approve_member(req: ApproveMember, ctx: HandlerContext) -> MemberView:
    """Secretariat approves a verified registration."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        await _secretariat(uow.tx, req.actor_id)
        m = await find_member(uow.tx, req.member_id, lock=True)
        rules.check_decidable(m.status)
        m.status, m.decided_at, m.decided_by = MemberStatus.APPROVED, utcnow(), req.actor_id
        uow.tx.add(m)
        uow.emit(MemberApproved(member_id=m.id, public_id=m.public_id, college=m.college))
    await ctx.broadcast(MembersChanged(member_ids=[m.id]))
    return view(m)


async def reject_member(req: RejectMember, ctx: HandlerContext) -> MemberView:
    """Secretariat rejects a verified registration, with a reason the person will read."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        await _secretariat(uow.tx, req.actor_id)
        m = await find_member(uow.tx, req.member_id, lock=True)
        rules.check_decidable(m.status)
        m.status, m.decided_at, m.decided_by = MemberStatus.REJECTED, utcnow(), req.actor_id
        m.rejection_reason = req.reason
        uow.tx.add(m)
        uow.emit(MemberRejected(member_id=m.id, reason=req.reason))
    await ctx.broadcast(MembersChanged(member_ids=[m.id]))
    return view(m)


# ---------------------------------------------------------------- profile and roles
async def update_profile(req: UpdateProfile, ctx: HandlerContext) -> MemberView:
    """A member updates their own name and organisation."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        m = await find_member(uow.tx, req.actor_id, lock=True)
        m.full_name, m.organisation = req.full_name, req.organisation
        uow.tx.add(m)
        uow.emit(ProfileUpdated(member_id=m.id, full_name=m.full_name, organisation=m.organisation))
    await ctx.broadcast(MembersChanged(member_ids=[m.id]))
    return view(m)


async def create_secretariat(uow: UnitOfWork, email: str, full_name: str) -> MemberView:
    """Create (or promote) a secretariat account, for `forum-ouvert create-secretariat`: the account
    then signs in by e-mailed link like everyone, and the other services learn it from the events."""
    m = await member_by_email(uow.tx, email)
    if m is None:
        m = Member(full_name=full_name, email=rules.normalise_email(email), organisation="CESE",
                   college=None, role=Role.SECRETARIAT, status=MemberStatus.APPROVED,
                   charter_accepted_at=utcnow(), verified_at=utcnow(), decided_at=utcnow())
        uow.tx.add(m)
        uow.emit(_registered(m))
    elif m.role != Role.SECRETARIAT or m.status != MemberStatus.APPROVED:
        m.role, m.status = Role.SECRETARIAT, MemberStatus.APPROVED
        m.verified_at = m.verified_at or utcnow()
        uow.tx.add(m)
        uow.emit(RoleGranted(member_id=m.id, role=Role.SECRETARIAT))
    return view(m)
