"""Online majority-judgment votes: the secretariat opens one on an agenda item, eligible members grade
every option (and may change their ballot until the closing), and the closing, by the secretariat or
by the `vote-closer` job at the closing time, tallies it into a decision of the register.

Locks (taken in this order only, so they cannot deadlock; on SQLite the service's process-wide
write lock serialises write transactions instead):
- a ballot locks the member's projection row, then the vote row (like an RSVP: member, then session);
- closing a vote locks the vote row, then the decision counter of the year (see `recording`).

Closing a vote is one unit of work under the vote row lock: the tally, the decision it becomes,
the deletion of its ballots (only the merit profiles remain) and the VoteClosed and
DecisionRecorded events all commit together, and a vote already closed is left alone, so the
secretariat's "close now", the background closer and several replicas can race harmlessly.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from forumlib.majority_judgment import GRADE_LABELS, GRADES, Grade, majority_grade, merit_profile, rank, winner
from services.forum import recording, vote_rules
from services.forum.adoption import check_rule, vote_outcome
from services.forum.commitments import rule_for
from services.forum.models import (
    ForumAttendance, ForumBallot, ForumMember, ForumSession, ForumVote, ForumVoter, MemberStanding,
)
from services.forum.queries import agenda_text, find_session, lock_member, require_secretariat, scalar
from shared.clock import paris_datetime, utcnow
from shared.contracts.decisions import (
    BallotView, CastBallot, CloseVote, Eligibility, GetVote, GradeCount, ListVoteGroups, ListVotes, Method, MyBallot,
    OpenVote, OptionResult, RuleCheck, VoteCancelled, VoteClosed, VoteGroups, VoteInfo, VoteList, VoteOpened,
    VoteOption, VoteResult, VoteStatus, VoteView,
)
from shared.contracts.envelope import SYSTEM
from shared.contracts.forum import SessionStatus
from shared.contracts.registry import College, Role
from shared.errors import Conflict, Expired, Forbidden, Invalid, NotFound
from shared.logging import get_logger
from shared.outbox import UnitOfWork
from shared.service import HandlerContext, Service

log = get_logger(__name__)


# ================================================================ reading
async def _lock_vote(tx: AsyncSession, vote_id: str) -> ForumVote:
    v = (await tx.exec(select(ForumVote).where(ForumVote.id == vote_id).with_for_update())).first()
    if v is None:
        raise NotFound("Vote inconnu.", field="vote_id")
    return v


def _labels(v: ForumVote) -> list[str]:
    return list(json.loads(v.options))


def _vote_info(v: ForumVote) -> VoteInfo:
    return VoteInfo(vote_id=v.id, session_id=v.session_id, agenda_position=v.agenda_position,
                    agenda_text=v.agenda_text, question=v.question,
                    options=[VoteOption(option_id=i, label=t) for i, t in enumerate(_labels(v), start=1)],
                    grades=list(GRADES), eligibility=Eligibility(v.eligibility), opens_at=v.opens_at,
                    closes_at=v.closes_at)


def vote_status(v: ForumVote, now: datetime) -> VoteStatus:
    """Closed once tallied or past its closing time (the closer tallies it within seconds); cancelled
    when it ended with its session, untallied."""
    if v.closed_at is not None and v.result is None:  # a tallied vote always keeps its result
        return VoteStatus.CANCELLED
    if v.closed_at is not None or now >= v.closes_at:
        return VoteStatus.CLOSED
    if now < v.opens_at:
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


async def _eligible_counts(tx: AsyncSession, votes: Sequence[ForumVote]) -> dict[str, int]:
    """Electorate of each vote, now: approved members (not secretariat accounts), or those of them
    checked in at the session."""
    out: dict[str, int] = {}
    if any(v.eligibility == Eligibility.APPROVED_MEMBERS for v in votes):
        n = scalar((await tx.exec(select(func.count()).select_from(ForumMember)  # type: ignore[call-overload]
                                   .where(*_voting_member()))).one())
        out.update({v.id: n for v in votes if v.eligibility == Eligibility.APPROVED_MEMBERS})
    sids = sorted({v.session_id for v in votes if v.eligibility == Eligibility.ATTENDEES})
    if sids:
        stmt = (select(ForumAttendance.session_id, func.count()).join(
            ForumMember, col(ForumMember.member_id) == col(ForumAttendance.member_id))
            .where(col(ForumAttendance.session_id).in_(sids), *_voting_member()).group_by(ForumAttendance.session_id))
        by = {sid: n for sid, n in (await tx.exec(stmt)).all()}  # type: ignore[call-overload]
        out.update({v.id: by.get(v.session_id, 0) for v in votes if v.eligibility == Eligibility.ATTENDEES})
    return out


def votes_with_titles() -> Any:
    """`SELECT` votes with their session's title (`vote_views`' `titles`): rows of (vote, title)."""
    return select(ForumVote, ForumSession.title).join(ForumSession, col(ForumSession.id) == col(ForumVote.session_id))


async def vote_views(tx: AsyncSession, votes: Sequence[ForumVote], now: datetime, actor_id: str | None = None,
                     titles: dict[str, str] | None = None) -> list[VoteView]:
    """Votes as their pages show them; with `actor_id`, whether that member may vote and their ballot.
    A fixed number of queries whatever the number of votes; `titles` (session id -> title, read with
    the votes: `votes_with_titles`) saves one."""
    if not votes:
        return []
    sids = sorted({v.session_id for v in votes})
    if titles is None:
        stmt = select(ForumSession.id, ForumSession.title).where(col(ForumSession.id).in_(sids))
        titles = {sid: t for sid, t in (await tx.exec(stmt)).all()}  # type: ignore[call-overload]
    results = {v.id: VoteResult.model_validate_json(v.result) for v in votes if v.result}
    counting = [v.id for v in votes if v.id not in results]  # a closed vote's result holds its ballots
    ballots = {vid: n for vid, n in (await tx.exec(  # type: ignore[call-overload]
        select(ForumVoter.vote_id, func.count()).where(col(ForumVoter.vote_id).in_(counting))
        .group_by(ForumVoter.vote_id))).all()} if counting else {}
    eligible = await _eligible_counts(tx, [v for v in votes if v.id not in results])
    member: ForumMember | None = None
    attended: set[str] = set()
    mine: dict[str, ForumBallot] = {}
    if actor_id:
        member = await tx.get(ForumMember, actor_id)
        attended = set((await tx.exec(select(ForumAttendance.session_id).where(
            ForumAttendance.member_id == actor_id, col(ForumAttendance.session_id).in_(sids)))).all())
        open_ids = [v.id for v in votes if v.closed_at is None]  # ballots are deleted at the closing
        mine = {b.vote_id: b for b in (await tx.exec(select(ForumBallot).where(
            ForumBallot.member_id == actor_id, col(ForumBallot.vote_id).in_(open_ids)))).all()} if open_ids else {}
    out = []
    for v in votes:
        status = vote_status(v, now)
        result = results.get(v.id)
        view = VoteView(vote=_vote_info(v), status=status, session_title=titles.get(v.session_id, ""),
                        ballots=result.ballots if result else ballots.get(v.id, 0),
                        eligible=result.eligible if result else eligible.get(v.id, 0),
                        opened_event_id=v.opened_event_id, closed_at=v.closed_at, closed_event_id=v.closed_event_id,
                        result=result, decision_id=v.decision_id)
        if actor_id:
            reason = _ineligible(member, Eligibility(v.eligibility), v.session_id in attended)
            view.may_vote = reason is None and status == VoteStatus.OPEN
            view.not_eligible_reason = reason
            b = mine.get(v.id)
            if b is not None and status != VoteStatus.CLOSED:
                view.my_ballot = MyBallot(grades={int(k): Grade(g) for k, g in json.loads(b.grades).items()},
                                          cast_at=b.cast_at)
        out.append(view)
    return out


async def get_vote(req: GetVote, ctx: HandlerContext) -> VoteView:
    """One vote: its options, scale, electorate and times, the ballots counted so far, the result
    once closed; with `actor_id`, whether that member may vote and their ballot while open."""
    async with ctx.db.read() as tx:
        v = await tx.get(ForumVote, req.vote_id)
        if v is None:
            raise NotFound("Vote inconnu.", field="vote_id")
        [view] = await vote_views(tx, [v], utcnow(), req.actor_id)
    return view


def _conditions(status: VoteStatus | None, session_id: str | None, now: datetime) -> list[Any]:
    conds: list[Any] = []
    if session_id:
        conds.append(ForumVote.session_id == session_id)
    if status == VoteStatus.CLOSED:  # every ended vote, cancelled ones included
        conds.append(or_(col(ForumVote.closed_at).is_not(None), col(ForumVote.closes_at) <= now))
    elif status == VoteStatus.CANCELLED:
        conds += [col(ForumVote.closed_at).is_not(None), col(ForumVote.result).is_(None)]
    elif status == VoteStatus.OPEN:
        conds += [col(ForumVote.closed_at).is_(None), col(ForumVote.opens_at) <= now, col(ForumVote.closes_at) > now]
    elif status == VoteStatus.UPCOMING:
        conds += [col(ForumVote.closed_at).is_(None), col(ForumVote.opens_at) > now]
    return conds


async def _page(tx: AsyncSession, conds: list[Any], limit: int, offset: int) -> tuple[list[Any], int]:
    """A page of (vote, session title) rows, latest opening first, and how many votes match."""
    stmt = (votes_with_titles().where(*conds).order_by(col(ForumVote.opens_at).desc(), col(ForumVote.id))
            .offset(offset).limit(limit))
    rows = list((await tx.exec(stmt)).all())
    total = scalar((await tx.exec(select(func.count()).select_from(ForumVote)  # type: ignore[call-overload]
                                  .where(*conds))).one())
    return rows, total


async def _lists(tx: AsyncSession, pages: list[tuple[list[Any], int]], now: datetime, actor_id: str | None
                 ) -> list[VoteList]:
    """Pages of rows as vote lists, every vote's view made in one `vote_views` (a fixed number of queries)."""
    rows = [r for page, _ in pages for r in page]
    views = iter(await vote_views(tx, [v for v, _ in rows], now, actor_id,
                                  titles={v.session_id: title for v, title in rows}))
    return [VoteList(votes=[next(views) for _ in page], total=total) for page, total in pages]


async def list_votes(req: ListVotes, ctx: HandlerContext) -> VoteList:
    """Votes, latest opening first, by status (upcoming, open, closed) and session."""
    now = utcnow()
    async with ctx.db.read() as tx:
        page = await _page(tx, _conditions(req.status, req.session_id, now), req.limit, req.offset)
        [listed] = await _lists(tx, [page], now, req.actor_id)
    return listed


async def list_vote_groups(req: ListVoteGroups, ctx: HandlerContext) -> VoteGroups:
    """The votes page in one read: the open and upcoming votes (`current`), and a page of the closed ones."""
    now = utcnow()
    asked = [(VoteStatus.CLOSED, req.closed_limit, req.closed_offset)]
    if req.current:
        asked[:0] = [(VoteStatus.OPEN, req.current_limit, 0), (VoteStatus.UPCOMING, req.current_limit, 0)]
    async with ctx.db.read() as tx:
        pages = [await _page(tx, _conditions(status, None, now), limit, offset) for status, limit, offset in asked]
        lists = await _lists(tx, pages, now, req.actor_id)
    *current, closed = lists
    return VoteGroups(open=current[0] if current else None, upcoming=current[1] if current else None, closed=closed)


# ================================================================ opening and ballots
async def open_vote(req: OpenVote, ctx: HandlerContext) -> VoteView:
    """Secretariat opens a majority-judgment vote on an agenda item: its options, the full grade
    scale, its electorate (approved members or attendees) and its times are fixed from now on."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        tx = uow.tx
        await require_secretariat(tx, req.actor_id)
        fs = await find_session(tx, req.session_id)
        if fs.status == SessionStatus.CANCELLED:
            raise Conflict("Cette séance a été annulée : aucun vote ne peut y être ouvert.", field="session_id")
        item = await agenda_text(tx, fs.id, req.agenda_position)
        now = utcnow()
        closes_at = req.closes_at.astimezone(UTC)
        if closes_at <= now:
            raise Invalid("La clôture du vote doit être dans le futur.", field="closes_at")
        vote_rules.check_closing_time(fs.starts_at, closes_at)
        opens_at = max(req.opens_at.astimezone(UTC), now)  # a vote never opens in the past
        v = ForumVote(session_id=fs.id, agenda_position=req.agenda_position, agenda_text=item,
                      question=req.question, options=json.dumps(list(req.options), ensure_ascii=False),
                      eligibility=req.eligibility.value, opens_at=opens_at, closes_at=closes_at,
                      created_by=req.actor_id, created_at=now, opened_event_id="")
        v.opened_event_id = str(uow.emit(VoteOpened(vote=_vote_info(v))).event_id)
        tx.add(v)
        await tx.flush()
        [view] = await vote_views(tx, [v], now)
    return view


async def cast_ballot(req: CastBallot, ctx: HandlerContext) -> BallotView:
    """An eligible member grades every option of an open vote once; casting again before the
    closing replaces their ballot. Who voted is kept (participation); what they voted is deleted
    at the closing, once counted."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        tx = uow.tx
        member = await lock_member(tx, req.actor_id)
        v = await _lock_vote(tx, req.vote_id)
        now = utcnow()  # read under the lock: a ballot is either before the closing or refused
        status = vote_status(v, now)
        if status == VoteStatus.UPCOMING:
            raise Conflict(f"Le vote n'est pas encore ouvert : il ouvre le {paris_datetime(v.opens_at)}.",
                           field="vote_id")
        if status == VoteStatus.CANCELLED:
            raise Expired("Ce vote a été annulé avec sa séance : il n'accepte plus de bulletin.", field="vote_id")
        if status == VoteStatus.CLOSED:
            raise Expired(f"Le vote est clos depuis le {paris_datetime(v.closed_at or v.closes_at)} : il "
                          "n'accepte plus de bulletin.", field="vote_id")
        attended = member is not None and v.eligibility == Eligibility.ATTENDEES and \
            await tx.get(ForumAttendance, (v.session_id, member.member_id)) is not None
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
        ballot = await tx.get(ForumBallot, (v.id, member.member_id))
        replaced = ballot is not None
        if ballot is None:
            tx.add(ForumBallot(vote_id=v.id, member_id=member.member_id, grades=payload, cast_at=now))
        else:
            ballot.grades, ballot.cast_at = payload, now
            tx.add(ballot)
        voter = await tx.get(ForumVoter, (v.id, member.member_id))
        if voter is None:
            tx.add(ForumVoter(vote_id=v.id, member_id=member.member_id, college=member.college, voted_at=now))
        else:
            voter.voted_at = now
            tx.add(voter)
    return BallotView(vote_id=v.id, grades=grades, cast_at=now, replaced=replaced)


async def withdraw_ballots(tx: AsyncSession, member_id: str) -> None:
    """An erased member's ballots in votes not yet closed no longer count (they are no longer a member);
    in closed votes only the merit profiles were ever kept."""
    still_open = select(ForumVote.id).where(col(ForumVote.closed_at).is_(None))
    for table in (ForumBallot, ForumVoter):
        await tx.exec(delete(table).where(col(table.member_id) == member_id,  # type: ignore[call-overload]
                                          col(table.vote_id).in_(still_open)))


# ================================================================ closing
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


async def _close_locked(uow: UnitOfWork, v: ForumVote, now: datetime) -> None:
    """Tally, record the decision, delete the ballots and emit VoteClosed then DecisionRecorded.
    The caller holds the vote row lock and has checked the vote is not closed yet."""
    tx = uow.tx
    labels = _labels(v)
    ballots = [{int(k): Grade(g) for k, g in json.loads(b.grades).items()}
               for b in (await tx.exec(select(ForumBallot).where(ForumBallot.vote_id == v.id))).all()]
    participation = {c: 0 for c in College}
    for college, n in (await tx.exec(select(ForumVoter.college, func.count())  # type: ignore[call-overload]
                                     .where(ForumVoter.vote_id == v.id).group_by(ForumVoter.college))).all():
        if college:
            participation[College(college)] = n
    eligible = (await _eligible_counts(tx, [v]))[v.id]
    result = tally(labels, ballots, eligible, participation)
    fs = await find_session(tx, v.session_id)
    check = check_rule(await rule_for(tx, fs.kind), Method.ONLINE_VOTE, participation,
                       single_winner=result.winner_option_id is not None)
    decision_id = str(uuid.uuid4())
    await tx.exec(delete(ForumBallot).where(col(ForumBallot.vote_id) == v.id))  # type: ignore[call-overload]
    v.closed_at, v.result, v.decision_id = now, result.model_dump_json(), decision_id
    v.closed_event_id = str(uow.emit(VoteClosed(vote=_vote_info(v), closed_at=now, result=result,
                                                decision_id=decision_id)).event_id)
    tx.add(v)
    await recording.record(uow, fs=fs, agenda_position=v.agenda_position, agenda_text=v.agenda_text,
                           title=v.question, text=_summary(result, check), outcome=vote_outcome(check),
                           method=Method.ONLINE_VOTE, check=check, actor=uow.actor, now=now,
                           decision_id=decision_id, vote_id=v.id)


async def close_vote(req: CloseVote, ctx: HandlerContext) -> VoteView:
    """Secretariat closes an open vote now (a vote already closed is returned as it is)."""
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        tx = uow.tx
        await require_secretariat(tx, req.actor_id)
        v = await _lock_vote(tx, req.vote_id)
        now = utcnow()
        if v.closed_at is None:
            if vote_status(v, now) == VoteStatus.UPCOMING:
                raise Conflict(f"Le vote n'est pas encore ouvert (ouverture le {paris_datetime(v.opens_at)}) : "
                               "il ne peut pas être clos.", field="vote_id")
            fs = await find_session(tx, v.session_id)
            vote_rules.check_may_close(fs.status, fs.starts_at, now)
            await _close_locked(uow, v, now)
        [view] = await vote_views(tx, [v], now)
    return view


async def closings_pending(tx: AsyncSession, session_id: str) -> list[datetime]:
    """The closing times of the session's votes not closed yet (the session's row is locked by the caller)."""
    return list((await tx.exec(select(ForumVote.closes_at).where(ForumVote.session_id == session_id,
                                                                 col(ForumVote.closed_at).is_(None)))).all())


async def cancel_with_session(uow: UnitOfWork, session_id: str, reason: str, now: datetime) -> None:
    """A session is cancelled (its row locked by the caller): each of its votes not yet closed ends
    with it, its ballots deleted uncounted, and becomes no decision."""
    tx = uow.tx
    pending = (await tx.exec(select(ForumVote).where(ForumVote.session_id == session_id,
                                                     col(ForumVote.closed_at).is_(None))
                             .order_by(col(ForumVote.opens_at)).with_for_update())).all()
    for v in pending:
        await tx.exec(delete(ForumBallot).where(col(ForumBallot.vote_id) == v.id))  # type: ignore[call-overload]
        v.closed_at = now
        v.closed_event_id = str(uow.emit(VoteCancelled(vote=_vote_info(v), cancelled_at=now,
                                                       reason=reason)).event_id)
        tx.add(v)


async def close_due_votes(service: Service) -> int:
    """The `vote-closer` job: close every vote past its closing time (up to 100 a step); returns how
    many this step closed."""
    now = utcnow()
    async with service.db.read() as tx:
        # Only once the session has started: a vote opened before that rule existed may close earlier.
        due = list((await tx.exec(select(ForumVote.id).join(ForumSession, col(ForumSession.id) == ForumVote.session_id)
                                  .where(col(ForumVote.closed_at).is_(None), col(ForumVote.closes_at) <= now,
                                         col(ForumSession.starts_at) <= now,
                                         col(ForumSession.status) != SessionStatus.CANCELLED)
                                  .order_by(col(ForumVote.closes_at)).limit(100))).all())
    closed = 0
    for vote_id in due:
        async with service.unit_of_work(actor=SYSTEM) as uow:
            v = await _lock_vote(uow.tx, vote_id)
            now = utcnow()
            if v.closed_at is None and now >= v.closes_at:  # another replica may have been first
                await _close_locked(uow, v, now)
                closed += 1
    if closed:
        log.info("votes closed", count=closed)
    return closed
