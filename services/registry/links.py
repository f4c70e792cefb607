"""The single-use links mailed to members (address verification, sign-in). Only a token's SHA-256 is
stored, so a copy of the database holds no working link; a link works once, before it expires."""
from __future__ import annotations

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry import rules
from services.registry.models import EmailToken, Member
from shared.clock import utcnow
from shared.contracts.registry import EmailVerificationRequested, SignInRequested
from shared.errors import NotFound
from shared.outbox import UnitOfWork


def issue_link(uow: UnitOfWork, member: Member, purpose: str, ttl: int) -> None:
    """Store a new token for `member` and emit the event that has notifications mail it."""
    token = rules.new_token()
    expires = rules.token_expiry(utcnow(), ttl)
    uow.tx.add(EmailToken(token_hash=rules.hash_token(token), member_id=member.id, purpose=purpose,
                          expires_at=expires))
    requested = EmailVerificationRequested if purpose == rules.VERIFY_EMAIL else SignInRequested
    uow.emit(requested(member_id=member.id, email=member.email or "", full_name=member.full_name, token=token,
                       expires_at=expires), actor=member.id)


async def use_link(tx: AsyncSession, token: str, purpose: str) -> str:
    """Spend a token on `purpose`; returns the id of the member it was issued to."""
    stmt = select(EmailToken).where(EmailToken.token_hash == rules.hash_token(token)).with_for_update()
    row = (await tx.exec(stmt)).first()
    if row is None:
        raise NotFound("Ce lien n'est pas valable. Vérifiez qu'il a été copié en entier.", field="token")
    rules.check_token_usable(purpose=row.purpose, expected=purpose, expires_at=row.expires_at,
                             used_at=row.used_at, now=utcnow())
    row.used_at = utcnow()
    tx.add(row)
    return row.member_id
