"""A member's rights over their data: a copy of everything the registry holds about them, and
erasure. Erasure removes the personal fields but keeps the pseudonymous public id, so the public
record (votes, minutes) stays whole without naming anyone."""
from __future__ import annotations

from typing import Any

from sqlmodel import select

from services.registry.members import find_member
from services.registry.models import EmailToken
from shared.clock import utcnow
from shared.contracts.registry import Accepted, EraseMember, Export, ExportData, MemberErased, MemberStatus
from shared.service import HandlerContext


async def export(req: ExportData, ctx: HandlerContext) -> Export:
    """GDPR access: everything the registry holds about the member."""
    async with ctx.db.read() as tx:
        m = await find_member(tx, req.actor_id)
        tokens = (await tx.exec(select(EmailToken).where(EmailToken.member_id == m.id))).all()
    data: dict[str, Any] = {
        "member": m.model_dump(mode="json"),
        "email_links": [{"purpose": t.purpose, "created_at": t.created_at.isoformat(),
                         "expires_at": t.expires_at.isoformat(),
                         "used_at": t.used_at.isoformat() if t.used_at else None} for t in tokens],
    }
    return Export(data=data)


async def erase(req: EraseMember, ctx: HandlerContext) -> Accepted:
    """GDPR erasure: personal fields are removed, the pseudonymous id stays for the public record."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        m = await find_member(uow.tx, req.actor_id, lock=True)
        for t in (await uow.tx.exec(select(EmailToken).where(EmailToken.member_id == m.id))).all():
            await uow.tx.delete(t)
        m.full_name, m.email, m.organisation, m.rejection_reason = "", None, "", None
        m.status, m.erased_at = MemberStatus.ERASED, utcnow()
        uow.tx.add(m)
        uow.emit(MemberErased(member_id=m.id, public_id=m.public_id))
    return Accepted()
