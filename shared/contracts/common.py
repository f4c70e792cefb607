"""Shapes used by every request/reply exchange."""
from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class ErrorCode(StrEnum):
    INVALID = "invalid"          # a field is wrong (see `field`)
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"        # e.g. already registered, wrong state
    FORBIDDEN = "forbidden"
    EXPIRED = "expired"          # token or window passed
    UNAVAILABLE = "unavailable"  # service did not answer in time
    INTERNAL = "internal"


class ErrorBody(BaseModel):
    code: ErrorCode
    message: str
    field: str | None = None


class Reply(BaseModel):
    """Wire form of every reply: either data or a typed error, never a hang."""

    model_config = ConfigDict(extra="forbid")
    ok: bool
    data: Any = None
    error: ErrorBody | None = None


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ActorRequest(Request):
    """A command made on behalf of a signed-in person; services check the actor's rights themselves."""

    actor_id: str


class Health(BaseModel):
    service: str
    status: str
    database: str
    details: dict[str, Any] = {}


class HealthRequest(Request):
    pass
