"""Time, one way: UTC in storage and events, Europe/Paris only when showing it to a person."""
from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


def as_utc(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def as_paris(dt: datetime) -> datetime:
    return as_utc(dt).astimezone(PARIS)
