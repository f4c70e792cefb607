"""When a vote attached to a session may close: plain functions over plain values, no I/O.

A vote closes into one of its session's decisions, and a session decides nothing before it has
started (nor once cancelled). So its closing time can never come before the session's start, a
session cannot be moved after the closing of one of its votes, and the secretariat cannot close it
early before the session has started. Each refusal says why and what to do instead.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from shared.clock import paris_datetime
from shared.contracts.forum import SessionStatus
from shared.errors import Conflict, Invalid


def check_closing_time(session_starts_at: datetime, closes_at: datetime) -> None:
    """Opening a vote: its closing must not come before the start of its session."""
    if closes_at < session_starts_at:
        raise Invalid(f"La clôture du vote doit venir après le début de la séance ({paris_datetime(session_starts_at)}) : "
                      "le vote devient une décision de la séance, qui ne peut être prise avant qu'elle ait commencé.",
                      field="closes_at")


def check_may_close(status: SessionStatus, session_starts_at: datetime, now: datetime) -> None:
    """Closing a vote into a decision: only once its session has started, never for a cancelled one."""
    if status == SessionStatus.CANCELLED:
        raise Conflict("Cette séance a été annulée : son vote ne peut pas devenir une décision.", field="vote_id")
    if now < session_starts_at:
        raise Conflict(f"La séance n'a pas encore commencé : le vote ne pourra être clos qu'à partir du "
                       f"{paris_datetime(session_starts_at)}, début de la séance, car il devient une décision "
                       "de cette séance.", field="vote_id")


def check_new_start(new_starts_at: datetime, open_vote_closings: Sequence[datetime]) -> None:
    """Moving a session: it may not start after the closing of one of its votes still to be closed
    (that vote would become a decision of a session not yet held)."""
    if open_vote_closings and new_starts_at > (first := min(open_vote_closings)):
        raise Conflict(f"Un vote de cette séance se clôt le {paris_datetime(first)} : la séance ne peut pas commencer "
                       "après. Choisissez un début antérieur à cette clôture, ou annulez la séance (ses votes en "
                       "cours sont alors annulés avec elle).", field="starts_at")
