"""Notices to a topic's subscribers: the public facts they follow (sessions, decisions, comptes rendus),
turned into a notice by their event, and the secretariat's announcements. A notice is rendered once;
the sender adds each subscriber's own links when it sends.

The fan-out is a durable job: each step gives the next `fanout_batch` confirmed subscribers of the
notice's topics a delivery and advances the notice's cursor in the same transaction, so a crash at any
point resumes after the last batch committed, and nobody gets a second delivery (unique key)."""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import exists, func, text
from sqlmodel import col, select, update

from forumlib.markdown import render_markdown
from services.notifications import mail
from services.notifications.mail import MANAGE_MARK, UNSUBSCRIBE_MARK
from services.notifications.models import Delivery, Notice, NoticeSession, Subscriber, SubscriberTopic
from services.notifications.outgoing import MAIL_SENDER
from shared.clock import paris_datetime, paris_span, utcnow
from shared.contracts.decisions import OUTCOME_LABELS, DecisionRecorded
from shared.contracts.envelope import Envelope
from shared.contracts.forum import KIND_LABELS, SessionInfo, SessionKind, Theme
from shared.contracts.minutes import MinutesCorrected, MinutesPublished
from shared.contracts.notifications import (
    DeliveryState, NoticeState, SubscriptionStatus, TopicKind, theme_topic, topic_label,
)
from shared.db import dialect_insert
from shared.errors import RetryLater
from shared.outbox import UnitOfWork
from shared.service import Service
from shared.settings import Settings

FANOUT = "notice-fanout"
KIND_HEADINGS = {"session": "Séances", "decision": "Décisions", "minutes": "Comptes rendus",
                 "announcement": "Annonce du secrétariat"}


def topics_of(kind: TopicKind, theme: Theme | str | None) -> list[str]:
    return [kind.value] + ([theme_topic(theme)] if theme else [])


def render_notice(settings: Settings, *, kind: str, topics: list[str], title: str, lines: list[str],
                  link: str | None, link_label: str = "Lire sur le site", body_html: str = "",
                  body_text: str = "") -> tuple[str, str, str]:
    """(subject, text, html) of a notice, with the marks the sender replaces by each subscriber's links."""
    footer = [("Gérer mon abonnement", MANAGE_MARK), ("Me désabonner", UNSUBSCRIBE_MARK)]
    return mail.render("notice", title, footer=footer, heading=KIND_HEADINGS[kind], title=title, lines=lines,
                       link=link, link_label=link_label, body_html=body_html, body_text=body_text,
                       topics=" ou ".join(f"« {topic_label(t)} »" for t in topics))


async def create_notice(uow: UnitOfWork, event_id: str, kind: str, topics: list[str], title: str, lines: list[str],
                        path: str) -> None:
    """A public fact's notice, sent at once to its topics' subscribers (once per event: its id is
    derived from the event's)."""
    notice_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"notice:{event_id}"))
    if await uow.tx.get(Notice, notice_id) is not None:
        return
    link = uow.settings.public_url.rstrip("/") + path
    subject, text, html = render_notice(uow.settings, kind=kind, topics=topics, title=title, lines=lines, link=link)
    now = utcnow()
    uow.tx.add(Notice(id=notice_id, kind=kind, topics=" ".join(topics), subject=subject, text=text, html=html,
                      link=link, state=NoticeState.SENDING, source_event_id=event_id, sent_at=now,
                      created_at=now, updated_at=now))
    uow.wake_after_commit(FANOUT)


# ---------------------------------------------------------------- public facts → notices
async def session_notice(uow: UnitOfWork, event_id: str, s: SessionInfo, what: str, lines: list[str]) -> None:
    title = f"{what} : {s.title}"
    details = [f"{KIND_LABELS[SessionKind(s.kind)]} — {paris_span(s.starts_at, s.ends_at)} (heure de Paris)"]
    if s.place:
        details.append(f"Lieu : {s.place}")
    if s.online_url:
        details.append(f"En ligne : {s.online_url}")
    await create_notice(uow, event_id, "session", topics_of(TopicKind.SESSIONS, s.theme), title, lines + details,
                        f"/seances/{s.session_id}")


async def _session(uow: UnitOfWork, session_id: str) -> SessionInfo:
    row = await uow.tx.get(NoticeSession, session_id)
    if row is None:
        raise RetryLater(f"session {session_id} not known yet")
    return SessionInfo.model_validate_json(row.info)


async def on_decision_recorded(event: Envelope[DecisionRecorded], uow: UnitOfWork) -> None:
    """Tell the subscribers of decisions (and of the session's working group) about a new decision."""
    d = event.data.decision
    s = await _session(uow, d.session_id)
    what = "Décision corrigée" if d.supersedes else "Décision"
    lines = [f"{OUTCOME_LABELS[d.outcome]} — séance « {d.session_title} » du {paris_datetime(s.starts_at)}.",
             f"Point de l'ordre du jour : {d.agenda_text}"]
    if d.supersedes:
        lines.insert(0, "Cette décision corrige une décision précédente, qui reste consultable.")
    await create_notice(uow, str(event.event_id), "decision", topics_of(TopicKind.DECISIONS, s.theme),
                        f"{what} n° {d.number} : {d.title}", lines, f"/decisions/{d.decision_id}")


async def on_minutes_published(event: Envelope[MinutesPublished], uow: UnitOfWork) -> None:
    """Tell the subscribers of comptes rendus (and of the working group) that minutes were published."""
    d = event.data
    s = await _session(uow, d.session_id)
    lines = [f"Séance du {paris_datetime(s.starts_at)}.",
             f"Empreinte SHA-256 du texte publié, inscrite au registre public : {d.sha256}"]
    await create_notice(uow, str(event.event_id), "minutes", topics_of(TopicKind.MINUTES, s.theme),
                        f"Compte rendu publié : {s.title}", lines, f"/comptes-rendus/{d.minutes_id}")


async def on_minutes_corrected(event: Envelope[MinutesCorrected], uow: UnitOfWork) -> None:
    """Tell the same subscribers that published minutes were corrected, and why."""
    d = event.data
    s = await _session(uow, d.session_id)
    lines = [f"Séance du {paris_datetime(s.starts_at)}. Version {d.version}.", f"Motif de la correction : {d.reason}",
             f"Empreinte SHA-256 de la nouvelle version : {d.sha256}"]
    await create_notice(uow, str(event.event_id), "minutes", topics_of(TopicKind.MINUTES, s.theme),
                        f"Compte rendu corrigé : {s.title}", lines, f"/comptes-rendus/{d.minutes_id}")


def announcement_parts(settings: Settings, title: str, body: str, topic: str) -> tuple[str, str, str]:
    return render_notice(settings, kind="announcement", topics=[topic], title=title, lines=[], link=None,
                         body_html=render_markdown(body), body_text=body)


# ---------------------------------------------------------------- the fan-out job
def _recipients(topics: list[str], after: str, limit: int) -> Any:
    """Confirmed subscribers of any of `topics` after the cursor, each once, with the topic they follow
    (the notice's main topic first: it sorts before « theme:… »)."""
    return (select(Subscriber.id, Subscriber.email, func.min(SubscriberTopic.topic))
            .join(SubscriberTopic, col(SubscriberTopic.subscriber_id) == col(Subscriber.id))
            .where(col(SubscriberTopic.topic).in_(topics), Subscriber.status == SubscriptionStatus.CONFIRMED,
                   col(Subscriber.id) > after)
            .group_by(col(Subscriber.id), col(Subscriber.email)).order_by(col(Subscriber.id)).limit(limit))


async def count_recipients(tx: Any, topics: list[str]) -> int:
    stmt = (select(func.count(func.distinct(SubscriberTopic.subscriber_id)))
            .join(Subscriber, col(SubscriberTopic.subscriber_id) == col(Subscriber.id))
            .where(col(SubscriberTopic.topic).in_(topics), Subscriber.status == SubscriptionStatus.CONFIRMED))
    return int((await tx.exec(stmt)).one())


async def fan_out(service: Service) -> int:
    """One step of the fan-out job: one batch of deliveries for the oldest notice being sent; marks
    notices whose every message has an outcome as sent. Returns how many deliveries were queued (at least
    1 when it handled a notice, so the worker does not idle between notices)."""
    settings = service.settings
    async with service.unit_of_work() as uow:
        stmt = (select(Notice).where(Notice.state == NoticeState.SENDING, Notice.fanout_done == False)  # noqa: E712
                .order_by(col(Notice.sent_at)).limit(1))
        if not service.db.sqlite:
            stmt = stmt.with_for_update(skip_locked=True)
        notice = (await uow.tx.exec(stmt)).first()
        if notice is None:
            await _finish(uow)
            return 0
        topics = notice.topics.split()
        if notice.recipients_planned is None:
            notice.recipients_planned = await count_recipients(uow.tx, topics)
        first = not notice.fanout_cursor
        batch = (await uow.tx.exec(_recipients(topics, notice.fanout_cursor, settings.fanout_batch))).all()
        if batch:
            rows = []
            for subscriber_id, email, topic in batch:
                delivery_id = str(uuid.uuid4())
                rows.append({"id": delivery_id, "event_id": notice.id, "member_id": subscriber_id,
                             "kind": notice.kind, "notice_id": notice.id, "topic": topic, "to_addr": email,
                             "domain": email.rpartition("@")[2].lower(), "subject": notice.subject,
                             "message_id": mail.message_id(delivery_id, settings), "status": DeliveryState.QUEUED,
                             "priority": 1, "attempts": 0, "next_attempt_at": utcnow(), "created_at": utcnow(),
                             "resent": False, "text_body": "", "html_body": ""})
            # executemany, not one multi-row VALUES: compiling that (~0.4 s for 1,000 rows) would block
            # the event loop, and every SMTP connection with it, at each batch.
            table = Delivery.__table__  # type: ignore[attr-defined]
            await (await uow.tx.connection()).execute(dialect_insert(uow.tx, table).on_conflict_do_nothing(), rows)
            notice.fanout_cursor = batch[-1][0]
            uow.wake_after_commit(MAIL_SENDER)
        if len(batch) < settings.fanout_batch:
            notice.fanout_done = True
        if not service.db.sqlite and batch and (first or notice.fanout_done):
            # Fresh statistics, or PostgreSQL may plan the sender's claim as a scan and sort of the whole
            # queue (tens of ms a claim) instead of walking ix_delivery_due (a tenth of a ms).
            await uow.tx.exec(text("ANALYZE delivery"))  # type: ignore[call-overload]
        uow.tx.add(notice)
    return max(len(batch), 1)  # a notice was handled, even one nobody follows: look for the next at once


async def _finish(uow: UnitOfWork) -> None:
    """A notice whose fan-out is done and whose every message has an outcome is sent."""
    waiting = exists().where(col(Delivery.notice_id) == col(Notice.id),
                             col(Delivery.status).in_([DeliveryState.QUEUED, DeliveryState.DEFERRED,
                                                       DeliveryState.SENDING, DeliveryState.HELD]))
    await uow.tx.exec(update(Notice).where(Notice.state == NoticeState.SENDING, Notice.fanout_done == True,  # noqa: E712
                                           ~waiting).values(state=NoticeState.SENT, finished_at=utcnow()))  # type: ignore[call-overload]
