"""The one envelope every event travels in.

The subject of an event is its `type`; `Nats-Msg-Id` is its `event_id`, so JetStream drops a
re-published copy and consumers can dedupe on the id.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shared.clock import utcnow

SYSTEM = "system"


class EventData(BaseModel):
    """Base of every event payload. Subclasses set TYPE (= subject) and SCHEMA_VERSION."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    TYPE: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int] = 1


D = TypeVar("D", bound=BaseModel)


class Envelope(BaseModel, Generic[D]):
    model_config = ConfigDict(extra="forbid")

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    schema_version: int = 1
    occurred_at: datetime = Field(default_factory=utcnow)
    producer: str
    correlation_id: str
    causation_id: str | None = None
    actor: str = SYSTEM
    data: D


def make_event(data: EventData, *, producer: str, correlation_id: str | None = None,
               causation_id: str | None = None, actor: str = SYSTEM) -> Envelope[Any]:
    return Envelope[type(data)](  # type: ignore[misc]
        type=data.TYPE, schema_version=data.SCHEMA_VERSION, producer=producer,
        correlation_id=correlation_id or str(uuid.uuid4()), causation_id=causation_id,
        actor=actor, data=data)
