"""Members: registration and address verification, the secretariat's approval or rejection, profiles,
roles, and the member records the web front reads."""
from __future__ import annotations

from collections.abc import Sequence

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
from shared.desk import Grouped, Pending
from shared.errors import NotFound
from shared.logging import get_logger
from shared.outbox import UnitOfWork
from shared.service import HandlerContext

log = get_logger(__name__)


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
async def _register_group(_: str, group: list[Pending[Register, Registered]]) -> None:
    """Registrations that arrived together, in one transaction (`_register_in`). If it fails — a
    concurrent registration of one of the addresses elsewhere won the race — each is written again alone,
    so one address never holds back the others."""
    if len(group) > 1:
        try:
            async with group[0].ctx.unit_of_work() as uow:
                emails = sorted({rules.normalise_email(p.req.email) for p in group})  # one lock order everywhere
                known = (await uow.tx.exec(select(Member).where(col(Member.email).in_(emails))
                                           .order_by(col(Member.email)).with_for_update())).all()
                answers = await _register_in(uow, [(p.req, p.ctx) for p in group], known)
        except Exception as exc:  # noqa: BLE001 - written again one by one below
            log.info("registration group failed, written one by one", size=len(group),
                     error=f"{type(exc).__name__}: {exc}")
        else:
            for p, answer in zip(group, answers, strict=True):
                p.settle(answer)
            return
    for p in group:
        try:
            p.settle(await _register_alone(p.req, p.ctx))
        except Exception as exc:  # noqa: BLE001 - that request's own error
            p.refuse(exc)


REGISTRATIONS: Grouped[Register, Registered] = Grouped(_register_group, group=100)
"""Registrations arriving together, up to 100 written in one transaction."""


@REGISTRATIONS
async def register(req: Register, ctx: HandlerContext) -> Registered:
    """Register a member; a single-use verification link is mailed to them.

    An address already on the register is not an error: the web front shows the same page as for a new
    registration, so the form tells nobody who is a member. The owner of the address is mailed instead
    (see `_registered_again`), and the reply names the existing account.

    When the forum is announced, registrations come in bursts: those that arrive while one is written go
    together in the next transaction (`shared.desk`, `_register_group`); one that comes alone is written
    alone."""
    return await REGISTRATIONS.submit(ctx, "", req)


async def _register_alone(req: Register, ctx: HandlerContext) -> Registered:
    try:
        async with ctx.unit_of_work() as uow:
            known = await member_by_email(uow.tx, req.email, lock=True)
            return (await _register_in(uow, [(req, ctx)], [known] if known else []))[0]
    except IntegrityError as exc:  # a concurrent registration with the same address won the race
        if "email" not in str(exc.orig).lower() and "member" not in str(exc.orig).lower():
            raise
        async with ctx.unit_of_work() as uow:
            known = await member_by_email(uow.tx, req.email, lock=True)
            if known is None:  # the winner was rolled back meanwhile: nothing to say to anyone
                raise
            await _registered_again(uow, known, ctx)
            return Registered(member_id=known.id, status=known.status)


async def _register_in(uow: UnitOfWork, requests: list[tuple[Register, HandlerContext]],
                       known: Sequence[Member]) -> list[Registered]:
    """Registrations in the caller's transaction, each decided as if alone, in arrival order (a second
    registration of an address finds the first's member); `known`: the members already holding these
    addresses, locked by the caller. The new members are inserted together, then their events and links
    written."""
    by_email: dict[str | None, Member] = {m.email: m for m in known}
    new: set[int] = set()
    for i, (req, _) in enumerate(requests):
        email = rules.normalise_email(req.email)
        if email not in by_email:
            by_email[email] = Member(full_name=req.full_name, email=email, organisation=req.organisation,
                                     college=req.college, charter_accepted_at=utcnow())
            uow.tx.add(by_email[email])
            new.add(i)
    if new:
        await uow.tx.flush()  # the token rows reference the members
    answers = []
    for i, (req, ctx) in enumerate(requests):
        m = by_email[rules.normalise_email(req.email)]
        uow.correlation_id = ctx.correlation_id  # each request's events carry its own
        if i in new:
            uow.emit(_registered(m), actor=m.id)
            await mail_link(uow, m, rules.VERIFY_EMAIL, ctx.settings, new_member=True)
        else:
            await _registered_again(uow, m, ctx)
        answers.append(Registered(member_id=m.id, status=m.status))
    return answers


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
