"""Decisions, the decision register, the forum's adoption rules and online majority-judgment votes
(issue 4): the forum's side of `shared/contracts/decisions.py` (request/reply handlers on
`rpc.forum.<op>`, the ops of the table at the top of that module, and the background closer of
votes).

Locks (taken in this order only, so they cannot deadlock; on SQLite the service's process-wide
write lock serialises write transactions instead):
- a ballot locks the member's projection row, then the vote row (like an RSVP: member, then session);
- closing a vote locks the vote row, then the decision counter of the year;
- recording a decision locks the decision it supersedes (if any), then the counter of the year.

Closing a vote is one unit of work under the vote row lock: the tally, the decision it becomes,
the deletion of its ballots (only the merit profiles remain) and the VoteClosed and
DecisionRecorded events all commit together, and a vote already closed is left alone, so the
secretariat's "close now", the background closer and several replicas can race harmlessly.

The handlers only use the `Service` they are given (`ctx.service`), like those of handlers.py.
"""
from __future__ import annotations

import json
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.forum.adoption import check_outcome, check_rule, default_rule, vote_outcome
from services.forum.queries import find_session, lock_member, require_secretariat, scalar
from services.forum.models import (
    ForumAgendaItem, ForumAttendance, ForumBallot, ForumCommitment, ForumDecision, ForumDecisionCounter,
    ForumFollowUp, ForumMember, ForumRule, ForumSession, ForumVote, ForumVoter, MemberStanding,
)
from shared.clock import as_paris, as_utc
from shared.contracts.decisions import (
    CastBallot, CloseVote, CommitmentList, CommitmentRef, CommitmentView, DecisionInfo, DecisionList,
    DecisionRecorded, DecisionSuperseded, DecisionView, Eligibility, FollowUpEntry, FollowUpStatus,
    FollowUpUpdated, GetDecision, GetRules, GetVote, GradeCount, HandCount, ListCommitments, ListDecisions,
    ListVotes, Method, MyBallot, OpenVote, OptionResult, Outcome, RecordDecision, Rule, RuleCheck, RuleList,
    RuleUpdated, RuleView, SaveCommitment, SetRule, UpdateFollowUp, VoteClosed, VoteInfo, VoteList, VoteOpened,
    VoteOption, VoteResult, VoteStatus, VoteView, BallotView,
)
from shared.contracts.forum import SessionKind, SessionStatus
from shared.contracts.registry import College, Role
from shared.db import dialect_insert
from shared.contracts.envelope import SYSTEM
from shared.clock import utcnow
from shared.errors import Conflict, Expired, Forbidden, Invalid, NotFound
from shared.logging import get_logger
from forumlib.majority_judgment import GRADE_LABELS, GRADES, Grade, majority_grade, merit_profile, rank, winner
from shared.outbox import UnitOfWork
from shared.service import HandlerContext, Service

log = get_logger(__name__)


# ================================================================ small helpers
def _when(dt: datetime) -> str:
    """A date as a person in Paris reads it."""
    return as_paris(dt).strftime("%d/%m/%Y à %H:%M")


def _natural_key(code: str) -> list[Any]:
    """« 2 » before « 10 »; « 3.2 » after « 3.1 » (digit runs compare as numbers)."""
    return [int(t) if i % 2 else t.casefold() for i, t in enumerate(re.split(r"(\d+)", code))]








async def _agenda_text(s: AsyncSession, session_id: str, position: int) -> str:
    item = await s.get(ForumAgendaItem, (session_id, position))
    if item is None:
        raise NotFound(f"La séance n'a pas de point n° {position} à son ordre du jour.", field="agenda_position")
    return item.text


async def _lock_decision(s: AsyncSession, decision_id: str, field: str) -> ForumDecision:
    d = (await s.exec(select(ForumDecision).where(ForumDecision.id == decision_id).with_for_update())).first()
    if d is None:
        raise NotFound("Décision inconnue.", field=field)
    return d


async def _lock_vote(s: AsyncSession, vote_id: str) -> ForumVote:
    v = (await s.exec(select(ForumVote).where(ForumVote.id == vote_id).with_for_update())).first()
    if v is None:
        raise NotFound("Vote inconnu.", field="vote_id")
    return v


# ================================================================ rules
def _rule_of(row: ForumRule) -> Rule:
    return Rule(kind=row.kind, quorum=json.loads(row.quorum), double_majority=row.double_majority)


async def _rule(s: AsyncSession, kind: SessionKind) -> Rule:
    row = await s.get(ForumRule, kind)
    return _rule_of(row) if row is not None else default_rule(kind)


async def _present(s: AsyncSession, session_id: str) -> dict[College, int]:
    """Members checked in at the session, per college."""
    stmt = (select(ForumAttendance.college, func.count()).where(ForumAttendance.session_id == session_id)
            .group_by(ForumAttendance.college))
    return {College(c): n for c, n in (await s.exec(stmt)).all() if c}  # type: ignore[call-overload]


async def get_rules(req: GetRules, ctx: HandlerContext) -> RuleList:
    """The rule of each session kind (the default rule, with `updated_at` None, until one is set)."""
    async with ctx.service.db.read() as s:
        rows = {r.kind: r for r in (await s.exec(select(ForumRule))).all()}
    return RuleList(rules=[RuleView(rule=_rule_of(rows[k]), updated_at=as_utc(rows[k].updated_at))
                           if k in rows else RuleView(rule=default_rule(k), updated_at=None) for k in SessionKind])


async def set_rule(req: SetRule, ctx: HandlerContext) -> RuleView:
    """Secretariat: the quorum per college and the double majority of a session kind."""
    now = utcnow()
    rule = req.rule
    quorum = json.dumps({c.value: n for c, n in sorted(rule.quorum.items())})
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        await require_secretariat(uow.tx, req.actor_id)
        values = {"quorum": quorum, "double_majority": rule.double_majority, "updated_at": now,
                  "updated_by": req.actor_id}
        stmt = dialect_insert(uow.tx, ForumRule).values(kind=rule.kind.value, **values)
        stmt = stmt.on_conflict_do_update(index_elements=["kind"], set_=values)
        await uow.tx.exec(stmt)  # type: ignore[call-overload]
        uow.emit(RuleUpdated(rule=rule, updated_at=now))
    return RuleView(rule=rule, updated_at=now)


# ================================================================ commitments
async def _commitment_counts(s: AsyncSession, codes: Sequence[str] | None = None) -> dict[str, int]:
    stmt = (select(ForumDecision.commitment_code, func.count())
            .where(col(ForumDecision.commitment_code).is_not(None), col(ForumDecision.superseded_by).is_(None))
            .group_by(ForumDecision.commitment_code))
    if codes is not None:
        stmt = stmt.where(col(ForumDecision.commitment_code).in_(codes))
    return {c: n for c, n in (await s.exec(stmt)).all()}  # type: ignore[call-overload]


def _commitment_view(c: ForumCommitment, counts: dict[str, int]) -> CommitmentView:
    return CommitmentView(code=c.code, title=c.title, plan=c.plan, decisions=counts.get(c.code, 0))


async def list_commitments(req: ListCommitments, ctx: HandlerContext) -> CommitmentList:
    """The commitments of the national action plan, in code order, with their decisions counted."""
    async with ctx.service.db.read() as s:
        rows = list((await s.exec(select(ForumCommitment))).all())
        counts = await _commitment_counts(s)
    rows.sort(key=lambda c: _natural_key(c.code))
    return CommitmentList(commitments=[_commitment_view(c, counts) for c in rows])


async def save_commitment(req: SaveCommitment, ctx: HandlerContext) -> CommitmentView:
    """Secretariat: create or edit (by code) a commitment. Decisions keep the title they were
    recorded with."""
    now = utcnow()
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        s = uow.tx
        await require_secretariat(s, req.actor_id)
        values = {"title": req.title, "plan": req.plan, "updated_at": now}
        stmt = dialect_insert(s, ForumCommitment).values(code=req.code, **values)
        await s.exec(stmt.on_conflict_do_update(index_elements=["code"], set_=values))  # type: ignore[call-overload]
        counts = await _commitment_counts(s, [req.code])
    return CommitmentView(code=req.code, title=req.title, plan=req.plan, decisions=counts.get(req.code, 0))


# ================================================================ decisions
def _hands_json(hands: dict[College, HandCount] | None) -> str | None:
    if hands is None:
        return None
    return json.dumps({c.value: h.model_dump() for c, h in sorted(hands.items())})


def _decision_info(d: ForumDecision) -> DecisionInfo:
    return DecisionInfo(
        decision_id=d.id, number=d.number, session_id=d.session_id, session_title=d.session_title,
        session_kind=d.session_kind, agenda_position=d.agenda_position, agenda_text=d.agenda_text,
        title=d.title, text=d.text, outcome=Outcome(d.outcome), method=Method(d.method),
        hands={College(c): HandCount(**h) for c, h in json.loads(d.hands).items()} if d.hands else None,
        vote_id=d.vote_id,
        commitment=CommitmentRef(code=d.commitment_code, title=d.commitment_title or "")
        if d.commitment_code else None,
        supersedes=d.supersedes, rule_check=RuleCheck.model_validate_json(d.rule_check),
        recorded_at=as_utc(d.recorded_at))


async def _next_number(uow: UnitOfWork, service: Service, now: datetime) -> str:
    """« YYYY-NNN »: the year's counter row, created if absent, locked and bumped."""
    s = uow.tx
    year = now.year
    await s.exec(dialect_insert(s, ForumDecisionCounter).values(year=year, last=0)  # type: ignore[call-overload]
                 .on_conflict_do_nothing(index_elements=["year"]))
    counter = (await s.exec(select(ForumDecisionCounter).where(ForumDecisionCounter.year == year)
                            .with_for_update().execution_options(populate_existing=True))).one()
    counter.last += 1
    s.add(counter)
    return f"{year}-{counter.last:03d}"


async def _create_decision(uow: UnitOfWork, service: Service, *, fs: ForumSession, agenda_position: int,
                           agenda_text: str, title: str, text: str, outcome: Outcome, method: Method,
                           check: RuleCheck, actor: str, now: datetime, decision_id: str | None = None,
                           hands: dict[College, HandCount] | None = None, vote_id: str | None = None,
                           commitment: ForumCommitment | None = None,
                           supersedes: ForumDecision | None = None) -> ForumDecision:
    """Insert the decision and emit DecisionRecorded (and DecisionSuperseded for the one it
    corrects). The caller holds the lock of `supersedes`."""
    s = uow.tx
    d = ForumDecision(
        number=await _next_number(uow, service, now), session_id=fs.id, session_title=fs.title,
        session_kind=fs.kind, agenda_position=agenda_position, agenda_text=agenda_text, title=title, text=text,
        outcome=outcome.value, method=method.value, hands=_hands_json(hands), vote_id=vote_id,
        commitment_code=commitment.code if commitment else None,
        commitment_title=commitment.title if commitment else None,
        supersedes=supersedes.id if supersedes else None, rule_check=check.model_dump_json(),
        follow_up=FollowUpStatus.TODO.value, recorded_by=actor, recorded_at=now, event_id="")
    if decision_id:
        d.id = decision_id
    d.event_id = str(uow.emit(DecisionRecorded(decision=_decision_info(d))).event_id)
    s.add(d)
    if supersedes is not None:
        env = uow.emit(DecisionSuperseded(decision_id=supersedes.id, superseded_by=d.id, superseded_at=now))
        supersedes.superseded_by, supersedes.superseded_at = d.id, now
        supersedes.superseded_event_id = str(env.event_id)
        s.add(supersedes)
    await s.flush()
    return d


async def _decision_views(s: AsyncSession, rows: Sequence[ForumDecision], now: datetime) -> list[DecisionView]:
    ids = [d.id for d in rows]
    follow: dict[str, list[FollowUpEntry]] = defaultdict(list)
    votes: dict[str, VoteView] = {}
    if ids:
        for f in (await s.exec(select(ForumFollowUp).where(col(ForumFollowUp.decision_id).in_(ids))
                               .order_by(col(ForumFollowUp.decision_id), col(ForumFollowUp.seq)))).all():
            follow[f.decision_id].append(FollowUpEntry(status=FollowUpStatus(f.status), note=f.note,
                                                       updated_at=as_utc(f.updated_at), event_id=f.event_id))
        vote_ids = [d.vote_id for d in rows if d.vote_id]
        if vote_ids:
            vrows = list((await s.exec(select(ForumVote).where(col(ForumVote.id).in_(vote_ids)))).all())
            votes = {vv.vote.vote_id: vv for vv in await _vote_views(s, vrows, now)}
    return [DecisionView(decision=_decision_info(d), event_id=d.event_id, superseded_by=d.superseded_by,
                         superseded_event_id=d.superseded_event_id, follow_up=FollowUpStatus(d.follow_up),
                         follow_ups=follow.get(d.id, []), vote=votes.get(d.vote_id) if d.vote_id else None)
            for d in rows]


async def record_decision(req: RecordDecision, ctx: HandlerContext) -> DecisionView:
    """Secretariat records a decision on an agenda item of a session that has started. The forum's
    rule for the session kind is checked against the attendance (and the show of hands) and frozen
    with the decision; an outcome the rule contradicts is refused. `supersedes` corrects an earlier
    decision, which stays public."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        s = uow.tx
        await require_secretariat(s, req.actor_id)
        now = utcnow()
        fs = await find_session(s, req.session_id)
        if fs.status == SessionStatus.CANCELLED:
            raise Conflict("Cette séance a été annulée : aucune décision ne peut y être enregistrée.",
                           field="session_id")
        if now < as_utc(fs.starts_at):
            raise Conflict(f"Cette séance n'a pas encore commencé (début le {_when(fs.starts_at)}) : une décision "
                           "ne s'enregistre qu'une fois la séance ouverte.", field="session_id")
        agenda_text = await _agenda_text(s, fs.id, req.agenda_position)
        commitment = None
        if req.commitment_code:
            commitment = await s.get(ForumCommitment, req.commitment_code)
            if commitment is None:
                raise NotFound(f"Aucun engagement du plan d'action ne porte le code « {req.commitment_code} ».",
                               field="commitment_code")
        old = None
        if req.supersedes:
            old = await _lock_decision(s, req.supersedes, field="supersedes")
            if old.superseded_by is not None:
                raise Conflict(f"La décision {old.number} a déjà été remplacée par une autre décision : "
                               "c'est la plus récente qu'il faut corriger.", field="supersedes")
        check = check_rule(await _rule(s, fs.kind), req.method, await _present(s, fs.id), req.hands)
        check_outcome(req.method, req.outcome, check)
        d = await _create_decision(uow, ctx.service, fs=fs, agenda_position=req.agenda_position,
                                   agenda_text=agenda_text, title=req.title, text=req.text, outcome=req.outcome,
                                   method=req.method, check=check, actor=req.actor_id, now=now, hands=req.hands,
                                   commitment=commitment, supersedes=old)
        [view] = await _decision_views(s, [d], now)
    return view


async def get_decision(req: GetDecision, ctx: HandlerContext) -> DecisionView:
    """One decision with its follow-up history, what superseded it and the vote it came from."""
    async with ctx.service.db.read() as s:
        d = await s.get(ForumDecision, req.decision_id)
        if d is None:
            raise NotFound("Décision inconnue.", field="decision_id")
        [view] = await _decision_views(s, [d], utcnow())
    return view


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
    async with ctx.service.db.read() as s:
        rows = list((await s.exec(stmt.offset(req.offset).limit(req.limit))).all())
        total = scalar((await s.exec(count)).one())  # type: ignore[call-overload]
        views = await _decision_views(s, rows, utcnow())
    return DecisionList(decisions=views, total=total)


async def update_follow_up(req: UpdateFollowUp, ctx: HandlerContext) -> DecisionView:
    """Secretariat: a dated update of a decision's follow-up (to do, in progress, done, abandoned)."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        s = uow.tx
        await require_secretariat(s, req.actor_id)
        d = await _lock_decision(s, req.decision_id, field="decision_id")
        now = utcnow()
        seq = scalar((await s.exec(select(func.coalesce(func.max(ForumFollowUp.seq), 0))  # type: ignore[call-overload]
                                   .where(ForumFollowUp.decision_id == d.id))).one())
        env = uow.emit(FollowUpUpdated(decision_id=d.id, status=req.status, note=req.note, updated_at=now))
        s.add(ForumFollowUp(decision_id=d.id, seq=seq + 1, status=req.status.value, note=req.note, updated_at=now,
                            updated_by=req.actor_id, event_id=str(env.event_id)))
        d.follow_up = req.status.value
        s.add(d)
        await s.flush()
        [view] = await _decision_views(s, [d], now)
    return view


# ================================================================ votes: reading
def _labels(v: ForumVote) -> list[str]:
    return list(json.loads(v.options))


def _vote_info(v: ForumVote) -> VoteInfo:
    return VoteInfo(vote_id=v.id, session_id=v.session_id, agenda_position=v.agenda_position,
                    agenda_text=v.agenda_text, question=v.question,
                    options=[VoteOption(option_id=i, label=t) for i, t in enumerate(_labels(v), start=1)],
                    grades=list(GRADES), eligibility=Eligibility(v.eligibility), opens_at=as_utc(v.opens_at),
                    closes_at=as_utc(v.closes_at))


def vote_status(v: ForumVote, now: datetime) -> VoteStatus:
    """Closed once tallied or past its closing time (the closer tallies it within seconds)."""
    if v.closed_at is not None or now >= as_utc(v.closes_at):
        return VoteStatus.CLOSED
    if now < as_utc(v.opens_at):
        return VoteStatus.UPCOMING
    return VoteStatus.OPEN


def _ineligible(member: ForumMember | None, eligibility: Eligibility, attended: bool) -> str | None:
    """Why this person may not vote (None: they may)."""
    if member is None:
        return "Seuls les membres validés du forum peuvent voter."
    if member.role == Role.SECRETARIAT:
        return "Les comptes du secrétariat ne votent pas."
    if member.standing == MemberStanding.ERASED:
        return "Ce compte a été supprimé : il ne peut plus voter."
    if member.standing != MemberStanding.APPROVED:
        return "Votre inscription n'a pas encore été validée par le secrétariat : vous ne pouvez pas encore voter."
    if eligibility == Eligibility.ATTENDEES and not attended:
        return ("Ce vote est réservé aux membres présents à la séance, et votre présence n'y a pas été "
                "enregistrée.")
    return None


def _voting_member() -> list[Any]:
    return [ForumMember.standing == MemberStanding.APPROVED, col(ForumMember.role) != Role.SECRETARIAT]


async def _eligible_counts(s: AsyncSession, votes: Sequence[ForumVote]) -> dict[str, int]:
    """Electorate of each vote, now: approved members (not secretariat accounts), or those of them
    checked in at the session."""
    out: dict[str, int] = {}
    if any(v.eligibility == Eligibility.APPROVED_MEMBERS for v in votes):
        n = scalar((await s.exec(select(func.count()).select_from(ForumMember)  # type: ignore[call-overload]
                                  .where(*_voting_member()))).one())
        out.update({v.id: n for v in votes if v.eligibility == Eligibility.APPROVED_MEMBERS})
    sids = sorted({v.session_id for v in votes if v.eligibility == Eligibility.ATTENDEES})
    if sids:
        stmt = (select(ForumAttendance.session_id, func.count()).join(
            ForumMember, col(ForumMember.member_id) == col(ForumAttendance.member_id))
            .where(col(ForumAttendance.session_id).in_(sids), *_voting_member()).group_by(ForumAttendance.session_id))
        by = {sid: n for sid, n in (await s.exec(stmt)).all()}  # type: ignore[call-overload]
        out.update({v.id: by.get(v.session_id, 0) for v in votes if v.eligibility == Eligibility.ATTENDEES})
    return out


async def _vote_views(s: AsyncSession, votes: Sequence[ForumVote], now: datetime,
                      actor_id: str | None = None) -> list[VoteView]:
    if not votes:
        return []
    ids = [v.id for v in votes]
    sids = sorted({v.session_id for v in votes})
    stmt = select(ForumSession.id, ForumSession.title).where(col(ForumSession.id).in_(sids))
    titles = {sid: t for sid, t in (await s.exec(stmt)).all()}  # type: ignore[call-overload]
    ballots = {vid: n for vid, n in (await s.exec(  # type: ignore[call-overload]
        select(ForumVoter.vote_id, func.count()).where(col(ForumVoter.vote_id).in_(ids))
        .group_by(ForumVoter.vote_id))).all()}
    results = {v.id: VoteResult.model_validate_json(v.result) for v in votes if v.result}
    eligible = await _eligible_counts(s, [v for v in votes if v.id not in results])
    member: ForumMember | None = None
    attended: set[str] = set()
    mine: dict[str, ForumBallot] = {}
    if actor_id:
        member = await s.get(ForumMember, actor_id)
        attended = set((await s.exec(select(ForumAttendance.session_id).where(
            ForumAttendance.member_id == actor_id, col(ForumAttendance.session_id).in_(sids)))).all())
        mine = {b.vote_id: b for b in (await s.exec(select(ForumBallot).where(
            ForumBallot.member_id == actor_id, col(ForumBallot.vote_id).in_(ids)))).all()}
    out = []
    for v in votes:
        status = vote_status(v, now)
        result = results.get(v.id)
        view = VoteView(vote=_vote_info(v), status=status, session_title=titles.get(v.session_id, ""),
                        ballots=result.ballots if result else ballots.get(v.id, 0),
                        eligible=result.eligible if result else eligible.get(v.id, 0),
                        opened_event_id=v.opened_event_id,
                        closed_at=as_utc(v.closed_at) if v.closed_at else None, closed_event_id=v.closed_event_id,
                        result=result, decision_id=v.decision_id)
        if actor_id:
            reason = _ineligible(member, Eligibility(v.eligibility), v.session_id in attended)
            view.may_vote = reason is None and status == VoteStatus.OPEN
            view.not_eligible_reason = reason
            b = mine.get(v.id)
            if b is not None and status != VoteStatus.CLOSED:
                view.my_ballot = MyBallot(grades={int(k): Grade(g) for k, g in json.loads(b.grades).items()},
                                          cast_at=as_utc(b.cast_at))
        out.append(view)
    return out


async def get_vote(req: GetVote, ctx: HandlerContext) -> VoteView:
    """One vote: its options, scale, electorate and times, the ballots counted so far, the result
    once closed; with `actor_id`, whether that member may vote and their ballot while open."""
    async with ctx.service.db.read() as s:
        v = await s.get(ForumVote, req.vote_id)
        if v is None:
            raise NotFound("Vote inconnu.", field="vote_id")
        [view] = await _vote_views(s, [v], utcnow(), req.actor_id)
    return view


async def list_votes(req: ListVotes, ctx: HandlerContext) -> VoteList:
    """Votes, latest opening first, by status (upcoming, open, closed) and session."""
    now = utcnow()
    conds: list[Any] = []
    if req.session_id:
        conds.append(ForumVote.session_id == req.session_id)
    if req.status == VoteStatus.CLOSED:
        conds.append(or_(col(ForumVote.closed_at).is_not(None), col(ForumVote.closes_at) <= now))
    elif req.status == VoteStatus.OPEN:
        conds += [col(ForumVote.closed_at).is_(None), col(ForumVote.opens_at) <= now, col(ForumVote.closes_at) > now]
    elif req.status == VoteStatus.UPCOMING:
        conds += [col(ForumVote.closed_at).is_(None), col(ForumVote.opens_at) > now]
    stmt = (select(ForumVote).where(*conds).order_by(col(ForumVote.opens_at).desc(), col(ForumVote.id))
            .offset(req.offset).limit(req.limit))
    async with ctx.service.db.read() as s:
        rows = list((await s.exec(stmt)).all())
        total = scalar((await s.exec(select(func.count()).select_from(ForumVote)  # type: ignore[call-overload]
                                      .where(*conds))).one())
        views = await _vote_views(s, rows, now, req.actor_id)
    return VoteList(votes=views, total=total)


# ================================================================ votes: opening and ballots
async def open_vote(req: OpenVote, ctx: HandlerContext) -> VoteView:
    """Secretariat opens a majority-judgment vote on an agenda item: its options, the full grade
    scale, its electorate (approved members or attendees) and its times are fixed from now on."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        s = uow.tx
        await require_secretariat(s, req.actor_id)
        fs = await find_session(s, req.session_id)
        if fs.status == SessionStatus.CANCELLED:
            raise Conflict("Cette séance a été annulée : aucun vote ne peut y être ouvert.", field="session_id")
        agenda_text = await _agenda_text(s, fs.id, req.agenda_position)
        now = utcnow()
        closes_at = req.closes_at.astimezone(UTC)
        if closes_at <= now:
            raise Invalid("La clôture du vote doit être dans le futur.", field="closes_at")
        opens_at = max(req.opens_at.astimezone(UTC), now)  # a vote never opens in the past
        v = ForumVote(session_id=fs.id, agenda_position=req.agenda_position, agenda_text=agenda_text,
                      question=req.question, options=json.dumps(list(req.options), ensure_ascii=False),
                      eligibility=req.eligibility.value, opens_at=opens_at, closes_at=closes_at,
                      created_by=req.actor_id, created_at=now, opened_event_id="")
        v.opened_event_id = str(uow.emit(VoteOpened(vote=_vote_info(v))).event_id)
        s.add(v)
        await s.flush()
        [view] = await _vote_views(s, [v], now)
    return view


async def cast_ballot(req: CastBallot, ctx: HandlerContext) -> BallotView:
    """An eligible member grades every option of an open vote once; casting again before the
    closing replaces their ballot. Who voted is kept (participation); what they voted is deleted
    at the closing, once counted."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        s = uow.tx
        member = await lock_member(s, req.actor_id)
        v = await _lock_vote(s, req.vote_id)
        now = utcnow()  # read under the lock: a ballot is either before the closing or refused
        status = vote_status(v, now)
        if status == VoteStatus.UPCOMING:
            raise Conflict(f"Le vote n'est pas encore ouvert : il ouvre le {_when(v.opens_at)}.", field="vote_id")
        if status == VoteStatus.CLOSED:
            raise Expired(f"Le vote est clos depuis le {_when(v.closed_at or v.closes_at)} : il n'accepte plus "
                          "de bulletin.", field="vote_id")
        attended = member is not None and v.eligibility == Eligibility.ATTENDEES and \
            await s.get(ForumAttendance, (v.session_id, member.member_id)) is not None
        reason = _ineligible(member, Eligibility(v.eligibility), attended)
        if reason:
            raise Forbidden(reason)
        assert member is not None
        labels = _labels(v)
        unknown = sorted(set(req.grades) - set(range(1, len(labels) + 1)))
        if unknown:
            raise Invalid(f"Ce vote n'a pas d'option n° {unknown[0]} (options 1 à {len(labels)}).", field="grades")
        missing = [i for i in range(1, len(labels) + 1) if i not in req.grades]
        if missing:
            raise Invalid(f"Attribuez une mention à chaque option : « {labels[missing[0] - 1]} » n'en a pas.",
                          field="grades")
        grades = {i: Grade(req.grades[i]) for i in range(1, len(labels) + 1)}
        payload = json.dumps({str(i): g.value for i, g in grades.items()})
        ballot = await s.get(ForumBallot, (v.id, member.member_id))
        replaced = ballot is not None
        if ballot is None:
            s.add(ForumBallot(vote_id=v.id, member_id=member.member_id, grades=payload, cast_at=now))
        else:
            ballot.grades, ballot.cast_at = payload, now
            s.add(ballot)
        voter = await s.get(ForumVoter, (v.id, member.member_id))
        if voter is None:
            s.add(ForumVoter(vote_id=v.id, member_id=member.member_id, college=member.college, voted_at=now))
        else:
            voter.voted_at = now
            s.add(voter)
    return BallotView(vote_id=v.id, grades=grades, cast_at=now, replaced=replaced)


# ================================================================ votes: closing
async def withdraw_ballots(s: AsyncSession, member_id: str) -> None:
    """An erased member's ballots in votes not yet closed no longer count (they are no longer a member);
    in closed votes only the merit profiles were ever kept."""
    still_open = select(ForumVote.id).where(col(ForumVote.closed_at).is_(None))
    for table in (ForumBallot, ForumVoter):
        await s.exec(delete(table).where(col(table.member_id) == member_id,  # type: ignore[call-overload]
                                         col(table.vote_id).in_(still_open)))


def tally(labels: Sequence[str], ballots: Sequence[dict[int, Grade]], eligible: int,
          participation: dict[College, int]) -> VoteResult:
    """The public result of a vote from its ballots (every ballot grades every option)."""
    profiles = {i: merit_profile([b[i] for b in ballots]) for i in range(1, len(labels) + 1)}
    win = winner(profiles)
    options = [OptionResult(option_id=i, label=labels[i - 1],
                            profile=[GradeCount(grade=g, count=profiles[i][g]) for g in GRADES],
                            majority_grade=majority_grade(profiles[i]), rank=r) for i, r in rank(profiles)]
    return VoteResult(ballots=len(ballots), eligible=eligible, participation=participation, options=options,
                      winner_option_id=win, tie=win is None and len(ballots) > 0)


def _summary(result: VoteResult, check: RuleCheck) -> str:
    """The decision's text: a short Markdown account of the result, in French."""
    plural = "s" if result.ballots > 1 else ""
    lines = []
    if result.winner_option_id is not None:
        w = next(o for o in result.options if o.option_id == result.winner_option_id)
        assert w.majority_grade is not None
        lines.append(f"Au jugement majoritaire, l'option « {w.label} » l'emporte avec la mention majoritaire "
                     f"**{GRADE_LABELS[w.majority_grade]}**.")
    elif result.ballots == 0:
        lines.append("Aucun bulletin n'a été déposé : le vote ne désigne aucune option.")
    else:
        lines.append("Égalité parfaite en tête : le vote ne désigne pas d'option gagnante.")
    lines += ["", f"{result.ballots} bulletin{plural} déposé{plural} ({result.eligible} votants possibles).", ""]
    for o in result.options:
        grade = GRADE_LABELS[o.majority_grade] if o.majority_grade else "aucune"
        lines.append(f"- rang {o.rank} : « {o.label} », mention majoritaire {grade}")
    lines += ["", f"Règle du forum : {check.summary}"]
    return "\n".join(lines)


async def _close_locked(uow: UnitOfWork, service: Service, v: ForumVote, now: datetime) -> None:
    """Tally, record the decision, delete the ballots and emit VoteClosed then DecisionRecorded.
    The caller holds the vote row lock and has checked the vote is not closed yet."""
    s = uow.tx
    labels = _labels(v)
    ballots = [{int(k): Grade(g) for k, g in json.loads(b.grades).items()}
               for b in (await s.exec(select(ForumBallot).where(ForumBallot.vote_id == v.id))).all()]
    participation = {c: 0 for c in College}
    for college, n in (await s.exec(select(ForumVoter.college, func.count())  # type: ignore[call-overload]
                                    .where(ForumVoter.vote_id == v.id).group_by(ForumVoter.college))).all():
        if college:
            participation[College(college)] = n
    eligible = (await _eligible_counts(s, [v]))[v.id]
    result = tally(labels, ballots, eligible, participation)
    fs = await find_session(s, v.session_id)
    check = check_rule(await _rule(s, fs.kind), Method.ONLINE_VOTE, participation,
                       single_winner=result.winner_option_id is not None)
    decision_id = str(uuid.uuid4())
    await s.exec(delete(ForumBallot).where(col(ForumBallot.vote_id) == v.id))  # type: ignore[call-overload]
    v.closed_at, v.result, v.decision_id = now, result.model_dump_json(), decision_id
    v.closed_event_id = str(uow.emit(VoteClosed(vote=_vote_info(v), closed_at=now, result=result,
                                                decision_id=decision_id)).event_id)
    s.add(v)
    await _create_decision(uow, service, fs=fs, agenda_position=v.agenda_position, agenda_text=v.agenda_text,
                           title=v.question, text=_summary(result, check), outcome=vote_outcome(check),
                           method=Method.ONLINE_VOTE, check=check, actor=uow.actor, now=now,
                           decision_id=decision_id, vote_id=v.id)


async def close_vote(req: CloseVote, ctx: HandlerContext) -> VoteView:
    """Secretariat closes an open vote now (a vote already closed is returned as it is)."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        s = uow.tx
        await require_secretariat(s, req.actor_id)
        v = await _lock_vote(s, req.vote_id)
        now = utcnow()
        if v.closed_at is None:
            if vote_status(v, now) == VoteStatus.UPCOMING:
                raise Conflict(f"Le vote n'est pas encore ouvert (ouverture le {_when(v.opens_at)}) : il ne peut "
                               "pas être clos.", field="vote_id")
            await _close_locked(uow, ctx.service, v, now)
        [view] = await _vote_views(s, [v], now)
    return view


async def close_due_votes(service: Service) -> int:
    """Close every vote past its closing time; returns how many this call closed."""
    now = utcnow()
    async with service.db.read() as s:
        due = list((await s.exec(select(ForumVote.id).where(col(ForumVote.closed_at).is_(None),
                                                            col(ForumVote.closes_at) <= now)
                                 .order_by(col(ForumVote.closes_at)).limit(100))).all())
    closed = 0
    for vote_id in due:
        async with service.unit_of_work(actor=SYSTEM) as uow:
            v = await _lock_vote(uow.tx, vote_id)
            now = utcnow()
            if v.closed_at is None and now >= as_utc(v.closes_at):  # another replica may have been first
                await _close_locked(uow, service, v, now)
                closed += 1
    if closed:
        log.info("votes closed", count=closed)
    return closed


# ================================================================ wiring (see handlers.wire)
RPCS: dict[str, Callable[..., Any]] = {
    "list-commitments": list_commitments,
    "save-commitment": save_commitment,
    "get-rules": get_rules,
    "set-rule": set_rule,
    "record-decision": record_decision,
    "get-decision": get_decision,
    "list-decisions": list_decisions,
    "update-follow-up": update_follow_up,
    "open-vote": open_vote,
    "get-vote": get_vote,
    "list-votes": list_votes,
    "cast-ballot": cast_ballot,
    "close-vote": close_vote,
}
