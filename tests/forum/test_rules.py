"""Forum domain rules: seats, waitlist order and promotion, windows, capacity changes."""
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.forum import rules
from shared.contracts.forum import RsvpAnswer, RsvpState, SessionPhase, SessionStatus
from shared.contracts.registry import College, Role
from shared.errors import Conflict, Expired, Forbidden

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
WINDOW = {"starts_at": NOW + 2 * H, "opens": NOW - H, "closes": NOW + H}


# ---------------------------------------------------------------- seats
def test_a_seat_while_seats_are_left_then_the_waitlist() -> None:
    assert rules.allocate(capacity=2, confirmed=0) == RsvpState.CONFIRMED
    assert rules.allocate(capacity=2, confirmed=1) == RsvpState.CONFIRMED
    assert rules.allocate(capacity=2, confirmed=2) == RsvpState.WAITLISTED
    assert rules.allocate(capacity=2, confirmed=3) == RsvpState.WAITLISTED  # never more, whatever happened
    assert rules.allocate(capacity=2, confirmed=1, waiting=1) == RsvpState.WAITLISTED  # nobody jumps the queue


@given(capacity=st.integers(1, 50), answers=st.integers(0, 200))
def test_serial_allocation_never_overbooks_and_queues_the_rest_in_order(capacity: int, answers: int) -> None:
    confirmed, seq, queue = 0, 0, []
    for i in range(answers):
        if rules.allocate(capacity, confirmed) == RsvpState.CONFIRMED:
            confirmed += 1
        else:
            seq = rules.next_ticket(seq)
            queue.append((seq, i))
    assert confirmed == min(capacity, answers)
    assert [t for t, _ in queue] == list(range(1, len(queue) + 1))  # one ticket each, no gap
    assert [i for _, i in queue] == sorted(i for _, i in queue)  # arrival order


def test_seats_left_is_never_negative() -> None:
    assert rules.seats_left(10, 3) == 7
    assert rules.seats_left(10, 12) == 0


@pytest.mark.parametrize(("capacity", "confirmed", "waiting", "started", "expected"), [
    (10, 9, ["a", "b"], False, ["a"]),           # one seat freed: the head only
    (10, 7, ["a", "b"], False, ["a", "b"]),      # more seats than people waiting
    (12, 9, ["a", "b", "c", "d"], False, ["a", "b", "c"]),  # capacity raised by 3
    (10, 10, ["a"], False, []),                  # full
    (10, 9, [], False, []),                      # nobody waiting
    (10, 5, ["a", "b"], True, []),               # too late: the session has started
])
def test_promotion_takes_the_head_of_the_waitlist(capacity: int, confirmed: int, waiting: list[str], started: bool,
                                                 expected: list[str]) -> None:
    assert rules.to_promote(capacity, confirmed, waiting, started) == expected


def test_capacity_cannot_drop_below_confirmed_seats() -> None:
    rules.check_capacity(new_capacity=5, confirmed=5)
    rules.check_capacity(new_capacity=50, confirmed=5)
    with pytest.raises(Conflict) as exc:
        rules.check_capacity(new_capacity=4, confirmed=5)
    assert exc.value.field == "capacity"


# ---------------------------------------------------------------- windows
def test_rsvp_window_open() -> None:
    rules.check_rsvp_window(SessionStatus.SCHEDULED, now=NOW, **WINDOW)
    assert rules.rsvp_open(SessionStatus.SCHEDULED, now=NOW, **WINDOW)


@pytest.mark.parametrize(("status", "now", "error"), [
    (SessionStatus.CANCELLED, NOW, Conflict),
    (SessionStatus.SCHEDULED, NOW - 2 * H, Conflict),        # before opening
    (SessionStatus.SCHEDULED, NOW - H, None),                # at opening: open
    (SessionStatus.SCHEDULED, NOW + H, Expired),             # at closing: closed
    (SessionStatus.SCHEDULED, NOW + 2 * H, Expired),         # started
    (SessionStatus.SCHEDULED, NOW + 30 * H, Expired),        # past
])
def test_rsvp_window_refusals(status: SessionStatus, now: datetime, error: type | None) -> None:
    if error is None:
        rules.check_rsvp_window(status, now=now, **WINDOW)
        return
    with pytest.raises(error):
        rules.check_rsvp_window(status, now=now, **WINDOW)
    assert not rules.rsvp_open(status, now=now, **WINDOW)


def test_phase_follows_the_clock() -> None:
    start, end = NOW, NOW + 2 * H
    assert rules.phase(start, end, NOW - H) == SessionPhase.UPCOMING
    assert rules.phase(start, end, NOW) == SessionPhase.ONGOING
    assert rules.phase(start, end, end) == SessionPhase.PAST


def test_check_in_is_open_on_the_day_and_a_week_after() -> None:
    start, end = NOW + 2 * H, NOW + 4 * H
    rules.check_check_in_window(SessionStatus.SCHEDULED, start, end, NOW)
    rules.check_check_in_window(SessionStatus.SCHEDULED, start, end, end + timedelta(days=6))
    with pytest.raises(Conflict):
        rules.check_check_in_window(SessionStatus.SCHEDULED, start, end, start - timedelta(days=2))
    with pytest.raises(Expired):
        rules.check_check_in_window(SessionStatus.SCHEDULED, start, end, end + timedelta(days=8))
    with pytest.raises(Conflict):
        rules.check_check_in_window(SessionStatus.CANCELLED, start, end, NOW)


def test_cancel_and_edit_rules() -> None:
    rules.check_cancellable(SessionStatus.SCHEDULED, NOW + H, NOW)
    with pytest.raises(Conflict):
        rules.check_cancellable(SessionStatus.CANCELLED, NOW + H, NOW)
    with pytest.raises(Conflict):
        rules.check_cancellable(SessionStatus.SCHEDULED, NOW - H, NOW)
    with pytest.raises(Conflict):
        rules.check_editable(SessionStatus.CANCELLED)
    rules.check_revision(None, 4)
    rules.check_revision(4, 4)
    with pytest.raises(Conflict):
        rules.check_revision(3, 4)


# ---------------------------------------------------------------- answers
@pytest.mark.parametrize(("current", "answer"), [
    (RsvpState.CONFIRMED, RsvpAnswer.ATTEND),
    (RsvpState.WAITLISTED, RsvpAnswer.ATTEND),
    (RsvpState.DECLINED, RsvpAnswer.DECLINE),
])
def test_the_same_answer_twice_is_refused(current: RsvpState, answer: RsvpAnswer) -> None:
    with pytest.raises(Conflict):
        rules.check_answer(current, answer)


@pytest.mark.parametrize(("current", "answer"), [
    (None, RsvpAnswer.ATTEND), (None, RsvpAnswer.DECLINE), (RsvpState.CONFIRMED, RsvpAnswer.DECLINE),
    (RsvpState.WAITLISTED, RsvpAnswer.DECLINE), (RsvpState.DECLINED, RsvpAnswer.ATTEND),
    (RsvpState.WITHDRAWN, RsvpAnswer.ATTEND), (RsvpState.WITHDRAWN, RsvpAnswer.DECLINE),
])
def test_changing_ones_mind_is_allowed(current: RsvpState | None, answer: RsvpAnswer) -> None:
    rules.check_answer(current, answer)


def test_only_a_seat_or_a_waitlist_place_can_be_withdrawn() -> None:
    assert rules.check_withdrawable(RsvpState.CONFIRMED) == RsvpState.CONFIRMED
    assert rules.check_withdrawable(RsvpState.WAITLISTED) == RsvpState.WAITLISTED
    for state in (None, RsvpState.DECLINED, RsvpState.WITHDRAWN):
        with pytest.raises(Conflict):
            rules.check_withdrawable(state)


# ---------------------------------------------------------------- who
def test_only_approved_members_answer_and_only_the_secretariat_manages() -> None:
    rules.check_approved("approved")
    for standing in (None, "registered", "erased"):
        with pytest.raises(Forbidden):
            rules.check_approved(standing)
    rules.check_secretariat(Role.SECRETARIAT, "approved")
    for role, standing in ((Role.MEMBER, "approved"), (Role.SECRETARIAT, "erased"), (None, None)):
        with pytest.raises(Forbidden):
            rules.check_secretariat(role, standing)


# ---------------------------------------------------------------- edits and attendance
def test_changes_and_time_or_place() -> None:
    old = {"title": "A", "place": "Paris", "starts_at": NOW, "capacity": 10}
    new = {"title": "B", "place": "Paris", "starts_at": NOW, "capacity": 12}
    assert rules.changed_fields(old, new) == ["title", "capacity"]
    assert not rules.time_or_place_changed(["title", "capacity", "agenda"])
    assert rules.time_or_place_changed(["starts_at"])
    assert rules.time_or_place_changed(["online_url"])


def test_attendance_counts_every_college() -> None:
    counts = rules.attendance_by_college([College.CITIZEN, College.CITIZEN, "public_actor", None])
    assert counts == {"public_actor": 1, "civil_society": 0, "citizen": 2, "none": 1}
    assert rules.attendance_by_college([]) == {"public_actor": 0, "civil_society": 0, "citizen": 0}
