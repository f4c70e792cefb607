"""Time, one way: UTC in storage and events, Europe/Paris only when showing it to a person, in French
(Babel's CLDR data, so every page and e-mail writes dates alike)."""
from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime

PARIS = ZoneInfo("Europe/Paris")
LOCALE = "fr_FR"


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(dt: datetime) -> datetime:
    """A naive datetime from outside (a form, a file) is taken as UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def as_paris(dt: datetime) -> datetime:
    return as_utc(dt).astimezone(PARIS)


_LOCALE = Locale.parse(LOCALE)


@lru_cache(maxsize=8192)  # list pages show the same few thousand instants again and again; Babel is slow
def _fr(value: datetime, pattern: str) -> str:
    return format_datetime(as_utc(value), pattern, tzinfo=PARIS, locale=_LOCALE)


def paris_date(value: datetime | None) -> str:
    """« 14/07/2030 »."""
    return _fr(value, "dd/MM/y") if value else ""


def paris_datetime(value: datetime | None) -> str:
    """« 14/07/2030 à 14:05 »."""
    return _fr(value, "dd/MM/y 'à' HH:mm") if value else ""


def paris_day(value: datetime | None) -> str:
    """« lundi 14 juillet 2030 », « mardi 1er juillet 2031 » (French writes the first of the month 1er)."""
    if value is None:
        return ""
    text = _fr(value, "EEEE d MMMM y")
    return text.replace(" 1 ", " 1er ", 1) if as_paris(value).day == 1 else text


def paris_hour(value: datetime | None) -> str:
    """« 14 h 05 »."""
    return _fr(value, "H 'h' mm") if value else ""


def paris_long(value: datetime | None) -> str:
    """« lundi 14 juillet 2030 à 14 h 05 »."""
    return f"{paris_day(value)} à {paris_hour(value)}" if value else ""


def paris_span(start: datetime, end: datetime) -> str:
    """« le lundi 14 juillet 2030 de 10 h 00 à 12 h 00 », or « du … au … » over several days."""
    if as_paris(start).date() == as_paris(end).date():
        return f"le {paris_day(start)} de {paris_hour(start)} à {paris_hour(end)}"
    return f"du {paris_long(start)} au {paris_long(end)}"
