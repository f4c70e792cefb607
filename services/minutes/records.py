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

Rule 5 of the design brief: no personal data a person has not made public. Where a fact must refer
to a person, use their random `public_id` (unlinkable once the registry erases them) or a keyed
hash whose key can be destroyed — never anything that would force rewriting the log on erasure.

Adding a fact is one function here, e.g. (once the forum contracts exist)::

    @public_record(DecisionRecorded, "decision.recorded")
    def decision_recorded(e: DecisionRecorded) -> dict[str, Any]:
        return {"decision_id": e.decision_id, "session_id": e.session_id, "title": e.title, ...}

`services/minutes/handlers.py` registers a durable consumer for every recorder at import time.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic_core import to_jsonable_python

from shared.contracts.registry import MemberApproved
from shared.envelope import Envelope, EventData

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
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_record(record_type: str, event_id: str, occurred_at: datetime, data: Mapping[str, Any]) -> dict[str, Any]:
    """A record in the v1 schema. (Values JCS cannot represent exactly, e.g. NaN or 2**60, make
    `record_leaf_bytes` — hence the append, and the consumer's transaction — fail.)"""
    return {"schema": RECORD_SCHEMA, "type": record_type, "event_id": str(event_id),
            "occurred_at": utc_timestamp(occurred_at), "data": to_jsonable_python(dict(data))}


def record_of(recorder: Recorder, envelope: Envelope[Any]) -> dict[str, Any]:
    return make_record(recorder.record_type, str(envelope.event_id), envelope.occurred_at,
                       recorder.build(envelope.data))


# ---------------------------------------------------------------- the public facts of today
@public_record(MemberApproved, "member.approved")
def member_approved(e: MemberApproved) -> dict[str, Any]:
    return {"public_id": e.public_id, "college": e.college.value if e.college else None}
