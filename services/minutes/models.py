"""Tables of the minutes service: the public record (prefix `ledger_`) and the comptes rendus of the
sessions (prefix `minutes_`), with the facts the minutes are drafted from, projected from events.

The public record:

- `ledger_entry`: one row per leaf: its exact bytes (RFC 8785 JCS of `record`), the record as JSON
  text, the event it came from (UNIQUE: a redelivered event never makes a second leaf).
- `ledger_node`: every complete subtree hash `(level, idx)` (level 0 = leaf hashes), written once
  and never updated: about 2 rows per leaf. Roots and proofs for any tree size are folded from
  O(log n) of them, read with one query.
- `ledger_checkpoint`: every signed checkpoint (tree size, root, the signed note text).
- `ledger_head`: a single row (id 1) with the current size, root and frontier; appenders lock it
  (`SELECT … FOR UPDATE` on PostgreSQL) so leaves get consecutive indices across replicas.
- `ledger_bundle`: each full C2SP tlog-tiles entry bundle (256 leaves), gzipped, written by the append
  that completes it: what `/ledger/tile/entries/<N>` serves, never computed twice (a copy of
  `ledger_entry`'s leaves, which stay the reference).
"""
from __future__ import annotations

from datetime import datetime

import uuid

from sqlalchemy import BigInteger, Column, Integer, LargeBinary, SmallInteger, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.clock import utcnow
from shared.contracts.forum import SessionKind, SessionStatus, Theme
from shared.contracts.registry import College, Role


class EntryRow(SQLModel, table=True):
    __tablename__ = "ledger_entry"

    leaf_index: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    event_id: str = Field(unique=True, max_length=64)
    kind: str = Field(max_length=80, index=True)
    leaf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    record: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class NodeRow(SQLModel, table=True):
    __tablename__ = "ledger_node"

    level: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class CheckpointRow(SQLModel, table=True):
    __tablename__ = "ledger_checkpoint"

    tree_size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class HeadRow(SQLModel, table=True):
    __tablename__ = "ledger_head"

    id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    tree_size: int = Field(sa_column=Column(BigInteger, nullable=False))
    root: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # The hashes of the complete subtrees covering [0, tree_size), largest first (32 bytes each,
    # popcount(tree_size) of them): all an append needs, read with the lock. Also in ledger_node.
    frontier: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class BundleRow(SQLModel, table=True):
    __tablename__ = "ledger_bundle"

    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # gzip of the entry bundle


LEDGER_TABLES = [EntryRow.__tablename__, NodeRow.__tablename__, CheckpointRow.__tablename__,
                 HeadRow.__tablename__, BundleRow.__tablename__]


# ================================================================ what the minutes are drafted from
# Projections of the forum's and the registry's events (the minutes service never reads their
# tables). Each row remembers when the fact it holds happened, so that events arriving out of order
# (different durables, redeliveries) never put an older fact over a newer one.
class SessionFact(SQLModel, table=True):
    """A session, as its latest `forum.session.*` event told it."""

    __tablename__ = "minutes_session"

    session_id: str = Field(primary_key=True, max_length=36)
    revision: int
    status: SessionStatus = Field(sa_type=String(20))
    title: str = Field(max_length=200)
    kind: SessionKind = Field(sa_type=String(20), index=True)
    theme: Theme | None = Field(default=None, sa_type=String(40))
    starts_at: datetime = Field(index=True)
    ends_at: datetime
    place: str | None = Field(default=None, max_length=300)
    online_url: str | None = Field(default=None, max_length=500)
    agenda: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON list of item texts


class MemberFact(SQLModel, table=True):
    """Who is secretariat (may draft and publish) and the organisation a member represents (named
    among the organisations present); erasure forgets the organisation for good."""

    __tablename__ = "minutes_member"

    member_id: str = Field(primary_key=True, max_length=36)
    college: College | None = Field(default=None, sa_type=String(20))
    role: Role = Field(default=Role.MEMBER, sa_type=String(20))
    role_at: datetime | None = None
    organisation: str = Field(default="", max_length=160)
    organisation_at: datetime | None = None
    erased: bool = False


class AttendanceFact(SQLModel, table=True):
    """A member checked in at a session (`present` false: the check-in was corrected away). `college`
    as the check-in recorded it, so counts survive erasure."""

    __tablename__ = "minutes_attendance"

    session_id: str = Field(primary_key=True, max_length=36)
    member_id: str = Field(primary_key=True, max_length=36)
    college: College | None = Field(default=None, sa_type=String(20))
    present: bool
    observed_at: datetime  # occurred_at of the latest check-in event applied


class DecisionFact(SQLModel, table=True):
    """A decision of the register, with the event that recorded it (its leaf in the public record)."""

    __tablename__ = "minutes_decision"

    decision_id: str = Field(primary_key=True, max_length=36)
    number: str = Field(index=True, max_length=16)
    session_id: str = Field(index=True, max_length=36)
    agenda_position: int
    agenda_text: str = Field(max_length=300)
    title: str = Field(max_length=200)
    outcome: str = Field(sa_type=String(20))
    method: str = Field(sa_type=String(20))
    vote_id: str | None = Field(default=None, max_length=36)
    commitment_code: str | None = Field(default=None, max_length=12)
    commitment_title: str | None = Field(default=None, max_length=300)
    recorded_at: datetime
    event_id: str = Field(max_length=36)
    superseded_by: str | None = Field(default=None, max_length=36)
    superseded_event_id: str | None = Field(default=None, max_length=36)


class VoteFact(SQLModel, table=True):
    """A closed online vote: its result in short, and the event that closed it (its leaf)."""

    __tablename__ = "minutes_vote"

    vote_id: str = Field(primary_key=True, max_length=36)
    session_id: str = Field(index=True, max_length=36)
    agenda_position: int
    agenda_text: str = Field(max_length=300)
    question: str = Field(max_length=200)
    eligibility: str = Field(sa_type=String(20))
    closed_at: datetime
    ballots: int
    eligible: int
    winner_label: str | None = Field(default=None, max_length=200)
    winner_grade: str | None = Field(default=None, max_length=20)
    tie: bool = False
    decision_id: str | None = Field(default=None, max_length=36)
    event_id: str = Field(max_length=36)


# ================================================================ the comptes rendus
class MinutesStatus:
    """Values of `MinutesRow.status` (what is stored; the public state adds adopted/corrected)."""

    DRAFT = "draft"
    REVIEW = "review"
    PUBLISHED = "published"


class MinutesRow(SQLModel, table=True):
    """The minutes of one session: the draft (its text and revision) until published, then the
    pointer to the latest published version. Its row is the lock of every change to the minutes."""

    __tablename__ = "minutes_doc"

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True, max_length=36)
    session_id: str = Field(unique=True, max_length=36)
    status: str = Field(default=MinutesStatus.DRAFT, sa_type=String(20))
    markdown: str = Field(sa_column=Column(Text, nullable=False))
    revision: int = 1
    review_until: datetime | None = None
    reviewed: bool = False  # a review was opened at least once
    latest_version: int = 0
    adoption_kind: str | None = Field(default=None, sa_type=String(20))
    created_by: str = Field(max_length=36)
    created_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(max_length=36)
    updated_at: datetime = Field(default_factory=utcnow)


class VersionRow(SQLModel, table=True):
    """A published version, frozen: never updated. `canonical` is the RFC 8785 document whose SHA-256
    is `sha256`; `pdf` the bytes served for it."""

    __tablename__ = "minutes_version"
    __table_args__ = (UniqueConstraint("minutes_id", "request_id", name="uq_minutes_version_request"),)

    minutes_id: str = Field(foreign_key="minutes_doc.id", primary_key=True, max_length=36)
    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    markdown: str = Field(sa_column=Column(Text, nullable=False))
    paragraphs: str = Field(sa_column=Column(Text, nullable=False))  # JSON [{"anchor", "kind", "markdown"}]
    canonical: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    sha256: str = Field(max_length=64)
    html: str = Field(sa_column=Column(Text, nullable=False))
    pdf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    published_at: datetime = Field(index=True)
    published_by: str = Field(max_length=36)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    adoption: str = Field(sa_column=Column(Text, nullable=False))  # JSON Adoption
    request_id: str | None = Field(default=None, max_length=64)
    event_id: str = Field(max_length=36)


class CommentRow(SQLModel, table=True):
    """An attendee's comment on a paragraph of the draft in review, and the secretariat's answer."""

    __tablename__ = "minutes_comment"

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True, max_length=36)
    minutes_id: str = Field(foreign_key="minutes_doc.id", index=True, max_length=36)
    author_id: str = Field(index=True, max_length=36)
    anchor: str = Field(max_length=80)
    kind: str = Field(sa_type=String(20))
    text: str = Field(sa_column=Column(Text, nullable=False))
    paragraph: str = Field(sa_column=Column(Text, nullable=False))
    draft_revision: int
    created_at: datetime = Field(default_factory=utcnow)
    accepted: bool | None = None
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    answered_by: str | None = Field(default=None, max_length=36)
    answered_at: datetime | None = None
    applied_revision: int | None = None


MINUTES_TABLES = [SessionFact.__tablename__, MemberFact.__tablename__, AttendanceFact.__tablename__,
                  DecisionFact.__tablename__, VoteFact.__tablename__, MinutesRow.__tablename__,
                  VersionRow.__tablename__, CommentRow.__tablename__]
OWNED_TABLES = LEDGER_TABLES + MINUTES_TABLES
