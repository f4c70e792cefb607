"""A member's copy of their data (right of access, GDPR art. 15): each service answers for its own
tables, in plain JSON values, and the web front puts the parts together into one document.

Helpers shared by the services' `personal_data` modules: rows as JSON-ready dicts (times in UTC,
ISO 8601) and the commands a member made that a service keeps a reply of (`command_reply`)."""
from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.clock import as_utc
from shared.idempotency import CommandReply


def iso(value: datetime | None) -> str | None:
    """UTC, with its offset: SQLite hands times back without one."""
    return as_utc(value).isoformat() if value is not None else None


def plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Enum):
        return value.value
    return value


def fields(row: SQLModel, *names: str, **renamed: str) -> dict[str, Any]:
    """`names` of the row as they are, `renamed` as `{key_in_export: column}`."""
    out = {name: plain(getattr(row, name)) for name in names}
    out.update({key: plain(getattr(row, column)) for key, column in renamed.items()})
    return out


async def commands(tx: AsyncSession, actor_id: str) -> list[dict[str, Any]]:
    """The commands whose first reply is kept (so that a repeated form answers the same): which
    operation and when. The kept reply itself is left out: it is what the page showed then."""
    rows = (await tx.exec(select(CommandReply).where(CommandReply.actor == actor_id)
                          .order_by(col(CommandReply.created_at)))).all()
    return [{"operation": r.op, "at": iso(r.created_at)} for r in rows]
