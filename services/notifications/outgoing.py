"""Queueing e-mails, and what the delivery log counts. A consumer queues a member's e-mail in its own
transaction, so an event yields its e-mail exactly when it is handled; the mail sender
(`services.notifications.sender`) delivers it. A kind of notice the member turned off is still
logged, as suppressed, so the log accounts for every message the forum meant to send."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select, update

from services.notifications import mail
from services.notifications.models import Delivery, MemberPreference, Recipient
from shared import preload
from shared.clock import utcnow
from shared.contracts.envelope import Envelope
from shared.contracts.notifications import (
    DeliveryCounts, DeliveryState, DeliveryTally, GetDeliveryCounts, MemberNoticeKind,
)
from shared.errors import RetryLater
from shared.logging import get_logger
from shared.outbox import UnitOfWork
from shared.service import HandlerContext, Service

log = get_logger(__name__)
MAIL_SENDER = "mail-sender"

# The member notices a member may turn off (the others answer their own request: always sent).
PREFERENCE_OF = {
    "rsvp_confirmed": MemberNoticeKind.RSVP, "rsvp_waitlisted": MemberNoticeKind.RSVP,
    "rsvp_promoted": MemberNoticeKind.RSVP,
    "session_changed": MemberNoticeKind.SESSION_CHANGES, "session_cancelled": MemberNoticeKind.SESSION_CHANGES,
    "session_reminder": MemberNoticeKind.REMINDERS,
    "vote_opened": MemberNoticeKind.VOTES,
    "minutes_review": MemberNoticeKind.MINUTES_REVIEW,
}
UNSENT_STATES = (DeliveryState.QUEUED, DeliveryState.DEFERRED, DeliveryState.HELD)


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def new_delivery(uow: UnitOfWork, **fields: Any) -> Delivery:
    """A delivery row with its stable Message-ID and destination domain filled in."""
    d = Delivery(**fields)
    d.message_id = mail.message_id(d.id, uow.settings)
    d.domain = domain_of(d.to_addr)
    return d


async def queue_mail(uow: UnitOfWork, event_id: str, member_id: str, kind: str, *, template: str | None = None,
                     subject: str | None = None, ics: str | None = None, contact: tuple[str, str] | None = None,
                     **ctx: Any) -> None:
    """Render and store one member e-mail in the consumer's transaction; the mail sender sends it once
    that transaction commits. `contact` (address, name) when the event carries it. The same event never
    queues two e-mails for one member (unique key), so a redelivered event mails nobody twice."""
    if contact is None:
        r = await preload.get(uow, Recipient, member_id)
        if r is None:
            # The registration event may not have been applied yet (different consumer): try again shortly.
            raise RetryLater(f"no recipient yet for member {member_id}")
        contact = (r.email, r.full_name)
    to, name = contact
    preference = PREFERENCE_OF.get(kind)
    if preference is not None and await preload.get(
            uow, MemberPreference, (member_id, preference.value)) is not None:
        uow.tx.add(new_delivery(uow, event_id=event_id, member_id=member_id, kind=kind, to_addr=to,
                                subject=mail.header_text(subject or kind), status=DeliveryState.SUPPRESSED,
                                last_error="arrêté par le membre dans ses préférences"))
        return
    footer = [("Choisir les courriels que je reçois", uow.settings.public_url.rstrip("/") + "/espace#courriels")]
    subject, text, html = mail.render(template or kind, subject, footer=footer, name=name, **ctx)
    uow.tx.add(new_delivery(uow, event_id=event_id, member_id=member_id, kind=kind, to_addr=to,
                            subject=subject, text_body=text, html_body=html, ics=ics))
    uow.wake_after_commit(MAIL_SENDER)


async def preload_members(events: list[Envelope[Any]], uow: UnitOfWork) -> None:
    """For a batch of events about members (`data.member_id`): their addresses and the notices they turned
    off, in one query each, for `queue_mail` (`batched(..., preload=preload_members)`)."""
    await preload.member_rows(events, uow, model=Recipient)
    ids = sorted({e.data.member_id for e in events})
    await preload.preload(uow, MemberPreference, [(m, k.value) for m in ids for k in MemberNoticeKind],
                          col(MemberPreference.member_id).in_(ids))


async def suppress_unsent(uow: UnitOfWork, recipient_id: str, state: DeliveryState, reason: str) -> None:
    """The recipient left (erased, unsubscribed): what has not left yet never will."""
    await uow.tx.exec(update(Delivery)  # type: ignore[call-overload]
                      .where(col(Delivery.member_id) == recipient_id, col(Delivery.status).in_(UNSENT_STATES))
                      .values(status=state, last_error=reason, text_body="", html_body="", ics=None))


# ---------------------------------------------------------------- counts
SETTLED = (DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.SUPPRESSED, DeliveryState.CANCELLED)


async def forget_old_addresses(service: Service) -> int:
    """One step of the delivery-log-expiry job: settled entries older than `delivery_log_retention_days`
    keep only what happened (kind, state, dates, the server's reply): their address, subject and bodies
    are erased (what the privacy page promises). Counts per notice stay right."""
    cutoff = utcnow() - timedelta(days=service.settings.delivery_log_retention_days)
    async with service.unit_of_work() as uow:
        ids = list((await uow.tx.exec(select(Delivery.id).where(
            col(Delivery.created_at) < cutoff, col(Delivery.status).in_(SETTLED),
            col(Delivery.to_addr) != "").limit(1000))).all())
        if ids:
            await uow.tx.exec(update(Delivery).where(col(Delivery.id).in_(ids)).values(  # type: ignore[call-overload]
                to_addr="", domain="", reply_to_addr=None, subject="(effacé)", text_body="", html_body="", ics=None))
    return len(ids)


async def count_by_status(service: Service, notice_id: str | None = None) -> dict[str, int]:
    stmt = select(Delivery.status, func.count()).group_by(Delivery.status)  # type: ignore[call-overload]
    if notice_id is not None:
        stmt = stmt.where(Delivery.notice_id == notice_id)
    async with service.db.read() as tx:
        rows = (await tx.exec(stmt)).all()
    return {status: n for status, n in rows}


def tally(by_status: dict[str, int]) -> DeliveryTally:
    return DeliveryTally(total=sum(by_status.values()), **{s: by_status.get(s, 0) for s in DeliveryState})


async def delivery_counts(req: GetDeliveryCounts, ctx: HandlerContext) -> DeliveryCounts:
    """How many e-mails are in each state (monitoring, benchmarks)."""
    return DeliveryCounts(by_status=await count_by_status(ctx.service))


async def health(service: Service) -> dict[str, Any]:
    """E-mails by delivery state, in the health reply."""
    return {"deliveries": await count_by_status(service), "checked_at": utcnow().isoformat()}
