"""iCalendar (RFC 5545) for sessions: one event per session, shared by the web front (.ics files, the
feed) and notifications (attachments), so every copy of a session has the same UID and SEQUENCE."""
from __future__ import annotations

from collections.abc import Iterable

from icalendar import Calendar, Event, vText

from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")

from shared.contracts.forum import KIND_LABELS, SessionInfo, SessionKind, SessionStatus

PRODID = "-//CESE//Forum ouvert//FR"


def session_uid(session_id: str) -> str:
    return f"session-{session_id}@forum-ouvert"


def _event(s: SessionInfo, public_url: str) -> Event:
    ev = Event()
    ev.add("uid", session_uid(s.session_id))
    ev.add("sequence", s.revision)
    ev.add("dtstamp", s.updated_at)
    ev.add("last-modified", s.updated_at)
    ev.add("dtstart", s.starts_at.astimezone(PARIS))
    ev.add("dtend", s.ends_at.astimezone(PARIS))
    ev.add("summary", f"{KIND_LABELS[SessionKind(s.kind)]} — {s.title}")
    url = f"{public_url.rstrip('/')}/seances/{s.session_id}"
    lines = [s.description] if s.description else []
    if s.agenda:
        lines.append("Ordre du jour :\n" + "\n".join(f"{i}. {item}" for i, item in enumerate(s.agenda, 1)))
    if s.online_url:
        lines.append(f"En ligne : {s.online_url}")
    lines.append(url)
    ev.add("description", "\n\n".join(lines))
    ev.add("location", vText(s.place or s.online_url or "En ligne"))
    ev.add("url", url)
    cancelled = s.status == SessionStatus.CANCELLED
    ev.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    return ev


def _calendar(name: str | None = None) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    if name:
        cal.add("x-wr-calname", name)
        cal.add("x-wr-timezone", "Europe/Paris")
    return cal


def session_ics(session: SessionInfo, public_url: str) -> bytes:
    cal = _calendar()
    cal.add_component(_event(session, public_url))
    cal.add_missing_timezones()
    return cal.to_ical()


def sessions_feed(sessions: Iterable[SessionInfo], public_url: str) -> bytes:
    cal = _calendar("Forum ouvert — séances")
    for s in sessions:
        cal.add_component(_event(s, public_url))
    cal.add_missing_timezones()
    return cal.to_ical()
