"""Shapes used by every request/reply exchange."""
from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

RPC_PREFIX = "rpc"
"""Request/reply subjects are `rpc.<service>.<op>`: outside every stream, so no stream's PubAck can
answer a request in the handler's place."""


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


R = TypeVar("R", bound=BaseModel)


class Request(BaseModel, Generic[R]):
    """A request/reply operation, named once where its request is defined:

        class AnswerRsvp(ActorRequest[RsvpView], op="forum.rsvp"): ...

    The class carries its subject (`rpc.forum.rsvp`) and its reply type, so a caller writes
    `await rpc(AnswerRsvp(...))` and gets an `RsvpView`, and the service registers the handler
    whose first parameter is an `AnswerRsvp`. A misspelt operation is an import error."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    OP: ClassVar[str] = ""
    REPLY: ClassVar[type[BaseModel]]

    def __init_subclass__(cls, op: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(cls, op: str | None = None, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if op is None:
            return
        service, _, name = op.partition(".")
        if not service or not name:
            raise TypeError(f"{cls.__name__}: op must read '<service>.<operation>', not {op!r}")
        cls.OP = op
        # The reply type is the argument of the nearest parametrised base, e.g. ActorRequest[RsvpView].
        for base in cls.__mro__:
            args = getattr(base, "__pydantic_generic_metadata__", {}).get("args") or ()
            if args and isinstance(args[0], type):
                cls.REPLY = args[0]
                return
        raise TypeError(f"{cls.__name__}: name the reply type, e.g. Request[SomeView]")

    @classmethod
    def subject(cls) -> str:
        return f"{RPC_PREFIX}.{cls.OP}"

    @classmethod
    def service(cls) -> str:
        return cls.OP.partition(".")[0]


class ActorRequest(Request[R], Generic[R]):
    """A command made on behalf of a signed-in person; services check the actor's rights themselves."""

    actor_id: str


class Health(BaseModel):
    service: str
    status: str
    database: str
    details: dict[str, Any] = {}


class HealthRequest(BaseModel):
    """`rpc.<service>.health`, which every service answers (see `shared.rpc.RpcClient.health`)."""

    model_config = ConfigDict(extra="forbid")
