"""Forum commands and queries over the real broker and database: sessions, RSVPs and the waitlist,
edits and cancellation, check-in and attendance, the member projection — and every bad input, each
a clear typed error with nothing half-written.

Long because each rule is checked against the real broker and database in one shared forum."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from services.forum.models import ForumMember, ForumRsvp, ForumSession, MemberStanding
from shared.contracts.common import ErrorCode
from shared.contracts.forum import (
    AnswerRsvp, AttendanceRecorded, CancelSession, CheckIn, CreateSession, GetAttendance, GetSession, ListRsvps,
    ListSessions, RsvpConfirmed, RsvpDeclined, RsvpPromoted, RsvpView, RsvpWaitlisted, RsvpWithdrawn,
    SessionCancelled, SessionScheduled, SessionUpdated, SessionView, UpdateSession, WithdrawRsvp,
)
from shared.contracts.registry import College, MemberApproved, MemberErased, ProfileUpdated, Role
from shared.clock import utcnow
from shared.outbox import OutboxMessage
from tests.forum.harness import ForumHarness, running_forum, session_fields

pytestmark = pytest.mark.integration
H = timedelta(hours=1)


@pytest.fixture(scope="module")
async def h(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ForumHarness]:
    async with running_forum(tmp_path_factory.mktemp("forum-sessions")) as harness:
        yield harness


async def rsvp(h: ForumHarness, member: str, session_id: str, answer: str = "attend") -> RsvpView:
    return await h.call(AnswerRsvp(actor_id=member, session_id=session_id, answer=answer))


async def withdraw(h: ForumHarness, member: str, session_id: str) -> RsvpView:
    return await h.call(WithdrawRsvp(actor_id=member, session_id=session_id))


async def get(h: ForumHarness, session_id: str, actor_id: str | None = None) -> SessionView:
    return await h.call(GetSession(session_id=session_id, actor_id=actor_id))


async def update(h: ForumHarness, view: SessionView, **over: Any) -> SessionView:
    data = {k: getattr(view, k) for k in ("title", "kind", "theme", "description", "starts_at", "ends_at", "place",
                                          "online_url", "capacity", "rsvp_opens_at", "rsvp_closes_at")}
    data["agenda"] = [a.text for a in view.agenda]
    req = UpdateSession.model_validate(data | {"actor_id": await h.secretariat(), "session_id": view.session_id} | over)
    return await h.call(req)


async def row_counts(h: ForumHarness) -> tuple[int, int, int]:
    """(sessions, rsvps, outbox rows): what a refused command must leave unchanged."""
    async with h.service.db.read() as tx:
        return tuple([(await tx.exec(select(func.count()).select_from(t))).one()  # type: ignore[return-value]
                      for t in (ForumSession, ForumRsvp, OutboxMessage)])


# ================================================================ sessions
async def test_schedule_a_session_and_read_it_back(h: ForumHarness) -> None:
    created = await h.create_session(title="Groupe de travail : santé", kind="working_group", theme="health",
                                     capacity=12, agenda=["Accueil", "Retour des ateliers", "Suite"])
    assert created.revision == 0 and created.status == "scheduled" and created.phase == "upcoming"
    assert created.seats_left == 12 and created.rsvp_open

    view = await get(h, created.session_id)
    assert view.title == "Groupe de travail : santé" and view.theme == "health"
    assert [(a.position, a.text) for a in view.agenda] == [(1, "Accueil"), (2, "Retour des ateliers"), (3, "Suite")]
    assert view.starts_at.utcoffset() == timedelta(0)
    assert view.starts_at == created.starts_at and view.my_rsvp is None and view.attendance is None

    upcoming = await h.call(ListSessions())
    assert created.session_id in [s.session_id for s in upcoming.sessions]
    starts = [s.starts_at for s in upcoming.sessions]
    assert starts == sorted(starts)
    past = await h.call(ListSessions(when="past"))
    assert created.session_id not in [s.session_id for s in past.sessions]
    health = await h.call(ListSessions(theme="health", kind="working_group"))
    assert [s.session_id for s in health.sessions] == [created.session_id] and health.total == 1

    [event] = await h.emitted(SessionScheduled, created.session_id)
    assert event["session"]["agenda"] == ["Accueil", "Retour des ateliers", "Suite"]
    assert event["session"]["starts_at"].endswith("Z") or event["session"]["starts_at"].endswith("+00:00")


async def test_only_the_secretariat_schedules(h: ForumHarness) -> None:
    member = await h.member()
    before = await row_counts(h)
    await h.error_raw(CreateSession, session_fields(member), ErrorCode.FORBIDDEN)
    await h.error_raw(CreateSession, session_fields("nobody-we-know"), ErrorCode.FORBIDDEN)
    assert await row_counts(h) == before


def _json(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in fields.items()}


@pytest.mark.parametrize(("over", "field"), [
    ({"ends_at": "start-1h"}, "ends_at"),
    ({"rsvp_closes_at": "start+1h"}, "rsvp_closes_at"),
    ({"rsvp_opens_at": "start+0h"}, "rsvp_closes_at"),
    ({"capacity": 0}, "capacity"),
    ({"title": "x"}, "title"),
    ({"kind": "apéritif"}, "kind"),
    ({"kind": "working_group", "theme": None}, "theme"),
    ({"agenda": ["Accueil", "x" * 400]}, "agenda.1"),
    ({"starts_at": "naive"}, "starts_at"),
])
async def test_bad_session_input_is_refused_and_nothing_is_written(h: ForumHarness, over: dict[str, Any],
                                                                   field: str) -> None:
    fields = _json(session_fields(await h.secretariat()))
    start = session_fields("x")["starts_at"]
    for k, v in list(over.items()):
        if isinstance(v, str) and v.startswith("start"):
            over[k] = (start + int(v[5:-1]) * H).isoformat()
        elif v == "naive":
            over[k] = start.replace(tzinfo=None).isoformat()
    before = await row_counts(h)
    err = await h.error_raw(CreateSession, fields | over, ErrorCode.INVALID, field)
    assert err.error.message
    assert await row_counts(h) == before


# ================================================================ RSVP, waitlist, promotion
async def test_rsvp_waitlist_and_promotion_in_order(h: ForumHarness) -> None:
    a, b, c, d = [await h.member() for _ in range(4)]
    sid = (await h.create_session(capacity=2)).session_id

    ra, rb = await rsvp(h, a, sid), await rsvp(h, b, sid)
    assert (ra.state, ra.seats_left, rb.state, rb.seats_left) == ("confirmed", 1, "confirmed", 0)
    rc, rd = await rsvp(h, c, sid), await rsvp(h, d, sid)
    assert (rc.state, rc.waitlist_position, rd.state, rd.waitlist_position) == ("waitlisted", 1, "waitlisted", 2)

    view = await get(h, sid, d)
    assert (view.seats_left, view.confirmed_count, view.waitlist_count) == (0, 2, 2)
    assert view.my_rsvp and view.my_rsvp.state == "waitlisted" and view.my_rsvp.waitlist_position == 2
    listed = await h.call(ListSessions(actor_id=c))
    mine = next(s for s in listed.sessions if s.session_id == sid).my_rsvp
    assert mine and mine.waitlist_position == 1

    # A seat frees: the first waitlisted (c) is promoted in the same transaction, d moves up.
    out = await withdraw(h, a, sid)
    assert out.state == "withdrawn" and out.seats_left == 0
    assert (await get(h, sid, c)).my_rsvp.state == "confirmed"  # type: ignore[union-attr]
    assert (await get(h, sid, d)).my_rsvp.waitlist_position == 1  # type: ignore[union-attr]
    assert [e["member_id"] for e in await h.emitted(RsvpPromoted, sid)] == [c]
    assert (await h.emitted(RsvpWithdrawn, sid))[0] | {} == {"session_id": sid, "member_id": a,
                                                              "previous_state": "confirmed", "reason": "member"}

    # A confirmed member changes their mind and declines: d is promoted.
    declined = await rsvp(h, b, sid, "decline")
    assert declined.state == "declined"
    assert [e["member_id"] for e in await h.emitted(RsvpPromoted, sid)] == [c, d]
    assert [e["previous_state"] for e in await h.emitted(RsvpDeclined, sid)] == ["confirmed"]

    # Coming back to a full session (c and d hold both seats): a queues at the end.
    back = await rsvp(h, a, sid)
    assert (back.state, back.waitlist_position) == ("waitlisted", 1)
    await withdraw(h, a, sid)  # leaving the waitlist promotes nobody
    assert [e["member_id"] for e in await h.emitted(RsvpPromoted, sid)] == [c, d]

    assert len(await h.emitted(RsvpConfirmed, sid)) == 2
    assert [e["position"] for e in await h.emitted(RsvpWaitlisted, sid)] == [1, 2, 1]


async def test_rsvp_twice_and_other_refusals_leave_nothing_behind(h: ForumHarness) -> None:
    m, other = await h.member(), await h.member()
    sid = (await h.create_session(capacity=1)).session_id
    await rsvp(h, m, sid)
    await rsvp(h, other, sid)  # waitlisted
    before = await row_counts(h)
    await h.error(AnswerRsvp(actor_id=m, session_id=sid, answer="attend"), ErrorCode.CONFLICT, "answer")
    await h.error(AnswerRsvp(actor_id=other, session_id=sid, answer="attend"), ErrorCode.CONFLICT, "answer")
    assert await row_counts(h) == before

    await rsvp(h, m, sid, "decline")
    await h.error(AnswerRsvp(actor_id=m, session_id=sid, answer="decline"), ErrorCode.CONFLICT, "answer")
    never = await h.member()
    await h.error(WithdrawRsvp(actor_id=never, session_id=sid), ErrorCode.CONFLICT)
    await h.error_raw(AnswerRsvp, {"actor_id": m, "session_id": sid, "answer": "peut-être"}, ErrorCode.INVALID,
                      "answer")
    await h.error_raw(AnswerRsvp, {"actor_id": m, "session_id": sid}, ErrorCode.INVALID, "answer")


async def test_rsvp_outside_the_window_or_to_a_dead_session_is_refused(h: ForumHarness) -> None:
    m = await h.member()
    now = utcnow()
    not_yet = await h.create_session(rsvp_opens_at=now + H, rsvp_closes_at=now + 2 * H,
                                     starts_at=now + 3 * H, ends_at=now + 4 * H)
    closed = await h.create_session(rsvp_opens_at=now - 3 * H, rsvp_closes_at=now - H,
                                    starts_at=now + H, ends_at=now + 2 * H)
    past = await h.create_session(rsvp_opens_at=now - 9 * H, rsvp_closes_at=now - 8 * H,
                                  starts_at=now - 4 * H, ends_at=now - 2 * H)
    cancelled = await h.create_session()
    await h.call(CancelSession(actor_id=await h.secretariat(), session_id=cancelled.session_id,
                               reason="Salle indisponible"))
    assert not (await get(h, not_yet.session_id)).rsvp_open and past.phase == "past"

    before = await row_counts(h)
    for session, code in ((not_yet, ErrorCode.CONFLICT), (closed, ErrorCode.EXPIRED), (past, ErrorCode.EXPIRED),
                          (cancelled, ErrorCode.CONFLICT)):
        err = await h.error(AnswerRsvp(actor_id=m, session_id=session.session_id, answer="attend"), code,
                            "session_id")
        assert err.error.message
        await h.error(WithdrawRsvp(actor_id=m, session_id=session.session_id), code)
    await h.error(AnswerRsvp(actor_id=m, session_id="no-such-session", answer="attend"),
                  ErrorCode.NOT_FOUND, "session_id")
    await h.error(GetSession(session_id="no-such-session"), ErrorCode.NOT_FOUND, "session_id")
    assert await row_counts(h) == before


async def test_only_approved_members_rsvp(h: ForumHarness) -> None:
    sid = (await h.create_session()).session_id
    registered = await h.register()
    before = await row_counts(h)
    await h.error(AnswerRsvp(actor_id=registered, session_id=sid, answer="attend"), ErrorCode.FORBIDDEN)
    await h.error(AnswerRsvp(actor_id="stranger", session_id=sid, answer="attend"), ErrorCode.FORBIDDEN)
    assert await row_counts(h) == before
    # Approval arrives as an event: from then on the member may answer.
    await h.publish(MemberApproved(member_id=registered, public_id="pub-reg", college=College.CIVIL_SOCIETY))
    await h.wait_members([registered])
    assert (await rsvp(h, registered, sid)).state == "confirmed"


# ================================================================ edits and cancellation
async def test_edit_notifies_holders_of_time_or_place_changes(h: ForumHarness) -> None:
    a, b = await h.member(), await h.member()
    view = await h.create_session(capacity=1)
    await rsvp(h, a, view.session_id)
    await rsvp(h, b, view.session_id)

    moved = await update(h, view, place="Salle 2, CESE", expected_revision=0, agenda=["Ouverture", "Débat"])
    assert moved.revision == 1 and moved.place == "Salle 2, CESE"
    assert [i.text for i in moved.agenda] == ["Ouverture", "Débat"]
    [event] = await h.emitted(SessionUpdated, view.session_id)
    assert event["time_or_place_changed"] is True and set(event["changes"]) == {"place", "agenda"}
    assert sorted(event["notify_member_ids"]) == sorted([a, b]) and event["session"]["revision"] == 1

    retitled = await update(h, moved, title="Plénière d'automne")
    [_, event2] = await h.emitted(SessionUpdated, view.session_id)
    assert retitled.revision == 2 and event2["time_or_place_changed"] is False and event2["changes"] == ["title"]

    same = await update(h, retitled)  # nothing changed: no event, no new revision (no e-mail, no SEQUENCE bump)
    assert same.revision == 2 and len(await h.emitted(SessionUpdated, view.session_id)) == 2

    before = await row_counts(h)
    await h.error(UpdateSession.model_validate(
        session_fields(await h.secretariat()) | {"session_id": view.session_id, "expected_revision": 0}),
        ErrorCode.CONFLICT, "expected_revision")
    await h.error(UpdateSession.model_validate(
        session_fields(await h.secretariat()) | {"session_id": "nope"}), ErrorCode.NOT_FOUND, "session_id")
    member_edit = UpdateSession.model_validate(session_fields(a) | {"session_id": view.session_id})
    await h.error(member_edit, ErrorCode.FORBIDDEN)
    assert await row_counts(h) == before


async def test_capacity_changes(h: ForumHarness) -> None:
    members = [await h.member() for _ in range(6)]
    view = await h.create_session(capacity=3)
    for m in members:
        await rsvp(h, m, view.session_id)  # 3 confirmed, 3 waitlisted

    before = await row_counts(h)
    err = await h.error(_update_req(await h.secretariat(), view, capacity=2), ErrorCode.CONFLICT, "capacity")
    assert "3" in err.error.message
    assert await row_counts(h) == before
    assert (await get(h, view.session_id)).capacity == 3

    raised = await update(h, view, capacity=5)
    assert (raised.capacity, raised.confirmed_count, raised.waitlist_count, raised.seats_left) == (5, 5, 1, 0)
    promoted = await h.emitted(RsvpPromoted, view.session_id)
    assert [e["member_id"] for e in promoted] == members[3:5]
    assert {e["cause"] for e in promoted} == {"capacity_raised"}
    assert (await get(h, view.session_id, members[5])).my_rsvp.waitlist_position == 1  # type: ignore[union-attr]
    exact = await update(h, raised, capacity=5)  # down to exactly the confirmed count: allowed (here unchanged)
    assert exact.revision == raised.revision


def _update_req(actor: str, view: SessionView, **over: Any) -> UpdateSession:
    data = {k: getattr(view, k) for k in ("title", "kind", "theme", "description", "starts_at", "ends_at", "place",
                                          "online_url", "capacity", "rsvp_opens_at", "rsvp_closes_at")}
    return UpdateSession.model_validate(data | {"agenda": [a.text for a in view.agenda], "actor_id": actor,
                                                "session_id": view.session_id} | over)


async def test_cancel_a_session(h: ForumHarness) -> None:
    a = await h.member()
    view = await h.create_session()
    await rsvp(h, a, view.session_id)
    sec = await h.secretariat()
    await h.error_raw(CancelSession, {"actor_id": sec, "session_id": view.session_id, "reason": " "},
                      ErrorCode.INVALID, "reason")
    await h.error(CancelSession(actor_id=a, session_id=view.session_id, reason="Je préfère pas"),
                  ErrorCode.FORBIDDEN)
    done = await h.call(CancelSession(actor_id=sec, session_id=view.session_id, reason="Grève des transports"))
    assert (done.status, done.cancel_reason, done.revision, done.rsvp_open) == ("cancelled", "Grève des transports",
                                                                                1, False)
    [event] = await h.emitted(SessionCancelled, view.session_id)
    assert event["notify_member_ids"] == [a] and event["session"]["status"] == "cancelled"
    await h.error(CancelSession(actor_id=sec, session_id=view.session_id, reason="Encore"),
                  ErrorCode.CONFLICT)
    await h.error(_update_req(sec, done), ErrorCode.CONFLICT)
    without = await h.call(ListSessions(include_cancelled=False))
    assert view.session_id not in [s.session_id for s in without.sessions]


# ================================================================ secretariat list, check-in, attendance
async def test_secretariat_list_and_check_in(h: ForumHarness) -> None:
    sec = await h.secretariat()
    c1 = await h.member(College.CIVIL_SOCIETY, name="Alix Bernard")
    c2 = await h.member(College.PUBLIC_ACTOR, name="Bo Durand")
    w1 = await h.member(College.CITIZEN, name="Cy Petit")
    no = await h.member(College.CITIZEN, name="Dé Clin")
    walk = await h.member(College.CITIZEN, name="Ève Passante")
    view = await h.create_session(capacity=2)
    sid = view.session_id
    for m in (c1, c2, w1):
        await rsvp(h, m, sid)
    await rsvp(h, no, sid, "decline")
    await h.publish(ProfileUpdated(member_id=c1, full_name="Alix Bernard-Roy", organisation="Réseau"))

    await h.error(ListRsvps(actor_id=c1, session_id=sid), ErrorCode.FORBIDDEN)

    checked = await h.call(CheckIn(actor_id=sec, session_id=sid, member_id=c1))
    assert (checked.present, checked.walk_in, checked.counts.total) == (True, False, 1)
    again = await h.call(CheckIn(actor_id=sec, session_id=sid, member_id=c1))
    assert again.counts.total == 1  # idempotent
    walked = await h.call(CheckIn(actor_id=sec, session_id=sid, member_id=walk))
    assert walked.walk_in is True
    waitlisted_came = await h.call(CheckIn(actor_id=sec, session_id=sid, member_id=w1))
    assert waitlisted_came.walk_in is True
    undone = await h.call(CheckIn(actor_id=sec, session_id=sid, member_id=w1, present=False))
    assert (undone.present, undone.counts.total) == (False, 2)
    assert undone.counts.by_college == {"public_actor": 0, "civil_society": 1, "citizen": 1}
    assert undone.counts.final is False

    registered = await h.register()
    await h.error(CheckIn(actor_id=sec, session_id=sid, member_id=registered), ErrorCode.FORBIDDEN,
                  "member_id")
    await h.error(CheckIn(actor_id=c1, session_id=sid, member_id=c2), ErrorCode.FORBIDDEN)
    await h.error(CheckIn(actor_id=sec, session_id="nope", member_id=c2), ErrorCode.NOT_FOUND)
    future = await h.create_session(starts_at=utcnow() + 72 * H, ends_at=utcnow() + 74 * H)
    await h.error(CheckIn(actor_id=sec, session_id=future.session_id, member_id=c2), ErrorCode.CONFLICT)

    recorded = await h.emitted(AttendanceRecorded, sid)
    assert [(e["member_id"], e["present"], e["walk_in"]) for e in recorded] == [
        (c1, True, False), (walk, True, True), (w1, True, True), (w1, False, True)]
    assert recorded[0]["college"] == "civil_society"

    await _until(lambda: _name(h, c1), "Alix Bernard-Roy")
    lst = await h.call(ListRsvps(actor_id=sec, session_id=sid))
    assert [e.member_id for e in lst.confirmed] == [c1, c2]
    assert [(e.member_id, e.waitlist_position) for e in lst.waitlisted] == [(w1, 1)]
    assert [e.member_id for e in lst.declined] == [no]
    assert lst.confirmed[0].full_name == "Alix Bernard-Roy" and lst.confirmed[0].organisation == "Réseau"
    assert lst.confirmed[0].attended and not lst.confirmed[1].attended
    assert {(a.member_id, a.walk_in) for a in lst.attendees} == {(c1, False), (walk, True)}
    assert lst.session.confirmed_count == 2


async def _name(h: ForumHarness, member_id: str) -> str:
    async with h.service.db.read() as tx:
        m = await tx.get(ForumMember, member_id)
        return m.full_name if m else ""


async def _until(probe: Any, expected: Any, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (got := await probe()) != expected:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{got!r} != {expected!r}")
        await asyncio.sleep(0.05)


async def test_attendance_counts_per_college_after_the_session(h: ForumHarness) -> None:
    sec = await h.secretariat()
    now = utcnow()
    past = await h.create_session(rsvp_opens_at=now - 30 * H, rsvp_closes_at=now - 26 * H,
                                  starts_at=now - 25 * H, ends_at=now - 23 * H, title="Plénière d'hier")
    came = [await h.member(c) for c in (College.CITIZEN, College.CITIZEN, College.CIVIL_SOCIETY)]
    for m in came:
        await h.call(CheckIn(actor_id=sec, session_id=past.session_id, member_id=m))
    counts = await h.call(GetAttendance(session_id=past.session_id))
    assert (counts.final, counts.total) == (True, 3)
    assert counts.by_college == {"public_actor": 0, "civil_society": 1, "citizen": 2}
    view = await get(h, past.session_id)
    assert view.phase == "past" and view.attendance == counts
    listed = await h.call(ListSessions(when="past"))
    mine = next(s for s in listed.sessions if s.session_id == past.session_id)
    assert mine.attendance and mine.attendance.total == 3
    ends = [s.ends_at for s in listed.sessions]
    assert ends == sorted(ends, reverse=True)
    upcoming = await get(h, (await h.create_session()).session_id)
    assert upcoming.attendance is None  # only after the session


# ================================================================ the member projection, erasure
async def test_members_are_projected_from_registry_events(h: ForumHarness) -> None:
    sec = await h.secretariat()
    member = await h.member(College.PUBLIC_ACTOR)
    async with h.service.db.read() as tx:
        assert (await tx.get(ForumMember, sec)).role == Role.SECRETARIAT  # type: ignore[union-attr]
        m = await tx.get(ForumMember, member)
    assert m is not None
    assert (m.standing, m.college, m.full_name) == (MemberStanding.APPROVED, College.PUBLIC_ACTOR,
                                                     "Camille Martin")


async def test_erasure_releases_seats_and_promotes(h: ForumHarness) -> None:
    gone, waiting = await h.member(name="Gaëlle Partie"), await h.member()
    s1 = (await h.create_session(capacity=1)).session_id
    s2 = (await h.create_session(capacity=5)).session_id
    await rsvp(h, gone, s1)
    await rsvp(h, waiting, s1)
    await rsvp(h, gone, s2)

    await h.publish(MemberErased(member_id=gone, public_id="pub"))
    await h.wait_members([gone], MemberStanding.ERASED)
    assert (await get(h, s1, waiting)).my_rsvp.state == "confirmed"  # type: ignore[union-attr]
    assert (await get(h, s2)).confirmed_count == 0
    released = await h.emitted(RsvpWithdrawn)
    assert {(e["session_id"], e["reason"]) for e in released if e["member_id"] == gone} == {
        (s1, "member_erased"), (s2, "member_erased")}
    assert [(e["member_id"], e["cause"]) for e in await h.emitted(RsvpPromoted, s1)] == [(waiting, "seat_freed")]
    assert await _name(h, gone) == ""

    # An approval replayed after the erasure does not bring the member back.
    await h.publish(MemberApproved(member_id=gone, public_id="pub", college=College.CITIZEN))
    await asyncio.sleep(0.5)
    await h.error(AnswerRsvp(actor_id=gone, session_id=s2, answer="attend"), ErrorCode.FORBIDDEN)


async def test_events_reach_jetstream(h: ForumHarness) -> None:
    """The outbox relay publishes what the commands committed."""
    sid = (await h.create_session()).session_id
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        async with h.service.db.read() as tx:
            left = (await tx.exec(select(func.count()).select_from(OutboxMessage)
                                  .where(col(OutboxMessage.published_at).is_(None)))).one()
        if left == 0:
            break
        assert asyncio.get_running_loop().time() < deadline, f"{left} events not relayed"
        await asyncio.sleep(0.1)
    msg = await h.js.get_last_msg("FORUM", "forum.session.scheduled")
    assert sid in msg.data.decode()
