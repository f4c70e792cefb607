"""The secretariat's announcements: write in Markdown, preview, send a test to yourself, send to a
topic's confirmed subscribers, pause and resume, watch the tally; and the delivery log it searches."""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import col, select, update

from forumlib.markdown import render_markdown
from services.notifications.models import Delivery, Notice, Recipient
from services.notifications.notices import FANOUT, announcement_parts, count_recipients
from services.notifications.outgoing import MAIL_SENDER, new_delivery, tally
from services.notifications.mail import MANAGE_MARK, UNSUBSCRIBE_MARK
from shared.clock import utcnow
from shared.contracts.notifications import (
    AnnouncementAction, AnnouncementList, AnnouncementView, ControlAnnouncement, DeliveryEntry, DeliveryLog,
    DeliveryState, GetAnnouncement, GetPublicAnnouncement, ListAnnouncements, NoticeState, SaveAnnouncement, SearchDeliveries,
    SendAnnouncementTest, topic_label,
)
from shared.errors import Conflict, Forbidden, NotFound
from shared.outbox import UnitOfWork
from shared.service import HandlerContext

KIND = "announcement"


async def _secretariat(tx: Any, actor_id: str) -> Recipient:
    r = await tx.get(Recipient, actor_id)
    if r is None or not r.secretariat:
        raise Forbidden("Réservé au secrétariat du forum.")
    return r


async def _announcement(tx: Any, announcement_id: str, *, drafts: bool = True) -> Notice:
    n = await tx.get(Notice, announcement_id)
    if n is None or n.kind != KIND or (not drafts and n.state == NoticeState.DRAFT):
        raise NotFound("Cette annonce n'existe pas.", field="announcement_id")
    return n


async def _view(tx: Any, n: Notice) -> AnnouncementView:
    rows = (await tx.exec(select(Delivery.status, func.count()).where(Delivery.notice_id == n.id)  # type: ignore[call-overload]
                              .group_by(Delivery.status))).all()
    topic = n.topics.split()[0]
    return AnnouncementView(announcement_id=n.id, title=n.subject, body=n.body, body_html=render_markdown(n.body),
                            topic=topic, topic_label=topic_label(topic), state=NoticeState(n.state),
                            created_at=n.created_at, updated_at=n.updated_at, sent_at=n.sent_at,
                            finished_at=n.finished_at, recipients_planned=n.recipients_planned,
                            tally=tally(dict(rows)))


async def save(req: SaveAnnouncement, ctx: HandlerContext) -> AnnouncementView:
    """Create or edit a draft (a sent announcement is never rewritten: it went out as it stands)."""
    async with ctx.unit_of_work(req.actor_id) as uow:
        await _secretariat(uow.tx, req.actor_id)
        if req.announcement_id:
            n = await _announcement(uow.tx, req.announcement_id)
            if n.state != NoticeState.DRAFT:
                raise Conflict("Cette annonce est déjà envoyée : elle ne peut plus être modifiée.")
        else:
            n = Notice(kind=KIND, topics="", subject="", created_by=req.actor_id)
        subject, text, html = announcement_parts(ctx.settings, req.title, req.body, req.topic)
        n.topics, n.subject, n.body, n.text, n.html, n.updated_at = req.topic, subject, req.body, text, html, utcnow()
        uow.tx.add(n)
        await uow.tx.flush()
        return await _view(uow.tx, n)


async def get(req: GetAnnouncement, ctx: HandlerContext) -> AnnouncementView:
    """One announcement with its tally (the secretariat's page)."""
    async with ctx.db.read() as tx:
        await _secretariat(tx, req.actor_id)
        return await _view(tx, await _announcement(tx, req.announcement_id))


async def get_public(req: GetPublicAnnouncement, ctx: HandlerContext) -> AnnouncementView:
    """A sent announcement (its public page)."""
    async with ctx.db.read() as tx:
        return await _view(tx, await _announcement(tx, req.announcement_id, drafts=False))


async def send_test(req: SendAnnouncementTest, ctx: HandlerContext) -> AnnouncementView:
    """Mail the announcement, as subscribers get it, to the secretariat member asking (its links lead
    to the subscriptions page: a test address has no subscription)."""
    async with ctx.unit_of_work(req.actor_id) as uow:
        me = await _secretariat(uow.tx, req.actor_id)
        n = await _announcement(uow.tx, req.announcement_id)
        page = ctx.settings.public_url.rstrip("/") + "/abonnements"
        uow.tx.add(new_delivery(
            uow, event_id=str(uuid.uuid4()), member_id=me.member_id, kind="announcement_test", to_addr=me.email,
            subject="[Test] " + n.subject, text_body=n.text.replace(MANAGE_MARK, page).replace(UNSUBSCRIBE_MARK, page),
            html_body=n.html.replace(MANAGE_MARK, page).replace(UNSUBSCRIBE_MARK, page)))
        uow.wake_after_commit(MAIL_SENDER)
        return await _view(uow.tx, n)


async def control(req: ControlAnnouncement, ctx: HandlerContext) -> AnnouncementView:
    """Send a draft, pause a send (its waiting messages are held) or resume it."""
    async with ctx.unit_of_work(req.actor_id) as uow:
        await _secretariat(uow.tx, req.actor_id)
        n = await _announcement(uow.tx, req.announcement_id)
        now = utcnow()
        if req.action == AnnouncementAction.SEND:
            if n.state != NoticeState.DRAFT:
                raise Conflict("Cette annonce est déjà envoyée.")
            n.state, n.sent_at = NoticeState.SENDING, now
            n.recipients_planned = await count_recipients(uow.tx, n.topics.split())
            uow.wake_after_commit(FANOUT)
        elif req.action == AnnouncementAction.PAUSE:
            if n.state != NoticeState.SENDING:
                raise Conflict("Seul un envoi en cours peut être mis en pause.")
            n.state = NoticeState.PAUSED
            await _move(uow, n.id, (DeliveryState.QUEUED, DeliveryState.DEFERRED), DeliveryState.HELD)
        else:
            if n.state != NoticeState.PAUSED:
                raise Conflict("Seul un envoi en pause peut reprendre.")
            n.state = NoticeState.SENDING
            await _move(uow, n.id, (DeliveryState.HELD,), DeliveryState.QUEUED)
            uow.wake_after_commit(FANOUT)
            uow.wake_after_commit(MAIL_SENDER)
        n.updated_at = now
        uow.tx.add(n)
        return await _view(uow.tx, n)


async def _move(uow: UnitOfWork, notice_id: str, from_states: tuple[DeliveryState, ...], to: DeliveryState) -> None:
    await uow.tx.exec(update(Delivery).where(col(Delivery.notice_id) == notice_id,  # type: ignore[call-overload]
                                             col(Delivery.status).in_(from_states)).values(status=to))


async def list_announcements(req: ListAnnouncements, ctx: HandlerContext) -> AnnouncementList:
    """Announcements, newest first: the public ones (sent), or every one for the secretariat."""
    async with ctx.db.read() as tx:
        if not req.sent_only:
            await _secretariat(tx, req.actor_id or "")
        where = [Notice.kind == KIND]
        if req.sent_only:
            where.append(Notice.state != NoticeState.DRAFT)
        if req.topic:
            where.append(Notice.topics == req.topic)
        total = (await tx.exec(select(func.count()).select_from(Notice).where(*where))).one()
        rows = (await tx.exec(select(Notice).where(*where).order_by(
            col(Notice.sent_at).desc().nulls_first() if not req.sent_only else col(Notice.sent_at).desc(),
            col(Notice.created_at).desc()).offset(req.offset).limit(req.limit))).all()
        return AnnouncementList(items=[await _view(tx, n) for n in rows], total=total)


async def search_deliveries(req: SearchDeliveries, ctx: HandlerContext) -> DeliveryLog:
    """The delivery log, newest first, by address, topic, notice or state (secretariat only)."""
    async with ctx.db.read() as tx:
        await _secretariat(tx, req.actor_id)
        where = []
        if req.address:
            where.append(func.lower(Delivery.to_addr).contains(req.address.strip().lower(), autoescape=True))
        if req.topic:
            where.append(or_(Delivery.topic == req.topic, Notice.topics.contains(req.topic, autoescape=True)))  # type: ignore[attr-defined]
        if req.notice_id:
            where.append(Delivery.notice_id == req.notice_id)
        if req.state:
            where.append(Delivery.status == req.state)
        base = select(Delivery).outerjoin(Notice, col(Notice.id) == col(Delivery.notice_id)).where(*where)
        total = (await tx.exec(select(func.count()).select_from(base.subquery()))).one()
        rows = (await tx.exec(base.order_by(col(Delivery.created_at).desc(), col(Delivery.id))
                                  .offset(req.offset).limit(req.limit))).all()
        return DeliveryLog(total=total, items=[DeliveryEntry(
            delivery_id=d.id, message_id=d.message_id, to=d.to_addr, kind=d.kind, topic=d.topic, notice_id=d.notice_id,
            subject=d.subject, state=DeliveryState(d.status), attempts=d.attempts, smtp_reply=d.last_error,
            next_attempt_at=d.next_attempt_at if d.status in (DeliveryState.DEFERRED, DeliveryState.QUEUED) else None,
            resent_after_interruption=d.resent, created_at=d.created_at, sent_at=d.sent_at) for d in rows])
