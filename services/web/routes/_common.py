"""What the route modules share: identifiers in addresses, « not found » pages, a service error as a
French sentence (next to the form field it names), and the CSV exports French spreadsheets open as is.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from fastapi.responses import Response
from pydantic import BaseModel
from starlette.requests import Request

from shared.contracts.common import ErrorCode, Request as ServiceRequest
from shared.contracts.forum import GetSession, SessionView
from shared.logging import get_logger
from shared.rpc import RpcError
from services.web.forms import ROOT
from services.web.pages import error_page, rpc

T = TypeVar("T", bound=BaseModel)
log = get_logger(__name__)
Actions = list[tuple[str, str]]

_ID = re.compile(r"^[A-Za-z0-9-]{1,36}$")
_CSV_FORMULA = re.compile(r"^[=+\-@\t\r]")
SESSIONS_BACK: Actions = [("/seances", "Voir les séances à venir"), ("/", "Retour à l'accueil")]


def valid_id(value: str) -> bool:
    """A session, decision or vote identifier as it may stand in an address (a UUID, in practice)."""
    return bool(_ID.match(value))


def sentence(message: str) -> str:
    """A service's message as a French sentence: capital first letter, final full stop."""
    message = message.strip()
    if message and message[0].islower():
        message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?", "»")) else message + "."


# ---------------------------------------------------------------- a page made of several services' answers
async def optional(call: Awaitable[T]) -> T | None:
    """One section's data, or None when its service does not answer (logged): the rest of the page shows."""
    try:
        return await call
    except RpcError as exc:
        if exc.code not in (ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL):
            raise
        log.warning("page section unavailable", code=str(exc.code), message=exc.error.message)
        return None


# ---------------------------------------------------------------- « not found »
async def not_found(request: Request, what: str, title: str, actions: Actions) -> Response:
    """« Cette séance n'existe pas ou n'est plus disponible. » (what = « Cette séance »)."""
    return await error_page(request, 404, f"{what} n'existe pas ou n'est plus disponible. Vérifiez l'adresse.",
                            title=title, actions=actions)


async def unknown_session(request: Request) -> Response:
    return await not_found(request, "Cette séance", "Séance introuvable", SESSIONS_BACK)


async def fetch(request: Request, item_id: str, ask: Callable[[], ServiceRequest[T]],
                unknown: Callable[[Request], Awaitable[Response]],
                not_found_codes: tuple[ErrorCode, ...] = (ErrorCode.NOT_FOUND,), timeout: float | None = None
                ) -> T | Response:
    """One item from a service, or the « not found » page `unknown` for a malformed or unknown id.

    `ask()` builds the request only once the id is known to be well formed (a malformed id could not
    even make a valid request)."""
    if not valid_id(item_id):
        return await unknown(request)
    try:
        return await rpc(request)(ask(), timeout=timeout)
    except RpcError as exc:
        if exc.code in not_found_codes:
            return await unknown(request)
        raise


async def get_session(request: Request, session_id: str) -> SessionView | Response:
    return await fetch(request, session_id, lambda: GetSession(session_id=session_id), unknown_session)


# ---------------------------------------------------------------- a service's refusal, next to its field
def field_of(name: str | None, labels: dict[str, str]) -> str:
    """The form field a service error names (`hands.citizen.against` -> `hands_citizen_against`)."""
    if not name:
        return ROOT
    flat = name.replace(".", "_")
    if flat in labels:
        return flat
    head = name.split(".", 1)[0]
    if head == "hands":
        return "hands"
    return head if head in labels else ROOT


def service_errors(exc: RpcError, labels: dict[str, str]) -> dict[str, str] | None:
    """A refusal the form shows (next to its field, or at the top); None for failures (no answer, bug)."""
    if exc.code in (ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL):
        return None
    return {field_of(exc.field, labels): sentence(exc.error.message)}


# ---------------------------------------------------------------- CSV
def csv_cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if _CSV_FORMULA.match(text) else text


def csv_response(rows: Iterable[Iterable[Any]], filename: str, headers: dict[str, str] | None = None) -> Response:
    """UTF-8 with a BOM and `;` separators (what French spreadsheets open as is), as an attachment.

    The rows are written as given: cells from the outside go through `csv_cell` first."""
    out = io.StringIO()
    csv.writer(out, delimiter=";", lineterminator="\r\n").writerows(rows)
    return Response(("\ufeff" + out.getvalue()).encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', **(headers or {})})
