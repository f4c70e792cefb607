"""Notifications contracts: public subscriptions (topics, double opt-in, manage and unsubscribe links),
members' notice preferences, the secretariat's announcements and the per-recipient delivery log."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from shared.contracts.common import ActorRequest, Identifier, MultiLine, Request, SingleLine
from shared.contracts.forum import THEME_LABELS, Theme


# ---------------------------------------------------------------- topics
class TopicKind(StrEnum):
    SESSIONS = "sessions"            # new, changed or cancelled sessions
    DECISIONS = "decisions"          # decisions recorded or corrected
    MINUTES = "minutes"              # comptes rendus published or corrected
    ANNOUNCEMENTS = "announcements"  # the secretariat's announcements


TOPIC_KIND_LABELS = {
    TopicKind.SESSIONS: "Séances (nouvelles, modifiées ou annulées)",
    TopicKind.DECISIONS: "Décisions",
    TopicKind.MINUTES: "Comptes rendus",
    TopicKind.ANNOUNCEMENTS: "Annonces du secrétariat",
}
THEME_TOPIC_PREFIX = "theme:"
TOPICS: list[str] = [k.value for k in TopicKind] + [THEME_TOPIC_PREFIX + t.value for t in Theme]


def topic_label(topic: str) -> str:
    """« Comptes rendus », or « Groupe de travail : Santé » for a theme's topic."""
    if topic.startswith(THEME_TOPIC_PREFIX):
        return "Groupe de travail : " + THEME_LABELS[Theme(topic.removeprefix(THEME_TOPIC_PREFIX))]
    return TOPIC_KIND_LABELS[TopicKind(topic)]


def theme_topic(theme: Theme | str) -> str:
    return THEME_TOPIC_PREFIX + Theme(theme).value


def _known_topic(value: str) -> str:
    if value not in TOPICS:
        raise ValueError(f"le thème d'abonnement « {value[:40]} » n'existe pas")
    return value


Topic = Annotated[str, StringConstraints(strip_whitespace=True, max_length=60), AfterValidator(_known_topic)]
Email = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=254)]
Token = Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=600)]


# ---------------------------------------------------------------- subscriptions (no account needed)
class SubscriptionStatus(StrEnum):
    PENDING = "pending"            # waiting for the confirmation link to be used: nothing is sent
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    SUSPENDED = "suspended"        # too many permanent refusals from the address's server


class SubscriptionView(BaseModel):
    email: str
    status: SubscriptionStatus
    topics: list[str]
    confirmed_at: datetime | None = None
    # A fresh manage link token (signed, expiring) for the page's forms.
    manage_token: str


class SubscribeAccepted(BaseModel):
    """The same answer whether the address was known, new or already confirmed."""

    message: str


class Subscribe(Request[SubscribeAccepted], op="notifications.subscribe"):
    """Someone asks for notices by e-mail: a confirmation link is mailed; nothing else is sent before it
    is used. `client` is the asker's network address, for the per-client limit."""

    email: Email
    topics: list[Topic] = Field(min_length=1, max_length=len(TOPICS))
    client: str = Field("", max_length=100)


class ConfirmSubscription(Request[SubscriptionView], op="notifications.confirm-subscription"):
    token: Token


class GetSubscription(Request[SubscriptionView], op="notifications.get-subscription"):
    """What a manage (or unsubscribe) link shows."""

    token: Token


class UpdateSubscription(Request[SubscriptionView], op="notifications.update-subscription"):
    """New topics from the manage page; an empty list unsubscribes."""

    token: Token
    topics: list[Topic] = Field(max_length=len(TOPICS))


class Unsubscribe(Request[SubscriptionView], op="notifications.unsubscribe"):
    """Stops every notice at once (the RFC 8058 one-click POST, or the confirm button of the page)."""

    token: Token
    one_click: bool = False


class RequestManageLink(Request[SubscribeAccepted], op="notifications.request-manage-link"):
    """« Send me a link to manage my subscription »: same answer whether the address is subscribed."""

    email: Email
    client: str = Field("", max_length=100)


# ---------------------------------------------------------------- members' preferences
class MemberNoticeKind(StrEnum):
    """What a member can choose to stop. Verification, sign-in links and the decision on their
    registration are always sent: they are answers to the member's own request."""

    RSVP = "rsvp"                    # confirmations, waitlist position, promotion
    SESSION_CHANGES = "session_changes"  # a session they answered was moved or cancelled
    REMINDERS = "reminders"          # 48 hours before a session they hold a seat at
    VOTES = "votes"                  # a vote they can take part in has opened
    MINUTES_REVIEW = "minutes_review"  # minutes of a session they attended are open for review


MEMBER_NOTICE_LABELS = {
    MemberNoticeKind.RSVP: "Confirmations d'inscription aux séances et liste d'attente",
    MemberNoticeKind.SESSION_CHANGES: "Changements d'horaire ou de lieu et annulations de mes séances",
    MemberNoticeKind.REMINDERS: "Rappels 48 heures avant mes séances",
    MemberNoticeKind.VOTES: "Ouverture d'un vote auquel je peux participer",
    MemberNoticeKind.MINUTES_REVIEW: "Comptes rendus à relire des séances où j'étais présent·e",
}


class MemberPreferences(BaseModel):
    enabled: dict[MemberNoticeKind, bool]


class GetMemberPreferences(ActorRequest[MemberPreferences], op="notifications.get-member-preferences"):
    pass


class SetMemberPreferences(ActorRequest[MemberPreferences], op="notifications.set-member-preferences"):
    enabled: dict[MemberNoticeKind, bool]


# ---------------------------------------------------------------- announcements and notices
class NoticeState(StrEnum):
    DRAFT = "draft"          # an announcement being written
    SENDING = "sending"      # fanning out and being delivered
    PAUSED = "paused"        # the secretariat paused it: nothing more leaves until resumed
    SENT = "sent"            # every message has an outcome (sent, failed or suppressed)


NOTICE_STATE_LABELS = {NoticeState.DRAFT: "brouillon", NoticeState.SENDING: "envoi en cours",
                       NoticeState.PAUSED: "en pause", NoticeState.SENT: "envoyée"}

AnnouncementTitle = Annotated[str, SingleLine(min_length=3, max_length=200)]
AnnouncementBody = Annotated[str, MultiLine(min_length=1, max_length=50_000)]


class DeliveryTally(BaseModel):
    """Messages of one notice by outcome so far."""

    total: int = 0
    queued: int = 0
    sending: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    suppressed: int = 0
    held: int = 0
    cancelled: int = 0


class AnnouncementView(BaseModel):
    announcement_id: str
    title: str         # the e-mail's subject and the feed entry's title
    body: str          # Markdown source
    body_html: str     # sanitised HTML, as in the e-mail and the feeds
    topic: str
    topic_label: str
    state: NoticeState
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None    # when the send started (the public date)
    finished_at: datetime | None = None
    recipients_planned: int | None = None  # confirmed subscribers when the send started
    tally: DeliveryTally = DeliveryTally()


class AnnouncementList(BaseModel):
    items: list[AnnouncementView]
    total: int


class SaveAnnouncement(ActorRequest[AnnouncementView], op="notifications.save-announcement"):
    """Create (no id) or edit a draft announcement."""

    announcement_id: Identifier | None = None
    title: AnnouncementTitle  # not `subject`: Request.subject() is the NATS subject
    body: AnnouncementBody
    topic: Topic = TopicKind.ANNOUNCEMENTS.value


class GetAnnouncement(ActorRequest[AnnouncementView], op="notifications.get-announcement"):
    announcement_id: Identifier


class GetPublicAnnouncement(Request[AnnouncementView], op="notifications.get-public-announcement"):
    """A sent announcement, as the public reads it (not found while it is a draft)."""

    announcement_id: Identifier


class SendAnnouncementTest(ActorRequest[AnnouncementView], op="notifications.send-announcement-test"):
    """Mail the draft, as subscribers will get it, to the secretariat member asking."""

    announcement_id: Identifier


class AnnouncementAction(StrEnum):
    SEND = "send"
    PAUSE = "pause"
    RESUME = "resume"


class ControlAnnouncement(ActorRequest[AnnouncementView], op="notifications.control-announcement"):
    """Send a draft to its topic's confirmed subscribers, pause a send, or resume it."""

    announcement_id: Identifier
    action: AnnouncementAction


class ListAnnouncements(Request[AnnouncementList], op="notifications.list-announcements"):
    """Announcements, newest first. `sent_only` (the public feeds and pages): those whose send started.
    Drafts are only listed for the secretariat (`actor_id`)."""

    sent_only: bool = True
    topic: Topic | None = None
    actor_id: str | None = None
    offset: int = Field(0, ge=0, le=1_000_000)
    limit: int = Field(50, ge=1, le=500)


# ---------------------------------------------------------------- delivery log
class DeliveryState(StrEnum):
    QUEUED = "queued"          # waiting for its turn (or for its notice to be resumed)
    SENDING = "sending"        # handed to SMTP right now
    SENT = "sent"              # the SMTP server accepted it (its reply is kept)
    DEFERRED = "deferred"      # temporary failure: tried again at `next_attempt_at`
    FAILED = "failed"          # permanent refusal (5xx), or temporary failures for too long
    SUPPRESSED = "suppressed"  # not sent: the address is suspended or the member stopped this kind
    HELD = "held"              # its notice is paused: leaves when the secretariat resumes it
    CANCELLED = "cancelled"    # the member was erased (or the subscriber left) before it left


DELIVERY_STATE_LABELS = {
    DeliveryState.QUEUED: "en attente", DeliveryState.SENDING: "en cours d'envoi", DeliveryState.SENT: "envoyé",
    DeliveryState.DEFERRED: "différé", DeliveryState.FAILED: "échec", DeliveryState.SUPPRESSED: "non envoyé",
    DeliveryState.HELD: "en pause", DeliveryState.CANCELLED: "annulé",
}


class DeliveryEntry(BaseModel):
    delivery_id: str
    message_id: str
    to: str
    kind: str                # member notice kind, or notice kind (announcement, minutes, ...)
    topic: str | None
    notice_id: str | None
    subject: str
    state: DeliveryState
    attempts: int
    smtp_reply: str | None   # the server's answer to the last attempt
    next_attempt_at: datetime | None
    resent_after_interruption: bool  # was in flight when a sender died: sent again, same Message-ID
    created_at: datetime
    sent_at: datetime | None


class DeliveryLog(BaseModel):
    items: list[DeliveryEntry]
    total: int


class SearchDeliveries(ActorRequest[DeliveryLog], op="notifications.search-deliveries"):
    """The secretariat's view of the delivery log, newest first."""

    address: Annotated[str, SingleLine(max_length=254)] | None = None   # part of an address
    topic: Topic | None = None
    notice_id: Identifier | None = None
    state: DeliveryState | None = None
    offset: int = Field(0, ge=0, le=10_000_000)
    limit: int = Field(50, ge=1, le=500)


# ---------------------------------------------------------------- monitoring and GDPR
class DeliveryCounts(BaseModel):
    by_status: dict[str, int]


class NotificationsMemberData(BaseModel):
    """What notifications holds about a member, for their copy of their data: `contact` (address and
    name, from registry events), `stopped_notices` (the kinds of e-mails they turned off), `seats` and
    `attendance` (the sessions they are reminded of, or review the minutes of), `subscriptions` of
    their address (with its topics), `contact_messages` (written to the secretariat from their address),
    `emails` (every message to them or their address: the delivery log, bodies left out),
    `announcements_written` (as secretariat), `commands`."""

    data: dict[str, Any]


class GetDeliveryCounts(Request[DeliveryCounts], op="notifications.delivery-counts"):
    """How many e-mails are in each delivery state (queued, sent, failed...)."""


class ExportNotificationsData(ActorRequest[NotificationsMemberData], op="notifications.export-member-data"):
    """The actor's part of their data export (a member the service does not know gets empty lists)."""


# ---------------------------------------------------------------- the contact form
CONTACT_NAME_MAX = 120
CONTACT_TITLE_MAX = 200
CONTACT_MESSAGE_MAX = 5000
ContactName = Annotated[str, SingleLine(min_length=2, max_length=CONTACT_NAME_MAX)]
ContactTitle = Annotated[str, SingleLine(min_length=3, max_length=CONTACT_TITLE_MAX)]
ContactText = Annotated[str, MultiLine(min_length=10, max_length=CONTACT_MESSAGE_MAX)]


class ContactAccepted(BaseModel):
    """The message is stored; the secretariat's e-mail and the sender's copy are queued."""

    contact_id: str
    email: str    # the sender's address as stored (normalised), where the copy goes
    message: str  # what the page says


class SendContactMessage(Request[ContactAccepted], op="notifications.contact"):
    """Someone writes to the secretariat from /contact: stored, mailed to the secretariat's address
    (Reply-To: the sender) and a copy to the sender. At most `contact_limit` messages per address and
    day (refused, on the `email` field, beyond). `client` is the sender's network address, kept with
    the message as the subscription log keeps it."""

    name: ContactName
    email: Email
    title: ContactTitle  # the message's subject (`subject` names the request's NATS subject)
    message: ContactText
    client: str = Field("", max_length=100)
