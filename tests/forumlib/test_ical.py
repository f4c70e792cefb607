"""iCalendar for sessions: one stable UID per session, its revision as SEQUENCE, the caller's label
for its kind, and a cancelled session as a CANCELLED event (so calendars remove it)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from icalendar import Calendar

from forumlib.ical import session_ics, session_uid, sessions_feed

T0 = datetime(2030, 7, 14, 12, 5, tzinfo=UTC)
LABELS = {"plenary": "Séance plénière", "working_group": "Groupe de travail"}


@dataclass(frozen=True)
class Session:
    session_id: str = "s-1"
    revision: int = 3
    status: str = "scheduled"
    kind: str = "plenary"
    title: str = "Plénière d'été"
    description: str = "Point d'étape."
    starts_at: datetime = T0
    ends_at: datetime = T0 + timedelta(hours=2)
    place: str | None = "CESE, Paris"
    online_url: str | None = None
    agenda: list[str] = field(default_factory=lambda: ["Ouverture", "Engagement 5"])
    updated_at: datetime = T0 - timedelta(days=3)


def events(ics: bytes) -> list:
    return [c for c in Calendar.from_ical(ics).walk("VEVENT")]


def test_one_session() -> None:
    (ev,) = events(session_ics(Session(), "https://forum.example/", LABELS))
    assert str(ev["uid"]) == session_uid("s-1") == "session-s-1@forum-ouvert"
    assert ev["sequence"] == 3 and str(ev["status"]) == "CONFIRMED"
    assert str(ev["summary"]) == "Séance plénière — Plénière d'été"
    assert ev.decoded("dtstart") == T0 and str(ev["dtstart"].params["TZID"]) == "Europe/Paris"
    assert str(ev["url"]) == "https://forum.example/seances/s-1" and str(ev["location"]) == "CESE, Paris"
    assert "1. Ouverture\n2. Engagement 5" in str(ev["description"])


def test_feed_of_sessions_with_a_cancelled_one_online() -> None:
    cancelled = Session(session_id="s-2", status="cancelled", kind="working_group", place=None,
                        online_url="https://visio.example/s-2")
    first, second = events(sessions_feed([Session(), cancelled], "https://forum.example", LABELS))
    assert str(first["status"]) == "CONFIRMED" and str(second["status"]) == "CANCELLED"
    assert str(second["summary"]).startswith("Groupe de travail — ")
    assert str(second["location"]) == "https://visio.example/s-2"
    assert "En ligne : https://visio.example/s-2" in str(second["description"])
