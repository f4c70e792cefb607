"""Writing a decision into the register, the one way both a secretariat's record and a closed vote do
it: the next number of the year, the decision frozen as its DecisionRecorded event tells it, and the
supersession of the decision it corrects.

Locks, taken in this order only: the decision it supersedes (if any, by the caller), then the
decision counter of the year. A closing vote holds its vote row before both.
"""
from __future__ import annotations

import json
from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.forum.models import ForumCommitment, ForumDecision, ForumDecisionCounter, ForumSession
from shared.contracts.decisions import (
    CommitmentRef, DecisionInfo, DecisionRecorded, DecisionSuperseded, FollowUpStatus, HandCount, Method, Outcome,
    RuleCheck,
)
from shared.contracts.registry import College
from shared.db import dialect_insert
from shared.outbox import UnitOfWork


def decision_info(d: ForumDecision) -> DecisionInfo:
    """The decision as its DecisionRecorded event told it."""
    return DecisionInfo(
        decision_id=d.id, number=d.number, session_id=d.session_id, session_title=d.session_title,
        session_kind=d.session_kind, agenda_position=d.agenda_position, agenda_text=d.agenda_text,
        title=d.title, text=d.text, outcome=Outcome(d.outcome), method=Method(d.method),
        hands={College(c): HandCount(**h) for c, h in json.loads(d.hands).items()} if d.hands else None,
        vote_id=d.vote_id,
        commitment=CommitmentRef(code=d.commitment_code, title=d.commitment_title or "")
        if d.commitment_code else None,
        supersedes=d.supersedes, rule_check=RuleCheck.model_validate_json(d.rule_check),
        recorded_at=d.recorded_at)


def _hands_json(hands: dict[College, HandCount] | None) -> str | None:
    if hands is None:
        return None
    return json.dumps({c.value: h.model_dump() for c, h in sorted(hands.items())})


async def _next_number(tx: AsyncSession, now: datetime) -> str:
    """« YYYY-NNN »: the year's counter row, created if absent, locked and bumped."""
    year = now.year
    await tx.exec(dialect_insert(tx, ForumDecisionCounter).values(year=year, last=0)  # type: ignore[call-overload]
                  .on_conflict_do_nothing(index_elements=["year"]))
    counter = (await tx.exec(select(ForumDecisionCounter).where(ForumDecisionCounter.year == year)
                             .with_for_update().execution_options(populate_existing=True))).one()
    counter.last += 1
    tx.add(counter)
    return f"{year}-{counter.last:03d}"


async def record(uow: UnitOfWork, *, fs: ForumSession, agenda_position: int, agenda_text: str, title: str,
                 text: str, outcome: Outcome, method: Method, check: RuleCheck, actor: str, now: datetime,
                 decision_id: str | None = None, hands: dict[College, HandCount] | None = None,
                 vote_id: str | None = None, commitment: ForumCommitment | None = None,
                 supersedes: ForumDecision | None = None) -> ForumDecision:
    """Insert the decision and emit DecisionRecorded (and DecisionSuperseded for the one it
    corrects). The caller holds the lock of `supersedes`."""
    tx = uow.tx
    d = ForumDecision(
        number=await _next_number(tx, now), session_id=fs.id, session_title=fs.title,
        session_kind=fs.kind, agenda_position=agenda_position, agenda_text=agenda_text, title=title, text=text,
        outcome=outcome.value, method=method.value, hands=_hands_json(hands), vote_id=vote_id,
        commitment_code=commitment.code if commitment else None,
        commitment_title=commitment.title if commitment else None,
        supersedes=supersedes.id if supersedes else None, rule_check=check.model_dump_json(),
        follow_up=FollowUpStatus.TODO.value, recorded_by=actor, recorded_at=now, event_id="")
    if decision_id:
        d.id = decision_id
    d.event_id = str(uow.emit(DecisionRecorded(decision=decision_info(d))).event_id)
    tx.add(d)
    if supersedes is not None:
        env = uow.emit(DecisionSuperseded(decision_id=supersedes.id, superseded_by=d.id, superseded_at=now))
        supersedes.superseded_by, supersedes.superseded_at = d.id, now
        supersedes.superseded_event_id = str(env.event_id)
        tx.add(supersedes)
    await tx.flush()
    return d
