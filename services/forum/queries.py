"""Reads every forum capability shares: the actor's rights, the member's lock, a session or an agenda
item by id."""
from __future__ import annotations

from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.forum import rules
from services.forum.models import ForumAgendaItem, ForumMember, ForumSession
from shared.errors import NotFound


def scalar(row: Any) -> int:
    """The number a `SELECT count(…)` or `max(…)` returned (a bare value or a one-column row)."""
    return int(row[0] if isinstance(row, tuple) else row)


async def find_session(tx: AsyncSession, session_id: str) -> ForumSession:
    fs = await tx.get(ForumSession, session_id)
    if fs is None:
        raise NotFound("Séance inconnue.", field="session_id")
    return fs


async def agenda_text(tx: AsyncSession, session_id: str, position: int) -> str:
    """The text of agenda item n° `position` of a session (what a decision or a vote is about)."""
    item = await tx.get(ForumAgendaItem, (session_id, position))
    if item is None:
        raise NotFound(f"La séance n'a pas de point n° {position} à son ordre du jour.", field="agenda_position")
    return item.text


async def lock_member(tx: AsyncSession, member_id: str) -> ForumMember | None:
    """The member's projection row, locked (FOR NO KEY UPDATE: it serialises that member's own
    commands and erasure, yet lets other transactions insert rows that reference the member, such as
    a check-in, without waiting for it)."""
    stmt = select(ForumMember).where(ForumMember.member_id == member_id).with_for_update(key_share=True)
    return (await tx.exec(stmt)).first()


async def require_secretariat(tx: AsyncSession, actor_id: str) -> ForumMember:
    actor = await tx.get(ForumMember, actor_id)
    rules.check_secretariat(actor.role if actor else None, actor.standing if actor else None)
    assert actor is not None
    return actor
