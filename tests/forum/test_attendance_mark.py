"""What a member's own pages say of their attendance at a session (`rules.attendance_mark`): nothing before
it starts or once cancelled; present once checked in; absent only when the sheet was filled in (or can no
longer be); « pas encore émargé » while nobody has been checked in and the check-in is still open."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.forum.rules import CHECK_IN_CLOSES_AFTER, attendance_mark
from shared.contracts.forum import AttendanceMark, SessionStatus

START = datetime(2026, 3, 5, 14, tzinfo=UTC)
END = START + timedelta(hours=2)
SCHEDULED, CANCELLED = SessionStatus.SCHEDULED, SessionStatus.CANCELLED


@pytest.mark.parametrize(("status", "now", "checked_in", "anyone", "expected"), [
    (SCHEDULED, START - timedelta(minutes=1), False, False, None),            # not started
    (SCHEDULED, START - timedelta(minutes=1), True, True, None),             # checked in early: still to come
    (CANCELLED, END + timedelta(days=1), False, True, None),
    (SCHEDULED, START + timedelta(minutes=5), True, True, AttendanceMark.PRESENT),
    (SCHEDULED, START + timedelta(minutes=5), False, True, AttendanceMark.NOT_RECORDED),  # may still arrive
    (SCHEDULED, END + timedelta(hours=1), True, True, AttendanceMark.PRESENT),
    (SCHEDULED, END + timedelta(hours=1), False, True, AttendanceMark.ABSENT),
    (SCHEDULED, END + timedelta(hours=1), False, False, AttendanceMark.NOT_RECORDED),
    (SCHEDULED, END + CHECK_IN_CLOSES_AFTER + timedelta(seconds=1), False, False, AttendanceMark.ABSENT),
])
def test_attendance_mark(status: SessionStatus, now: datetime, checked_in: bool, anyone: bool,
                         expected: AttendanceMark | None) -> None:
    assert attendance_mark(status, START, END, now, checked_in=checked_in, anyone_checked_in=anyone) == expected
