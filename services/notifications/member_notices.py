"""E-mails about a member's account, from registry events: the address verification link, the
sign-in link (also sent, with a word of its own, to someone who registers again with their address), and
the secretariat's approval or rejection."""
from __future__ import annotations

from services.notifications.outgoing import queue_mail
from shared.clock import paris_datetime
from shared.contracts.envelope import Envelope
from shared.contracts.registry import (
    EmailVerificationRequested, MemberApproved, MemberRejected, RegistrationRepeated, SignInRequested,
)
from shared.outbox import UnitOfWork


def _link(uow: UnitOfWork, path: str) -> str:
    return uow.settings.public_url.rstrip("/") + path


async def on_verification_requested(event: Envelope[EmailVerificationRequested], uow: UnitOfWork) -> None:
    """Mail the e-mail verification link."""
    d = event.data
    await queue_mail(uow, str(event.event_id), d.member_id, "verify_email", contact=(d.email, d.full_name),
                     link=_link(uow, f"/inscription/verifier?token={d.token}"), expires=paris_datetime(d.expires_at))


async def on_sign_in_requested(event: Envelope[SignInRequested], uow: UnitOfWork) -> None:
    """Mail the one-time sign-in link."""
    d = event.data
    await queue_mail(uow, str(event.event_id), d.member_id, "sign_in", contact=(d.email, d.full_name),
                     link=_link(uow, f"/connexion/lien?token={d.token}"), expires=paris_datetime(d.expires_at))


async def on_registration_repeated(event: Envelope[RegistrationRepeated], uow: UnitOfWork) -> None:
    """Someone registered with the address of an existing account: tell its owner, with a sign-in link."""
    d = event.data
    await queue_mail(uow, str(event.event_id), d.member_id, "already_registered", contact=(d.email, d.full_name),
                     link=_link(uow, f"/connexion/lien?token={d.token}"), expires=paris_datetime(d.expires_at))


async def on_approved(event: Envelope[MemberApproved], uow: UnitOfWork) -> None:
    """Tell the member the secretariat approved them."""
    await queue_mail(uow, str(event.event_id), event.data.member_id, "approved", link=_link(uow, "/espace"))


async def on_rejected(event: Envelope[MemberRejected], uow: UnitOfWork) -> None:
    """Tell the member the secretariat rejected them, and why."""
    await queue_mail(uow, str(event.event_id), event.data.member_id, "rejected", reason=event.data.reason)
