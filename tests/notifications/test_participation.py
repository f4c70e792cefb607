"""Participation notices: a vote that opens is mailed to its electorate as the forum counts it
(approved members but not the secretariat, or only those checked in at the session), and minutes
open for review to the session's attendees, with the deadline in French. Notifications learns who is
approved, secretariat or present from registry and forum events (a corrected check-in removes)."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from forumlib.majority_judgment import GRADES
from services.notifications import contacts, participation, session_notices
from services.notifications.models import Delivery, MemberPreference, NoticeAttendee, Recipient
from shared.contracts.decisions import Eligibility, VoteInfo, VoteOpened, VoteOption
from shared.contracts.envelope import Envelope, make_event
from shared.contracts.forum import AttendanceRecorded, SessionInfo, SessionScheduled
from shared.contracts.minutes import MinutesReviewOpened
from shared.contracts.notifications import DeliveryState, MemberNoticeKind
from shared.contracts.registry import MemberApproved, MemberRegistered, Role, RoleGranted
from shared.errors import RetryLater
from shared.service import Service
from tests.notifications.harness import SmtpServer, eventually, handle

pytestmark = pytest.mark.integration

CLOSES = datetime(2031, 7, 14, 12, 5, tzinfo=UTC)  # 14 h 05 in Paris
UNFINISHED = {DeliveryState.QUEUED, DeliveryState.SENDING, DeliveryState.DEFERRED}


async def member(service: Service, name: str, *, approved: bool = True, role: Role = Role.MEMBER) -> str:
    """A member as the registry's events describe them; returns their address."""
    member_id, email = f"m-{name}", f"{name}@example.org"
    await handle(service, contacts.on_registered,
                 MemberRegistered(member_id=member_id, public_id=member_id, full_name=name.capitalize() + " Martin",
                                  email=email, organisation="", college="citizen", role="member"))
    if approved:
        await handle(service, participation.on_member_approved_flag,
                     MemberApproved(member_id=member_id, public_id=member_id, college="citizen"))
    if role == Role.SECRETARIAT:
        await handle(service, participation.on_role_granted, RoleGranted(member_id=member_id, role=role))
    return email


async def check_in(service: Service, session_id: str, name: str, present: bool = True) -> None:
    await handle(service, participation.on_attendance_recorded,
                 AttendanceRecorded(session_id=session_id, member_id=f"m-{name}", public_id=None, college="citizen",
                                    present=present, walk_in=False))


def vote(session_id: str, eligibility: Eligibility, question: str = "Quelle priorité pour le plan d'action ?",
         opens_at: datetime | None = None) -> VoteInfo:
    return VoteInfo(vote_id=str(uuid.uuid4()), session_id=session_id, agenda_position=1,
                    agenda_text="Priorités du plan d'action national", question=question,
                    options=[VoteOption(option_id=1, label="Données ouvertes"),
                             VoteOption(option_id=2, label="Participation citoyenne")],
                    grades=list(GRADES),
                    eligibility=eligibility, opens_at=opens_at or datetime.now(UTC), closes_at=CLOSES)


async def outcomes(service: Service, event: Envelope) -> dict[str, str]:
    """Member → delivery state of the e-mails queued for `event`, once none is still on its way."""
    async def settled() -> dict[str, str] | None:
        async with service.db.read() as tx:
            rows = (await tx.exec(select(Delivery).where(Delivery.event_id == str(event.event_id)))).all()
        states = {d.member_id: d.status for d in rows}
        return None if any(s in UNFINISHED for s in states.values()) else states or None
    return await eventually(settled)


def text_of(mail) -> str:  # noqa: ANN001 - an EmailMessage
    return mail.get_body(("plain",)).get_content().replace("\r\n", "\n")


def html_of(mail) -> str:  # noqa: ANN001
    return mail.get_body(("html",)).get_content()


async def test_a_vote_open_to_approved_members_reaches_each_of_them_and_no_one_else(start, smtp: SmtpServer) -> None:
    async with start() as service:
        alice, bruno = await member(service, "alice"), await member(service, "bruno")
        pending = await member(service, "chloe", approved=False)
        secretariat = await member(service, "sacha", role=Role.SECRETARIAT)
        v = vote(str(uuid.uuid4()), Eligibility.APPROVED_MEMBERS)
        event = await handle(service, participation.on_vote_opened, VoteOpened(vote=v))
        assert await outcomes(service, event) == {"m-alice": DeliveryState.SENT, "m-bruno": DeliveryState.SENT}
        [mail] = smtp.to(alice)
        assert len(smtp.to(bruno)) == 1 and smtp.to(pending) == [] and smtp.to(secretariat) == []

    assert str(mail["Subject"]) == "Vote ouvert : Quelle priorité pour le plan d'action ?"
    text = text_of(mail)
    assert text.startswith("Bonjour Alice Martin,")
    assert "Un vote est ouvert à tous les membres validés du forum" in text
    assert "Clôture du vote : lundi 14 juillet 2031 à 14 h 05 (heure de Paris)" in text
    assert "- Données ouvertes\n- Participation citoyenne" in text and "Ouverture du vote" not in text
    assert f"https://forum.example.org/votes/{v.vote_id}" in text
    html = html_of(mail)
    assert f'href="https://forum.example.org/votes/{v.vote_id}"' in html and "<li>Participation citoyenne</li>" in html
    assert "lundi 14 juillet 2031 à 14 h 05" in html and "priorité pour le plan d&#39;action" in html


async def test_a_vote_among_attendees_reaches_only_approved_members_checked_in(start, smtp: SmtpServer) -> None:
    start_at = datetime(2031, 7, 1, 8, 0, tzinfo=UTC)
    s = SessionInfo(session_id=str(uuid.uuid4()), revision=0, status="scheduled", title="Plénière de rentrée",
                    kind="plenary", theme=None, description="", starts_at=start_at,
                    ends_at=start_at + timedelta(hours=2), place="CESE, Paris", online_url=None, capacity=10,
                    rsvp_opens_at=start_at - timedelta(days=30), rsvp_closes_at=start_at - timedelta(hours=1),
                    agenda=[], updated_at=datetime.now(UTC))
    async with start() as service:
        await handle(service, session_notices.on_session_scheduled, SessionScheduled(session=s))
        alice, bruno = await member(service, "alice"), await member(service, "bruno")
        chloe, dan = await member(service, "chloe", approved=False), await member(service, "dan")
        await member(service, "sacha", role=Role.SECRETARIAT)
        for name in ("alice", "bruno", "chloe", "sacha"):
            await check_in(service, s.session_id, name)
        await check_in(service, s.session_id, "bruno", present=False)  # checked in by mistake, corrected
        await check_in(service, str(uuid.uuid4()), "dan")  # present at another session only
        later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
        v = vote(s.session_id, Eligibility.ATTENDEES, opens_at=later)
        event = await handle(service, participation.on_vote_opened, VoteOpened(vote=v))
        assert await outcomes(service, event) == {"m-alice": DeliveryState.SENT}
        [mail] = smtp.to(alice)
        assert smtp.to(bruno) == smtp.to(chloe) == smtp.to(dan) == []

    text = text_of(mail)
    assert "Un vote est ouvert aux membres présents à la séance « Plénière de rentrée »" in text
    assert "Ouverture du vote : " in text and "Clôture du vote : lundi 14 juillet 2031" in text


async def test_minutes_review_reaches_the_attendees_and_again_when_its_date_moves(start, smtp: SmtpServer) -> None:
    session_id, minutes_id = str(uuid.uuid4()), str(uuid.uuid4())
    until = datetime(2031, 9, 1, 15, 30, tzinfo=UTC)  # 17 h 30 in Paris
    async with start() as service:
        alice, bruno = await member(service, "alice"), await member(service, "bruno")
        chloe, dan = await member(service, "chloe", approved=False), await member(service, "dan")
        for name in ("alice", "bruno", "chloe"):
            await check_in(service, session_id, name)
        await check_in(service, session_id, "bruno", present=False)
        opened = await handle(service, participation.on_minutes_review_opened, MinutesReviewOpened(
            minutes_id=minutes_id, session_id=session_id, until=until, session_title="Atelier « données » 🚲"))
        # Whoever attended reviews, approved or not; no one else.
        assert await outcomes(service, opened) == {"m-alice": DeliveryState.SENT, "m-chloe": DeliveryState.SENT}
        assert len(smtp.to(chloe)) == 1 and smtp.to(bruno) == smtp.to(dan) == []
        moved = await handle(service, participation.on_minutes_review_opened, MinutesReviewOpened(
            minutes_id=minutes_id, session_id=session_id, until=until + timedelta(days=7),
            session_title="Atelier « données » 🚲", moved=True))
        assert await outcomes(service, moved) == {"m-alice": DeliveryState.SENT, "m-chloe": DeliveryState.SENT}
        first, second = smtp.to(alice)

    assert str(first["Subject"]) == "Compte rendu à relire : Atelier « données » 🚲"
    text = text_of(first)
    assert "Le projet de compte rendu de la séance « Atelier « données » 🚲 »" in text
    assert "jusqu'au lundi 1er septembre 2031 à 17 h 30 (heure de Paris)" in text
    link = f"https://forum.example.org/comptes-rendus/{minutes_id}/relecture"
    assert link in text and f'href="{link}"' in html_of(first)
    assert str(second["Subject"]) == "Nouvelle date de relecture : Atelier « données » 🚲"
    assert "nouvelle date de fin" in text_of(second) and "lundi 8 septembre 2031 à 17 h 30" in text_of(second)


async def test_a_member_who_stopped_a_kind_of_notice_does_not_get_it(start, smtp: SmtpServer) -> None:
    session_id = str(uuid.uuid4())
    async with start() as service:
        alice, bruno = await member(service, "alice"), await member(service, "bruno")
        for name in ("alice", "bruno"):
            await check_in(service, session_id, name)
        async with service.db.transaction() as tx:
            tx.add(MemberPreference(member_id="m-bruno", kind=MemberNoticeKind.VOTES.value))
            tx.add(MemberPreference(member_id="m-alice", kind=MemberNoticeKind.MINUTES_REVIEW.value))
        voted = await handle(service, participation.on_vote_opened,
                             VoteOpened(vote=vote(session_id, Eligibility.ATTENDEES)))
        review = await handle(service, participation.on_minutes_review_opened, MinutesReviewOpened(
            minutes_id=str(uuid.uuid4()), session_id=session_id, until=CLOSES, session_title="Plénière"))
        assert (await outcomes(service, voted)).get("m-alice") == DeliveryState.SENT
        assert (await outcomes(service, review)).get("m-bruno") == DeliveryState.SENT
        assert (await outcomes(service, voted)).get("m-bruno") in (None, DeliveryState.SUPPRESSED)
        assert (await outcomes(service, review)).get("m-alice") in (None, DeliveryState.SUPPRESSED)
    assert [str(m["Subject"]) for m in smtp.to(alice)] == ["Vote ouvert : Quelle priorité pour le plan d'action ?"]
    assert [str(m["Subject"]) for m in smtp.to(bruno)] == ["Compte rendu à relire : Plénière"]


async def test_flags_and_check_ins_follow_the_events(start) -> None:
    session_id = str(uuid.uuid4())
    async with start() as service:
        approved_early = make_event(MemberApproved(member_id="m-eve", public_id="m-eve", college=None),
                                    producer="test")
        async with service.unit_of_work() as uow:  # approval seen before the registration: retried later
            with pytest.raises(RetryLater):
                await participation.on_member_approved_flag(approved_early, uow)
        await member(service, "eve", approved=False)
        await handle(service, participation.on_member_approved_flag, approved_early.data)
        await member(service, "sacha", approved=False)
        await handle(service, participation.on_role_granted, RoleGranted(member_id="m-sacha", role=Role.MEMBER))
        async with service.db.read() as tx:
            assert (await tx.get(Recipient, "m-sacha")).secretariat is False
        await handle(service, participation.on_role_granted, RoleGranted(member_id="m-sacha", role=Role.SECRETARIAT))
        await check_in(service, session_id, "eve")
        await check_in(service, session_id, "eve")  # the same check-in twice keeps one row
        await check_in(service, session_id, "sacha")
        await check_in(service, session_id, "sacha", present=False)
        await check_in(service, session_id, "zoe", present=False)  # a correction for someone never checked in
        async with service.db.read() as tx:
            eve, sacha = await tx.get(Recipient, "m-eve"), await tx.get(Recipient, "m-sacha")
            present = (await tx.exec(select(NoticeAttendee.member_id)
                                     .where(NoticeAttendee.session_id == session_id))).all()
    assert (eve.approved, eve.secretariat) == (True, False)
    assert (sacha.approved, sacha.secretariat) == (False, True)
    assert list(present) == ["m-eve"]
