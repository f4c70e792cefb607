"""Shapes used by every request/reply exchange."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, StringConstraints
from pydantic_core import core_schema

RPC_PREFIX = "rpc"
"""Request/reply subjects are `rpc.<service>.<op>`: outside every stream, so no stream's PubAck can
answer a request in the handler's place."""


# ---------------------------------------------------------------- text typed by people
# Embeddings, overrides and isolates reorder what is shown (« evil\u202egnp.exe » reads « evilexe.png »);
# marks only steer neutral characters: fine in prose, a spoofing aid in a name.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_BIDI_OR_MARK = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_LINE_BREAK = re.compile("[\n\r\x0b\x0c\x85\u2028\u2029]")
# C0 and C1 controls and DEL, less the line breaks (above) and the tab (checked apart); lone surrogates.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff]")
_CONTROL_IN_PROSE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# Letters and symbols that draw nothing (whitespace and format characters are found by category).
BLANK_LOOKALIKES = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f")
ONE_LINE = "ce champ tient sur une seule ligne : retirez les retours à la ligne"
NO_CONTROL = "ce champ contient un caractère de contrôle invisible : retirez-le"
NO_BIDI = ("ce champ contient un caractère qui inverse le sens d'écriture (contrôle bidirectionnel) : "
           "retirez-le")
NOT_BLANK = "ce champ ne contient que des caractères invisibles : écrivez un texte"


def invisible(ch: str) -> bool:
    """Draws nothing: whitespace, format characters (zero-width space, joiners, BOM…), variation
    selectors and the blank letters (Hangul fillers, blank Braille pattern)."""
    return (ch.isspace() or unicodedata.category(ch) == "Cf" or ch in BLANK_LOOKALIKES
            or "\ufe00" <= ch <= "\ufe0f" or "\U000e0100" <= ch <= "\U000e01ef")


def text_problem(value: str, *, multiline: bool) -> str | None:
    """Why `value` cannot be stored as text typed by a person (a French phrase), or None."""
    if (_BIDI if multiline else _BIDI_OR_MARK).search(value):
        return NO_BIDI
    if multiline:
        if _CONTROL_IN_PROSE.search(value):
            return NO_CONTROL
    elif _LINE_BREAK.search(value):
        return ONE_LINE
    elif _CONTROL.search(value) or "\t" in value:
        return NO_CONTROL
    if value and all(invisible(ch) for ch in value):
        return NOT_BLANK
    return None


@dataclass(frozen=True)
class TextRules:
    """What a person may type in a text field, as the `Annotated` metadata of a `str`:

        PersonName = Annotated[str, SingleLine(min_length=2, max_length=120)]

    The text is normalised to NFC (one spelling for « é »), stripped, then its length checked; it is
    refused when it holds control characters (line breaks too, on one line), bidirectional controls,
    or nothing visible. Messages are French phrases, as the web front shows them."""

    min_length: int = 0
    max_length: int | None = None
    multiline: bool = False

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def normalise(value: Any) -> Any:
            return unicodedata.normalize("NFC", value) if isinstance(value, str) else value

        def check(value: str) -> str:
            if (problem := text_problem(value, multiline=self.multiline)) is not None:
                raise ValueError(problem)
            return value

        inner = core_schema.str_schema(strip_whitespace=True, min_length=self.min_length or None,
                                       max_length=self.max_length)
        return core_schema.no_info_before_validator_function(
            normalise, core_schema.no_info_after_validator_function(check, inner))


def SingleLine(*, min_length: int = 0, max_length: int | None = None) -> TextRules:  # noqa: N802 - reads as a type
    """Names, titles, one-line answers: no line break."""
    return TextRules(min_length=min_length, max_length=max_length)


def MultiLine(*, min_length: int = 0, max_length: int | None = None) -> TextRules:  # noqa: N802
    """Descriptions, reasons, Markdown: line breaks and tabs kept."""
    return TextRules(min_length=min_length, max_length=max_length, multiline=True)


SQL_INT_MAX = 2**31 - 1
"""Bound of the numbers people send (positions, revisions, offsets): an SQL INTEGER holds them."""
Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=36,
                                              pattern=r"^[A-Za-z0-9-]+$")]
"""The id of a member, session, decision… (a UUID, in practice)."""
SingleLineText = Annotated[str, SingleLine()]
MultiLineText = Annotated[str, MultiLine()]
PersonName = Annotated[str, SingleLine(min_length=2, max_length=120)]


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
