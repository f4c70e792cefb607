"""The single-use links mailed to members (address verification, sign-in). Only a token's SHA-256 is
stored, so a copy of the database holds no working link; a link works once, before it expires, and only
while it is the latest one mailed for its purpose.

At most `link_mail_limit` links of one purpose are mailed to an address per hour: whoever floods
someone's address with requests gets no more e-mails sent, and the link already in that person's inbox
keeps working (a newer link would have made it useless)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry import rules
from services.registry.models import EmailToken, Member
from shared.clock import utcnow
from shared.contracts.envelope import EventData
from shared.contracts.registry import EmailVerificationRequested, SignInRequested
from shared.errors import NotFound
from shared.logging import get_logger
from shared.outbox import UnitOfWork
from shared.settings import Settings

log = get_logger(__name__)
LIMIT_WINDOW = timedelta(hours=1)


async def mail_link(uow: UnitOfWork, member: Member, purpose: str, settings: Settings, *,
                    event: type[EventData] | None = None, new_member: bool = False) -> bool:
    """Store a new token for `member`, make their older unused ones of the same purpose useless, and emit
    the event that has notifications mail it (`event`, by default the purpose's own). False, and nothing
    written, when the address already got its hour's share of links. The caller holds the member's row
    lock (or SQLite's write lock), so concurrent requests cannot both pass the count. `new_member`: created
    in this transaction, so no link of theirs to count or make useless (two queries fewer per registration)."""
    now = utcnow()
    if not new_member:
        sent = (await uow.tx.exec(select(func.count()).select_from(EmailToken).where(  # type: ignore[call-overload]
            EmailToken.member_id == member.id, EmailToken.purpose == purpose,
            col(EmailToken.created_at) > now - LIMIT_WINDOW))).one()
        if sent >= settings.link_mail_limit:
            log.info("link not mailed: hourly limit of the address reached", member=member.id, purpose=purpose)
            return False
        await uow.tx.exec(update(EmailToken).where(  # type: ignore[call-overload]
            col(EmailToken.member_id) == member.id, col(EmailToken.purpose) == purpose,
            col(EmailToken.used_at).is_(None), col(EmailToken.superseded_at).is_(None),
            col(EmailToken.expires_at) > now).values(superseded_at=now))
    token = rules.new_token()
    ttl = settings.verify_token_ttl if purpose == rules.VERIFY_EMAIL else settings.sign_in_token_ttl
    expires = rules.token_expiry(now, ttl)
    uow.tx.add(EmailToken(token_hash=rules.hash_token(token), member_id=member.id, purpose=purpose,
                          created_at=now, expires_at=expires))
    requested = event or (EmailVerificationRequested if purpose == rules.VERIFY_EMAIL else SignInRequested)
    uow.emit(requested(member_id=member.id, email=member.email or "",  # type: ignore[call-arg]
                       full_name=member.full_name, token=token, expires_at=expires), actor=member.id)
    return True


async def check_link(tx: AsyncSession, token: str, purpose: str, *, lock: bool = False) -> EmailToken:
    """The token's row if it can be spent on `purpose` now; the reason it cannot, as a typed error, else."""
    stmt = select(EmailToken).where(EmailToken.token_hash == rules.hash_token(token))
    row = (await tx.exec(stmt.with_for_update() if lock else stmt)).first()
    if row is None:
        raise NotFound("Ce lien n'est pas valable. Vérifiez qu'il a été copié en entier.", field="token")
    rules.check_token_usable(purpose=row.purpose, expected=purpose, expires_at=row.expires_at,
                             used_at=row.used_at, superseded_at=row.superseded_at, now=utcnow())
    return row


async def use_link(tx: AsyncSession, token: str, purpose: str) -> str:
    """Spend a token on `purpose`; returns the id of the member it was issued to."""
    row = await check_link(tx, token, purpose, lock=True)
    row.used_at = utcnow()
    tx.add(row)
    return row.member_id
