"""Forum contracts: validation at the edge (what the web front's forms get back as field errors)."""
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from shared.contracts.forum import (
    FORUM_EVENTS, AnswerRsvp, CancelSession, CreateSession, ListSessions, SessionInfo, SessionScheduled, UpdateSession,
)
from shared.contracts.envelope import make_event
from shared.validation import field_errors

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
PARIS_WINTER = timezone(timedelta(hours=1))


def fields(**over: Any) -> dict[str, Any]:
    return {"actor_id": "sec", "title": "Groupe de travail santé", "kind": "working_group", "theme": "health",
            "starts_at": NOW + 48 * H, "ends_at": NOW + 50 * H, "place": "CESE", "capacity": 30,
            "rsvp_opens_at": NOW, "rsvp_closes_at": NOW + 24 * H, "agenda": ["Accueil", "Ateliers"]} | over


def error_of(**over: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as exc:
        CreateSession.model_validate(fields(**over))
    return field_errors(exc.value)


def test_a_valid_session_is_normalised_to_utc() -> None:
    req = CreateSession.model_validate(fields(starts_at="2026-11-24T14:00:00+01:00",
                                              ends_at="2026-11-24T16:00:00+01:00", online_url="  ", place=" CESE "))
    assert req.starts_at == datetime(2026, 11, 24, 13, 0, tzinfo=UTC) and req.starts_at.tzinfo == UTC
    assert req.online_url is None and req.place == "CESE"
    assert req.agenda == ["Accueil", "Ateliers"]


@pytest.mark.parametrize(("over", "field"), [
    ({"ends_at": NOW + 48 * H}, "ends_at"),                          # end = start
    ({"ends_at": NOW + 47 * H}, "ends_at"),                          # end before start
    ({"rsvp_closes_at": NOW + 49 * H}, "rsvp_closes_at"),            # closing after start
    ({"rsvp_opens_at": NOW + 24 * H}, "rsvp_closes_at"),             # opening = closing
    ({"rsvp_opens_at": NOW + 30 * H}, "rsvp_closes_at"),             # opening after closing
    ({"capacity": 0}, "capacity"),
    ({"capacity": -3}, "capacity"),
    ({"capacity": 10_001}, "capacity"),
    ({"title": "ab"}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"kind": "banquet"}, "kind"),
    ({"theme": None}, "theme"),                                      # a working group needs a theme
    ({"theme": "cuisine"}, "theme"),
    ({"place": None}, "online_url"),                                 # neither place nor link
    ({"online_url": "javascript:alert(1)"}, "online_url"),
    ({"agenda": ["ok", ""]}, "agenda.1"),
    ({"agenda": ["x" * 301]}, "agenda.0"),
    ({"agenda": [f"point {i}" for i in range(31)]}, "agenda"),
    ({"starts_at": datetime(2026, 11, 24, 14, 0)}, "starts_at"),     # naive: the time zone is unknown
    ({"surprise": 1}, "surprise"),
])
def test_bad_sessions_are_refused_on_the_right_field(over: dict[str, Any], field: str) -> None:
    assert field in error_of(**over)


def test_error_messages_are_french_sentences() -> None:
    assert error_of(ends_at=NOW)["ends_at"] == "la fin doit être après le début"
    assert "capacité" in error_of(capacity=0)["capacity"]


def test_plenary_may_have_no_theme_and_online_only_is_fine() -> None:
    req = CreateSession.model_validate(fields(kind="plenary", theme=None, place=None,
                                              online_url="https://visio.example.org/x"))
    assert req.theme is None and req.online_url == "https://visio.example.org/x"


def test_paris_times_convert_to_the_same_instant() -> None:
    req = CreateSession.model_validate(fields(starts_at=datetime(2026, 11, 24, 14, tzinfo=PARIS_WINTER),
                                              ends_at=datetime(2026, 11, 24, 16, tzinfo=PARIS_WINTER)))
    assert req.starts_at == datetime(2026, 11, 24, 13, tzinfo=UTC)


def test_other_requests() -> None:
    UpdateSession.model_validate(fields(session_id="s1", expected_revision=0))
    with pytest.raises(ValidationError):
        UpdateSession.model_validate(fields(session_id="s1", expected_revision=-1))
    with pytest.raises(ValidationError):
        CancelSession(actor_id="a", session_id="s", reason="  ")
    with pytest.raises(ValidationError):
        AnswerRsvp.model_validate({"actor_id": "a", "session_id": "s", "answer": "maybe"})
    with pytest.raises(ValidationError):
        ListSessions(limit=0)
    assert ListSessions().when == "upcoming"


def test_events_have_distinct_subjects_under_forum() -> None:
    types = [e.TYPE for e in FORUM_EVENTS]
    assert len(set(types)) == len(types) and all(t.startswith("forum.") for t in types)
    assert {"forum.session.scheduled", "forum.session.updated", "forum.session.cancelled", "forum.rsvp.confirmed",
            "forum.rsvp.waitlisted", "forum.rsvp.promoted", "forum.rsvp.withdrawn", "forum.rsvp.declined",
            "forum.attendance.recorded"} == set(types)


def test_session_event_round_trips_in_the_envelope() -> None:
    info = SessionInfo(session_id="s1", revision=0, status="scheduled", title="T", kind="plenary", theme=None,
                       description="", starts_at=NOW, ends_at=NOW + H, place="CESE", online_url=None, capacity=3,
                       rsvp_opens_at=NOW - H, rsvp_closes_at=NOW, agenda=["a"], updated_at=NOW)
    env = make_event(SessionScheduled(session=info), producer="forum")
    assert env.type == "forum.session.scheduled"
    again = type(env).model_validate_json(env.model_dump_json())
    assert again.data.session.starts_at == NOW
