"""What goes into the public record: one small function per public fact.

Record schema, version 1 (third parties script against it: only ever *add* record types, or
fields inside `data`; any other change bumps `schema`):

    {
      "schema": 1,                          # version of this envelope format
      "type": "member.approved",            # the public fact, <thing>.<what happened>
      "event_id": "7c0e…-…",                # UUID of the event that carried the fact (idempotency key)
      "occurred_at": "2026-03-05T14:03:27.123456Z",   # when it happened, UTC, always 6 decimals
      "data": { … }                         # the fact itself, per type (below)
    }

The leaf bytes are the RFC 8785 (JCS) canonical JSON of that object, so the same record always
gives the same leaf and anyone can recompute it. `data` per type:

- `member.approved`: `{"public_id": "<16 hex, random pseudonym>", "college": "public_actor" |
  "civil_society" | "citizen" | null}` — never a member id, name or e-mail address.

Sessions (forum). `<session>` is the session as the public sees it: `{"session_id", "revision",
"status": "scheduled" | "cancelled", "title", "kind": "plenary" | "working_group", "theme" (or null),
"description", "starts_at", "ends_at", "place" (or null), "online_url" (or null), "capacity",
"rsvp_opens_at", "rsvp_closes_at", "agenda": [str…], "cancel_reason" (or null), "updated_at"}`:

- `session.scheduled`: `{"session": <session>}`;
- `session.updated`: `{"session": <session>, "changes": [field names…], "time_or_place_changed": bool}`;
- `session.cancelled`: `{"session": <session>, "reason": str}`.

(Who must be told of a change travels in the forum's events, never in the record.)

Decisions and votes (forum, `shared/contracts/decisions.py`):

- `decision.recorded`: `{"decision": {"decision_id", "number", "session_id", "session_title",
  "session_kind", "agenda_position", "agenda_text", "title", "text" (Markdown source), "outcome":
  "adopted" | "rejected" | "deferred", "method": "consensus" | "show_of_hands" | "online_vote",
  "hands": {college: {"in_favour", "against", "abstain"}} or null, "vote_id" or null, "commitment":
  {"code", "title"} or null, "supersedes": decision_id or null, "rule_check": <rule check>,
  "recorded_at"}}` where `<rule check>` is `{"rule": <rule>, "quorum": [{"college", "required",
  "present", "met"}…], "quorum_met", "majority": [{"side": null | "public" | "civil", "in_favour",
  "against", "abstain", "met"}…] (overall first), "majority_met": bool or null, "met", "summary"}`;
- `decision.superseded`: `{"decision_id", "superseded_by", "superseded_at"}`;
- `decision.follow_up_updated`: `{"decision_id", "status": "todo" | "in_progress" | "done" |
  "abandoned", "note", "updated_at"}`;
- `vote.opened`: `{"vote": <vote>}` with `<vote>` = `{"vote_id", "session_id", "agenda_position",
  "agenda_text", "question", "options": [{"option_id", "label"}…], "grades": [grade…] (the scale,
  best first: "excellent", "tres_bien", "bien", "assez_bien", "passable", "insuffisant",
  "a_rejeter"), "eligibility": "approved_members" | "attendees", "opens_at", "closes_at"}`;
- `vote.closed`: `{"vote": <vote>, "closed_at", "decision_id", "result": {"ballots", "eligible",
  "participation": {college: voters}, "options": [{"option_id", "label", "profile": [{"grade",
  "count"}…] (every grade, best first), "majority_grade" or null, "rank"}…] (ranking order),
  "winner_option_id" or null, "tie"}}` — the merit profiles, never a ballot: anyone can recompute
  the majority grades, the ranking and the winner from this record alone
  (`forumlib/majority_judgment.py`);
- `vote.cancelled`: `{"vote": <vote>, "cancelled_at", "reason"}` — cancelled with its session before it
  closed: its ballots were deleted uncounted, it became no decision;
- `rule.updated`: `{"rule": <rule>, "updated_at"}` with `<rule>` = `{"kind": session kind,
  "quorum": {college: minimum present}, "double_majority": bool}`.

Minutes (this service, `shared/contracts/minutes.py`): the hash of the published document, never its
text (anyone holding the canonical JSON of a version recomputes it):

- `minutes.published`: `{"minutes_id", "session_id", "version": 1, "sha256" (hex SHA-256 of the
  version's canonical JSON document), "published_at", "adoption": {"kind": "decision" | "vote" |
  "none", "decision_id", "decision_number", "vote_id" (each or null), "reviewed": bool}, "reason": null}`;
- `minutes.corrected`: the same for version n > 1, with `"reason"` (why it corrects version n-1).

Every value is a string, an integer, a boolean, null, a list or an object (never a float); every
timestamp, at any depth, has the `occurred_at` form (`utc_timestamp`: UTC, six decimals, `Z`);
enumerations are their string values.

The log can never be rewritten, so it holds no personal data a person has not made public. Where a
fact must refer to a person, use their random `public_id` (unlinkable once the registry erases them)
or a keyed hash whose key can be destroyed — never anything that would force rewriting the log on
erasure.

Adding a fact is one function here, e.g.::

    @public_record(FollowUpUpdated, "decision.follow_up_updated")
    def follow_up_updated(e: FollowUpUpdated) -> dict[str, Any]:
        return {"decision_id": e.decision_id, "status": e.status, "note": e.note, "updated_at": e.updated_at}

(`make_record` turns the values into the record's JSON form: `public_json`.)

`services/minutes/service.py` declares a durable consumer for every recorder.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

from pydantic import BaseModel

from shared.contracts.decisions import (
    DecisionRecorded, DecisionSuperseded, FollowUpUpdated, RuleUpdated, VoteCancelled, VoteClosed, VoteOpened,
)
from shared.contracts.envelope import Envelope, EventData
from shared.contracts.forum import SessionCancelled, SessionInfo, SessionScheduled, SessionUpdated
from shared.contracts.minutes import MinutesCorrected, MinutesPublished
from shared.contracts.registry import MemberApproved

RECORD_SCHEMA = 1

E = TypeVar("E", bound=EventData)


@dataclass(frozen=True)
class Recorder:
    event: type[EventData]
    record_type: str
    build: Callable[[Any], Mapping[str, Any]]


RECORDERS: list[Recorder] = []


def public_record(event: type[E], record_type: str) -> Callable[[Callable[[E], Mapping[str, Any]]],
                                                                 Callable[[E], Mapping[str, Any]]]:
    """Declare that events of `event` become records of `record_type` with `data = fn(event.data)`."""
    if any(r.event is event for r in RECORDERS):
        raise ValueError(f"{event.TYPE} already has a public record")

    def deco(fn: Callable[[E], Mapping[str, Any]]) -> Callable[[E], Mapping[str, Any]]:
        RECORDERS.append(Recorder(event, record_type, fn))
        return fn

    return deco


def utc_timestamp(value: datetime) -> str:
    """RFC 3339 UTC with exactly six decimals and a Z: one textual form per instant."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    # isoformat: strftime's "%Y-%m-%dT%H:%M:%S.%fZ", twice as fast (a record may hold a dozen of them).
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


_AS_IS = frozenset({str, int, bool, type(None)})


def public_json(value: Any) -> Any:
    """A value in the record's JSON form: models as objects (every field), datetimes as
    `utc_timestamp` (at any depth: one textual form per instant, unlike pydantic's, which drops
    zero microseconds), enumerations as their values, mapping keys as strings. Floats pass through
    (JCS would write them, but records hold none: `record_leaf_bytes` refuses NaN and infinities)."""
    kind = type(value)
    if kind in _AS_IS:  # the common cases first (a str enumeration is not a plain str)
        return value
    if kind is dict:
        return {k if type(k) is str else str(public_json(k)): public_json(v) for k, v in value.items()}
    if kind is list:
        return [public_json(v) for v in value]
    if isinstance(value, BaseModel):
        return public_json(dict(value))  # its fields, by name, values as they are (converted below)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return utc_timestamp(value)
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {str(public_json(k)): public_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [public_json(v) for v in value]
    raise TypeError(f"not a public record value: {type(value).__name__}")


def make_record(record_type: str, event_id: str, occurred_at: datetime, data: Mapping[str, Any]) -> dict[str, Any]:
    """A record in the v1 schema. (Values JCS cannot represent exactly, e.g. NaN or 2**60, make
    `record_leaf_bytes` — hence the append, and the consumer's transaction — fail.)"""
    return {"schema": RECORD_SCHEMA, "type": record_type, "event_id": str(event_id),
            "occurred_at": utc_timestamp(occurred_at), "data": public_json(dict(data))}


def record_of(recorder: Recorder, envelope: Envelope[Any]) -> dict[str, Any]:
    return make_record(recorder.record_type, str(envelope.event_id), envelope.occurred_at,
                       recorder.build(envelope.data))


# ---------------------------------------------------------------- the public facts of today
@public_record(MemberApproved, "member.approved")
def member_approved(e: MemberApproved) -> dict[str, Any]:
    return {"public_id": e.public_id, "college": e.college.value if e.college else None}


SESSION_FIELDS = ("session_id", "revision", "status", "title", "kind", "theme", "description", "starts_at",
                  "ends_at", "place", "online_url", "capacity", "rsvp_opens_at", "rsvp_closes_at", "agenda",
                  "cancel_reason", "updated_at")
"""The public fields of a session, named one by one: a field added to `SessionInfo` enters the
record only by being added here (and to the documented schema)."""


def session_record(session: SessionInfo) -> dict[str, Any]:
    return {f: getattr(session, f) for f in SESSION_FIELDS}


@public_record(SessionScheduled, "session.scheduled")
def session_scheduled(e: SessionScheduled) -> dict[str, Any]:
    return {"session": session_record(e.session)}


@public_record(SessionUpdated, "session.updated")
def session_updated(e: SessionUpdated) -> dict[str, Any]:
    # Not notify_member_ids: who is told is nobody else's business.
    return {"session": session_record(e.session), "changes": list(e.changes),
            "time_or_place_changed": e.time_or_place_changed}


@public_record(SessionCancelled, "session.cancelled")
def session_cancelled(e: SessionCancelled) -> dict[str, Any]:
    return {"session": session_record(e.session), "reason": e.reason}


@public_record(DecisionRecorded, "decision.recorded")
def decision_recorded(e: DecisionRecorded) -> dict[str, Any]:
    # DecisionInfo is the public view of a decision (no personal data): every field.
    return {"decision": e.decision}


@public_record(DecisionSuperseded, "decision.superseded")
def decision_superseded(e: DecisionSuperseded) -> dict[str, Any]:
    return {"decision_id": e.decision_id, "superseded_by": e.superseded_by, "superseded_at": e.superseded_at}


@public_record(FollowUpUpdated, "decision.follow_up_updated")
def follow_up_updated(e: FollowUpUpdated) -> dict[str, Any]:
    return {"decision_id": e.decision_id, "status": e.status, "note": e.note, "updated_at": e.updated_at}


@public_record(VoteOpened, "vote.opened")
def vote_opened(e: VoteOpened) -> dict[str, Any]:
    return {"vote": e.vote}


@public_record(VoteClosed, "vote.closed")
def vote_closed(e: VoteClosed) -> dict[str, Any]:
    # The merit profiles (counts per grade), never a ballot.
    return {"vote": e.vote, "closed_at": e.closed_at, "result": e.result, "decision_id": e.decision_id}


@public_record(VoteCancelled, "vote.cancelled")
def vote_cancelled(e: VoteCancelled) -> dict[str, Any]:
    return {"vote": e.vote, "cancelled_at": e.cancelled_at, "reason": e.reason}


@public_record(RuleUpdated, "rule.updated")
def rule_updated(e: RuleUpdated) -> dict[str, Any]:
    return {"rule": e.rule, "updated_at": e.updated_at}


def minutes_version_record(e: MinutesPublished | MinutesCorrected) -> dict[str, Any]:
    # The document's hash, never its text: the text is public on the minutes' page, and the leaf proves it.
    return {"minutes_id": e.minutes_id, "session_id": e.session_id, "version": e.version, "sha256": e.sha256,
            "published_at": e.published_at, "adoption": e.adoption, "reason": e.reason}


@public_record(MinutesPublished, "minutes.published")
def minutes_published(e: MinutesPublished) -> dict[str, Any]:
    return minutes_version_record(e)


@public_record(MinutesCorrected, "minutes.corrected")
def minutes_corrected(e: MinutesCorrected) -> dict[str, Any]:
    return minutes_version_record(e)
