"""Notifications tables: who can be mailed (a projection of registry events) and each e-mail to send."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.clock import utcnow


class Recipient(SQLModel, table=True):
    """Contact details learnt from registry events; deleted when the member is erased."""

    __tablename__ = "recipient"

    member_id: str = Field(primary_key=True, max_length=36)
    email: str = Field(max_length=254)
    full_name: str = Field(max_length=120)
    updated_at: datetime = Field(default_factory=utcnow)


class DeliveryStatus:
    PENDING = "pending"      # waiting to be sent (or to be retried after a temporary failure)
    SENDING = "sending"      # handed to SMTP; if the process dies now we cannot know if it left
    SENT = "sent"
    FAILED = "failed"        # permanent refusal, or retries exhausted
    UNCERTAIN = "uncertain"  # found in SENDING after a crash: never re-sent (at most once)
    CANCELLED = "cancelled"  # the member was erased before it left: never sent


class Delivery(SQLModel, table=True):
    """One e-mail caused by one event, for one member. The unique key is what makes it at most once."""

    __tablename__ = "delivery"
    __table_args__ = (UniqueConstraint("event_id", "member_id", name="uq_delivery_event_member"),)

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True, max_length=36)
    event_id: str = Field(max_length=36)
    member_id: str = Field(index=True, max_length=36)
    kind: str = Field(max_length=40)
    to_addr: str = Field(max_length=254)
    subject: str = Field(max_length=300)
    # Bodies are cleared once sent: they may hold single-use links.
    text_body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    html_body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    # An iCalendar attachment (RSVP confirmations, changes, reminders), cleared once sent like the bodies.
    ics: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: str = Field(default=DeliveryStatus.PENDING, sa_type=String(12), index=True)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


class NoticeSession(SQLModel, table=True):
    """The latest public state of a session (from forum events): for calendar attachments and reminders."""

    __tablename__ = "notice_session"

    session_id: str = Field(primary_key=True, max_length=36)
    revision: int = 0
    info: str = Field(sa_column=Column(Text, nullable=False))  # SessionInfo JSON
    starts_at: datetime = Field(index=True)
    cancelled: bool = False
    reminded_at: datetime | None = None


class NoticeSeat(SQLModel, table=True):
    """Who holds a seat at which session (from RSVP events): the reminder goes to them."""

    __tablename__ = "notice_seat"

    session_id: str = Field(primary_key=True, max_length=36)
    member_id: str = Field(primary_key=True, max_length=36)
