"""Signing in without a password: a member asks for a link by e-mail and redeems it once, which opens a
session for that browser. The session's id is kept in the browser's signed cookie and its SHA-256 here;
every signed-in page checks it, so ending it (« Se déconnecter », « Se déconnecter partout », erasure)
signs out every copy of the cookie at once. Confirming one's address (the link mailed at registration)
signs in the same way."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import col, delete, update
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry import rules
from services.registry.links import check_link, mail_link, use_link
from services.registry.members import find_member, member_by_email, verify_address, view
from services.registry.models import Member, WebSession
from shared.clock import utcnow
from shared.contracts.registry import (
    Accepted, CheckEmailLink, CheckSession, CheckSignInLink, ConfirmEmail, EndAllSessions, EndSession, MembersChanged,
    MemberStatus, MemberView, RedeemSignIn, RequestSignIn, SignedIn,
)
from shared.desk import Grouped, Pending
from shared.errors import Forbidden, NotFound
from shared.service import HandlerContext
from shared.settings import Settings

SESSION_ENDED = "Cette session a pris fin : connectez-vous à nouveau."


async def request_sign_in(req: RequestSignIn, ctx: HandlerContext) -> Accepted:
    """Mail a one-time sign-in link (or a new verification link). The reply never tells whether the
    address is known, nor whether the address's hourly share of links was already used."""
    async with ctx.unit_of_work() as uow:
        m = await member_by_email(uow.tx, req.email, lock=True)
        if m is None:
            return Accepted()
        if m.status == MemberStatus.PENDING_VERIFICATION:
            await mail_link(uow, m, rules.VERIFY_EMAIL, ctx.settings)
        elif rules.can_sign_in(m.status):
            await mail_link(uow, m, rules.SIGN_IN, ctx.settings)
    return Accepted()


async def redeem_sign_in(req: RedeemSignIn, ctx: HandlerContext) -> SignedIn:
    """Redeem a one-time sign-in link: the link is spent and a session opened for the browser, together."""
    async with ctx.unit_of_work() as uow:
        m = await find_member(uow.tx, await use_link(uow.tx, req.token, rules.SIGN_IN))
        session = await open_session(uow.tx, m, ctx.settings)
    return SignedIn(member=view(m), session=session)


async def open_session(tx: AsyncSession, m: Member, settings: Settings) -> str:
    """Open a session for `m` in the caller's transaction (the one that spends the link); its id."""
    if not rules.can_sign_in(m.status):
        raise Forbidden("Ce compte ne peut pas se connecter.")
    session = rules.new_session_id()
    now = utcnow()
    # The member's ended and expired sessions are of no use to anyone: forget them.
    await tx.exec(delete(WebSession).where(  # type: ignore[call-overload]
        col(WebSession.member_id) == m.id,
        col(WebSession.ended_at).is_not(None)
        | (col(WebSession.created_at) <= now - timedelta(seconds=settings.session_max_age))))
    tx.add(WebSession(id_hash=rules.hash_token(session), member_id=m.id, created_at=now))
    return session


# ---------------------------------------------------------------- the address-verification link signs in
async def check_email_link(req: CheckEmailLink, ctx: HandlerContext) -> Accepted:
    """Whether a verification link is still good (nothing written: opening the link spends nothing)."""
    return await _link_still_good(ctx, req.token, rules.VERIFY_EMAIL)


async def check_sign_in_link(req: CheckSignInLink, ctx: HandlerContext) -> Accepted:
    """Whether a sign-in link is still good, for the page it opens (nothing written)."""
    return await _link_still_good(ctx, req.token, rules.SIGN_IN)


async def _link_still_good(ctx: HandlerContext, token: str, purpose: str) -> Accepted:
    async with ctx.db.read() as tx:
        await find_member(tx, (await check_link(tx, token, purpose)).member_id)
    return Accepted()


async def confirm_email(req: ConfirmEmail, ctx: HandlerContext) -> SignedIn:
    """Redeem a verification link and sign the browser in, in one transaction: the link is spent once,
    so a second use (or a replay) neither confirms nor signs in again."""
    async with ctx.unit_of_work() as uow:
        m = await verify_address(uow, req.token)
        session = await open_session(uow.tx, m, ctx.settings)
    await ctx.broadcast(MembersChanged(member_ids=[m.id]))
    return SignedIn(member=view(m), session=session)


async def _check_group(_: str, group: list[Pending[CheckSession, MemberView]]) -> None:
    asked = [(rules.hash_token(p.req.session), p) for p in group]
    async with group[0].ctx.db.read() as tx:  # one query, on the connection: columns, no ORM objects
        found = {r.session_id_hash: r for r in await (await tx.connection()).execute(
            _SESSIONS_AND_MEMBERS, {"id_hashes": sorted({h for h, _ in asked})})}
    now = utcnow()
    for id_hash, p in asked:
        row = found.get(id_hash)
        if (row is None or row.id != p.req.member_id
                or not rules.session_live(created_at=row.session_created_at, ended_at=row.session_ended_at,
                                          max_age=p.ctx.settings.session_max_age, now=now)
                or not rules.can_sign_in(row.status)):
            p.refuse(NotFound(SESSION_ENDED, field="session"))
        else:
            p.settle(view(row))  # type: ignore[arg-type] # a row with the member's columns


SESSION_CHECKS: Grouped[CheckSession, MemberView] = Grouped(_check_group, group=200)
"""Session checks arriving together, up to 200 answered by one query."""


@SESSION_CHECKS
async def check_session(req: CheckSession, ctx: HandlerContext) -> MemberView:
    """The member behind a signed-in browser, fresh (status and role may have changed), while its session
    is live; NotFound once it ended, expired, or the account can no longer sign in. The web front calls
    it on every page of a signed-in visitor, instead of reading the member alone: when many ask at once
    (an RSVP rush), the checks that arrived while one query ran are answered by the next (`shared.desk`)."""
    return await SESSION_CHECKS.submit(ctx, "", req)


# Built once, as columns rather than ORM objects (no identity map to fill for a read that returns at once).
_sessions, _members = WebSession.__table__, Member.__table__  # type: ignore[attr-defined]
_SESSIONS_AND_MEMBERS = (
    sa.select(*_members.columns, _sessions.c.id_hash.label("session_id_hash"),
              _sessions.c.created_at.label("session_created_at"), _sessions.c.ended_at.label("session_ended_at"))
    .join_from(_sessions, _members, _members.c.id == _sessions.c.member_id)
    .where(_sessions.c.id_hash.in_(sa.bindparam("id_hashes", expanding=True))))


async def end_session(req: EndSession, ctx: HandlerContext) -> Accepted:
    """« Se déconnecter »: this browser's session ends. Ending an ended or unknown session is no error."""
    async with ctx.unit_of_work(actor=req.member_id) as uow:
        await uow.tx.exec(update(WebSession).where(  # type: ignore[call-overload]
            col(WebSession.id_hash) == rules.hash_token(req.session), col(WebSession.member_id) == req.member_id,
            col(WebSession.ended_at).is_(None)).values(ended_at=utcnow()))
    await ctx.broadcast(MembersChanged(member_ids=[req.member_id]))
    return Accepted()


async def end_all_sessions(req: EndAllSessions, ctx: HandlerContext) -> Accepted:
    """« Se déconnecter partout »: every session of the member ends, on every browser."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        m = await find_member(uow.tx, req.actor_id, lock=True)
        await end_sessions(uow.tx, m.id)
    await ctx.broadcast(MembersChanged(member_ids=[m.id]))
    return Accepted()


async def end_sessions(tx: AsyncSession, member_id: str) -> None:
    """End every live session of the member, in the caller's transaction (sign-out everywhere, erasure,
    any change that takes away the right to sign in)."""
    await tx.exec(update(WebSession).where(  # type: ignore[call-overload]
        col(WebSession.member_id) == member_id, col(WebSession.ended_at).is_(None)).values(ended_at=utcnow()))


async def forget_sessions(tx: AsyncSession, member_id: str) -> None:
    """Delete the member's sessions, ended or not (erasure: even the times of sign-in go)."""
    await tx.exec(delete(WebSession).where(col(WebSession.member_id) == member_id))  # type: ignore[call-overload]

