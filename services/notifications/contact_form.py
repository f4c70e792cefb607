"""The contact form: a message written to the secretariat on /contact is stored, then mailed through the
delivery log like every other e-mail — one message to the secretariat's address (Reply-To: the sender, so
answering reaches them) and a copy to the sender. Both are queued in the transaction that stores the
message, so an accepted message is never lost and, with the form's one-time token, never sent twice.

The copy goes to an address typed by anyone: at most `contact_limit` messages per address and day, and
the web front limits each client; the copy says to ignore it if the reader did not write it. Messages are
deleted after `contact_retention_days` (what the privacy page promises)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func
from sqlmodel import col, delete, select, update

from services.notifications import mail
from services.notifications.models import ContactMessage, Delivery
from services.notifications.outgoing import MAIL_SENDER, new_delivery
from services.notifications.subscriptions import normalise
from shared.clock import paris_datetime, utcnow
from shared.contracts.notifications import ContactAccepted, SendContactMessage
from shared.errors import Conflict
from shared.logging import get_logger
from shared.outbox import UnitOfWork
from shared.service import HandlerContext, Service

log = get_logger(__name__)

TO_SECRETARIAT = "contact_secretariat"
COPY = "contact_copy"
KINDS = (TO_SECRETARIAT, COPY)
SENT = ("Votre message a été transmis au secrétariat du forum. Une copie vient d'être envoyée à {email} ; "
        "le secrétariat vous répondra à cette adresse.")
TOO_MANY = ("Vous avez déjà envoyé {limit} messages aujourd'hui avec cette adresse électronique. Le secrétariat "
            "les a bien reçus ; pour un nouveau message, réessayez demain.")


async def send(req: SendContactMessage, ctx: HandlerContext) -> ContactAccepted:
    """Store the message and queue its two e-mails (secretariat, copy to the sender)."""
    address = normalise(req.email)
    settings = ctx.settings
    async with ctx.unit_of_work() as uow:
        since = utcnow() - timedelta(days=1)
        sent_today = (await uow.tx.exec(select(func.count()).select_from(ContactMessage).where(
            ContactMessage.email == address, col(ContactMessage.created_at) >= since))).one()
        if sent_today >= settings.contact_limit:
            log.info("contact message over the per-address limit", client=req.client)
            raise Conflict(TOO_MANY.format(limit=settings.contact_limit), field="email")
        m = ContactMessage(name=req.name, email=address, title=req.title, message=req.message,
                           client=req.client)
        uow.tx.add(m)
        ctx_mail = {"name": m.name, "email": address, "topic": m.title, "message": m.message,
                    "received": paris_datetime(m.created_at), "secretariat": settings.secretariat_email,
                    "contact_page": settings.public_url.rstrip("/") + "/contact"}
        _queue(uow, m, TO_SECRETARIAT, settings.secretariat_email, f"[Contact] {m.title}", reply_to=address,
               **ctx_mail)
        _queue(uow, m, COPY, address, f"Votre message au forum ouvert : {m.title}", **ctx_mail)
    log.info("contact message accepted", contact=m.id)
    return ContactAccepted(contact_id=m.id, email=address, message=SENT.format(email=address))


def _queue(uow: UnitOfWork, m: ContactMessage, kind: str, to: str, subject: str, *, reply_to: str | None = None,
           **ctx: object) -> None:
    # The message's id is the cause of both e-mails, the kind their recipient: the delivery log's unique
    # key (cause, recipient) lets each be queued once, ever.
    subject, text, html = mail.render(kind, subject, reply_expected=reply_to is not None, **ctx)
    uow.tx.add(new_delivery(uow, event_id=m.id, member_id=kind, kind=kind, to_addr=to,
                            subject=subject, text_body=text, html_body=html, reply_to_addr=reply_to))
    uow.wake_after_commit(MAIL_SENDER)


async def _forget(uow: UnitOfWork, ids: list[str]) -> None:
    """Delete these messages; the delivery log keeps of their e-mails only that they were sent."""
    await uow.tx.exec(update(Delivery).where(  # type: ignore[call-overload]
        col(Delivery.event_id).in_(ids), col(Delivery.kind).in_(KINDS)).values(
        to_addr="", domain="", reply_to_addr=None, subject="(effacé)", text_body="", html_body=""))
    await uow.tx.exec(delete(ContactMessage).where(col(ContactMessage.id).in_(ids)))  # type: ignore[call-overload]


async def forget_address(uow: UnitOfWork, address: str) -> None:
    """A member erased: the messages they wrote from their address go with the rest of their data."""
    ids = list((await uow.tx.exec(select(ContactMessage.id).where(ContactMessage.email == address.lower()))).all())
    if ids:
        await _forget(uow, ids)


async def forget_old(service: Service) -> int:
    """One step of the contact-expiry job: messages older than `contact_retention_days` are deleted, and
    the delivery log keeps of their e-mails only that they were sent (no address, no subject)."""
    cutoff = utcnow() - timedelta(days=service.settings.contact_retention_days)
    async with service.unit_of_work() as uow:
        ids = list((await uow.tx.exec(select(ContactMessage.id).where(
            col(ContactMessage.created_at) < cutoff).limit(500))).all())
        if ids:
            await _forget(uow, ids)
    return len(ids)
