"""Form handling at the edge: read the posted fields, check them, validate with the request models;
date-times typed in Europe/Paris wall-clock time, and shown back in the same form; whole numbers typed
in ASCII digits (`whole_number`), the one check every numeric field and address part goes through.

Errors come back as {field: French message}, shown next to the field; what the person typed is
kept and shown again.
"""
from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from shared.clock import PARIS, as_paris
from shared.validation import WHOLE_NUMBER, field_errors

M = TypeVar("M", bound=BaseModel)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# ASCII only: str.isdigit() also takes « ² » (which int() refuses) and « ٣ » (which int() reads as 3).
_DIGITS = re.compile(r"[0-9]+")
ROOT = "__root__"
DATE_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M", "%d/%m/%Y à %H:%M",
                "%d/%m/%Y %Hh%M", "%d/%m/%Y %H h %M")
BAD_DATE = "Date et heure invalides : utilisez le format JJ/MM/AAAA HH:MM (heure de Paris)."
NO_SUCH_HOUR = "Cette heure n'existe pas à Paris (passage à l'heure d'été) : choisissez une autre heure."
ONCE_FIELD = "request_id"
_TOKEN = re.compile(r"^[A-Za-z0-9-]{8,64}$")


async def read_form(request: Request) -> dict[str, str]:
    """The posted text fields (files are ignored: no form of ours uploads any)."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


# ---------------------------------------------------------------- one-time tokens
def form_token() -> str:
    """A fresh one-time token for a form that creates or changes something (its hidden `request_id`, the
    `once` macro of the theme). Sent as the command's idempotency key, it makes a double click, a reload or
    a re-sent form do the thing once, and answer the second time with what the first did."""
    return str(uuid.uuid4())


def idempotency_key(form: dict[str, str]) -> str | None:
    """The posted form's one-time token; None when it carries none (a page rendered before tokens, a
    script): that request is done as it comes, as before."""
    token = form.get(ONCE_FIELD, "").strip()
    return token if _TOKEN.match(token) else None


def edge_checks(values: dict[str, str], limits: dict[str, int]) -> dict[str, str]:
    """Checks made before the request models see the data: length caps on raw input, no control characters."""
    errors: dict[str, str] = {}
    for name, limit in limits.items():
        value = values.get(name, "")
        if len(value) > limit:
            errors[name] = f"Ce champ ne doit pas dépasser {limit} caractères."
        elif _CONTROL.search(value):
            errors[name] = "Ce champ contient des caractères non autorisés."
    return errors


def validate(model: type[M], data: dict[str, object], *, limits: dict[str, int] | None = None,
             messages: dict[str, str] | None = None) -> tuple[M | None, dict[str, str]]:
    """(request, {}) when the data is valid, else (None, {field: message})."""
    edge = edge_checks({k: v for k, v in data.items() if isinstance(v, str)}, limits or {})
    try:
        parsed = model.model_validate(data)
        errors: dict[str, str] = {}
    except ValidationError as exc:
        parsed = None
        errors = field_errors(exc)
    for name in list(errors):
        if messages and name in messages:
            errors[name] = messages[name]
        elif errors[name]:  # the services' phrases, as sentences
            message = errors[name][0].upper() + errors[name][1:]
            errors[name] = message if message.endswith((".", "!", "?", "»", "…")) else message + "."
    errors.update(edge)
    if errors:
        return None, errors
    return parsed, {}


# ---------------------------------------------------------------- whole numbers
def whole_number(raw: str, *, minimum: int = 0, maximum: int) -> int:
    """A number typed in a form or an address: ASCII digits only, within [minimum, maximum]
    (ValueError with a French message otherwise)."""
    text = raw.strip()
    if not _DIGITS.fullmatch(text):
        raise ValueError(WHOLE_NUMBER)
    significant = text.lstrip("0") or "0"  # int() refuses more than 4300 digits: compare lengths first
    if len(significant) > len(str(maximum)) or not minimum <= int(significant) <= maximum:
        raise ValueError(f"Saisissez un nombre entre {_thousands(minimum)} et {_thousands(maximum)}.")
    return int(significant)


def whole_number_or_none(raw: str, *, minimum: int = 0, maximum: int) -> int | None:
    try:
        return whole_number(raw, minimum=minimum, maximum=maximum)
    except ValueError:
        return None


def _thousands(n: int) -> str:
    return f"{n:,}".replace(",", " ")


# ---------------------------------------------------------------- date-times
def parse_paris(text: str) -> datetime:
    """A Europe/Paris wall-clock time typed in a form, as an aware UTC datetime (ValueError: French message)."""
    text = " ".join(text.split())
    for fmt in DATE_FORMATS:
        try:
            naive = datetime.strptime(text, fmt)  # noqa: DTZ007 - a wall-clock time, placed in Paris below
        except ValueError:
            continue
        if not 2000 <= naive.year <= 2100:
            raise ValueError(BAD_DATE)
        utc = naive.replace(tzinfo=PARIS).astimezone(UTC)
        if utc.astimezone(PARIS).replace(tzinfo=None) != naive:  # inside the spring-forward gap
            raise ValueError(NO_SUCH_HOUR)
        return utc
    raise ValueError(BAD_DATE)


def local_input(value: datetime | None) -> str:
    """The value of an `<input type="datetime-local">`: « 2030-07-14T14:05 », Europe/Paris."""
    return as_paris(value).replace(tzinfo=None).isoformat(timespec="minutes") if value else ""
