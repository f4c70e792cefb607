"""Pydantic validation errors as short French sentences, with the field they are about."""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError

WHOLE_NUMBER = "Saisissez un nombre entier (chiffres 0 à 9)."
_MESSAGES = {
    "missing": "Ce champ est obligatoire.",
    "string_too_short": "Ce champ doit contenir au moins {min_length} caractères.",
    "string_too_long": "Ce champ ne doit pas dépasser {max_length} caractères.",
    "value_error": "{msg}",
    "enum": "Choisissez une des valeurs proposées.",
    "literal_error": "Choisissez une des valeurs proposées.",
    "bool_parsing": "Valeur invalide.",
    "bool_type": "Valeur invalide.",
    "string_type": "Ce champ doit être un texte.",
    "string_pattern_mismatch": "Ce champ n'a pas la forme attendue.",
    "string_unicode": "Ce champ contient des caractères non autorisés.",
    "int_parsing": WHOLE_NUMBER,
    "int_type": WHOLE_NUMBER,
    "int_from_float": WHOLE_NUMBER,
    "int_parsing_size": "Ce nombre est trop grand.",
    "greater_than_equal": "Ce nombre doit être supérieur ou égal à {ge}.",
    "greater_than": "Ce nombre doit être supérieur à {gt}.",
    "less_than_equal": "Ce nombre doit être inférieur ou égal à {le}.",
    "less_than": "Ce nombre doit être inférieur à {lt}.",
    "too_short": "Indiquez au moins {min_length} éléments.",
    "too_long": "Indiquez au plus {max_length} éléments.",
    "extra_forbidden": "Ce champ n'est pas attendu.",
    "datetime_parsing": "Date et heure invalides.",
    "datetime_from_date_parsing": "Date et heure invalides.",
    "datetime_type": "Date et heure invalides.",
    "timezone_aware": "Date et heure invalides.",
}


def french_message(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "value_error" and "email" in str(err.get("msg", "")).lower():
        return "Adresse électronique invalide."
    template = _MESSAGES.get(kind)
    if template is None:
        return "Valeur invalide."
    ctx = dict(err.get("ctx") or {})
    ctx["msg"] = str(err.get("msg", "")).removeprefix("Value error, ")
    try:
        return template.format(**ctx)
    except (KeyError, IndexError):
        return "Valeur invalide."


def field_errors(exc: ValidationError, skip: tuple[str, ...] = ("body",)) -> dict[str, str]:
    """{field path: French message} for every error (first message per field)."""
    out: dict[str, str] = {}
    for err in exc.errors():
        field = ".".join(str(p) for p in err.get("loc", ()) if p not in skip) or "__root__"
        out.setdefault(field, french_message(err))
    return out
