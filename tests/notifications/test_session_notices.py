"""Session notices: the RSVP confirmation with its calendar file and the session's time written in
French, and the 48-hour reminder sent once by the session-reminders job to whoever holds a seat."""
from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar

from services.notifications import contacts, session_notices
from shared.contracts.forum import (
    RsvpConfirmed, RsvpWaitlisted, RsvpWithdrawn, SessionInfo, SessionScheduled, SessionUpdated,
)
from shared.contracts.registry import MemberRegistered
from tests.notifications.harness import SmtpServer, eventually, handle

pytestmark = pytest.mark.integration


def session(starts_at: datetime, hours: float = 2, revision: int = 0, **changes: object) -> SessionInfo:
    return SessionInfo(session_id=changes.pop("session_id", str(uuid.uuid4())), revision=revision,
                       status="scheduled", title="Plénière de rentrée", kind="plenary", theme=None, description="",
                       starts_at=starts_at, ends_at=starts_at + timedelta(hours=hours), place="CESE, Paris",
                       online_url=None, capacity=10, rsvp_opens_at=starts_at - timedelta(days=30),
                       rsvp_closes_at=starts_at - timedelta(hours=1), agenda=[], updated_at=datetime.now(UTC),
                       **changes)


async def member(service, member_id: str) -> str:  # noqa: ANN001
    email = f"{member_id}@example.org"
    await handle(service, contacts.on_registered,
                 MemberRegistered(member_id=member_id, public_id=member_id, full_name="Alice Martin", email=email,
                                  organisation="", college="citizen", role="member"))
    return email


async def test_confirmation_carries_the_time_in_french_and_the_calendar_file(start, smtp: SmtpServer) -> None:
    s = session(datetime(2031, 7, 15, 8, 0, tzinfo=UTC))  # 10:00 in Paris
    async with start() as service:
        alice, bruno = await member(service, "m-alice"), await member(service, "m-bruno")
        await handle(service, session_notices.on_session_scheduled, SessionScheduled(session=s))
        await handle(service, session_notices.on_rsvp_confirmed,
                     RsvpConfirmed(session_id=s.session_id, member_id="m-alice", seats_left=9))
        await handle(service, session_notices.on_rsvp_waitlisted,
                     RsvpWaitlisted(session_id=s.session_id, member_id="m-bruno", position=2))
        [confirmed] = await eventually(lambda: smtp.to(alice))
        [waitlisted] = await eventually(lambda: smtp.to(bruno))

    assert str(confirmed["Subject"]) == "Inscription confirmée : Plénière de rentrée"
    text = confirmed.get_body(("plain",)).get_content()
    assert "Quand : le mardi 15 juillet 2031 de 10 h 00 à 12 h 00 (heure de Paris)" in text
    assert "Où : CESE, Paris" in text and f"https://forum.example.org/seances/{s.session_id}" in text
    assert "le mardi 15 juillet 2031 de 10 h 00 à 12 h 00 (heure de Paris)" in confirmed.get_body(("html",)).get_content()
    [ics] = [p for p in confirmed.iter_attachments() if p.get_filename() == "invitation.ics"]
    [event] = Calendar.from_ical(ics.get_payload(decode=True)).walk("VEVENT")
    assert event.decoded("dtstart") == s.starts_at

    assert "vous êtes en position 2 sur la liste d'attente" in waitlisted.get_body(("plain",)).get_content()
    assert not [p for p in waitlisted.iter_attachments() if p.get_filename() == "invitation.ics"]


async def test_a_session_over_several_days_says_from_and_to(start, smtp: SmtpServer) -> None:
    s = session(datetime(2031, 6, 30, 15, 0, tzinfo=UTC), hours=24)  # 17:00 Paris, to the next day
    async with start() as service:
        alice = await member(service, "m-alice")
        await handle(service, session_notices.on_session_scheduled, SessionScheduled(session=s))
        await handle(service, session_notices.on_rsvp_confirmed,
                     RsvpConfirmed(session_id=s.session_id, member_id="m-alice", seats_left=9))
        [mail] = await eventually(lambda: smtp.to(alice))
    assert ("Quand : du lundi 30 juin 2031 à 17 h 00 au mardi 1er juillet 2031 à 17 h 00 (heure de Paris)"
            in mail.get_body(("plain",)).get_content())


async def test_the_reminder_goes_once_to_seat_holders_and_again_if_the_session_moves(start, smtp: SmtpServer) -> None:
    # Scheduled beyond 48 hours, so the seats are taken before the reminder is due.
    s = session(datetime.now(UTC).replace(microsecond=0) + timedelta(hours=72))
    async with start(reminder_interval=0.2) as service:
        alice, bruno = await member(service, "m-alice"), await member(service, "m-bruno")
        await handle(service, session_notices.on_session_scheduled, SessionScheduled(session=s))
        for m in ("m-alice", "m-bruno"):
            await handle(service, session_notices.on_rsvp_confirmed,
                         RsvpConfirmed(session_id=s.session_id, member_id=m, seats_left=8))
        await handle(service, session_notices.on_rsvp_withdrawn,
                     RsvpWithdrawn(session_id=s.session_id, member_id="m-bruno", previous_state="confirmed",
                                   reason="member"))

        def reminders(to: str) -> list:
            return [m for m in smtp.to(to) if str(m["Subject"]).startswith("Rappel : ")]

        async def move(hours: int, revision: int) -> None:
            moved = session(datetime.now(UTC).replace(microsecond=0) + timedelta(hours=hours), revision=revision,
                            session_id=s.session_id)
            await handle(service, session_notices.on_session_updated,
                         SessionUpdated(session=moved, changes=["starts_at", "ends_at"], time_or_place_changed=True,
                                        notify_member_ids=["m-alice"]))

        await move(24, revision=1)  # now due
        [first] = await eventually(lambda: reminders(alice))
        assert "dans moins de 48 heures" in first.get_body(("plain",)).get_content()
        await move(26, revision=2)  # moved again: a new reminder for the new time
        await eventually(lambda: len(reminders(alice)) == 2)
        await asyncio.sleep(0.6)  # a few more sweeps: nothing is reminded twice
        assert len([m for m in smtp.to(alice) if str(m["Subject"]).startswith("Changement : ")]) == 2
    assert reminders(bruno) == [] and len(reminders(alice)) == 2
