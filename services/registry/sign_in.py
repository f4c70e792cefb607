"""Signing in without a password: a member asks for a link by e-mail and redeems it once."""
from __future__ import annotations

from services.registry import rules
from services.registry.links import issue_link, use_link
from services.registry.members import find_member, member_by_email, view
from shared.contracts.registry import Accepted, MemberStatus, MemberView, RedeemSignIn, RequestSignIn
from shared.service import HandlerContext


async def request_sign_in(req: RequestSignIn, ctx: HandlerContext) -> Accepted:
    """Mail a one-time sign-in link (or a new verification link). The reply never tells whether the
    address is known."""
    async with ctx.unit_of_work() as uow:
        m = await member_by_email(uow.tx, req.email)
        if m is None:
            return Accepted()
        if m.status == MemberStatus.PENDING_VERIFICATION:
            issue_link(uow, m, rules.VERIFY_EMAIL, ctx.settings.verify_token_ttl)
        elif rules.can_sign_in(m.status):
            issue_link(uow, m, rules.SIGN_IN, ctx.settings.sign_in_token_ttl)
    return Accepted()


async def redeem_sign_in(req: RedeemSignIn, ctx: HandlerContext) -> MemberView:
    """Redeem a one-time sign-in link; the web front then signs the member in."""
    async with ctx.unit_of_work() as uow:
        m = await find_member(uow.tx, await use_link(uow.tx, req.token, rules.SIGN_IN))
    return view(m)
