"""A member's rights over their data: a copy of everything the registry holds about them, and
erasure. Erasure removes the personal fields but keeps the pseudonymous public id, so the public
record (votes, minutes) stays whole without naming anyone."""
from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from services.registry.members import find_member
from services.registry.sign_in import forget_sessions
from services.registry.models import EmailToken, Member, WebSession
from shared.clock import utcnow
from shared.contracts.registry import (
    Accepted, EraseMember, Export, ExportData, MemberErased, MembersChanged, MemberStatus,
)
from shared.personal_data import commands, fields, iso, plain
from shared.service import HandlerContext


async def export(req: ExportData, ctx: HandlerContext) -> Export:
    """GDPR access: everything the registry holds about the member: their account, the links mailed to
    them, the browsers signed in as them, and the registrations they decided as secretariat."""
    async with ctx.db.read() as tx:
        m = await find_member(tx, req.actor_id)
        tokens = (await tx.exec(select(EmailToken).where(EmailToken.member_id == m.id)
                                .order_by(col(EmailToken.created_at)))).all()
        browsers = (await tx.exec(select(WebSession).where(WebSession.member_id == m.id)
                                  .order_by(col(WebSession.created_at)))).all()
        # Whom they decided on is that person's data: the decision and its date only.
        decided = (await tx.exec(select(Member.status, Member.decided_at).where(Member.decided_by == m.id)
                                 .order_by(col(Member.decided_at)))).all()
        done = await commands(tx, m.id)
    data: dict[str, Any] = {
        "member": {name: plain(value) for name, value in m.model_dump().items()},
        "email_links": [fields(t, "purpose", "created_at", "expires_at", "used_at", "superseded_at") for t in tokens],
        "signed_in_browsers": [fields(b, "created_at", "ended_at") for b in browsers],
        "registrations_decided": [{"status": plain(status), "decided_at": iso(at)} for status, at in decided],
        "commands": done,
    }
    return Export(data=data)


async def erase(req: EraseMember, ctx: HandlerContext) -> Accepted:
    """GDPR erasure: personal fields are removed, the pseudonymous id stays for the public record."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        m = await find_member(uow.tx, req.actor_id, lock=True)
        for t in (await uow.tx.exec(select(EmailToken).where(EmailToken.member_id == m.id))).all():
            await uow.tx.delete(t)
        await forget_sessions(uow.tx, m.id)  # signed out everywhere, in the same transaction
        m.full_name, m.email, m.organisation, m.rejection_reason = "", None, "", None
        m.status, m.erased_at = MemberStatus.ERASED, utcnow()
        uow.tx.add(m)
        uow.emit(MemberErased(member_id=m.id, public_id=m.public_id))
    await ctx.broadcast(MembersChanged(member_ids=[m.id]))
    return Accepted()
