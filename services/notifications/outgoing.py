"""Outgoing e-mail, at most once. A consumer queues an e-mail in its own transaction (so an event
yields its e-mail exactly when it is handled); the mail sender then claims the due ones, marks them
SENDING *before* talking to SMTP, sends them over one connection and records each outcome. A process
that dies mid-send leaves its claims in SENDING: at the next start they become UNCERTAIN and are never
sent again, because a duplicate e-mail is worse than a missing one that the member can ask for again."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select, update

from services.notifications import mail
from services.notifications.models import Delivery, DeliveryStatus, Recipient
from shared.clock import utcnow
from shared.contracts.notifications import DeliveryCounts, GetDeliveryCounts
from shared.errors import RetryLater
from shared.logging import get_logger
from shared.outbox import UnitOfWork
from shared.service import HandlerContext, Service

log = get_logger(__name__)
MAIL_SENDER = "mail-sender"
BATCH = 50  # e-mails claimed and sent over one SMTP connection
RETRY_DELAYS = [5, 30, 120, 600, 1800]  # seconds between SMTP attempts after a temporary failure


async def queue_mail(uow: UnitOfWork, event_id: str, member_id: str, kind: str, *, template: str | None = None,
                     subject: str | None = None, ics: str | None = None, contact: tuple[str, str] | None = None,
                     **ctx: Any) -> None:
    """Render and store one e-mail in the consumer's transaction; the mail sender sends it once that
    transaction commits. `contact` (address, name) when the event carries it. The same event never
    queues two e-mails for one member (unique key), so a redelivered event mails nobody twice."""
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
    uow.wake_after_commit(MAIL_SENDER)


# ---------------------------------------------------------------- the mail sender
async def mark_interrupted_uncertain(service: Service) -> None:
    """At start, before the mail sender runs: what was being handed to SMTP when the last process
    died might have left, so it is marked UNCERTAIN and never sent again."""
    async with service.db.transaction() as tx:
        n = (await tx.exec(update(Delivery).where(col(Delivery.status) == DeliveryStatus.SENDING)  # type: ignore[call-overload]
                           .values(status=DeliveryStatus.UNCERTAIN))).rowcount
    if n:
        log.warning("e-mails interrupted mid-send marked uncertain (not re-sent)", count=n)


async def send_due(service: Service) -> int:
    """One step of the mail sender: send the e-mails that are due over one SMTP connection; returns
    how many were attempted."""
    now = utcnow()
    async with service.db.transaction() as tx:
        stmt = (select(Delivery).where(Delivery.status == DeliveryStatus.PENDING, Delivery.next_attempt_at <= now)
                .order_by(col(Delivery.created_at)).limit(BATCH))
        if not service.db.sqlite:
            stmt = stmt.with_for_update(skip_locked=True)  # replicas claim different e-mails
        due = (await tx.exec(stmt)).all()
        for d in due:  # claim: from now on a crash leaves them UNCERTAIN, never re-sent
            d.status, d.attempts = DeliveryStatus.SENDING, d.attempts + 1
            tx.add(d)
    if not due:
        return 0
    outcomes: list[tuple[Delivery, str, str | None]] = []
    try:
        async with mail.connection(service.settings) as smtp:
            for d in due:
                outcomes.append(await _send_one(service, smtp, d))
    except Exception as exc:  # noqa: BLE001 - could not connect: nothing left for the rest of the batch
        sent = {d.id for d, _, _ in outcomes}
        outcomes += [(d, *_temporary(d, exc)) for d in due if d.id not in sent]
    await _record(service, outcomes)
    return len(due)


def _temporary(d: Delivery, exc: Exception) -> tuple[str, str]:
    """A temporary failure: retry later, or give up after the last delay."""
    error = f"{type(exc).__name__}: {exc}"
    return (DeliveryStatus.FAILED if d.attempts > len(RETRY_DELAYS) else DeliveryStatus.PENDING), error


async def _send_one(service: Service, smtp: Any, d: Delivery) -> tuple[Delivery, str, str | None]:
    msg = mail.compose(settings=service.settings, to=d.to_addr, subject=d.subject, text=d.text_body,
                       html=d.html_body, message_key=d.id, ics=d.ics)
    try:
        await mail.send_on(smtp, msg)
    except mail.PermanentFailure as exc:
        return d, DeliveryStatus.FAILED, str(exc)
    except Exception as exc:  # noqa: BLE001 - 4xx or dropped connection: the message did not leave
        return (d, *_temporary(d, exc))
    return d, DeliveryStatus.SENT, None


async def _record(service: Service, outcomes: list[tuple[Delivery, str, str | None]]) -> None:
    async with service.db.transaction() as tx:
        for d, status, error in outcomes:
            row = await tx.get(Delivery, d.id)
            assert row is not None
            row.status, row.last_error = status, (error or "")[:1000] or None
            if status == DeliveryStatus.SENT:  # the bodies may hold single-use links: not kept
                row.sent_at, row.text_body, row.html_body, row.ics = utcnow(), "", "", None
            elif status == DeliveryStatus.PENDING:
                row.next_attempt_at = utcnow() + timedelta(seconds=RETRY_DELAYS[d.attempts - 1])
            tx.add(row)
    for d, status, error in outcomes:
        if error:
            log.warning("e-mail not sent", delivery=d.id, kind=d.kind, status=status, error=error)
        else:
            log.debug("e-mail sent", delivery=d.id, kind=d.kind)


# ---------------------------------------------------------------- monitoring
async def count_by_status(service: Service) -> dict[str, int]:
    async with service.db.read() as tx:
        rows = (await tx.exec(select(Delivery.status, func.count()).group_by(Delivery.status))).all()  # type: ignore[call-overload]
    return {status: n for status, n in rows}


async def delivery_counts(req: GetDeliveryCounts, ctx: HandlerContext) -> DeliveryCounts:
    """How many e-mails are in each state (monitoring, benchmarks)."""
    return DeliveryCounts(by_status=await count_by_status(ctx.service))


async def health(service: Service) -> dict[str, Any]:
    """E-mails by delivery state, in the health reply."""
    return {"deliveries": await count_by_status(service)}
