"""Form handling at the edge: read the posted fields, check them, validate with the request models;
date-times typed in Europe/Paris wall-clock time, and shown back in the same form.

Errors come back as {field: French message}, shown next to the field; what the person typed is
kept and shown again.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from shared.clock import PARIS, as_paris
from shared.validation import field_errors

M = TypeVar("M", bound=BaseModel)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
ROOT = "__root__"
DATE_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M", "%d/%m/%Y à %H:%M",
                "%d/%m/%Y %Hh%M", "%d/%m/%Y %H h %M")
BAD_DATE = "Date et heure invalides : utilisez le format JJ/MM/AAAA HH:MM (heure de Paris)."
NO_SUCH_HOUR = "Cette heure n'existe pas à Paris (passage à l'heure d'été) : choisissez une autre heure."


async def read_form(request: Request) -> dict[str, str]:
    """The posted text fields (files are ignored: no form of ours uploads any)."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


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
        elif errors[name] and errors[name][0].islower():
            errors[name] = errors[name][0].upper() + errors[name][1:]
    errors.update(edge)
    if errors:
        return None, errors
    return parsed, {}


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
