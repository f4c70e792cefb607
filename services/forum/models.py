"""Forum tables: sessions and their agendas, RSVPs, attendance, and the projection of members the
forum learns from registry events. Every table name starts with `forum_` (one SQLModel metadata
is shared by every service in a process)."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, Index, String, Text
from sqlmodel import Field, SQLModel

from shared.contracts.forum import RsvpState, SessionKind, SessionStatus, Theme
from shared.contracts.registry import College, Role
from shared.envelope import utcnow


class MemberStanding:
    """Values of `ForumMember.standing`."""

    REGISTERED = "registered"  # known, not approved (yet)
    APPROVED = "approved"      # may RSVP (secretariat accounts are approved from the start)
    ERASED = "erased"          # terminal: later events about them are ignored


class ForumMember(SQLModel, table=True):
    """Who may RSVP and who may act as secretariat, as told by registry events (never by asking the
    registry). Names are kept for the secretariat's lists only and blanked on erasure."""

    __tablename__ = "forum_member"

    member_id: str = Field(primary_key=True, max_length=36)
    public_id: str | None = Field(default=None, max_length=32)
    college: College | None = Field(default=None, sa_type=String(20))
    role: Role = Field(default=Role.MEMBER, sa_type=String(20))
    standing: str = Field(default=MemberStanding.REGISTERED, sa_type=String(20))
    full_name: str = Field(default="", max_length=120)
    organisation: str = Field(default="", max_length=160)
    updated_at: datetime = Field(default_factory=utcnow)


class ForumSession(SQLModel, table=True):
    """A plenary or a working group. Its row is the lock every seat-changing transaction takes."""

    __tablename__ = "forum_session"

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True, max_length=36)
    revision: int = 0  # iCalendar SEQUENCE: bumped on every change
    status: SessionStatus = Field(default=SessionStatus.SCHEDULED, sa_type=String(20))
    title: str = Field(max_length=200)
    kind: SessionKind = Field(sa_type=String(20))
    theme: Theme | None = Field(default=None, sa_type=String(40))
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    starts_at: datetime = Field(index=True)
    ends_at: datetime = Field(index=True)
    place: str | None = Field(default=None, max_length=300)
    online_url: str | None = Field(default=None, max_length=500)
    capacity: int
    rsvp_opens_at: datetime
    rsvp_closes_at: datetime
    # Next waitlist ticket: taken and bumped under the row lock, so arrival order is exact.
    waitlist_seq: int = 0
    cancel_reason: str | None = Field(default=None, max_length=1000)
    cancelled_at: datetime | None = None
    created_by: str = Field(max_length=36)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ForumAgendaItem(SQLModel, table=True):
    __tablename__ = "forum_agenda_item"

    session_id: str = Field(foreign_key="forum_session.id", primary_key=True, max_length=36)
    position: int = Field(primary_key=True)  # 1-based
    text: str = Field(max_length=300)


class ForumRsvp(SQLModel, table=True):
    """One member's answer to one session. A waitlisted RSVP holds a ticket (`waitlist_seq`); its
    position is the number of waitlisted tickets at or below it."""

    __tablename__ = "forum_rsvp"
    __table_args__ = (Index("ix_forum_rsvp_queue", "session_id", "state", "waitlist_seq"),)

    session_id: str = Field(foreign_key="forum_session.id", primary_key=True, max_length=36)
    member_id: str = Field(foreign_key="forum_member.member_id", primary_key=True, index=True, max_length=36)
    state: RsvpState = Field(sa_type=String(20))
    waitlist_seq: int | None = None
    responded_at: datetime = Field(default_factory=utcnow)  # last answer given by the member
    confirmed_at: datetime | None = None  # when the seat was given (directly or by promotion)
    updated_at: datetime = Field(default_factory=utcnow)


class ForumAttendance(SQLModel, table=True):
    """A check-in. `college` is copied at check-in time: counts per college survive erasure."""

    __tablename__ = "forum_attendance"

    session_id: str = Field(foreign_key="forum_session.id", primary_key=True, max_length=36)
    member_id: str = Field(foreign_key="forum_member.member_id", primary_key=True, max_length=36)
    college: College | None = Field(default=None, sa_type=String(20))
    walk_in: bool = False
    recorded_by: str = Field(max_length=36)
    recorded_at: datetime = Field(default_factory=utcnow)


OWNED_TABLES = [ForumMember.__tablename__, ForumSession.__tablename__, ForumAgendaItem.__tablename__,
                ForumRsvp.__tablename__, ForumAttendance.__tablename__]
