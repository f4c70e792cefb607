"""Minutes service contracts: the public record (transparency log) queries the web front sends, and
the comptes rendus (minutes) of the sessions — drafted by the secretariat, reviewed by the session's
attendees, adopted and published as immutable versions.

Request/reply subjects `rpc.<op>`, each named by its request class. The public record:

| op                            | request               | reply              |
| ----------------------------- | --------------------- | ------------------ |
| `minutes.ledger-checkpoint`   | `GetCheckpoint`       | `LedgerCheckpoint` |
| `minutes.ledger-key`          | `GetVerifierKey`      | `LedgerKey`        |
| `minutes.ledger-entries`      | `ListEntries`         | `LedgerEntries`    |
| `minutes.ledger-inclusion`    | `GetInclusionProof`   | `InclusionProof`   |
| `minutes.ledger-consistency`  | `GetConsistencyProof` | `ConsistencyProof` |
| `minutes.ledger-locate`       | `LocateEntries`       | `EntryLocations`   |
| `minutes.ledger-prove-events` | `ProveEvents`         | `EventRecords`     |
| `minutes.ledger-tile`         | `GetTile`             | `LedgerTile`       |

The reply models of entries and proofs are also the public HTTP response bodies of
`GET /ledger/entries` and `GET /ledger/proof/...`: field names are a stable public API (third
parties script it).
Hashes and leaves travel as standard, padded base64.

Typed errors: negative or non-integer numbers → `invalid` (field set); `start >= end`,
`first > second`, `index >= size` → `invalid`; a tree size beyond the current log → `not_found`
(the tree does not exist yet); no checkpoint signed yet → `unavailable`. `ledger-tile` answers
the C2SP tlog-tiles resources behind `GET /ledger/tile/...`: a tile the log does not hold (yet) →
`not_found`.

The comptes rendus:

| op                                | request                | reply                | who                         |
| --------------------------------- | ---------------------- | -------------------- | --------------------------- |
| `minutes.open-minutes-draft`      | `OpenMinutesDraft`     | `MinutesView`        | secretariat                 |
| `minutes.save-minutes-draft`      | `SaveMinutesDraft`     | `MinutesView`        | secretariat                 |
| `minutes.get-minutes`             | `GetMinutes`           | `MinutesView`        | anyone (drafts: see below)  |
| `minutes.open-minutes-review`     | `OpenMinutesReview`    | `MinutesView`        | secretariat                 |
| `minutes.comment-minutes`         | `CommentMinutes`       | `CommentView`        | the session's attendees     |
| `minutes.answer-minutes-comment`  | `AnswerMinutesComment` | `CommentView`        | secretariat                 |
| `minutes.list-minutes-comments`   | `ListMinutesComments`  | `CommentList`        | secretariat all, others own |
| `minutes.publish-minutes`         | `PublishMinutes`       | `MinutesView`        | secretariat                 |
| `minutes.correct-minutes`         | `CorrectMinutes`       | `MinutesView`        | secretariat                 |
| `minutes.list-minutes`            | `ListMinutes`          | `MinutesList`        | anyone (published ones)     |
| `minutes.get-minutes-version`     | `GetMinutesVersion`    | `MinutesVersionView` | anyone                      |
| `minutes.get-minutes-pdf`         | `GetMinutesPdf`        | `MinutesPdf`         | anyone                      |
| `minutes.diff-minutes`            | `DiffMinutes`          | `MinutesDiff`        | anyone                      |
| `minutes.minutes-of-session`      | `MinutesOfSession`     | `SessionMinutes`     | anyone                      |
| `minutes.minutes-of-decision`     | `MinutesOfDecision`    | `DecisionMinutes`    | anyone                      |

A draft is seen by the secretariat, and, while it is in review, by the members present at the
session; a published version by anyone. Public facts: `minutes.published` and `minutes.corrected`
(the document's SHA-256, never its text), each a leaf of the public record. Opening a review, or
moving its closing date, emits `minutes.review_opened` (not a public fact: it tells notifications to
mail the attendees).

Typed errors (field set): an unknown session, minutes, version or comment → `not_found`; a session
not yet held or cancelled, a draft saved over a newer revision (`base_revision`), a text identical to
the published one, minutes already published → `conflict`/`invalid`; an empty text, a correction
without a reason → `invalid`; drafting or publishing by anyone but the secretariat, commenting by
anyone but an attendee → `forbidden`; a review past its closing date → `expired`.

Long on purpose: one producer's whole public API (vocabulary, events, replies, requests) reads in one
place, and splitting it would scatter the shapes that reference each other.
"""
from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, ValidationInfo, field_validator

from shared.contracts.common import SQL_INT_MAX, ActorRequest, MultiLine, Request, SingleLine
from shared.contracts.envelope import EventData
from shared.contracts.forum import Id, SessionKind, Theme

MAX_PAGE = 1000
"""Most entries one `ledger-entries` reply holds (it may hold fewer: continue from the last index + 1)."""

MAX_INDEX = 2**63 - 1
"""Indices and sizes are non-negative signed 64-bit integers (what SQL BIGINT holds)."""

Index = Annotated[int, Field(ge=0, le=MAX_INDEX)]


# ---------------------------------------------------------------- replies (= public HTTP bodies)
class LedgerCheckpoint(BaseModel):
    """The latest signed checkpoint (C2SP tlog-checkpoint in a C2SP signed note)."""

    note: str = Field(description="The signed note text, exactly as served by GET /ledger/checkpoint.")
    size: int = Field(description="Tree size the checkpoint commits to.")
    root: str = Field(description="Base64 RFC 9162 root hash of the first `size` leaves.")


class LedgerKey(BaseModel):
    key: str = Field(description="Note verifier key: <name>+<key id hex>+<base64(0x01 || Ed25519 public key)>.")
    origin: str = Field(description="Checkpoint origin line (equal to the key name).")


class LedgerEntry(BaseModel):
    index: int = Field(description="Position of the leaf in the log, from 0.")
    leaf: str = Field(description="Base64 of the exact leaf bytes: RFC 8785 (JCS) canonical JSON of `record`.")
    record: dict[str, Any] = Field(description="The public record (see the record schema).")


class LedgerEntries(BaseModel):
    entries: list[LedgerEntry] = Field(
        description=f"Entries start <= index < end, in order, at most {MAX_PAGE}; fewer when the log is "
                    "shorter than `end` or the page is full (continue from the last index + 1).")


class InclusionProof(BaseModel):
    leaf_index: int
    tree_size: int
    hashes: list[str] = Field(description="RFC 9162 inclusion path, leaf to root, base64 SHA-256 hashes.")


class ConsistencyProof(BaseModel):
    first: int
    second: int
    hashes: list[str] = Field(description="RFC 9162 consistency proof, base64 SHA-256 hashes.")


class EntryLocation(BaseModel):
    event_id: str
    index: int
    type: str = Field(description="The record type, e.g. `decision.recorded`.")


class EntryLocations(BaseModel):
    locations: list[EntryLocation]
    size: int = Field(description="Current size of the log (the latest checkpoint may be smaller).")


class EventRecords(BaseModel):
    """Where some events' records are, and what a reader needs to check one of them: the verifier key,
    the latest signed checkpoint, that record's entry and its inclusion proof — read in one transaction."""

    locations: list[EntryLocation] = Field(description="In log order; events not (yet) in the log left out.")
    key: str = Field(description="Note verifier key (as `LedgerKey.key`).")
    checkpoint: LedgerCheckpoint | None = Field(description="The latest signed checkpoint; none signed yet: null.")
    entry: LedgerEntry | None = Field(description="The record of `prove`, when it is in the log.")
    proof: InclusionProof | None = Field(
        description="The inclusion proof of `entry` in the tree of `checkpoint`, when the checkpoint covers it.")


class LedgerTile(BaseModel):
    encoding: Literal["identity", "gzip"] = Field(
        "identity", description="`gzip`: the bytes below are the resource gzip-compressed (entry bundles are, "
                                "as they are served to most clients).")
    data: str = Field(description="Base64 of the resource's bytes, encoded as `encoding` says, from `offset` on — "
                                  "all of them, or as many as fit one reply (ask again from the next offset). The "
                                  "resource: the hashes of a hash tile (32 bytes each), or an entry bundle (each "
                                  "leaf after its big-endian uint16 length).")
    total: int = Field(description="Length of the whole encoded resource in bytes.")
    ahead: list[str] = Field(default_factory=list,
                             description="Base64 of the full tiles that follow it at its level, whole and encoded "
                                         "alike, as many as were asked and fit the reply (a sequential reader's "
                                         "next requests).")


# ---------------------------------------------------------------- requests
class GetCheckpoint(Request[LedgerCheckpoint], op="minutes.ledger-checkpoint"):
    pass


class GetVerifierKey(Request[LedgerKey], op="minutes.ledger-key"):
    pass


class ListEntries(Request[LedgerEntries], op="minutes.ledger-entries"):
    start: Index
    end: Index


class GetInclusionProof(Request[InclusionProof], op="minutes.ledger-inclusion"):
    index: Index
    size: Index


class GetConsistencyProof(Request[ConsistencyProof], op="minutes.ledger-consistency"):
    first: Index
    second: Index


class GetTile(Request[LedgerTile], op="minutes.ledger-tile"):
    """A C2SP tlog-tiles resource: the hash tile `tile/<level>/<index>[.p/<width>]`, or with no level the
    entry bundle `tile/entries/<index>[.p/<width>]` (`forumlib.tlog.tiles`). Width 256 is a full tile."""

    level: int | None = Field(None, ge=0, le=63, description="Tile level; none for an entry bundle.")
    index: Index
    width: int = Field(256, ge=1, le=256, description="Hashes (or entries) in the tile: 256 unless partial.")
    offset: Index = Field(0, description="First byte wanted (a tile larger than a reply comes in parts).")
    ahead: int = Field(0, ge=0, le=15, description="Also send up to this many of the full tiles that follow.")


class LocateEntries(Request[EntryLocations], op="minutes.ledger-locate"):
    """Where the records carried by these events are in the log (e.g. a decision page links to its
    leaf). Unknown ids are left out of the reply: not yet appended, or not a public fact."""

    event_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(min_length=1, max_length=100)


class ProveEvents(Request[EventRecords], op="minutes.ledger-prove-events"):
    """`LocateEntries`, and for the event `prove` (one of `event_ids`) its entry and inclusion proof against
    the latest signed checkpoint, with that checkpoint and the verifier key: everything a page that shows a
    record and checks it needs, in one round trip."""

    event_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(min_length=1, max_length=100)
    prove: str | None = Field(None, description="The event whose record comes with its proof.")

    @field_validator("prove")
    @classmethod
    def _among_events(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and value not in info.data.get("event_ids", [value]):
            raise ValueError("prove doit être l'un des event_ids (prove must be one of event_ids)")
        return value


# ================================================================ comptes rendus (minutes of the sessions)
class MinutesState(StrEnum):
    """Where minutes stand, as the session page and the list show it. A draft is `draft` or `review`;
    once published, `adopted` (adopted by a decision or a vote) or `published` (without adoption), and
    `corrected` from version 2 on."""

    DRAFT = "draft"
    REVIEW = "review"
    ADOPTED = "adopted"
    PUBLISHED = "published"
    CORRECTED = "corrected"


MINUTES_STATE_LABELS = {
    MinutesState.DRAFT: "en préparation",
    MinutesState.REVIEW: "en relecture",
    MinutesState.ADOPTED: "adopté",
    MinutesState.PUBLISHED: "publié",
    MinutesState.CORRECTED: "corrigé",
}


class AdoptionKind(StrEnum):
    DECISION = "decision"  # a decision recorded at a later session
    VOTE = "vote"          # an online vote among the session's attendees
    NONE = "none"          # published without adoption (the page says so)


class CommentKind(StrEnum):
    COMMENT = "comment"      # a remark on a paragraph
    REWORDING = "rewording"  # a new text for the paragraph, which replaces it if accepted


COMMENT_KIND_LABELS = {CommentKind.COMMENT: "Remarque", CommentKind.REWORDING: "Proposition de reformulation"}

MAX_MINUTES_TEXT = 200_000

MinutesText = Annotated[str, MultiLine(min_length=1, max_length=MAX_MINUTES_TEXT)]
MinutesReason = Annotated[str, MultiLine(min_length=3, max_length=1000)]
CommentText = Annotated[str, MultiLine(min_length=1, max_length=20_000)]
Anchor = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
RequestId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
DecisionNumber = Annotated[str, SingleLine(max_length=16)]
DECISION_NUMBER = re.compile(r"[0-9]{4}-[0-9]{3,}")
Version = Annotated[int, Field(ge=1, le=1_000_000)]


class Adoption(BaseModel):
    """How published minutes were adopted. `reviewed`: the attendees were given the draft to review
    before it was published."""

    model_config = {"frozen": True}
    kind: AdoptionKind
    decision_id: str | None = None
    decision_number: str | None = None
    vote_id: str | None = None
    reviewed: bool = False


# ---------------------------------------------------------------- events (public facts)
class MinutesPublished(EventData):
    """Public fact: the minutes of a session were published (version 1). Carries the SHA-256 of the
    canonical document, never its text."""

    TYPE = "minutes.published"
    minutes_id: str
    session_id: str
    version: int
    sha256: str
    published_at: datetime
    adoption: Adoption
    reason: str | None = None


class MinutesCorrected(EventData):
    """Public fact: published minutes were corrected: version `version` (> 1), with its reason."""

    TYPE = "minutes.corrected"
    minutes_id: str
    session_id: str
    version: int
    sha256: str
    published_at: datetime
    adoption: Adoption
    reason: str


class MinutesReviewOpened(EventData):
    """The secretariat gave a draft to the session's attendees to review until `until` (`moved`: the
    review was already open and only its closing date changed). Not a public fact: notifications mails
    the attendees."""

    TYPE = "minutes.review_opened"
    minutes_id: str
    session_id: str
    until: datetime
    session_title: str
    moved: bool = False


MINUTES_EVENTS: list[type[EventData]] = [MinutesPublished, MinutesCorrected, MinutesReviewOpened]


# ---------------------------------------------------------------- replies
class MinutesSession(BaseModel):
    """The session the minutes are about, as the minutes service knows it (from the forum's events)."""

    session_id: str
    title: str
    kind: SessionKind
    theme: Theme | None
    starts_at: datetime
    ends_at: datetime
    place: str | None
    online_url: str | None


class ParagraphView(BaseModel):
    anchor: str = Field(description="Stable anchor: the same text keeps it from one version to the next.")
    kind: str
    markdown: str


class VersionSummary(BaseModel):
    version: int
    published_at: datetime
    sha256: str = Field(description="SHA-256 (hex) of the version's canonical JSON document.")
    reason: str | None = Field(description="Why this version corrects the previous one (None for version 1).")
    adoption: Adoption
    event_id: str = Field(description="Of its minutes.published/corrected event: the leaf of the public record.")


class MinutesView(BaseModel):
    minutes_id: str
    session: MinutesSession
    state: MinutesState
    state_label: str
    revision: int = Field(description="Revision of the draft: give it back as `base_revision` when saving.")
    markdown: str | None = Field(description="The draft, to those who may read it (else None).")
    paragraphs: list[ParagraphView] = Field(description="The draft's paragraphs and anchors (empty when hidden).")
    review_until: datetime | None = None
    versions: list[VersionSummary] = Field(description="Published versions, oldest first.")
    created_at: datetime
    updated_at: datetime
    may_edit: bool = False
    may_comment: bool = False


class MinutesSummary(BaseModel):
    minutes_id: str
    session: MinutesSession
    state: MinutesState
    state_label: str
    latest_version: int | None = None
    first_published_at: datetime | None = None
    latest_published_at: datetime | None = None
    adoption: Adoption | None = None


class MinutesList(BaseModel):
    minutes: list[MinutesSummary] = Field(description="Newest session first.")
    total: int


class MinutesVersionView(BaseModel):
    minutes_id: str
    session: MinutesSession
    version: int
    latest_version: int
    state: MinutesState
    state_label: str
    published_at: datetime
    reason: str | None
    adoption: Adoption
    markdown: str
    html: str = Field(description="Sanitised HTML, one <div class=\"cr-para\" id=anchor> per paragraph.")
    paragraphs: list[ParagraphView]
    canonical_json: str = Field(description="The canonical document (RFC 8785) whose SHA-256 is `sha256`.")
    sha256: str
    event_id: str
    versions: list[VersionSummary]


class MinutesPdf(BaseModel):
    minutes_id: str
    version: int
    sha256: str
    filename: str
    pdf: str = Field(description="Base64 of the PDF bytes (the same bytes every time).")


class ParagraphChangeView(BaseModel):
    kind: Literal["same", "added", "removed", "changed"]
    old: ParagraphView | None = None
    new: ParagraphView | None = None


class MinutesDiff(BaseModel):
    minutes_id: str
    from_version: int
    to_version: int
    changes: list[ParagraphChangeView]


class CommentView(BaseModel):
    comment_id: str
    minutes_id: str
    author_id: str
    anchor: str
    kind: CommentKind
    text: str
    paragraph: str = Field(description="The paragraph as it read when it was commented.")
    created_at: datetime
    accepted: bool | None = None
    reason: str | None = None
    answered_at: datetime | None = None
    applied_revision: int | None = Field(default=None, description="Draft revision the accepted rewording made.")


class CommentList(BaseModel):
    comments: list[CommentView]  # oldest first


class SessionMinutes(BaseModel):
    """The minutes of a session, for its page (no minutes yet: every field but `session_id` None)."""

    session_id: str
    minutes_id: str | None = None
    state: MinutesState | None = None
    state_label: str | None = None
    latest_version: int | None = None


class DecisionMinutes(BaseModel):
    """Where a decision appears in its session's published minutes (latest version), for the decision
    page's link (`anchor` None when no paragraph names it)."""

    decision_id: str
    minutes_id: str | None = None
    version: int | None = None
    anchor: str | None = None


# ---------------------------------------------------------------- requests
class OpenMinutesDraft(ActorRequest[MinutesView], op="minutes.open-minutes-draft"):
    """Secretariat: open the draft of a session that has taken place, pre-filled from what the forum
    recorded (opening it again returns the existing draft)."""

    session_id: Id


class SaveMinutesDraft(ActorRequest[MinutesView], op="minutes.save-minutes-draft"):
    """Secretariat: save the draft. `base_revision` is the revision the text was loaded at: a save over
    a newer revision (another tab, another clerk) is refused, never silently merged."""

    minutes_id: Id
    markdown: MinutesText
    base_revision: int = Field(ge=0, le=SQL_INT_MAX)


class GetMinutes(Request[MinutesView], op="minutes.get-minutes"):
    minutes_id: Id
    actor_id: str | None = None


class OpenMinutesReview(ActorRequest[MinutesView], op="minutes.open-minutes-review"):
    """Secretariat: the session's attendees may comment on the draft until `until` (again: a new date)."""

    minutes_id: Id
    until: datetime

    @field_validator("until")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError("indiquez le fuseau horaire de cette date (UTC attendu)")
        return v


class CommentMinutes(ActorRequest[CommentView], op="minutes.comment-minutes"):
    """An attendee comments on a paragraph of the draft in review, or proposes a new text for it."""

    minutes_id: Id
    anchor: Anchor
    kind: CommentKind = CommentKind.COMMENT
    text: CommentText


class AnswerMinutesComment(ActorRequest[CommentView], op="minutes.answer-minutes-comment"):
    """Secretariat accepts or declines a comment, with a reason its author reads. Accepting a
    rewording replaces the paragraph in the draft (a new revision)."""

    comment_id: Id
    accepted: bool
    reason: MinutesReason


class ListMinutesComments(ActorRequest[CommentList], op="minutes.list-minutes-comments"):
    minutes_id: Id


class PublishMinutes(ActorRequest[MinutesView], op="minutes.publish-minutes"):
    """Secretariat publishes the draft as version 1, adopted by a decision of a later session
    (`decision_number`), by a closed vote among the session's attendees (`vote_id`), or without
    adoption. `request_id` makes a repeated command (double click, redelivery) publish once and answer
    the same; `base_revision`, if given, refuses to publish a draft that changed since it was read."""

    minutes_id: Id
    adoption: AdoptionKind
    decision_number: DecisionNumber | None = Field(default=None, validate_default=True)
    vote_id: Id | None = Field(default=None, validate_default=True)
    base_revision: int | None = Field(default=None, ge=0, le=SQL_INT_MAX)
    request_id: RequestId | None = None

    @field_validator("decision_number")
    @classmethod
    def _decision_for_decision(cls, v: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("adoption")
        if kind == AdoptionKind.DECISION and not v:
            raise ValueError("indiquez le numéro de la décision qui adopte le compte rendu")
        if v and not DECISION_NUMBER.fullmatch(v):
            raise ValueError("un numéro de décision s'écrit comme « 2026-007 »")
        if kind is not None and kind != AdoptionKind.DECISION and v:
            raise ValueError("un numéro de décision ne concerne que l'adoption par décision")
        return v

    @field_validator("vote_id")
    @classmethod
    def _vote_for_vote(cls, v: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("adoption")
        if kind == AdoptionKind.VOTE and not v:
            raise ValueError("indiquez le vote qui adopte le compte rendu")
        if kind is not None and kind != AdoptionKind.VOTE and v:
            raise ValueError("un vote ne concerne que l'adoption par vote")
        return v


class CorrectMinutes(ActorRequest[MinutesView], op="minutes.correct-minutes"):
    """Secretariat publishes a corrected text as the next version, with its reason; the earlier
    versions stay public, unchanged."""

    minutes_id: Id
    markdown: MinutesText
    reason: MinutesReason
    request_id: RequestId | None = None


class ListMinutes(Request[MinutesList], op="minutes.list-minutes"):
    """Published minutes, newest session first, by year (of the session, Paris time), session kind,
    theme. With `include_unpublished` (secretariat's `actor_id` required), drafts too."""

    year: int | None = Field(default=None, ge=2000, le=2100)
    kind: SessionKind | None = None
    theme: Theme | None = None
    actor_id: str | None = None
    include_unpublished: bool = False
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=SQL_INT_MAX)


class GetMinutesVersion(Request[MinutesVersionView], op="minutes.get-minutes-version"):
    """One published version (the latest without `version`)."""

    minutes_id: Id
    version: Version | None = None


class GetMinutesPdf(Request[MinutesPdf], op="minutes.get-minutes-pdf"):
    minutes_id: Id
    version: Version | None = None


class DiffMinutes(Request[MinutesDiff], op="minutes.diff-minutes"):
    """The paragraph-by-paragraph difference between two published versions."""

    minutes_id: Id
    from_version: Version
    to_version: Version


class MinutesOfSession(Request[SessionMinutes], op="minutes.minutes-of-session"):
    session_id: Id


class MinutesOfDecision(Request[DecisionMinutes], op="minutes.minutes-of-decision"):
    decision_id: Id


# ================================================================ search (published minutes, decisions, sessions)
# | op               | request  | reply           | who    |
# | ---------------- | -------- | --------------- | ------ |
# | `minutes.search` | `Search` | `SearchResults` | anyone |
class SearchKind(StrEnum):
    MINUTES = "minutes"    # published minutes: the text of their latest version
    DECISION = "decision"  # decisions of the register
    SESSION = "session"    # sessions, except cancelled ones


SEARCH_KIND_LABELS = {SearchKind.MINUTES: "Comptes rendus", SearchKind.DECISION: "Décisions",
                      SearchKind.SESSION: "Séances"}

MAX_SEARCH_INPUT = 10_000
"""Longest query text accepted; only its first `forumlib.french_search.MAX_QUERY_CHARS` are read."""


class ExcerptSegment(BaseModel):
    """A piece of an excerpt as plain text (whoever shows it escapes it); `match`: a word searched for."""

    text: str
    match: bool = False


class SearchHit(BaseModel):
    kind: SearchKind
    id: str = Field(description="The minutes', decision's or session's id.")
    title: str
    title_marked: list[ExcerptSegment] = Field(description="The title in pieces, the searched words marked.")
    url: str = Field(description="Its public page (a path on the web front).")
    date: datetime = Field(description="The session's start (minutes, sessions), the decision's recording.")
    excerpt: list[ExcerptSegment] = Field(description="About 30 words where the searched words are found.")
    score: float = Field(description="Relevance: compare scores within one reply only.")


class SearchResults(BaseModel):
    query: str = Field(description="The text searched (cut when it was too long).")
    terms: list[str] = Field(description="The words and phrases searched for, as typed.")
    total: int = Field(description="Matches among the kinds asked for.")
    counts: dict[SearchKind, int] = Field(description="Matches of each kind, whatever kinds were asked for.")
    page: int
    page_size: int
    hits: list[SearchHit] = Field(description="This page's matches, most relevant first.")
    by_date: bool = Field(default=False, description="Too many matches to rank them: the newest first.")
    truncated: bool = Field(default=False, description="The query was too long: only its beginning was read.")
    message: str | None = Field(default=None, description="Why nothing was searched (empty query, only common "
                                                          "words…), in French; then no hit.")


class Search(Request[SearchResults], op="minutes.search"):
    """Full-text search in French across published minutes, decisions and sessions (drafts never):
    accents and case ignored, words matched by their stem; "phrases", OR, and -excluded words. Any
    text is accepted: what cannot be searched is answered with `message`, never an error."""

    q: str = Field(default="", max_length=MAX_SEARCH_INPUT)
    kinds: list[SearchKind] | None = Field(default=None, description="None or empty: every kind.")
    page: int = Field(default=1, ge=1, le=1000)
    page_size: int = Field(default=10, ge=1, le=50)


# ---------------------------------------------------------------- right of access
class MinutesMemberData(BaseModel):
    """What the minutes service holds about a member, for their copy of their data: `member` (college,
    role, organisation, from registry events), `attendance` (check-ins, from forum events),
    `comments` (their review remarks and the answers they got), and what they did as secretariat
    (`minutes_drafted`, `versions_published`, `comments_answered`), `commands`."""

    data: dict[str, Any]


class ExportMinutesData(ActorRequest[MinutesMemberData], op="minutes.export-member-data"):
    """The actor's part of their data export (a member the service does not know gets empty lists)."""
