"""Forum tables: sessions and their agendas, RSVPs, attendance, the projection of members the
forum learns from registry events, and decisions, commitments, rules and votes. Every
table name starts with `forum_` (one SQLModel metadata is shared by every service in a process)."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, Index, String, Text
from sqlmodel import Field, SQLModel

from shared.contracts.forum import RsvpState, SessionKind, SessionStatus, Theme
from shared.contracts.registry import College, Role
from shared.clock import utcnow


class MemberStanding:
    """Values of `ForumMember.standing`."""

    REGISTERED = "registered"  # known, not approved (yet)
    APPROVED = "approved"      # may RSVP (secretariat accounts are approved from the start)
    ERASED = "erased"          # terminal: later events about them are ignored


class ForumMember(SQLModel, table=True):
    """Who may RSVP and who may act as secretariat, as told by registry events (never by asking the
    registry). Names are kept for the secretariat's lists only and blanked on erasure."""

    __tablename__ = "forum_member"
    # The electorate of an open vote is counted on every view of it: an index-only count.
    __table_args__ = (Index("ix_forum_member_standing", "standing", "role"),)

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


# ---------------------------------------------------------------- decisions and votes
class ForumCommitment(SQLModel, table=True):
    """A commitment of the national action plan (the secretariat keeps the list)."""

    __tablename__ = "forum_commitment"

    code: str = Field(primary_key=True, max_length=12)
    title: str = Field(max_length=300)
    plan: str = Field(default="2024-2026", max_length=20)
    updated_at: datetime = Field(default_factory=utcnow)


class ForumRule(SQLModel, table=True):
    """The adoption rule of one session kind (absent: the default rule)."""

    __tablename__ = "forum_rule"

    kind: SessionKind = Field(primary_key=True, sa_type=String(20))
    quorum: str = Field(default="{}", sa_column=Column(Text, nullable=False))  # JSON {college: count}
    double_majority: bool = False
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(max_length=36)


class ForumDecisionCounter(SQLModel, table=True):
    """Last decision number given in a year; locked FOR UPDATE to give the next one."""

    __tablename__ = "forum_decision_counter"

    year: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    last: int = 0


class ForumDecision(SQLModel, table=True):
    """A recorded decision, frozen as its DecisionRecorded event told it (snapshots of the session,
    agenda item and commitment), plus where it stands now (superseded, follow-up)."""

    __tablename__ = "forum_decision"
    # The register's order (newest first) read a page at a time; the decisions in force per commitment
    # (counted on every register page) read from the index alone.
    __table_args__ = (Index("ix_forum_decision_register", "recorded_at", "number"),
                      Index("ix_forum_decision_commitment", "commitment_code", "superseded_by"))

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True, max_length=36)
    number: str = Field(unique=True, max_length=16)  # « 2026-007 »
    session_id: str = Field(foreign_key="forum_session.id", index=True, max_length=36)
    session_title: str = Field(max_length=200)
    session_kind: SessionKind = Field(sa_type=String(20))
    agenda_position: int
    agenda_text: str = Field(max_length=300)
    title: str = Field(max_length=200)
    text: str = Field(sa_column=Column(Text, nullable=False))
    outcome: str = Field(sa_type=String(20))
    method: str = Field(sa_type=String(20))
    hands: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # JSON {college: HandCount}
    vote_id: str | None = Field(default=None, max_length=36)
    commitment_code: str | None = Field(default=None, max_length=12)
    commitment_title: str | None = Field(default=None, max_length=300)
    supersedes: str | None = Field(default=None, max_length=36)
    superseded_by: str | None = Field(default=None, max_length=36)
    superseded_at: datetime | None = None
    superseded_event_id: str | None = Field(default=None, max_length=36)
    rule_check: str = Field(sa_column=Column(Text, nullable=False))  # JSON RuleCheck
    follow_up: str = Field(default="todo", sa_type=String(20))
    recorded_by: str = Field(max_length=36)
    recorded_at: datetime = Field(default_factory=utcnow)
    event_id: str = Field(max_length=36)  # of its DecisionRecorded event


class ForumFollowUp(SQLModel, table=True):
    """A dated update of a decision's follow-up (each one a public fact)."""

    __tablename__ = "forum_follow_up"

    decision_id: str = Field(foreign_key="forum_decision.id", primary_key=True, max_length=36)
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    status: str = Field(sa_type=String(20))
    note: str = Field(default="", sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(max_length=36)
    event_id: str = Field(max_length=36)


class ForumVote(SQLModel, table=True):
    """A majority-judgment vote on an agenda item. Its row is the lock of ballots and closing."""

    __tablename__ = "forum_vote"

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True, max_length=36)
    session_id: str = Field(foreign_key="forum_session.id", index=True, max_length=36)
    agenda_position: int
    agenda_text: str = Field(max_length=300)
    question: str = Field(max_length=200)
    options: str = Field(sa_column=Column(Text, nullable=False))  # JSON list of labels (option_id = position)
    eligibility: str = Field(sa_type=String(20))
    opens_at: datetime = Field(index=True)  # the lists' order
    closes_at: datetime = Field(index=True)
    created_by: str = Field(max_length=36)
    created_at: datetime = Field(default_factory=utcnow)
    opened_event_id: str = Field(max_length=36)
    closed_at: datetime | None = None
    result: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # JSON VoteResult
    closed_event_id: str | None = Field(default=None, max_length=36)
    decision_id: str | None = Field(default=None, max_length=36)


class ForumBallot(SQLModel, table=True):
    """A secret ballot, kept only while the vote is open: deleted when the vote closes (only the
    merit profiles remain)."""

    __tablename__ = "forum_ballot"

    vote_id: str = Field(foreign_key="forum_vote.id", primary_key=True, max_length=36)
    member_id: str = Field(primary_key=True, max_length=36)
    grades: str = Field(sa_column=Column(Text, nullable=False))  # JSON {option_id: grade}
    cast_at: datetime = Field(default_factory=utcnow)


class ForumVoter(SQLModel, table=True):
    """Who voted (never what): participation per college and « vous avez voté »."""

    __tablename__ = "forum_voter"

    vote_id: str = Field(foreign_key="forum_vote.id", primary_key=True, max_length=36)
    member_id: str = Field(primary_key=True, max_length=36)
    college: College | None = Field(default=None, sa_type=String(20))
    voted_at: datetime = Field(default_factory=utcnow)


OWNED_TABLES = [ForumMember.__tablename__, ForumSession.__tablename__, ForumAgendaItem.__tablename__,
                ForumRsvp.__tablename__, ForumAttendance.__tablename__, ForumCommitment.__tablename__,
                ForumRule.__tablename__, ForumDecisionCounter.__tablename__, ForumDecision.__tablename__,
                ForumFollowUp.__tablename__, ForumVote.__tablename__, ForumBallot.__tablename__,
                ForumVoter.__tablename__]
