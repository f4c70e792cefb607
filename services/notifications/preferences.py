"""Members' choices of the notices they receive (« Mon compte »). Only what a member may stop is
listed: verification, sign-in links and the answer to their registration always leave."""
from __future__ import annotations

from sqlmodel import col, delete, select

from services.notifications.models import MemberPreference
from shared.contracts.notifications import (
    GetMemberPreferences, MemberNoticeKind, MemberPreferences, SetMemberPreferences,
)
from shared.service import HandlerContext


async def get(req: GetMemberPreferences, ctx: HandlerContext) -> MemberPreferences:
    """What the member receives (everything, unless they turned it off)."""
    async with ctx.db.read() as tx:
        off = set((await tx.exec(select(MemberPreference.kind).where(MemberPreference.member_id == req.actor_id))).all())
    return MemberPreferences(enabled={k: k.value not in off for k in MemberNoticeKind})


async def set_preferences(req: SetMemberPreferences, ctx: HandlerContext) -> MemberPreferences:
    """Turn kinds of notices on or off; a kind not named keeps its setting."""
    async with ctx.unit_of_work(req.actor_id) as uow:
        for kind, enabled in req.enabled.items():
            await uow.tx.exec(delete(MemberPreference).where(  # type: ignore[call-overload]
                col(MemberPreference.member_id) == req.actor_id, col(MemberPreference.kind) == kind.value))
            if not enabled:
                uow.tx.add(MemberPreference(member_id=req.actor_id, kind=kind.value))
    return await get(GetMemberPreferences(actor_id=req.actor_id), ctx)
