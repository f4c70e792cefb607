"""The notifications service's part of a member's copy of their data: how it reaches them, which
e-mails they turned off, the sessions it reminds them of, the public subscriptions of their address,
every message in the delivery log sent to them or to their address, and the announcements they
wrote as secretariat. Message bodies are left out: a body may hold a single-use link, and the
subject, date and outcome say what was sent."""
from __future__ import annotations

from typing import Any

from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notifications.models import (
    ContactMessage, Delivery, MemberPreference, Notice, NoticeAttendee, NoticeSeat, NoticeSession, Recipient,
    Subscriber, SubscriberTopic,
)
from shared.contracts.notifications import ExportNotificationsData, NotificationsMemberData
from shared.personal_data import commands, fields, iso
from shared.service import HandlerContext


async def _sessions(tx: AsyncSession, table: type[NoticeSeat] | type[NoticeAttendee], me: str) -> list[dict[str, Any]]:
    rows = (await tx.exec(select(table.session_id, NoticeSession.starts_at)
                          .join(NoticeSession, col(NoticeSession.session_id) == table.session_id, isouter=True)
                          .where(table.member_id == me).order_by(col(NoticeSession.starts_at)))).all()
    return [{"session_id": sid, "session_starts_at": iso(starts)} for sid, starts in rows]


async def export_member_data(req: ExportNotificationsData, ctx: HandlerContext) -> NotificationsMemberData:
    """Everything the notifications tables hold about the actor or their address."""
    me = req.actor_id
    async with ctx.db.read() as tx:
        contact = await tx.get(Recipient, me)
        stopped = (await tx.exec(select(MemberPreference.kind).where(MemberPreference.member_id == me))).all()
        seats, attended = await _sessions(tx, NoticeSeat, me), await _sessions(tx, NoticeAttendee, me)
        # Subscribers are known by address only: the member's address (as the registry told it) is theirs.
        address = contact.email.lower() if contact else None
        subscribers = (await tx.exec(select(Subscriber).where(Subscriber.email == address))).all() if address else []
        subscriptions = []
        for s in subscribers:
            topics = (await tx.exec(select(SubscriberTopic.topic).where(SubscriberTopic.subscriber_id == s.id)
                                    .order_by(col(SubscriberTopic.topic)))).all()
            subscriptions.append({**fields(s, "email", "status", "created_at", "requested_at", "confirmed_at",
                                           "unsubscribed_at", "hard_failures"), "topics": list(topics)})
        written = (await tx.exec(select(ContactMessage).where(ContactMessage.email == address)
                                 .order_by(col(ContactMessage.created_at)))).all() if address else []
        # A delivery names its recipient by member id, or by subscriber id for a subscription's e-mails.
        to_me = col(Delivery.member_id).in_([me, *(s.id for s in subscribers)])
        sent = (await tx.exec(
            select(Delivery.kind, Delivery.subject, Delivery.to_addr, Delivery.topic, Delivery.status,
                   Delivery.attempts, Delivery.last_error, Delivery.created_at, Delivery.sent_at)
            # (a contact message to the secretariat names the member's address as its Reply-To)
            .where(or_(to_me, Delivery.to_addr == address, Delivery.reply_to_addr == address) if address else to_me)
            .order_by(col(Delivery.created_at)))).all()
        announcements = [
            {"announcement_id": nid, "subject": subject, "state": state, "created_at": iso(created),
             "sent_at": iso(sent_at)}
            for nid, subject, state, created, sent_at in (await tx.exec(
                select(Notice.id, Notice.subject, Notice.state, Notice.created_at, Notice.sent_at)
                .where(Notice.created_by == me).order_by(col(Notice.created_at)))).all()]
        done = await commands(tx, me)
    data: dict[str, Any] = {
        "contact": fields(contact, "email", "full_name", "approved", "secretariat", "updated_at") if contact else None,
        "stopped_notices": sorted(stopped),
        "seats": seats,
        "attendance": attended,
        "subscriptions": subscriptions,
        "contact_messages": [fields(m, "name", "email", "title", "message", "client", "created_at") for m in written],
        "emails": [{"kind": kind, "subject": subject, "to": to, "topic": topic, "status": status,
                    "attempts": attempts, "last_error": error, "created_at": iso(created), "sent_at": iso(at)}
                   for kind, subject, to, topic, status, attempts, error, created, at in sent],
        "announcements_written": announcements,
        "commands": done,
    }
    return NotificationsMemberData(data=data)
