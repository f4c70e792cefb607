"""iCalendar (RFC 5545) for sessions: one event per session, shared by the web front (.ics files, the
feed) and notifications (attachments), so every copy of a session has the same UID and SEQUENCE.

A session is anything with the fields of `CalendarSession` (the forum's `SessionInfo` has them); the
caller names each kind of session (`kind_labels`), since the forum's vocabulary is not this module's."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vText

PARIS = ZoneInfo("Europe/Paris")
PRODID = "-//CESE//Forum ouvert//FR"


class CalendarSession(Protocol):
    @property
    def session_id(self) -> str: ...
    @property
    def revision(self) -> int: ...  # the event's SEQUENCE: grows with every change
    @property
    def status(self) -> str: ...  # "cancelled" makes a CANCELLED event
    @property
    def kind(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def starts_at(self) -> datetime: ...
    @property
    def ends_at(self) -> datetime: ...
    @property
    def place(self) -> str | None: ...
    @property
    def online_url(self) -> str | None: ...
    @property
    def agenda(self) -> Sequence[str]: ...
    @property
    def updated_at(self) -> datetime: ...


def session_uid(session_id: str) -> str:
    return f"session-{session_id}@forum-ouvert"


def _event(s: CalendarSession, public_url: str, kind_labels: Mapping[str, str]) -> Event:
    ev = Event()
    ev.add("uid", session_uid(s.session_id))
    ev.add("sequence", s.revision)
    ev.add("dtstamp", s.updated_at)
    ev.add("last-modified", s.updated_at)
    ev.add("dtstart", s.starts_at.astimezone(PARIS))
    ev.add("dtend", s.ends_at.astimezone(PARIS))
    ev.add("summary", f"{kind_labels[s.kind]} — {s.title}")
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
    ev.add("status", "CANCELLED" if s.status == "cancelled" else "CONFIRMED")
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


def session_ics(session: CalendarSession, public_url: str, kind_labels: Mapping[str, str]) -> bytes:
    cal = _calendar()
    cal.add_component(_event(session, public_url, kind_labels))
    cal.add_missing_timezones()
    return cal.to_ical()


def sessions_feed(sessions: Iterable[CalendarSession], public_url: str, kind_labels: Mapping[str, str]) -> bytes:
    cal = _calendar("Forum ouvert — séances")
    for s in sessions:
        cal.add_component(_event(s, public_url, kind_labels))
    cal.add_missing_timezones()
    return cal.to_ical()
