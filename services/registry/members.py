"""Registry commands (request/reply from the web front) and the admin command of the CLI."""
from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry import rules
from services.registry.models import EmailToken, Member
from shared.contracts.registry import (
    Accepted, ApproveMember, EmailVerificationRequested, EmailVerified, EraseMember, Export, ExportData,
    GetMember, ListMembers, MemberApproved, MemberErased, MemberList, MemberRegistered, MemberRejected,
    MemberStatus, MemberView, ProfileUpdated, RedeemSignIn, Register, Registered, RejectMember, RequestSignIn,
    Role, RoleGranted, SignInRequested, UpdateProfile, VerifyEmail,
)
from shared.clock import utcnow
from shared.errors import Conflict, NotFound
from shared.outbox import UnitOfWork
from shared.service import HandlerContext, Service

svc = Service("registry", title="Registre des membres")
svc.produces(MemberRegistered, EmailVerificationRequested, EmailVerified, SignInRequested, MemberApproved,
             MemberRejected, ProfileUpdated, RoleGranted, MemberErased)


def view(m: Member) -> MemberView:
    return MemberView(member_id=m.id, public_id=m.public_id, full_name=m.full_name, email=m.email,
                      organisation=m.organisation, college=m.college, role=m.role, status=m.status,
                      rejection_reason=m.rejection_reason, registered_at=m.registered_at,
                      verified_at=m.verified_at, decided_at=m.decided_at)


async def _member(session: AsyncSession, member_id: str, *, lock: bool = False) -> Member:
    stmt = select(Member).where(Member.id == member_id)
    if lock:
        stmt = stmt.with_for_update()
    m = (await session.exec(stmt)).first()
    if m is None or m.status == MemberStatus.ERASED:
        raise NotFound("Membre inconnu.", field="member_id")
    return m


async def _by_email(session: AsyncSession, email: str) -> Member | None:
    return (await session.exec(select(Member).where(Member.email == rules.normalise_email(email)))).first()


def _issue_token(uow: UnitOfWork, member: Member, purpose: str, ttl: int) -> None:
    token = rules.new_token()
    expires = rules.token_expiry(utcnow(), ttl)
    uow.tx.add(EmailToken(token_hash=rules.hash_token(token), member_id=member.id, purpose=purpose,
                               expires_at=expires))
    data = (EmailVerificationRequested if purpose == rules.VERIFY_EMAIL else SignInRequested)
    uow.emit(data(member_id=member.id, email=member.email or "", full_name=member.full_name, token=token,
                  expires_at=expires), actor=member.id)


async def _use_token(session: AsyncSession, token: str, purpose: str) -> Member:
    stmt = select(EmailToken).where(EmailToken.token_hash == rules.hash_token(token)).with_for_update()
    row = (await session.exec(stmt)).first()
    if row is None:
        raise NotFound("Ce lien n'est pas valable. Vérifiez qu'il a été copié en entier.", field="token")
    rules.check_token_usable(purpose=row.purpose, expected=purpose, expires_at=row.expires_at,
                             used_at=row.used_at, now=utcnow())
    row.used_at = utcnow()
    session.add(row)
    return await _member(session, row.member_id)


def _registered_event(m: Member) -> MemberRegistered:
    return MemberRegistered(member_id=m.id, public_id=m.public_id, full_name=m.full_name, email=m.email or "",
                            organisation=m.organisation, college=m.college, role=m.role)


@svc.rpc("register")
async def register(req: Register, ctx: HandlerContext) -> Registered:
    """Register a member; a single-use verification link is mailed to them."""
    try:
        async with ctx.unit_of_work() as uow:
            if await _by_email(uow.tx, req.email) is not None:
                raise Conflict("Un compte existe déjà avec cette adresse électronique. "
                               "Utilisez « Se connecter » pour recevoir un lien.", field="email")
            m = Member(full_name=req.full_name, email=rules.normalise_email(req.email),
                       organisation=req.organisation, college=req.college, charter_accepted_at=utcnow())
            uow.tx.add(m)
            await uow.tx.flush()  # the token row references the member
            uow.actor = m.id
            uow.emit(_registered_event(m))
            _issue_token(uow, m, rules.VERIFY_EMAIL, svc.settings.verify_token_ttl)
    except IntegrityError as exc:  # a concurrent registration with the same address won the race
        if "email" not in str(exc.orig).lower() and "member" not in str(exc.orig).lower():
            raise
        raise Conflict("Un compte existe déjà avec cette adresse électronique.", field="email") from None
    return Registered(member_id=m.id, status=m.status)


@svc.rpc("verify-email")
async def verify_email(req: VerifyEmail, ctx: HandlerContext) -> MemberView:
    """Redeem an e-mail verification link: the member then awaits the secretariat's decision."""
    async with ctx.unit_of_work() as uow:
        m = await _use_token(uow.tx, req.token, rules.VERIFY_EMAIL)
        if m.status == MemberStatus.PENDING_VERIFICATION:
            m.status = MemberStatus.PENDING_APPROVAL
            m.verified_at = utcnow()
            uow.tx.add(m)
            uow.emit(EmailVerified(member_id=m.id), actor=m.id)
    return view(m)


@svc.rpc("request-sign-in")
async def request_sign_in(req: RequestSignIn, ctx: HandlerContext) -> Accepted:
    """Mail a one-time sign-in link (or a new verification link). The reply never tells whether the
    address is known."""
    async with ctx.unit_of_work() as uow:
        m = await _by_email(uow.tx, req.email)
        if m is None:
            return Accepted()
        if m.status == MemberStatus.PENDING_VERIFICATION:
            _issue_token(uow, m, rules.VERIFY_EMAIL, svc.settings.verify_token_ttl)
        elif rules.can_sign_in(m.status):
            _issue_token(uow, m, rules.SIGN_IN, svc.settings.sign_in_token_ttl)
    return Accepted()


@svc.rpc("redeem-sign-in")
async def redeem_sign_in(req: RedeemSignIn, ctx: HandlerContext) -> MemberView:
    """Redeem a one-time sign-in link; the web front then opens a session for the member."""
    async with ctx.unit_of_work() as uow:
        m = await _use_token(uow.tx, req.token, rules.SIGN_IN)
    return view(m)


@svc.rpc("get-member")
async def get_member(req: GetMember, ctx: HandlerContext) -> MemberView:
    """One member's current record (the web front calls it on each signed-in page)."""
    async with svc.db.read() as s:
        return view(await _member(s, req.member_id))


async def _require_secretariat(session: AsyncSession, actor_id: str) -> Member:
    actor = await session.get(Member, actor_id)
    rules.check_can_decide(actor.role if actor else None, actor.status if actor else None)
    assert actor is not None
    return actor


@svc.rpc("list-members")
async def list_members(req: ListMembers, ctx: HandlerContext) -> MemberList:
    """Members for the secretariat back-office, optionally filtered by status."""
    async with svc.db.read() as s:
        await _require_secretariat(s, req.actor_id)
        stmt = select(Member).where(Member.status != MemberStatus.ERASED).order_by(col(Member.registered_at))
        if req.status:
            stmt = stmt.where(Member.status == req.status)
        return MemberList(members=[view(m) for m in (await s.exec(stmt)).all()])


@svc.rpc("approve-member")
async def approve_member(req: ApproveMember, ctx: HandlerContext) -> MemberView:
    """Secretariat approves a verified registration."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        await _require_secretariat(uow.tx, req.actor_id)
        m = await _member(uow.tx, req.member_id, lock=True)
        rules.check_decidable(m.status)
        m.status, m.decided_at, m.decided_by = MemberStatus.APPROVED, utcnow(), req.actor_id
        uow.tx.add(m)
        uow.emit(MemberApproved(member_id=m.id, public_id=m.public_id, college=m.college))
    return view(m)


@svc.rpc("reject-member")
async def reject_member(req: RejectMember, ctx: HandlerContext) -> MemberView:
    """Secretariat rejects a verified registration, with a reason the person will read."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        await _require_secretariat(uow.tx, req.actor_id)
        m = await _member(uow.tx, req.member_id, lock=True)
        rules.check_decidable(m.status)
        m.status, m.decided_at, m.decided_by = MemberStatus.REJECTED, utcnow(), req.actor_id
        m.rejection_reason = req.reason
        uow.tx.add(m)
        uow.emit(MemberRejected(member_id=m.id, reason=req.reason))
    return view(m)


@svc.rpc("update-profile")
async def update_profile(req: UpdateProfile, ctx: HandlerContext) -> MemberView:
    """A member updates their own name and organisation."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        m = await _member(uow.tx, req.actor_id, lock=True)
        m.full_name, m.organisation = req.full_name, req.organisation
        uow.tx.add(m)
        uow.emit(ProfileUpdated(member_id=m.id, full_name=m.full_name, organisation=m.organisation))
    return view(m)


@svc.rpc("export")
async def export(req: ExportData, ctx: HandlerContext) -> Export:
    """GDPR access: everything the registry holds about the member."""
    async with svc.db.read() as s:
        m = await _member(s, req.actor_id)
        tokens = (await s.exec(select(EmailToken).where(EmailToken.member_id == m.id))).all()
    data: dict[str, Any] = {
        "member": m.model_dump(mode="json"),
        "email_links": [{"purpose": t.purpose, "created_at": t.created_at.isoformat(),
                         "expires_at": t.expires_at.isoformat(),
                         "used_at": t.used_at.isoformat() if t.used_at else None} for t in tokens],
    }
    return Export(data=data)


@svc.rpc("erase")
async def erase(req: EraseMember, ctx: HandlerContext) -> Accepted:
    """GDPR erasure: personal fields are removed, the pseudonymous id stays for the public record."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        m = await _member(uow.tx, req.actor_id, lock=True)
        for t in (await uow.tx.exec(select(EmailToken).where(EmailToken.member_id == m.id))).all():
            await uow.tx.delete(t)
        m.full_name, m.email, m.organisation, m.rejection_reason = "", None, "", None
        m.status, m.erased_at = MemberStatus.ERASED, utcnow()
        uow.tx.add(m)
        uow.emit(MemberErased(member_id=m.id, public_id=m.public_id))
    return Accepted()


async def create_secretariat(email: str, full_name: str) -> MemberView:
    """Create (or promote) a secretariat account; used by `forum-ouvert create-secretariat`."""
    async with svc.unit_of_work() as uow:
        m = await _by_email(uow.tx, email)
        if m is None:
            m = Member(full_name=full_name, email=rules.normalise_email(email), organisation="CESE",
                       college=None, role=Role.SECRETARIAT, status=MemberStatus.APPROVED,
                       charter_accepted_at=utcnow(), verified_at=utcnow(), decided_at=utcnow())
            uow.tx.add(m)
            uow.emit(_registered_event(m))
        elif m.role != Role.SECRETARIAT or m.status != MemberStatus.APPROVED:
            m.role, m.status = Role.SECRETARIAT, MemberStatus.APPROVED
            m.verified_at = m.verified_at or utcnow()
            uow.tx.add(m)
            uow.emit(RoleGranted(member_id=m.id, role=Role.SECRETARIAT))
    return view(m)
