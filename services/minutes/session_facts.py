"""What the minutes are drafted from, kept from the forum's and the registry's events (the minutes
service never asks another service, nor reads its tables): the sessions, who was present and for
which college, the organisations they represent, the decisions and closed votes of each session
with the events that carried them (their leaves in the public record), and who is secretariat.

These consumers are the second reader of events the public record also appends (`role="minutes"`:
durables `minutes--<event>--minutes`, their own position in the stream and their own inbox).
Consumers of different events run independently, so each row keeps when its fact happened and an
older event never overwrites a newer fact.
"""
from __future__ import annotations

import functools
import json
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from services.minutes import search
from services.minutes.models import AttendanceFact, DecisionFact, MemberFact, SessionFact, VoteFact
from shared.contracts.decisions import DecisionRecorded, DecisionSuperseded, VoteClosed
from shared.contracts.envelope import Envelope
from shared.contracts.forum import AttendanceRecorded, SessionCancelled, SessionInfo, SessionScheduled, SessionUpdated
from shared.contracts.registry import MemberErased, MemberRegistered, ProfileUpdated, RoleGranted
from shared import preload
from shared.errors import RetryLater
from shared.outbox import UnitOfWork
from shared.service import Consumer, consumer, batched


# ---------------------------------------------------------------- sessions
async def _keep_session(tx: AsyncSession, s: SessionInfo) -> None:
    row = await tx.get(SessionFact, s.session_id, with_for_update=True)
    if row is not None and row.revision > s.revision:
        return  # a later revision was applied already
    row = row or SessionFact(session_id=s.session_id, revision=s.revision, status=s.status, title=s.title,
                             kind=s.kind, starts_at=s.starts_at, ends_at=s.ends_at)
    row.revision, row.status, row.title, row.kind, row.theme = s.revision, s.status, s.title, s.kind, s.theme
    row.starts_at, row.ends_at, row.place, row.online_url = s.starts_at, s.ends_at, s.place, s.online_url
    row.agenda = json.dumps(list(s.agenda), ensure_ascii=False)
    tx.add(row)
    await search.index_session(tx, s)


async def on_session_scheduled(event: Envelope[SessionScheduled], uow: UnitOfWork) -> None:
    """A new session: what its minutes will be about."""
    await _keep_session(uow.tx, event.data.session)


async def on_session_updated(event: Envelope[SessionUpdated], uow: UnitOfWork) -> None:
    """The session's title, time, place or agenda changed."""
    await _keep_session(uow.tx, event.data.session)


async def on_session_cancelled(event: Envelope[SessionCancelled], uow: UnitOfWork) -> None:
    """A cancelled session has no minutes."""
    await _keep_session(uow.tx, event.data.session)


# ---------------------------------------------------------------- members
async def _member(uow: UnitOfWork, member_id: str) -> MemberFact:
    """The member's row, locked (preloaded with the batch's, see `preload_members`); a new one else."""
    return await preload.get_or_new(uow, MemberFact, member_id,
                                    fallback=lambda: uow.tx.get(MemberFact, member_id, with_for_update=True))


# The batch's members' rows, locked, in one query.
preload_members = functools.partial(preload.member_rows, model=MemberFact, lock={})


def _newer(seen: datetime | None, at: datetime) -> bool:
    return seen is None or at >= seen


async def on_member_registered(event: Envelope[MemberRegistered], uow: UnitOfWork) -> None:
    """A new account: its college, role (secretariat accounts are created as such) and organisation."""
    d, at = event.data, event.occurred_at
    m = await _member(uow, d.member_id)
    if m.erased:
        return
    m.college = d.college
    if _newer(m.role_at, at):
        m.role, m.role_at = d.role, at
    if _newer(m.organisation_at, at):
        m.organisation, m.organisation_at = d.organisation, at
    uow.tx.add(m)


async def on_profile_updated(event: Envelope[ProfileUpdated], uow: UnitOfWork) -> None:
    """The organisation a member represents changed (the name is not kept here)."""
    m = await _member(uow, event.data.member_id)
    if m.erased or not _newer(m.organisation_at, event.occurred_at):
        return
    m.organisation, m.organisation_at = event.data.organisation, event.occurred_at
    uow.tx.add(m)


async def on_role_granted(event: Envelope[RoleGranted], uow: UnitOfWork) -> None:
    """An existing account became secretariat: it may now draft and publish minutes."""
    m = await _member(uow, event.data.member_id)
    if m.erased or not _newer(m.role_at, event.occurred_at):
        return
    m.role, m.role_at = event.data.role, event.occurred_at
    uow.tx.add(m)


async def on_member_erased(event: Envelope[MemberErased], uow: UnitOfWork) -> None:
    """Forget the member's organisation for good (their check-ins stay, for the counts per college)."""
    m = await _member(uow, event.data.member_id)
    m.erased, m.organisation, m.organisation_at = True, "", event.occurred_at
    uow.tx.add(m)


# ---------------------------------------------------------------- attendance
async def on_attendance_recorded(event: Envelope[AttendanceRecorded], uow: UnitOfWork) -> None:
    """A check-in at a session, or its correction (`present` false)."""
    d, tx = event.data, uow.tx
    row = await tx.get(AttendanceFact, (d.session_id, d.member_id), with_for_update=True)
    if row is None:
        row = AttendanceFact(session_id=d.session_id, member_id=d.member_id, college=d.college, present=d.present,
                             observed_at=event.occurred_at)
    elif event.occurred_at < row.observed_at:
        return
    row.college, row.present, row.observed_at = d.college, d.present, event.occurred_at
    tx.add(row)


# ---------------------------------------------------------------- decisions and votes
async def on_decision_recorded(event: Envelope[DecisionRecorded], uow: UnitOfWork) -> None:
    """A decision of the register, with its event id: the minutes link to its public record entry."""
    d, tx = event.data.decision, uow.tx
    row = await tx.get(DecisionFact, d.decision_id, with_for_update=True)
    if row is not None:
        return  # a decision is frozen once recorded
    tx.add(DecisionFact(
        decision_id=d.decision_id, number=d.number, session_id=d.session_id, agenda_position=d.agenda_position,
        agenda_text=d.agenda_text, title=d.title, outcome=d.outcome.value, method=d.method.value, vote_id=d.vote_id,
        commitment_code=d.commitment.code if d.commitment else None,
        commitment_title=d.commitment.title if d.commitment else None,
        recorded_at=d.recorded_at, event_id=str(event.event_id)))
    await search.index_decision(tx, d)


async def on_decision_superseded(event: Envelope[DecisionSuperseded], uow: UnitOfWork) -> None:
    """A decision was corrected by another; the minutes say so beside it."""
    d, tx = event.data, uow.tx
    row = await tx.get(DecisionFact, d.decision_id, with_for_update=True)
    if row is None:
        # The decision's own event is read by another consumer, which may not have reached it yet.
        raise RetryLater(f"decision {d.decision_id} not known yet")
    row.superseded_by, row.superseded_event_id = d.superseded_by, str(event.event_id)
    tx.add(row)


async def on_vote_closed(event: Envelope[VoteClosed], uow: UnitOfWork) -> None:
    """A closed vote's result in short, with its event id (its public record entry)."""
    d, tx = event.data, uow.tx
    if await tx.get(VoteFact, d.vote.vote_id) is not None:
        return
    top = next((o for o in d.result.options if o.option_id == d.result.winner_option_id), None)
    tx.add(VoteFact(
        vote_id=d.vote.vote_id, session_id=d.vote.session_id, agenda_position=d.vote.agenda_position,
        agenda_text=d.vote.agenda_text, question=d.vote.question, eligibility=d.vote.eligibility.value,
        closed_at=d.closed_at, ballots=d.result.ballots, eligible=d.result.eligible,
        winner_label=top.label if top else None,
        winner_grade=top.majority_grade.value if top and top.majority_grade else None,
        tie=d.result.tie, decision_id=d.decision_id, event_id=str(event.event_id)))


CONSUMERS: list[Consumer] = [
    *[consumer(fn, role="minutes") for fn in (
        on_session_scheduled, on_session_updated, on_session_cancelled, on_member_erased,
        on_attendance_recorded, on_decision_recorded, on_decision_superseded, on_vote_closed,
    )],
    # The members' projection: a fetch's events in one transaction (a burst of registrations pays one).
    *[batched(fn, role="minutes", preload=preload_members)
      for fn in (on_member_registered, on_profile_updated, on_role_granted)],
]
"""The projection consumers, each a second durable beside the public record's (`role="minutes"`)."""
