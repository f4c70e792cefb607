"""Notifications: keeps who can be mailed, turns events into e-mails, sends them at most once."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlmodel import col, select, update

from services.notifications import mail
from services.notifications.models import Delivery, DeliveryStatus, Recipient
from shared.contracts.common import Request
from shared.contracts.notifications import DeliveryCounts, MemberNotifications
from shared.contracts.registry import (
    EmailVerificationRequested, ExportData, MemberApproved, MemberErased, MemberRegistered, MemberRejected,
    ProfileUpdated, SignInRequested,
)
from shared.contracts.envelope import Envelope
from shared.clock import utcnow
from shared.errors import RetryLater
from shared.logging import get_logger
from shared.outbox import UnitOfWork
from shared.service import HandlerContext, Service

svc = Service("notifications", title="Notifications")
log = get_logger(__name__)
RETRY_DELAYS = [5, 30, 120, 600, 1800]  # seconds between SMTP attempts after a temporary failure
_wake = asyncio.Event()


def _link(path: str) -> str:
    return svc.settings.public_url.rstrip("/") + path


async def queue_mail(uow: UnitOfWork, event_id: str, member_id: str, kind: str, *, template: str | None = None,
                     subject: str | None = None, ics: str | None = None, contact: tuple[str, str] | None = None,
                     **ctx: Any) -> None:
    """Render and store one e-mail in the consumer's transaction; the sender loop sends it once that
    transaction commits. `contact` (address, name) when the event carries it."""
    if contact is None:
        r = await uow.tx.get(Recipient, member_id)
        if r is None:
            # The registration event may not have been applied yet (different consumer): try again shortly.
            raise RetryLater(f"no recipient yet for member {member_id}")
        contact = (r.email, r.full_name)
    to, name = contact
    subject, text, html = mail.render(template or kind, subject, name=name, **ctx)
    uow.tx.add(Delivery(event_id=event_id, member_id=member_id, kind=kind, to_addr=to,
                             subject=subject, text_body=text, html_body=html, ics=ics))
    uow.on_commit(_wake.set)


async def _queue(uow: UnitOfWork, event: Envelope[Any], member_id: str, kind: str, **ctx: Any) -> None:
    await queue_mail(uow, str(event.event_id), member_id, kind, **ctx)


# ---------------------------------------------------------------- projection of contacts
@svc.consume(MemberRegistered)
async def on_registered(event: Envelope[MemberRegistered], uow: UnitOfWork) -> None:
    """Remember how to reach a new member."""
    d = event.data
    existing = await uow.tx.get(Recipient, d.member_id)
    if existing is None:
        uow.tx.add(Recipient(member_id=d.member_id, email=d.email, full_name=d.full_name))


@svc.consume(ProfileUpdated)
async def on_profile_updated(event: Envelope[ProfileUpdated], uow: UnitOfWork) -> None:
    """Keep the member's name current in greetings."""
    r = await uow.tx.get(Recipient, event.data.member_id)
    if r is None:
        raise RetryLater("profile update before registration")
    r.full_name, r.updated_at = event.data.full_name, utcnow()
    uow.tx.add(r)


@svc.consume(MemberErased)
async def on_erased(event: Envelope[MemberErased], uow: UnitOfWork) -> None:
    """Forget the member's address, cancel the e-mails not sent yet, and redact every e-mail kept for them."""
    r = await uow.tx.get(Recipient, event.data.member_id)
    if r is not None:
        await uow.tx.delete(r)
    mine = col(Delivery.member_id) == event.data.member_id
    await uow.tx.exec(update(Delivery).where(mine, col(Delivery.status) == DeliveryStatus.PENDING)  # type: ignore[call-overload]
                           .values(status=DeliveryStatus.CANCELLED))
    await uow.tx.exec(update(Delivery).where(mine)  # type: ignore[call-overload]
                           .values(to_addr="", text_body="", html_body="", subject="(effacé)"))


# ---------------------------------------------------------------- e-mails
@svc.consume(EmailVerificationRequested)
async def on_verification_requested(event: Envelope[EmailVerificationRequested], uow: UnitOfWork) -> None:
    """Mail the e-mail verification link."""
    d = event.data
    await _queue(uow, event, d.member_id, "verify_email", contact=(d.email, d.full_name),
                 link=_link(f"/inscription/verifier?token={d.token}"), expires=mail.paris_time(d.expires_at))


@svc.consume(SignInRequested)
async def on_sign_in_requested(event: Envelope[SignInRequested], uow: UnitOfWork) -> None:
    """Mail the one-time sign-in link."""
    d = event.data
    await _queue(uow, event, d.member_id, "sign_in", contact=(d.email, d.full_name),
                 link=_link(f"/connexion/lien?token={d.token}"), expires=mail.paris_time(d.expires_at))


@svc.consume(MemberApproved)
async def on_approved(event: Envelope[MemberApproved], uow: UnitOfWork) -> None:
    """Tell the member the secretariat approved them."""
    await _queue(uow, event, event.data.member_id, "approved", link=_link("/espace"))


@svc.consume(MemberRejected)
async def on_rejected(event: Envelope[MemberRejected], uow: UnitOfWork) -> None:
    """Tell the member the secretariat rejected them, and why."""
    await _queue(uow, event, event.data.member_id, "rejected", reason=event.data.reason)


# ---------------------------------------------------------------- sending
async def send_due(limit: int = 50) -> int:
    """Send the e-mails that are due, over one SMTP connection; returns how many were attempted."""
    now = utcnow()
    async with svc.db.transaction() as s:
        stmt = (select(Delivery).where(Delivery.status == DeliveryStatus.PENDING, Delivery.next_attempt_at <= now)
                .order_by(col(Delivery.created_at)).limit(limit))
        if not svc.db.sqlite:
            stmt = stmt.with_for_update(skip_locked=True)
        due = (await s.exec(stmt)).all()
        for d in due:  # claim: from now on a crash leaves them UNCERTAIN, never re-sent
            d.status, d.attempts = DeliveryStatus.SENDING, d.attempts + 1
            s.add(d)
    if not due:
        return 0
    outcomes: list[tuple[Delivery, str, str | None]] = []
    try:
        async with mail.connection(svc.settings) as smtp:
            for d in due:
                outcomes.append(await _send_one(smtp, d))
    except Exception as exc:  # noqa: BLE001 - could not connect: nothing left for the rest of the batch
        sent = {d.id for d, _, _ in outcomes}
        outcomes += [(d, *_temporary(d, exc)) for d in due if d.id not in sent]
    await _record(outcomes)
    return len(due)


def _temporary(d: Delivery, exc: Exception) -> tuple[str, str]:
    """A temporary failure: retry later, or give up after the last delay."""
    error = f"{type(exc).__name__}: {exc}"
    return (DeliveryStatus.FAILED if d.attempts > len(RETRY_DELAYS) else DeliveryStatus.PENDING), error


async def _send_one(smtp: Any, d: Delivery) -> tuple[Delivery, str, str | None]:
    msg = mail.compose(settings=svc.settings, to=d.to_addr, subject=d.subject, text=d.text_body,
                       html=d.html_body, message_key=d.id, ics=d.ics)
    try:
        await mail.send_on(smtp, msg)
    except mail.PermanentFailure as exc:
        return d, DeliveryStatus.FAILED, str(exc)
    except Exception as exc:  # noqa: BLE001 - 4xx or dropped connection: the message did not leave
        return (d, *_temporary(d, exc))
    return d, DeliveryStatus.SENT, None


async def _record(outcomes: list[tuple[Delivery, str, str | None]]) -> None:
    async with svc.db.transaction() as s:
        for d, status, error in outcomes:
            row = await s.get(Delivery, d.id)
            assert row is not None
            row.status, row.last_error = status, (error or "")[:1000] or None
            if status == DeliveryStatus.SENT:
                row.sent_at, row.text_body, row.html_body, row.ics = utcnow(), "", "", None
            elif status == DeliveryStatus.PENDING:
                row.next_attempt_at = utcnow() + timedelta(seconds=RETRY_DELAYS[d.attempts - 1])
            s.add(row)
    for d, status, error in outcomes:
        if error:
            log.warning("e-mail not sent", delivery=d.id, kind=d.kind, status=status, error=error)
        else:
            log.debug("e-mail sent", delivery=d.id, kind=d.kind)


@svc.background
async def mail_sender() -> None:
    """Sends due e-mails; woken by every commit, sweeps every second for retries."""
    async with svc.db.transaction() as s:
        # Whatever was being handed to SMTP when the last process died might have left: never resend it.
        n = (await s.exec(update(Delivery).where(col(Delivery.status) == DeliveryStatus.SENDING)  # type: ignore[call-overload]
                          .values(status=DeliveryStatus.UNCERTAIN))).rowcount
    if n:
        log.warning("e-mails interrupted mid-send marked uncertain (not re-sent)", count=n)
    while True:
        try:
            await asyncio.wait_for(_wake.wait(), timeout=1.0)
        except TimeoutError:
            pass
        _wake.clear()
        try:
            while await send_due() == 50:
                pass
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - keep the loop alive; rows stay pending
            log.exception("mail sender sweep failed")
            await asyncio.sleep(1)


# ---------------------------------------------------------------- queries
async def _counts() -> dict[str, Any]:
    from sqlalchemy import func

    async with svc.db.read() as s:
        rows = (await s.exec(select(Delivery.status, func.count()).group_by(Delivery.status))).all()  # type: ignore[call-overload]
    return {"deliveries": {status: n for status, n in rows}}

svc.health_details = _counts


@svc.rpc("delivery-counts")
async def delivery_counts(req: Request, ctx: HandlerContext) -> DeliveryCounts:
    """How many e-mails are in each state (monitoring, benchmarks)."""
    return DeliveryCounts(by_status=(await _counts())["deliveries"])


@svc.rpc("export")
async def export(req: ExportData, ctx: HandlerContext) -> MemberNotifications:
    """GDPR access: the contact details and the e-mails sent to the member."""
    async with svc.db.read() as s:
        r = await s.get(Recipient, req.actor_id)
        ds = (await s.exec(select(Delivery).where(Delivery.member_id == req.actor_id)
                           .order_by(col(Delivery.created_at)))).all()
    return MemberNotifications(
        contact={"email": r.email, "full_name": r.full_name} if r else None,
        emails=[{"kind": d.kind, "subject": d.subject, "to": d.to_addr, "status": d.status,
                 "created_at": d.created_at.isoformat(), "sent_at": d.sent_at.isoformat() if d.sent_at else None}
                for d in ds])
