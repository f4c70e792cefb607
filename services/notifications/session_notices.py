"""E-mails about forum sessions, from forum events: RSVP confirmations (with the .ics), waitlist
positions, promotions, changes of time or place, cancellations; and the session-reminders job, which
mails the members holding a seat 48 hours before. Notifications keeps its own copy of each session's
latest state and of who holds a seat, so it needs no call to the forum service."""
from __future__ import annotations

import functools
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import and_
from sqlmodel import col, delete, select

from forumlib.ical import session_ics
from services.notifications.models import NoticeSeat, NoticeSession
from services.notifications.notices import session_notice
from services.notifications.outgoing import preload_members, queue_mail
from shared import preload
from shared.clock import paris_span, utcnow
from shared.contracts.envelope import Envelope
from shared.contracts.forum import (
    KIND_LABELS, RsvpConfirmed, RsvpDeclined, RsvpPromoted, RsvpWaitlisted, RsvpWithdrawn, SessionCancelled,
    SessionInfo, SessionKind, SessionScheduled, SessionStatus, SessionUpdated,
)
from shared.errors import RetryLater
from shared.logging import get_logger
from shared.outbox import UnitOfWork
from shared.service import Service

log = get_logger(__name__)

REMINDER_BEFORE = timedelta(hours=48)
FIELD_LABELS = {"starts_at": "l'heure de début", "ends_at": "l'heure de fin", "place": "le lieu",
                "online_url": "le lien de participation en ligne", "title": "le titre"}


def _details(s: SessionInfo) -> dict[str, object]:
    return {"title": s.title, "kind_label": KIND_LABELS[SessionKind(s.kind)],
            "when": paris_span(s.starts_at, s.ends_at), "place": s.place, "online_url": s.online_url}


async def _remember(uow: UnitOfWork, s: SessionInfo) -> None:
    row = await uow.tx.get(NoticeSession, s.session_id)
    if row is not None and row.revision > s.revision:
        return  # an older copy arrived late
    if row is None:
        row = NoticeSession(session_id=s.session_id, info="", starts_at=s.starts_at)
    elif row.starts_at != s.starts_at:
        row.reminded_at = None  # moved: remind again before the new date
    row.revision, row.info, row.starts_at = s.revision, s.model_dump_json(), s.starts_at
    row.cancelled = s.status == SessionStatus.CANCELLED
    uow.tx.add(row)


async def _session(uow: UnitOfWork, session_id: str) -> SessionInfo:
    row = await uow.tx.get(NoticeSession, session_id)
    if row is None:
        raise RetryLater(f"session {session_id} not known yet")
    return SessionInfo.model_validate_json(row.info)


@functools.lru_cache(maxsize=64)
def _ics_of(info: str, public_url: str) -> str:
    return session_ics(SessionInfo.model_validate_json(info), public_url, KIND_LABELS).decode()


def _ics(s: SessionInfo, public_url: str) -> str:
    """The session's .ics: the same file for everyone who answered, so made once per version of the session
    (an RSVP rush would otherwise render it for every seat: the bulk of the notice's CPU)."""
    return _ics_of(s.model_dump_json(), public_url)


async def _notice(uow: UnitOfWork, event_id: str, member_id: str, kind: str, subject: str, s: SessionInfo,
                  intro: list[str], with_ics: bool = True) -> None:
    public_url = uow.settings.public_url
    ics = _ics(s, public_url) if with_ics else None
    await queue_mail(uow, event_id, member_id, kind, template="session", subject=subject, ics=ics,
                     intro=intro, s=_details(s), link=f"{public_url.rstrip('/')}/seances/{s.session_id}",
                     has_ics=with_ics)


async def on_session_scheduled(event: Envelope[SessionScheduled], uow: UnitOfWork) -> None:
    """Remember the session for calendar attachments and reminders; tell the subscribers of sessions."""
    s = event.data.session
    await _remember(uow, s)
    await session_notice(uow, str(event.event_id), s, "Nouvelle séance", [])


async def on_session_updated(event: Envelope[SessionUpdated], uow: UnitOfWork) -> None:
    """Tell every member who answered when the time or the place changes."""
    s = event.data.session
    await _remember(uow, s)
    if not event.data.time_or_place_changed and "title" not in event.data.changes:
        return  # a reworded description is not worth an e-mail to every subscriber
    what = ", ".join(FIELD_LABELS.get(c, c) for c in event.data.changes if c in FIELD_LABELS) or "l'horaire ou le lieu"
    await session_notice(uow, str(event.event_id), s, "Séance modifiée", [f"Ce qui a changé : {what}."])
    if not event.data.time_or_place_changed:
        return
    for member_id in event.data.notify_member_ids:
        await _notice(uow, str(event.event_id), member_id, "session_changed",
                      f"Changement : {s.title} — Forum ouvert", s,
                      [f"La séance à laquelle vous êtes inscrit·e a changé ({what}). Voici les informations à jour ; "
                       "le fichier joint met votre agenda à jour."])


async def on_session_cancelled(event: Envelope[SessionCancelled], uow: UnitOfWork) -> None:
    """Tell every member who answered that the session is cancelled, and why."""
    s = event.data.session
    await _remember(uow, s)
    await session_notice(uow, str(event.event_id), s, "Séance annulée", [f"Motif : {event.data.reason}"])
    for member_id in event.data.notify_member_ids:
        await _notice(uow, str(event.event_id), member_id, "session_cancelled", f"Séance annulée : {s.title}", s,
                      ["La séance suivante est annulée.", f"Motif : {event.data.reason}"])
    await uow.tx.exec(delete(NoticeSeat).where(col(NoticeSeat.session_id) == s.session_id))  # type: ignore[call-overload]


async def _hold_seat(uow: UnitOfWork, session_id: str, member_id: str, holds: bool) -> None:
    seat = await preload.get(uow, NoticeSeat, (session_id, member_id))
    if holds and seat is None:
        preload.add(uow, NoticeSeat(session_id=session_id, member_id=member_id))
    elif not holds and seat is not None:
        await preload.delete(uow, seat)


async def preload_rsvps(events: list[Envelope[Any]], uow: UnitOfWork) -> None:
    """For a batch of RSVP events: the members' addresses and preferences, and who holds which seat."""
    await preload_members(events, uow)
    pairs = {(e.data.session_id, e.data.member_id) for e in events}
    await preload.preload(uow, NoticeSeat, pairs, and_(col(NoticeSeat.session_id).in_({s for s, _ in pairs}),
                                                       col(NoticeSeat.member_id).in_({m for _, m in pairs})))


async def on_rsvp_confirmed(event: Envelope[RsvpConfirmed], uow: UnitOfWork) -> None:
    """Confirm the seat, with the session's .ics attached."""
    d = event.data
    s = await _session(uow, d.session_id)
    await _hold_seat(uow, d.session_id, d.member_id, True)
    await _notice(uow, str(event.event_id), d.member_id, "rsvp_confirmed", f"Inscription confirmée : {s.title}", s,
                  ["Votre place est confirmée pour la séance suivante."])


async def on_rsvp_waitlisted(event: Envelope[RsvpWaitlisted], uow: UnitOfWork) -> None:
    """Tell the member their position on the waitlist."""
    d = event.data
    s = await _session(uow, d.session_id)
    await _notice(uow, str(event.event_id), d.member_id, "rsvp_waitlisted", f"Liste d'attente : {s.title}", s,
                  [f"La séance est complète : vous êtes en position {d.position} sur la liste d'attente.",
                   "Si une place se libère, vous serez inscrit·e automatiquement et prévenu·e par courriel."],
                  with_ics=False)


async def on_rsvp_promoted(event: Envelope[RsvpPromoted], uow: UnitOfWork) -> None:
    """A seat freed for a waitlisted member: tell them, with the .ics."""
    d = event.data
    s = await _session(uow, d.session_id)
    await _hold_seat(uow, d.session_id, d.member_id, True)
    await _notice(uow, str(event.event_id), d.member_id, "rsvp_promoted", f"Une place s'est libérée : {s.title}", s,
                  ["Bonne nouvelle : une place s'est libérée, votre inscription est confirmée."])


async def on_rsvp_withdrawn(event: Envelope[RsvpWithdrawn], uow: UnitOfWork) -> None:
    """The member no longer holds a seat: no reminder."""
    await _hold_seat(uow, event.data.session_id, event.data.member_id, False)


async def on_rsvp_declined(event: Envelope[RsvpDeclined], uow: UnitOfWork) -> None:
    """The member declined: no reminder."""
    await _hold_seat(uow, event.data.session_id, event.data.member_id, False)


async def send_reminders(service: Service) -> int:
    """One step of the session-reminders job: queue the 48-hour reminders that are due; returns how
    many sessions were handled."""
    now = utcnow()
    async with service.unit_of_work() as uow:
        stmt = select(NoticeSession).where(
            NoticeSession.cancelled == False,  # noqa: E712 - SQL comparison
            col(NoticeSession.reminded_at).is_(None),
            NoticeSession.starts_at > now, NoticeSession.starts_at <= now + REMINDER_BEFORE
        ).with_for_update(skip_locked=True)  # replicas remind different sessions (and the delivery key refuses twice)
        due = (await uow.tx.exec(stmt)).all()
        for row in due:
            s = SessionInfo.model_validate_json(row.info)
            key = str(uuid.uuid5(uuid.NAMESPACE_URL, f"reminder:{s.session_id}:{s.starts_at.isoformat()}"))
            seats = (await uow.tx.exec(select(NoticeSeat).where(NoticeSeat.session_id == s.session_id))).all()
            for seat in seats:
                try:
                    await _notice(uow, key, seat.member_id, "session_reminder", f"Rappel : {s.title}", s,
                                  ["Pour rappel, vous êtes inscrit·e à la séance suivante, dans moins de 48 heures."])
                except RetryLater:
                    log.warning("reminder skipped: member unknown", member=seat.member_id)
            row.reminded_at = now
            uow.tx.add(row)
    return len(due)
