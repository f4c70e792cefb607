"""Forum contracts: sessions (plenaries and working groups), RSVPs with capacity and waitlist,
attendance. Events the forum service publishes and the commands and queries the web front sends on
`rpc.forum.<op>`.

Times are timezone-aware and UTC, in requests (a naive time is refused: the web front converts
Europe/Paris to UTC before sending), in storage and in events.

Long on purpose: one producer's whole public API (vocabulary, events, replies, requests) reads in one
place, and splitting it would scatter the shapes that reference each other."""
from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from shared.contracts.common import SQL_INT_MAX, ActorRequest, Identifier, MultiLine, Request, SingleLine
from shared.contracts.registry import College
from shared.contracts.envelope import EventData


# ---------------------------------------------------------------- vocabulary
class SessionKind(StrEnum):
    PLENARY = "plenary"
    WORKING_GROUP = "working_group"


KIND_LABELS = {SessionKind.PLENARY: "Séance plénière", SessionKind.WORKING_GROUP: "Groupe de travail"}


class Theme(StrEnum):
    """The forum's themes (the working groups of the action plan)."""

    HEALTH = "health"
    ECOLOGICAL_TRANSITION = "ecological_transition"
    EDUCATION = "education"
    DEMOCRATIC_RENEWAL = "democratic_renewal"
    TRANSPARENCY = "transparency"
    OPEN_DATA = "open_data"
    JUSTICE = "justice"


THEME_LABELS = {
    Theme.HEALTH: "Santé",
    Theme.ECOLOGICAL_TRANSITION: "Transition écologique et planification",
    Theme.EDUCATION: "Éducation",
    Theme.DEMOCRATIC_RENEWAL: "Renouveau démocratique",
    Theme.TRANSPARENCY: "Transparence et intégrité de l'action publique",
    Theme.OPEN_DATA: "Données ouvertes et numérique",
    Theme.JUSTICE: "Justice et accès au droit",
}


class SessionStatus(StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


class SessionPhase(StrEnum):
    """Derived from the clock, never stored."""

    UPCOMING = "upcoming"  # not started
    ONGOING = "ongoing"    # started, not ended
    PAST = "past"          # ended


class RsvpAnswer(StrEnum):
    ATTEND = "attend"
    DECLINE = "decline"


class RsvpState(StrEnum):
    CONFIRMED = "confirmed"    # holds a seat
    WAITLISTED = "waitlisted"  # in the queue, in arrival order
    DECLINED = "declined"      # answered "I decline" (or changed their mind), holds nothing
    WITHDRAWN = "withdrawn"    # took back their RSVP (or was released: erasure), holds nothing


RSVP_STATE_LABELS = {
    RsvpState.CONFIRMED: "Place confirmée",
    RsvpState.WAITLISTED: "Sur liste d'attente",
    RsvpState.DECLINED: "Ne participe pas",
    RsvpState.WITHDRAWN: "Inscription retirée",
}


class ReleaseReason(StrEnum):
    MEMBER = "member"                # the member withdrew
    MEMBER_ERASED = "member_erased"  # the member's account was erased (GDPR)


class PromotionCause(StrEnum):
    SEAT_FREED = "seat_freed"            # a confirmed member withdrew, declined or was released
    CAPACITY_RAISED = "capacity_raised"  # the secretariat raised the capacity


class AttendanceMark(StrEnum):
    """A member's attendance at a session that has started, as the check-in sheet says it."""

    PRESENT = "present"            # checked in
    ABSENT = "absent"              # not checked in, and the check-in was done (or is closed)
    NOT_RECORDED = "not_recorded"  # nobody checked in yet and the check-in is still open


ATTENDANCE_MARK_LABELS = {
    AttendanceMark.PRESENT: "Présent·e",
    AttendanceMark.ABSENT: "Absent·e",
    AttendanceMark.NOT_RECORDED: "Pas encore émargé",
}


class SessionPeriod(StrEnum):
    UPCOMING = "upcoming"  # not ended yet (includes ongoing), soonest first
    PAST = "past"          # ended, most recent first
    ALL = "all"            # every session, soonest first (the iCalendar feed)


MAX_CAPACITY = 10_000
MAX_AGENDA_ITEMS = 30

Title = Annotated[str, SingleLine(min_length=3, max_length=200)]
Description = Annotated[str, MultiLine(max_length=5000)]
Place = Annotated[str, SingleLine(max_length=300)]
AgendaText = Annotated[str, SingleLine(min_length=1, max_length=300)]
CancelReason = Annotated[str, MultiLine(min_length=3, max_length=1000)]
OnlineUrl = Annotated[str, SingleLine(max_length=500)]
Id = Identifier


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# ---------------------------------------------------------------- events
class SessionInfo(BaseModel):
    """A session as the public sees it (no personal data): what a calendar entry or an e-mail needs.
    `revision` starts at 0 and grows with every change: it is the iCalendar SEQUENCE; the UID is
    derived from `session_id`, which never changes."""

    model_config = {"frozen": True}
    session_id: str
    revision: int
    status: SessionStatus
    title: str
    kind: SessionKind
    theme: Theme | None
    description: str
    starts_at: datetime
    ends_at: datetime
    place: str | None
    online_url: str | None
    capacity: int
    rsvp_opens_at: datetime
    rsvp_closes_at: datetime
    agenda: list[str]
    cancel_reason: str | None = None
    updated_at: datetime


class SessionScheduled(EventData):
    """Public fact: the secretariat scheduled a session."""

    TYPE = "forum.session.scheduled"
    session: SessionInfo


class SessionUpdated(EventData):
    """The secretariat edited a session. `changes` names the fields that changed; when the time or
    the place changed, `notify_member_ids` (every confirmed and waitlisted member) must be told."""

    TYPE = "forum.session.updated"
    session: SessionInfo
    changes: list[str]
    time_or_place_changed: bool
    notify_member_ids: list[str]


class SessionCancelled(EventData):
    """Public fact: the session is cancelled (with the reason); `notify_member_ids` (every confirmed
    and waitlisted member) must be told."""

    TYPE = "forum.session.cancelled"
    session: SessionInfo
    reason: str
    notify_member_ids: list[str]


class RsvpConfirmed(EventData):
    """The member holds a seat (answered "I attend" while seats were left)."""

    TYPE = "forum.rsvp.confirmed"
    session_id: str
    member_id: str
    seats_left: int


class RsvpWaitlisted(EventData):
    """The session was full: the member is on the waitlist at `position` (1 = next to be promoted)."""

    TYPE = "forum.rsvp.waitlisted"
    session_id: str
    member_id: str
    position: int


class RsvpPromoted(EventData):
    """A seat freed (or the capacity grew): the first waitlisted member now holds a seat."""

    TYPE = "forum.rsvp.promoted"
    session_id: str
    member_id: str
    cause: PromotionCause


class RsvpWithdrawn(EventData):
    """The member no longer holds a seat or a waitlist place (withdrew, or was released)."""

    TYPE = "forum.rsvp.withdrawn"
    session_id: str
    member_id: str
    previous_state: RsvpState
    reason: ReleaseReason


class RsvpDeclined(EventData):
    """The member answered "I decline" (first answer, or a change of mind from attending)."""

    TYPE = "forum.rsvp.declined"
    session_id: str
    member_id: str
    previous_state: RsvpState | None


class AttendanceRecorded(EventData):
    """Check-in at the session (or its correction: `present` false). `walk_in`: came without a
    confirmed seat. `college` is what per-college attendance counts are made of."""

    TYPE = "forum.attendance.recorded"
    session_id: str
    member_id: str
    public_id: str | None
    college: College | None
    present: bool
    walk_in: bool


FORUM_EVENTS: list[type[EventData]] = [
    SessionScheduled, SessionUpdated, SessionCancelled, RsvpConfirmed, RsvpWaitlisted, RsvpPromoted,
    RsvpWithdrawn, RsvpDeclined, AttendanceRecorded,
]


# ---------------------------------------------------------------- replies
class AgendaItem(BaseModel):
    position: int  # 1-based
    text: str


class MyRsvp(BaseModel):
    state: RsvpState
    waitlist_position: int | None = None
    responded_at: datetime


class AttendanceCounts(BaseModel):
    session_id: str
    total: int
    by_college: dict[str, int]  # every College value, plus "none" for accounts without a college
    final: bool                 # the session has ended


class SessionView(BaseModel):
    session_id: str
    revision: int
    status: SessionStatus
    phase: SessionPhase
    title: str
    kind: SessionKind
    theme: Theme | None
    description: str
    starts_at: datetime
    ends_at: datetime
    place: str | None
    online_url: str | None
    capacity: int
    rsvp_opens_at: datetime
    rsvp_closes_at: datetime
    rsvp_open: bool
    confirmed_count: int
    waitlist_count: int
    seats_left: int
    agenda: list[AgendaItem]
    cancel_reason: str | None = None
    cancelled_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    my_rsvp: MyRsvp | None = None
    attendance: AttendanceCounts | None = None  # only once the session has ended
    # With an actor, once the session has started (not cancelled): were they checked in?
    my_attendance: AttendanceMark | None = None


class SessionList(BaseModel):
    sessions: list[SessionView]
    total: int


class RsvpView(BaseModel):
    """Reply to an RSVP or a withdrawal: where the member stands now."""

    session_id: str
    member_id: str
    state: RsvpState
    waitlist_position: int | None = None
    seats_left: int
    responded_at: datetime


class RsvpEntry(BaseModel):
    member_id: str
    public_id: str | None
    full_name: str
    organisation: str
    college: College | None
    state: RsvpState
    waitlist_position: int | None = None
    responded_at: datetime
    attended: bool


class AttendanceEntry(BaseModel):
    member_id: str
    public_id: str | None
    full_name: str
    organisation: str
    college: College | None
    walk_in: bool
    recorded_at: datetime


class RsvpList(BaseModel):
    """For the secretariat's list and its CSV export."""

    session: SessionView
    confirmed: list[RsvpEntry]
    waitlisted: list[RsvpEntry]  # in waitlist order
    declined: list[RsvpEntry]
    attendees: list[AttendanceEntry]


class AttendanceView(BaseModel):
    """Reply to a check-in."""

    session_id: str
    member_id: str
    present: bool
    walk_in: bool
    counts: AttendanceCounts


# ---------------------------------------------------------------- requests
class SessionFields(ActorRequest):
    """What the secretariat fills in to schedule or edit a session. Field order matters: each check
    compares with fields declared before it."""

    title: Title
    kind: SessionKind
    theme: Theme | None = Field(default=None, validate_default=True)
    description: Description = ""
    starts_at: datetime
    ends_at: datetime
    place: Place | None = None
    online_url: OnlineUrl | None = Field(default=None, validate_default=True)
    capacity: int
    rsvp_opens_at: datetime
    rsvp_closes_at: datetime
    agenda: list[AgendaText] = Field(default_factory=list, max_length=MAX_AGENDA_ITEMS)

    @field_validator("starts_at", "ends_at", "rsvp_opens_at", "rsvp_closes_at", mode="after")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError("indiquez le fuseau horaire de cette date (UTC attendu)")
        return v

    @field_validator("capacity")
    @classmethod
    def _capacity(cls, v: int) -> int:
        if not 1 <= v <= MAX_CAPACITY:
            raise ValueError(f"la capacité doit être comprise entre 1 et {MAX_CAPACITY} places")
        return v

    @field_validator("place", "online_url", "theme", mode="before")
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("theme")
    @classmethod
    def _theme_for_working_groups(cls, v: Theme | None, info: ValidationInfo) -> Theme | None:
        if v is None and info.data.get("kind") == SessionKind.WORKING_GROUP:
            raise ValueError("un groupe de travail doit avoir un thème")
        return v

    @field_validator("starts_at", "rsvp_opens_at")
    @classmethod
    def _to_utc(cls, v: datetime) -> datetime:
        return _utc(v)

    @field_validator("ends_at")
    @classmethod
    def _ends_after_start(cls, v: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("starts_at")
        if start is not None and v <= start:
            raise ValueError("la fin doit être après le début")
        return _utc(v)

    @field_validator("online_url")
    @classmethod
    def _somewhere(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None:
            url = urlsplit(v)
            if url.scheme not in ("http", "https") or not url.netloc or " " in v:
                raise ValueError("le lien de participation doit être une adresse web (https://…)")
        elif not info.data.get("place"):
            raise ValueError("indiquez un lieu ou un lien de participation en ligne")
        return v

    @field_validator("rsvp_closes_at")
    @classmethod
    def _rsvp_window(cls, v: datetime, info: ValidationInfo) -> datetime:
        start, opens = info.data.get("starts_at"), info.data.get("rsvp_opens_at")
        if start is not None and v > start:
            raise ValueError("les réponses doivent être closes au plus tard au début de la séance")
        if opens is not None and v <= opens:
            raise ValueError("la clôture des réponses doit être après leur ouverture")
        return _utc(v)


class CreateSession(SessionFields, ActorRequest[SessionView], op="forum.create-session"):
    pass


class UpdateSession(SessionFields, ActorRequest[SessionView], op="forum.update-session"):
    """Replaces every field. `expected_revision` (the revision the form was loaded at) refuses an
    edit made over somebody else's."""

    session_id: Id
    expected_revision: int | None = Field(default=None, ge=0, le=SQL_INT_MAX)


class CancelSession(ActorRequest[SessionView], op="forum.cancel-session"):
    session_id: Id
    reason: CancelReason


class ListSessions(Request[SessionList], op="forum.list-sessions"):
    """Public list. With `actor_id`, each session also carries that member's RSVP."""

    when: SessionPeriod = SessionPeriod.UPCOMING
    kind: SessionKind | None = None
    theme: Theme | None = None
    include_cancelled: bool = True
    actor_id: str | None = None
    # With `actor_id`: only the sessions that member answered (and did not withdraw from) or was checked in at.
    mine: bool = False
    limit: int = Field(default=100, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=SQL_INT_MAX)


class GetSession(Request[SessionView], op="forum.get-session"):
    """Public session page. With `actor_id`, also that member's RSVP and waitlist position."""

    session_id: Id
    actor_id: str | None = None


class AnswerRsvp(ActorRequest[RsvpView], op="forum.rsvp"):
    """"I attend" or "I decline" (a first answer or a change of mind), before the closing time."""

    session_id: Id
    answer: RsvpAnswer


class WithdrawRsvp(ActorRequest[RsvpView], op="forum.withdraw-rsvp"):
    """Give back a seat or a waitlist place, before the closing time."""

    session_id: Id


class ListRsvps(ActorRequest[RsvpList], op="forum.list-rsvps"):
    """Secretariat: who comes (confirmed, waitlist in order), who declined, who came."""

    session_id: Id


class CheckIn(ActorRequest[AttendanceView], op="forum.check-in"):
    """Secretariat, on the day: mark an approved member present (a walk-in if they held no seat),
    or correct a mistake with `present` false."""

    session_id: Id
    member_id: Id
    present: bool = True


class GetAttendance(Request[AttendanceCounts], op="forum.attendance"):
    """Public: attendance counts per college (`final` once the session has ended)."""

    session_id: Id


# ---------------------------------------------------------------- right of access
class ForumMemberData(BaseModel):
    """What the forum holds about a member, for their copy of their data: `member` (what registry events
    told the forum), `rsvps` (with waitlist places), `attendance`, `votes` (that they voted and when:
    never their grades), and what they did as secretariat (`sessions_created`, `check_ins_recorded`,
    `decisions_recorded`, `follow_ups_written`, `votes_opened`, `rules_set`), `commands`."""

    data: dict[str, Any]


class ExportForumData(ActorRequest[ForumMemberData], op="forum.export-member-data"):
    """The actor's part of their data export (a member the forum does not know gets empty lists)."""
