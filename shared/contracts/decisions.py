"""Decision contracts, published by the forum service: the commitments of the national
action plan, the forum's adoption rules, decisions and their follow-up, online majority-judgment
votes. Events the forum publishes and the commands/queries the web front sends on `rpc.forum.<op>`.

| op                  | request             | reply            | who                          |
| ------------------- | ------------------- | ---------------- | ---------------------------- |
| `list-commitments`  | `ListCommitments`   | `CommitmentList` | anyone                       |
| `save-commitment`   | `SaveCommitment`    | `CommitmentView` | secretariat                  |
| `get-rules`         | `GetRules`          | `RuleList`       | anyone                       |
| `set-rule`          | `SetRule`           | `RuleView`       | secretariat                  |
| `record-decision`   | `RecordDecision`    | `DecisionView`   | secretariat                  |
| `get-decision`      | `GetDecision`       | `DecisionDetail` | anyone                       |
| `list-decisions`    | `ListDecisions`     | `DecisionList`   | anyone                       |
| `update-follow-up`  | `UpdateFollowUp`    | `DecisionView`   | secretariat                  |
| `open-vote`         | `OpenVote`          | `VoteView`       | secretariat                  |
| `get-vote`          | `GetVote`           | `VoteView`       | anyone (with `actor_id`: my ballot, may I vote) |
| `list-votes`        | `ListVotes`         | `VoteList`       | anyone                       |
| `list-vote-groups`  | `ListVoteGroups`    | `VoteGroups`     | anyone (the votes page)      |
| `cast-ballot`       | `CastBallot`        | `BallotView`     | an eligible member           |
| `close-vote`        | `CloseVote`         | `VoteView`       | secretariat (closes now)     |

Public facts (each becomes one leaf of the public record, see services/minutes/records.py):
`forum.decision.recorded`, `forum.decision.superseded`, `forum.decision.follow_up_updated`,
`forum.vote.opened`, `forum.vote.closed`, `forum.rule.updated`. Ballots never travel in events:
only the closed vote's merit profiles (counts per grade) do.

Vocabulary of the rules ("what adopted means"): the forum's colleges are grouped in two *sides*,
the public actors (`public_actor`) and civil society (`civil_society` + `citizen`). A rule, per
session kind, requires a quorum (a minimum number of members present) per college, and optionally
a double majority: more votes for than against within each side, as well as overall.

Long on purpose: one producer's whole public API (vocabulary, events, replies, requests) reads in one
place, and splitting it would scatter the shapes that reference each other."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, ValidationInfo, field_validator

from shared.contracts.common import SQL_INT_MAX, ActorRequest, MultiLine, Request, SingleLine
from shared.contracts.forum import AttendanceCounts, Id, SessionKind
from shared.contracts.registry import College
from shared.contracts.envelope import EventData
from forumlib.majority_judgment import Grade


# ---------------------------------------------------------------- vocabulary
class Outcome(StrEnum):
    ADOPTED = "adopted"
    REJECTED = "rejected"
    DEFERRED = "deferred"


OUTCOME_LABELS = {Outcome.ADOPTED: "Adoptée", Outcome.REJECTED: "Rejetée", Outcome.DEFERRED: "Reportée"}


class Method(StrEnum):
    CONSENSUS = "consensus"
    SHOW_OF_HANDS = "show_of_hands"
    ONLINE_VOTE = "online_vote"  # only ever set by closing a vote, never typed in a form


METHOD_LABELS = {Method.CONSENSUS: "Consensus", Method.SHOW_OF_HANDS: "Vote à main levée",
                 Method.ONLINE_VOTE: "Vote en ligne au jugement majoritaire"}


class FollowUpStatus(StrEnum):
    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    ABANDONED = "abandoned"


FOLLOW_UP_LABELS = {FollowUpStatus.TODO: "À faire", FollowUpStatus.IN_PROGRESS: "En cours",
                    FollowUpStatus.DONE: "Réalisée", FollowUpStatus.ABANDONED: "Abandonnée"}


class Side(StrEnum):
    """The two sides of the double majority."""

    PUBLIC = "public"  # public_actor
    CIVIL = "civil"    # civil_society + citizen


SIDE_OF = {College.PUBLIC_ACTOR: Side.PUBLIC, College.CIVIL_SOCIETY: Side.CIVIL, College.CITIZEN: Side.CIVIL}
SIDE_LABELS = {Side.PUBLIC: "Acteurs publics", Side.CIVIL: "Société civile (organisations et citoyens)"}


class Eligibility(StrEnum):
    APPROVED_MEMBERS = "approved_members"  # every approved member (not secretariat accounts)
    ATTENDEES = "attendees"                # those checked in at the session


ELIGIBILITY_LABELS = {Eligibility.APPROVED_MEMBERS: "Tous les membres validés du forum",
                      Eligibility.ATTENDEES: "Les membres présents à la séance"}


class VoteStatus(StrEnum):
    """Derived from the clock and the closing: `closed` once tallied (a vote past its closing time is
    closed by the forum service within seconds)."""

    UPCOMING = "upcoming"
    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"  # with its session, before it could close: no result, no decision


MIN_OPTIONS, MAX_OPTIONS = 2, 10
MAX_TEXT = 20_000

DecisionTitle = Annotated[str, SingleLine(min_length=3, max_length=200)]
DecisionText = Annotated[str, MultiLine(min_length=1, max_length=MAX_TEXT)]
OptionLabel = Annotated[str, SingleLine(min_length=1, max_length=200)]
Note = Annotated[str, MultiLine(max_length=2000)]
CommitmentCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9A-Za-z.-]{1,12}$")]
CommitmentTitle = Annotated[str, SingleLine(min_length=3, max_length=300)]
Count = Annotated[int, Field(ge=0, le=100_000)]


# ---------------------------------------------------------------- shared shapes
class HandCount(BaseModel):
    """For / against / abstain in one college (a show of hands)."""

    model_config = {"frozen": True}
    in_favour: Count = 0
    against: Count = 0
    abstain: Count = 0


class CommitmentRef(BaseModel):
    """A commitment of the national action plan, as a decision refers to it (snapshot)."""

    model_config = {"frozen": True}
    code: str
    title: str


class Rule(BaseModel):
    """The forum's rule for one session kind. `quorum`: minimum members present per college (a
    college absent from the dict requires nobody)."""

    model_config = {"frozen": True}
    kind: SessionKind
    quorum: dict[College, Count] = Field(default_factory=dict)
    double_majority: bool = False


class QuorumLine(BaseModel):
    college: College
    required: int
    present: int
    met: bool


class MajorityLine(BaseModel):
    """For/against within one side (or overall: `side` None)."""

    side: Side | None
    in_favour: int
    against: int
    abstain: int
    met: bool


class RuleCheck(BaseModel):
    """Whether the forum's rule was met, computed by the forum service from attendance and tallies
    at the time the decision was recorded (and frozen with it)."""

    rule: Rule
    quorum: list[QuorumLine]
    quorum_met: bool
    majority: list[MajorityLine] = Field(default_factory=list)  # overall first, then each side if double
    majority_met: bool | None = None  # None: no count (consensus, online vote)
    met: bool
    summary: str  # one French sentence, e.g. « Quorum atteint ; double majorité atteinte. »


class GradeCount(BaseModel):
    grade: Grade
    count: int


class OptionResult(BaseModel):
    """One option's merit profile (counts per grade, best grade first, every grade listed) and its
    majority grade (lower median); `rank` 1 = winner (equal ranks: exact tie)."""

    option_id: int
    label: str
    profile: list[GradeCount]
    majority_grade: Grade | None  # None: no ballot
    rank: int


class VoteResult(BaseModel):
    ballots: int
    eligible: int
    participation: dict[College, int]  # voters per college (what the quorum is checked on)
    options: list[OptionResult]        # in ranking order
    winner_option_id: int | None       # None: no ballot, or an exact tie at the top
    tie: bool


class VoteOption(BaseModel):
    option_id: int  # 1-based position
    label: str


# ---------------------------------------------------------------- events (public facts)
class DecisionInfo(BaseModel):
    """A decision as the public sees it (no personal data)."""

    model_config = {"frozen": True}
    decision_id: str
    number: str  # « 2026-007 »: year of recording, then order within the year
    session_id: str
    session_title: str
    session_kind: SessionKind
    agenda_position: int
    agenda_text: str
    title: str
    text: str  # Markdown source (sanitised on display)
    outcome: Outcome
    method: Method
    hands: dict[College, HandCount] | None = None  # show of hands
    vote_id: str | None = None                     # online vote
    commitment: CommitmentRef | None = None
    supersedes: str | None = None                  # decision_id it corrects
    rule_check: RuleCheck
    recorded_at: datetime


class DecisionRecorded(EventData):
    """Public fact: the secretariat recorded a decision (or a closed vote became one)."""

    TYPE = "forum.decision.recorded"
    decision: DecisionInfo


class DecisionSuperseded(EventData):
    """Public fact: a decision was corrected by a new one; the old one stays public."""

    TYPE = "forum.decision.superseded"
    decision_id: str
    superseded_by: str
    superseded_at: datetime


class FollowUpUpdated(EventData):
    """Public fact: a dated update of a decision's follow-up."""

    TYPE = "forum.decision.follow_up_updated"
    decision_id: str
    status: FollowUpStatus
    note: str
    updated_at: datetime


class VoteInfo(BaseModel):
    model_config = {"frozen": True}
    vote_id: str
    session_id: str
    agenda_position: int
    agenda_text: str
    question: str
    options: list[VoteOption]
    grades: list[Grade]  # the scale, best first
    eligibility: Eligibility
    opens_at: datetime
    closes_at: datetime


class VoteOpened(EventData):
    """Public fact: a vote was opened (its options, scale, electorate and times are fixed from now on)."""

    TYPE = "forum.vote.opened"
    vote: VoteInfo


class VoteClosed(EventData):
    """Public fact: a vote closed; its merit profiles (never the ballots) and the decision it became."""

    TYPE = "forum.vote.closed"
    vote: VoteInfo
    closed_at: datetime
    result: VoteResult
    decision_id: str


class VoteCancelled(EventData):
    """Public fact: a vote was cancelled with its session before it closed; its ballots were deleted
    uncounted and it became no decision."""

    TYPE = "forum.vote.cancelled"
    vote: VoteInfo
    cancelled_at: datetime
    reason: str


class RuleUpdated(EventData):
    """Public fact: the secretariat changed the rule that decides adoption for a session kind."""

    TYPE = "forum.rule.updated"
    rule: Rule
    updated_at: datetime


DECISION_EVENTS: list[type[EventData]] = [
    DecisionRecorded, DecisionSuperseded, FollowUpUpdated, VoteOpened, VoteClosed, VoteCancelled, RuleUpdated,
]


# ---------------------------------------------------------------- replies
class CommitmentView(BaseModel):
    code: str
    title: str
    plan: str
    decisions: int  # decisions linked to it (superseded ones excluded)


class CommitmentList(BaseModel):
    commitments: list[CommitmentView]  # in code order (numeric codes numerically)


class RuleView(BaseModel):
    rule: Rule
    updated_at: datetime | None  # None: the default rule (no quorum, simple majority)


class RuleList(BaseModel):
    rules: list[RuleView]  # one per session kind


class FollowUpEntry(BaseModel):
    status: FollowUpStatus
    note: str
    updated_at: datetime
    event_id: str  # of its FollowUpUpdated event: the leaf of the public record


class DecisionView(BaseModel):
    decision: DecisionInfo
    event_id: str                      # of its DecisionRecorded event: the leaf of the public record
    superseded_by: str | None = None
    superseded_event_id: str | None = None
    follow_up: FollowUpStatus
    follow_ups: list[FollowUpEntry]    # oldest first
    vote: VoteView | None = None       # the closed vote it came from


class DecisionDetail(DecisionView):
    """One decision as its page shows it: besides the register's view, the numbers of the decision it
    corrects and of the one that corrected it, and its session's check-in sheet as it stands today (the
    quorum in `decision.rule_check` is the sheet as it stood when the decision was recorded)."""

    supersedes_number: str | None = None
    superseded_by_number: str | None = None
    attendance_now: AttendanceCounts


class DecisionList(BaseModel):
    decisions: list[DecisionView]  # newest first
    total: int


class MyBallot(BaseModel):
    grades: dict[int, Grade]
    cast_at: datetime


class VoteView(BaseModel):
    vote: VoteInfo
    status: VoteStatus
    session_title: str
    ballots: int                     # ballots cast so far (a count, never who or what)
    eligible: int
    opened_event_id: str
    closed_at: datetime | None = None
    closed_event_id: str | None = None
    result: VoteResult | None = None  # only once closed
    decision_id: str | None = None
    may_vote: bool | None = None      # with actor_id: eligible and the vote is open
    not_eligible_reason: str | None = None
    my_ballot: MyBallot | None = None  # with actor_id, while the vote is not closed


class VoteList(BaseModel):
    votes: list[VoteView]
    total: int


class VoteGroups(BaseModel):
    open: VoteList | None = None      # asked with `current`
    upcoming: VoteList | None = None  # asked with `current`
    closed: VoteList


class BallotView(BaseModel):
    vote_id: str
    grades: dict[int, Grade]
    cast_at: datetime
    replaced: bool  # an earlier ballot of this member was replaced


DecisionView.model_rebuild()


# ---------------------------------------------------------------- requests
class ListCommitments(Request[CommitmentList], op="forum.list-commitments"):
    pass


class SaveCommitment(ActorRequest[CommitmentView], op="forum.save-commitment"):
    """Create or edit (by code) a commitment of the national action plan."""

    code: CommitmentCode
    title: CommitmentTitle
    plan: Annotated[str, SingleLine(min_length=4, max_length=20)] = "2024-2026"


class GetRules(Request[RuleList], op="forum.get-rules"):
    pass


class SetRule(ActorRequest[RuleView], op="forum.set-rule"):
    rule: Rule


class RecordDecision(ActorRequest[DecisionView], op="forum.record-decision"):
    """The secretariat records a decision on an agenda item of a session that has started (not
    cancelled). `hands` is required for a show of hands (per college; colleges left out count 0),
    refused otherwise. `supersedes` corrects an earlier decision that is not already superseded.
    An outcome that contradicts the rule (adopted while the rule is not met, rejected while a show
    of hands met it) is refused with the rule's summary."""

    session_id: Id
    agenda_position: int = Field(ge=1, le=SQL_INT_MAX)
    title: DecisionTitle
    text: DecisionText
    outcome: Outcome
    method: Method
    hands: dict[College, HandCount] | None = Field(default=None, validate_default=True)
    commitment_code: CommitmentCode | None = None
    supersedes: Id | None = None

    @field_validator("method")
    @classmethod
    def _not_online(cls, v: Method) -> Method:
        if v == Method.ONLINE_VOTE:
            raise ValueError("une décision par vote en ligne est enregistrée à la clôture du vote")
        return v

    @field_validator("hands")
    @classmethod
    def _hands_for_show_of_hands(cls, v: dict[College, HandCount] | None, info: ValidationInfo
                                 ) -> dict[College, HandCount] | None:
        # A field validator (not a model one) so that the error names `hands`. `method` is declared
        # before `hands`: it is in info.data unless it was invalid itself.
        method = info.data.get("method")
        if method == Method.SHOW_OF_HANDS and not v:
            raise ValueError("indiquez les voix pour, contre et les abstentions")
        if method is not None and method != Method.SHOW_OF_HANDS and v:
            raise ValueError("les décomptes de voix ne concernent que le vote à main levée")
        return v


class GetDecision(Request[DecisionDetail], op="forum.get-decision"):
    decision_id: Id


class ListDecisions(Request[DecisionList], op="forum.list-decisions"):
    session_id: Id | None = None
    commitment_code: CommitmentCode | None = None
    outcome: Outcome | None = None
    follow_up: FollowUpStatus | None = None
    include_superseded: bool = True
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=SQL_INT_MAX)


class UpdateFollowUp(ActorRequest[DecisionView], op="forum.update-follow-up"):
    decision_id: Id
    status: FollowUpStatus
    note: Note = ""


class OpenVote(ActorRequest[VoteView], op="forum.open-vote"):
    """Open a majority-judgment vote on an agenda item of a session (not cancelled). Options: 2 to
    10, distinct. `closes_at` after `opens_at` and in the future; `opens_at` may be now or later."""

    session_id: Id
    agenda_position: int = Field(ge=1, le=SQL_INT_MAX)
    question: DecisionTitle
    options: list[OptionLabel] = Field(min_length=MIN_OPTIONS, max_length=MAX_OPTIONS)
    eligibility: Eligibility = Eligibility.APPROVED_MEMBERS
    opens_at: datetime
    closes_at: datetime

    @field_validator("opens_at", "closes_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError("indiquez le fuseau horaire de cette date (UTC attendu)")
        return v

    @field_validator("options")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len({o.casefold() for o in v}) != len(v):
            raise ValueError("deux options portent le même libellé")
        return v

    @field_validator("closes_at")
    @classmethod
    def _window(cls, v: datetime, info: ValidationInfo) -> datetime:
        # Runs after `_aware`; a field validator so that the error names `closes_at`.
        opens_at = info.data.get("opens_at")
        if opens_at is not None and v <= opens_at:
            raise ValueError("la clôture du vote doit être après son ouverture")
        return v


class GetVote(Request[VoteView], op="forum.get-vote"):
    vote_id: Id
    actor_id: str | None = None


class ListVotes(Request[VoteList], op="forum.list-votes"):
    status: VoteStatus | None = None
    session_id: Id | None = None
    actor_id: str | None = None
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=SQL_INT_MAX)


class ListVoteGroups(Request[VoteGroups], op="forum.list-vote-groups"):
    """The votes page at once: with `current`, the open and the upcoming votes (at most `current_limit`
    each); and a page of the closed ones. `actor_id` as for `ListVotes`."""

    current: bool = True
    current_limit: int = Field(default=50, ge=1, le=500)
    closed_limit: int = Field(default=20, ge=1, le=500)
    closed_offset: int = Field(default=0, ge=0, le=SQL_INT_MAX)
    actor_id: str | None = None


class CastBallot(ActorRequest[BallotView], op="forum.cast-ballot"):
    """Grade every option of the vote once (`grades`: option_id -> grade). Casting again before the
    closing replaces the ballot."""

    vote_id: Id
    grades: dict[int, Grade]


class CloseVote(ActorRequest[VoteView], op="forum.close-vote"):
    vote_id: Id
