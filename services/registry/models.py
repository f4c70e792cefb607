"""Registry tables: members, their single-use e-mail tokens and their signed-in browsers."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, String
from sqlmodel import Field, SQLModel

from shared.contracts.registry import College, MemberStatus, Role
from shared.clock import utcnow


class Member(SQLModel, table=True):
    __tablename__ = "member"
    # The secretariat's lists, a page at a time: by status (or all), latest registration first.
    __table_args__ = (Index("ix_member_status_registered", "status", "registered_at", "id"),
                      Index("ix_member_registered", "registered_at", "id"))

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True, max_length=36)
    # Pseudonymous id for public records: random, so nothing links it back once personal data is erased.
    public_id: str = Field(default_factory=lambda: uuid.uuid4().hex[:16], unique=True, max_length=32)
    full_name: str = Field(default="", max_length=120)
    # Lower-cased; NULL once erased (the unique index then lets the person register again).
    email: str | None = Field(default=None, unique=True, max_length=254)
    organisation: str = Field(default="", max_length=160)
    college: College | None = Field(default=None, sa_type=String(20))
    role: Role = Field(default=Role.MEMBER, sa_type=String(20))
    status: MemberStatus = Field(default=MemberStatus.PENDING_VERIFICATION, index=True, sa_type=String(30))
    charter_accepted_at: datetime | None = None
    rejection_reason: str | None = Field(default=None, max_length=1000)
    decided_by: str | None = Field(default=None, max_length=36)
    registered_at: datetime = Field(default_factory=utcnow)
    verified_at: datetime | None = None
    decided_at: datetime | None = None
    erased_at: datetime | None = None


class EmailToken(SQLModel, table=True):
    """Only the SHA-256 of a token is stored: a database leak does not leak working links."""

    __tablename__ = "email_token"

    token_hash: str = Field(primary_key=True, max_length=64)
    member_id: str = Field(foreign_key="member.id", index=True, max_length=36)
    purpose: str = Field(max_length=20)  # verify_email | sign_in
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None
    # Set when a newer link for the same purpose was mailed: only the latest e-mail's link works.
    superseded_at: datetime | None = None


class WebSession(SQLModel, table=True):
    """A browser signed in as a member. The session id lives only in that browser's signed cookie; the
    registry keeps its SHA-256, so ending the session here signs out every copy of the cookie."""

    __tablename__ = "web_session"

    id_hash: str = Field(primary_key=True, max_length=64)
    member_id: str = Field(foreign_key="member.id", index=True, max_length=36)
    created_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
