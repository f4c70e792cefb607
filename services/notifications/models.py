"""Notifications tables: who can be mailed (members, from registry events; subscribers, who asked on
/abonnements), what to say (notices: announcements and the public facts subscribers follow), and one
row per message and recipient (`delivery`), which is the delivery log."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, Index, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from shared.clock import utcnow
from shared.contracts.notifications import DeliveryState, NoticeState, SubscriptionStatus


def new_id() -> str:
    return str(uuid.uuid4())


class Recipient(SQLModel, table=True):
    """A member's contact details learnt from registry events; deleted when the member is erased."""

    __tablename__ = "recipient"

    member_id: str = Field(primary_key=True, max_length=36)
    email: str = Field(max_length=254)
    full_name: str = Field(max_length=120)
    approved: bool = False       # may vote when a vote is open to every approved member
    secretariat: bool = False    # may write and send announcements, read the delivery log
    updated_at: datetime = Field(default_factory=utcnow)


class MemberPreference(SQLModel, table=True):
    """A kind of notice a member stopped (a row only for what they turned off)."""

    __tablename__ = "member_preference"

    member_id: str = Field(primary_key=True, max_length=36)
    kind: str = Field(primary_key=True, max_length=30)


class Subscriber(SQLModel, table=True):
    """An address that asked for notices on /abonnements (no account needed)."""

    __tablename__ = "subscriber"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    email: str = Field(max_length=254, unique=True)  # lower-cased domain, as typed local part
    status: str = Field(default=SubscriptionStatus.PENDING, sa_type=String(14), index=True)
    created_at: datetime = Field(default_factory=utcnow)
    requested_at: datetime = Field(default_factory=utcnow, index=True)  # the latest « subscribe » request
    confirmed_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    # Changes at every request to subscribe: only the latest confirmation link works.
    link_nonce: str = Field(default_factory=lambda: uuid.uuid4().hex[:12], max_length=12)
    # Confirmation e-mails sent in the current window (the per-address limit).
    confirm_window_start: datetime = Field(default_factory=utcnow)
    confirm_requests: int = 0
    hard_failures: int = 0


class SubscriberTopic(SQLModel, table=True):
    __tablename__ = "subscriber_topic"
    __table_args__ = (Index("ix_subscriber_topic_topic", "topic", "subscriber_id"),)

    subscriber_id: str = Field(primary_key=True, max_length=36)
    topic: str = Field(primary_key=True, max_length=60)


class Notice(SQLModel, table=True):
    """One thing to tell a topic's subscribers: an announcement of the secretariat, or a public fact
    (session, decision, minutes) turned into a notice by its event. Its fan-out inserts one delivery
    per confirmed subscriber, in batches, advancing `fanout_cursor` in the same transaction: a crash
    resumes after the last batch committed."""

    __tablename__ = "notice"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    kind: str = Field(max_length=20, index=True)  # announcement, session, decision, minutes
    # Subscribers of any of these topics get it (once): e.g. "minutes theme:health".
    topics: str = Field(max_length=200)
    subject: str = Field(max_length=300)
    body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # Markdown (announcements)
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # rendered text part
    html: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # rendered HTML part
    link: str | None = Field(default=None, max_length=500)  # the public page it is about
    state: str = Field(default=NoticeState.DRAFT, sa_type=String(10), index=True)
    source_event_id: str | None = Field(default=None, max_length=36, unique=True)
    created_by: str | None = Field(default=None, max_length=36)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    finished_at: datetime | None = None
    fanout_cursor: str = Field(default="", max_length=36)  # last subscriber id given a delivery
    fanout_done: bool = False
    recipients_planned: int | None = None


class Delivery(SQLModel, table=True):
    """One message to one recipient: the delivery log. A member notice keeps its rendered bodies until
    sent (they may hold single-use links); a subscriber's notice is rendered from its `Notice` when
    sent. The unique key (cause, recipient) makes every queueing idempotent."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("event_id", "member_id", name="uq_delivery_event_member"),
        # The sender's queue: only what is waiting, personal messages first, then the oldest due.
        Index("ix_delivery_due", "priority", "next_attempt_at",
              postgresql_where=text("status IN ('queued', 'deferred')"),
              sqlite_where=text("status IN ('queued', 'deferred')")),
        Index("ix_delivery_notice_status", "notice_id", "status"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    event_id: str = Field(max_length=36)   # the event, reminder or notice that caused it
    member_id: str = Field(index=True, max_length=36)  # the member, or the subscriber
    kind: str = Field(max_length=40)
    notice_id: str | None = Field(default=None, max_length=36)
    priority: int = 0  # 0: a member's or a subscriber's own message (sign-in link...), 1: a notice's fan-out
    topic: str | None = Field(default=None, max_length=60)
    to_addr: str = Field(max_length=254, index=True)
    domain: str = Field(default="", max_length=254)
    subject: str = Field(max_length=300)
    message_id: str = Field(default="", max_length=200)
    text_body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    html_body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    ics: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: str = Field(default=DeliveryState.QUEUED, sa_type=String(12))
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    claimed_at: datetime | None = None
    last_error: str | None = Field(default=None, max_length=1000)  # the SMTP reply or the error
    resent: bool = False  # found in flight after a crash: sent again with the same Message-ID
    reply_to_addr: str | None = Field(default=None, max_length=254)  # a contact message: answering reaches its sender
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


class NoticeSession(SQLModel, table=True):
    """The latest public state of a session (from forum events): for calendar attachments, reminders,
    and the theme of the decisions and minutes about it."""

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


class NoticeAttendee(SQLModel, table=True):
    """Who was checked in at which session: they review its minutes, and vote when a vote is open to
    the attendees."""

    __tablename__ = "notice_attendee"

    session_id: str = Field(primary_key=True, max_length=36)
    member_id: str = Field(primary_key=True, max_length=36)


class ContactMessage(SQLModel, table=True):
    """A message written to the secretariat on /contact; deleted after `contact_retention_days`."""

    __tablename__ = "contact_message"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    name: str = Field(max_length=120)
    email: str = Field(max_length=254, index=True)  # normalised as subscriptions store addresses
    title: str = Field(max_length=200)  # the message's subject
    message: str = Field(sa_column=Column(Text, nullable=False))
    client: str = Field(default="", max_length=100)
    created_at: datetime = Field(default_factory=utcnow, index=True)
