"""Decisions: the secretariat records what a session decided on an agenda item (by consensus or a
show of hands; online votes record theirs when they close, see `votes`), checked against the
forum's adoption rule and frozen with it; corrects a decision with a new one that supersedes it (the
old one stays public); and keeps each decision's follow-up. Anyone reads the register.

Locks: recording a decision locks the decision it supersedes (if any), then the counter of the year
(see `recording`); a follow-up update locks its decision.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.forum import attendance, recording
from services.forum.adoption import check_outcome, check_rule
from services.forum.commitments import rule_for
from services.forum.models import ForumCommitment, ForumDecision, ForumFollowUp, ForumVote
from services.forum.queries import agenda_text, find_session, require_secretariat, scalar
from services.forum.votes import vote_views, votes_with_titles
from shared.clock import paris_datetime, utcnow
from shared.contracts.decisions import (
    DecisionDetail, DecisionList, DecisionView, FollowUpEntry, FollowUpStatus, FollowUpUpdated, GetDecision,
    ListDecisions, RecordDecision, UpdateFollowUp, VoteView,
)
from shared.contracts.forum import SessionStatus
from shared.errors import Conflict, NotFound
from shared.service import HandlerContext


async def _lock_decision(tx: AsyncSession, decision_id: str, field: str) -> ForumDecision:
    d = (await tx.exec(select(ForumDecision).where(ForumDecision.id == decision_id).with_for_update())).first()
    if d is None:
        raise NotFound("Décision inconnue.", field=field)
    return d


async def _views(tx: AsyncSession, rows: Sequence[ForumDecision], now: datetime) -> list[DecisionView]:
    """Decisions as the register shows them: with their follow-up history, what superseded them and
    the vote they came from (one query for the follow-ups of them all, one for their votes and two at
    most for the votes' views, whatever the number of decisions)."""
    ids = [d.id for d in rows]
    follow: dict[str, list[FollowUpEntry]] = defaultdict(list)
    votes: dict[str, VoteView] = {}
    if ids:
        for f in (await tx.exec(select(ForumFollowUp).where(col(ForumFollowUp.decision_id).in_(ids))
                                .order_by(col(ForumFollowUp.decision_id), col(ForumFollowUp.seq)))).all():
            follow[f.decision_id].append(FollowUpEntry(status=FollowUpStatus(f.status), note=f.note,
                                                       updated_at=f.updated_at, event_id=f.event_id))
        vote_ids = [d.vote_id for d in rows if d.vote_id]
        if vote_ids:
            vrows = list((await tx.exec(votes_with_titles().where(col(ForumVote.id).in_(vote_ids)))).all())
            votes = {vv.vote.vote_id: vv for vv in await vote_views(
                tx, [v for v, _ in vrows], now, titles={v.session_id: title for v, title in vrows})}
    return [DecisionView(decision=recording.decision_info(d), event_id=d.event_id, superseded_by=d.superseded_by,
                         superseded_event_id=d.superseded_event_id, follow_up=FollowUpStatus(d.follow_up),
                         follow_ups=follow.get(d.id, []), vote=votes.get(d.vote_id) if d.vote_id else None)
            for d in rows]


async def record_decision(req: RecordDecision, ctx: HandlerContext) -> DecisionView:
    """Secretariat records a decision on an agenda item of a session that has started. The forum's
    rule for the session kind is checked against the attendance (and the show of hands) and frozen
    with the decision; an outcome the rule contradicts is refused. `supersedes` corrects an earlier
    decision, which stays public."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        tx = uow.tx
        await require_secretariat(tx, req.actor_id)
        now = utcnow()
        fs = await find_session(tx, req.session_id)
        if fs.status == SessionStatus.CANCELLED:
            raise Conflict("Cette séance a été annulée : aucune décision ne peut y être enregistrée.",
                           field="session_id")
        if now < fs.starts_at:
            raise Conflict(f"Cette séance n'a pas encore commencé (début le {paris_datetime(fs.starts_at)}) : "
                           "une décision ne s'enregistre qu'une fois la séance ouverte.", field="session_id")
        item = await agenda_text(tx, fs.id, req.agenda_position)
        commitment = None
        if req.commitment_code:
            commitment = await tx.get(ForumCommitment, req.commitment_code)
            if commitment is None:
                raise NotFound(f"Aucun engagement du plan d'action ne porte le code « {req.commitment_code} ».",
                               field="commitment_code")
        old = None
        if req.supersedes:
            old = await _lock_decision(tx, req.supersedes, field="supersedes")
            if old.superseded_by is not None:
                raise Conflict(f"La décision {old.number} a déjà été remplacée par une autre décision : "
                               "c'est la plus récente qu'il faut corriger.", field="supersedes")
        check = check_rule(await rule_for(tx, fs.kind), req.method, await attendance.present(tx, fs.id), req.hands)
        check_outcome(req.method, req.outcome, check)
        d = await recording.record(uow, fs=fs, agenda_position=req.agenda_position, agenda_text=item,
                                   title=req.title, text=req.text, outcome=req.outcome, method=req.method,
                                   check=check, actor=req.actor_id, now=now, hands=req.hands,
                                   commitment=commitment, supersedes=old)
        [view] = await _views(tx, [d], now)
    return view


async def get_decision(req: GetDecision, ctx: HandlerContext) -> DecisionDetail:
    """One decision with its follow-up history, what superseded it and the vote it came from; the
    numbers of the decisions it corrects or that corrected it, and its session's check-in sheet today."""
    async with ctx.db.read() as tx:
        d = await tx.get(ForumDecision, req.decision_id)
        if d is None:
            raise NotFound("Décision inconnue.", field="decision_id")
        [view] = await _views(tx, [d], utcnow())
        related = [i for i in (d.supersedes, d.superseded_by) if i]
        numbers = dict((await tx.exec(select(ForumDecision.id, ForumDecision.number)
                                      .where(col(ForumDecision.id).in_(related)))).all()) if related else {}
        sheet = await attendance.sheet_now(tx, d.session_id)
    return DecisionDetail(**dict(view), supersedes_number=numbers.get(d.supersedes),
                          superseded_by_number=numbers.get(d.superseded_by), attendance_now=sheet)


async def list_decisions(req: ListDecisions, ctx: HandlerContext) -> DecisionList:
    """The decision register, newest first, filtered by session, commitment, outcome, follow-up."""
    conds: list[Any] = []
    if req.session_id:
        conds.append(ForumDecision.session_id == req.session_id)
    if req.commitment_code:
        conds.append(ForumDecision.commitment_code == req.commitment_code)
    if req.outcome:
        conds.append(ForumDecision.outcome == req.outcome.value)
    if req.follow_up:
        conds.append(ForumDecision.follow_up == req.follow_up.value)
    if not req.include_superseded:
        conds.append(col(ForumDecision.superseded_by).is_(None))
    stmt = select(ForumDecision).where(*conds).order_by(col(ForumDecision.recorded_at).desc(),
                                                        col(ForumDecision.number).desc())
    count = select(func.count()).select_from(ForumDecision).where(*conds)
    async with ctx.db.read() as tx:
        rows = list((await tx.exec(stmt.offset(req.offset).limit(req.limit))).all())
        total = scalar((await tx.exec(count)).one())  # type: ignore[call-overload]
        views = await _views(tx, rows, utcnow())
    return DecisionList(decisions=views, total=total)


async def update_follow_up(req: UpdateFollowUp, ctx: HandlerContext) -> DecisionView:
    """Secretariat: a dated update of a decision's follow-up (to do, in progress, done, abandoned)."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        tx = uow.tx
        await require_secretariat(tx, req.actor_id)
        d = await _lock_decision(tx, req.decision_id, field="decision_id")
        now = utcnow()
        seq = scalar((await tx.exec(select(func.coalesce(func.max(ForumFollowUp.seq), 0))  # type: ignore[call-overload]
                                    .where(ForumFollowUp.decision_id == d.id))).one())
        env = uow.emit(FollowUpUpdated(decision_id=d.id, status=req.status, note=req.note, updated_at=now))
        tx.add(ForumFollowUp(decision_id=d.id, seq=seq + 1, status=req.status.value, note=req.note, updated_at=now,
                             updated_by=req.actor_id, event_id=str(env.event_id)))
        d.follow_up = req.status.value
        tx.add(d)
        await tx.flush()
        [view] = await _views(tx, [d], now)
    return view
