"""Forum domain rules: plain functions over plain values, no I/O.

Seat allocation, waitlist order and promotion, RSVP windows, capacity changes, check-in windows.
The handlers call them inside the transaction that holds the session's lock, so the values they
are given are the truth at that instant. Times are timezone-aware (UTC from the database).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from shared.contracts.forum import AttendanceMark, RsvpAnswer, RsvpState, SessionPhase, SessionStatus
from shared.contracts.registry import College, Role
from shared.errors import Conflict, Expired, Forbidden

T = TypeVar("T")

HOLDING = (RsvpState.CONFIRMED, RsvpState.WAITLISTED)  # states that count for the session
CHECK_IN_OPENS_BEFORE = timedelta(hours=24)   # check-in opens on the day
CHECK_IN_CLOSES_AFTER = timedelta(days=7)     # and stays open a week for corrections
NO_COLLEGE = "none"
TIME_OR_PLACE = ("starts_at", "ends_at", "place", "online_url")


# ---------------------------------------------------------------- who may do what
def check_secretariat(role: Role | None, standing: str | None) -> None:
    if role != Role.SECRETARIAT or standing != "approved":
        raise Forbidden("Seul le secrétariat du forum peut faire cela.")


def check_approved(standing: str | None) -> None:
    if standing != "approved":
        raise Forbidden("Seuls les membres validés du forum peuvent répondre à une séance.")


# ---------------------------------------------------------------- the clock
def phase(starts_at: datetime, ends_at: datetime, now: datetime) -> SessionPhase:
    if now < starts_at:
        return SessionPhase.UPCOMING
    if now < ends_at:
        return SessionPhase.ONGOING
    return SessionPhase.PAST


def rsvp_open(status: SessionStatus, starts_at: datetime, opens: datetime, closes: datetime, now: datetime) -> bool:
    return status == SessionStatus.SCHEDULED and opens <= now < closes and now < starts_at


def check_rsvp_window(status: SessionStatus, starts_at: datetime, opens: datetime, closes: datetime,
                      now: datetime) -> None:
    """Members answer, change their answer or withdraw only while the RSVPs are open."""
    if status == SessionStatus.CANCELLED:
        raise Conflict("Cette séance a été annulée.", field="session_id")
    if now >= starts_at:
        raise Expired("Cette séance a déjà eu lieu ou a commencé.", field="session_id")
    if now < opens:
        raise Conflict("Les réponses à cette séance ne sont pas encore ouvertes.", field="session_id")
    if now >= closes:
        raise Expired("Les réponses à cette séance sont closes.", field="session_id")


def check_editable(status: SessionStatus) -> None:
    if status == SessionStatus.CANCELLED:
        raise Conflict("Cette séance a été annulée : elle ne peut plus être modifiée.", field="session_id")


def check_revision(expected: int | None, current: int) -> None:
    if expected is not None and expected != current:
        raise Conflict("La séance a été modifiée entre-temps : rechargez-la avant d'enregistrer.",
                       field="expected_revision")


def check_cancellable(status: SessionStatus, ends_at: datetime, now: datetime) -> None:
    if status == SessionStatus.CANCELLED:
        raise Conflict("Cette séance est déjà annulée.", field="session_id")
    if now >= ends_at:
        raise Conflict("Une séance terminée ne peut pas être annulée.", field="session_id")


def check_check_in_window(status: SessionStatus, starts_at: datetime, ends_at: datetime, now: datetime) -> None:
    if status == SessionStatus.CANCELLED:
        raise Conflict("Cette séance a été annulée.", field="session_id")
    if now < starts_at - CHECK_IN_OPENS_BEFORE:
        raise Conflict("L'émargement ouvre le jour de la séance.", field="session_id")
    if now > ends_at + CHECK_IN_CLOSES_AFTER:
        raise Expired("L'émargement de cette séance est clos.", field="session_id")


# ---------------------------------------------------------------- answers
def check_answer(current: RsvpState | None, answer: RsvpAnswer) -> None:
    """Answering the same thing twice is refused (it would silently lose a waitlist place or
    repeat an e-mail); changing one's mind is allowed."""
    if answer == RsvpAnswer.ATTEND and current == RsvpState.CONFIRMED:
        raise Conflict("Vous êtes déjà inscrit·e à cette séance.", field="answer")
    if answer == RsvpAnswer.ATTEND and current == RsvpState.WAITLISTED:
        raise Conflict("Vous êtes déjà sur la liste d'attente de cette séance.", field="answer")
    if answer == RsvpAnswer.DECLINE and current == RsvpState.DECLINED:
        raise Conflict("Vous avez déjà indiqué ne pas participer à cette séance.", field="answer")


def check_withdrawable(current: RsvpState | None) -> RsvpState:
    if current not in HOLDING:
        raise Conflict("Vous n'avez ni place ni rang sur la liste d'attente de cette séance.", field="session_id")
    assert current is not None
    return current


# ---------------------------------------------------------------- seats and the waitlist
def seats_left(capacity: int, confirmed: int) -> int:
    return max(0, capacity - confirmed)


def allocate(capacity: int, confirmed: int, waiting: int = 0) -> RsvpState:
    """A seat if one is left and nobody is waiting for one (nobody jumps the queue), else the
    waitlist. The counts must be taken under the session's lock."""
    return RsvpState.CONFIRMED if confirmed < capacity and waiting == 0 else RsvpState.WAITLISTED


def next_ticket(last_seq: int) -> int:
    """Waitlist tickets grow strictly, per session; assigned under the lock, they are arrival order."""
    return last_seq + 1


def to_promote(capacity: int, confirmed: int, waitlist: Sequence[T], started: bool) -> list[T]:
    """Who gets the freed seats: the head of the waitlist (given in ticket order), as many as seats
    are free. Nobody once the session has started."""
    if started:
        return []
    return list(waitlist[:max(0, capacity - confirmed)])


def check_capacity(new_capacity: int, confirmed: int) -> None:
    """A confirmed seat is never taken back: the capacity cannot drop below the confirmed count."""
    if new_capacity < confirmed:
        raise Conflict(f"{confirmed} places sont déjà confirmées : la capacité ne peut pas être inférieure.",
                       field="capacity")


# ---------------------------------------------------------------- edits and attendance
def changed_fields(old: dict[str, object], new: dict[str, object]) -> list[str]:
    return [k for k in new if old.get(k) != new[k]]


def time_or_place_changed(changes: Iterable[str]) -> bool:
    return any(c in TIME_OR_PLACE for c in changes)


def attendance_by_college(colleges: Iterable[College | str | None]) -> dict[str, int]:
    counts = {c.value: 0 for c in College}
    for c in colleges:
        key = str(c.value if isinstance(c, College) else c) if c else NO_COLLEGE
        counts[key] = counts.get(key, 0) + 1
    return counts


def attendance_mark(status: SessionStatus, starts_at: datetime, ends_at: datetime, now: datetime, *,
                    checked_in: bool, anyone_checked_in: bool) -> AttendanceMark | None:
    """What a member's own page says of their attendance: nothing before the session starts (or if it
    was cancelled); present once checked in; absent once the session is over and the secretariat has
    checked people in (or can no longer); not yet recorded otherwise (the sheet may still be filled in)."""
    if status == SessionStatus.CANCELLED or now < starts_at:
        return None
    if checked_in:
        return AttendanceMark.PRESENT
    if now >= ends_at and (anyone_checked_in or now > ends_at + CHECK_IN_CLOSES_AFTER):
        return AttendanceMark.ABSENT
    return AttendanceMark.NOT_RECORDED
