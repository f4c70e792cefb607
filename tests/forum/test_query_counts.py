"""The forum's list answers run a fixed number of SQL statements, whatever the number of rows: the same
count with 5 sessions (decisions, votes) as with 50, and none per row (no N+1).

Rows are written straight into the forum's database (the fastest way to have fifty of each); the lists
are asked for over NATS as the web front asks, and the statements counted on the service's engine
(tests/query_count.py)."""
from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from services.forum.models import (
    ForumAgendaItem, ForumAttendance, ForumBallot, ForumCommitment, ForumDecision, ForumFollowUp, ForumMember,
    ForumRsvp, ForumSession, ForumVote, ForumVoter, MemberStanding,
)
from shared.clock import utcnow
from shared.contracts.decisions import (
    GetDecision, ListCommitments, ListDecisions, ListVoteGroups, ListVotes, OptionResult, Rule, RuleCheck,
    VoteResult,
)
from shared.contracts.forum import ListSessions, RsvpState, SessionKind, SessionPeriod
from shared.contracts.registry import College
from tests.forum.harness import ForumHarness, running_forum
from tests.query_count import StatementLog, show

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def h(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ForumHarness]:
    async with running_forum(tmp_path_factory.mktemp("query-counts")) as harness:
        yield harness


@pytest.fixture(scope="module")
async def log(h: ForumHarness) -> AsyncIterator[StatementLog]:
    statements = StatementLog(h.service.db.engine)
    yield statements
    statements.close()


def _id() -> str:
    return str(uuid.uuid4())


PARENTS = (ForumMember, ForumSession, ForumCommitment)


async def _add(h: ForumHarness, rows: list[Any]) -> None:
    """Insert, parents first (sessions, members, commitments; then votes and agenda items; then the rest)."""
    async with h.service.db.transaction() as tx:
        for tier in (PARENTS, (ForumVote, ForumAgendaItem), None):
            tx.add_all([r for r in rows if isinstance(r, tier)] if tier else
                       [r for r in rows if not isinstance(r, (*PARENTS, ForumVote, ForumAgendaItem))])
            await tx.flush()


async def _members(h: ForumHarness, n: int) -> list[str]:
    ids = [_id() for _ in range(n)]
    await _add(h, [ForumMember(member_id=m, public_id=uuid.uuid4().hex[:16], college=College.CITIZEN,
                               standing=MemberStanding.APPROVED, full_name="Camille Test") for m in ids])
    return ids


def _session(i: int, *, past: bool) -> ForumSession:
    now = utcnow()
    starts = now - timedelta(days=30 + i) if past else now + timedelta(days=3 + i)
    return ForumSession(title=f"Séance {i}", kind=SessionKind.PLENARY, starts_at=starts,
                        ends_at=starts + timedelta(hours=2), capacity=1, rsvp_opens_at=starts - timedelta(days=20),
                        rsvp_closes_at=starts - timedelta(days=1), created_by="secretariat", waitlist_seq=2)


async def _sessions(h: ForumHarness, n: int, actor: str, others: list[str], *, past: bool) -> list[ForumSession]:
    """`n` sessions shaped alike: two agenda items, a confirmed seat, the actor second on the waitlist,
    a check-in."""
    rows: list[Any] = []
    sessions = [_session(i, past=past) for i in range(n)]
    for s in sessions:
        rows += [s, ForumAgendaItem(session_id=s.id, position=1, text="Accueil"),
                 ForumAgendaItem(session_id=s.id, position=2, text="Bilan"),
                 ForumRsvp(session_id=s.id, member_id=others[0], state=RsvpState.CONFIRMED, confirmed_at=utcnow()),
                 ForumRsvp(session_id=s.id, member_id=others[1], state=RsvpState.WAITLISTED, waitlist_seq=1),
                 ForumRsvp(session_id=s.id, member_id=actor, state=RsvpState.WAITLISTED, waitlist_seq=2),
                 ForumAttendance(session_id=s.id, member_id=others[0], college=College.CITIZEN, recorded_by="x")]
    await _add(h, rows)
    return sessions


RESULT = VoteResult(ballots=3, eligible=10, participation={College.CITIZEN: 3}, winner_option_id=1, tie=False,
                    options=[OptionResult(option_id=1, label="Oui", profile=[], majority_grade=None, rank=1)])
CHECK = RuleCheck(rule=Rule(kind=SessionKind.PLENARY), quorum=[], quorum_met=True, met=True, summary="Adoptée.")


def _vote(session: ForumSession, *, closed: bool, i: int) -> ForumVote:
    now = utcnow()
    opens = now - timedelta(days=2, minutes=i)
    return ForumVote(session_id=session.id, agenda_position=1, agenda_text="Accueil", question=f"Question {i} ?",
                     options=json.dumps(["Oui", "Non"]), eligibility="approved_members", opens_at=opens,
                     closes_at=opens + timedelta(days=1) if closed else now + timedelta(days=5), created_by="x",
                     opened_event_id=_id(), closed_at=opens + timedelta(days=1) if closed else None,
                     result=RESULT.model_dump_json() if closed else None, closed_event_id=_id() if closed else None)


async def _votes(h: ForumHarness, n: int, session: ForumSession, actor: str) -> None:
    """Every other vote still open, with the actor's ballot; the others closed, with their result."""
    rows: list[Any] = []
    for i in range(n):
        v = _vote(session, closed=i % 2 == 1, i=i)
        rows += [v, ForumVoter(vote_id=v.id, member_id=actor, college=College.CITIZEN)]
        if v.closed_at is None:
            rows.append(ForumBallot(vote_id=v.id, member_id=actor, grades=json.dumps({"1": "bien", "2": "passable"})))
    await _add(h, rows)


async def _decisions(h: ForumHarness, n: int, session: ForumSession, code: str,
                     new_commitment: bool = True) -> list[ForumDecision]:
    """Every decision with a follow-up and a commitment; every other one from a closed vote."""
    rows: list[Any] = [ForumCommitment(code=code, title=f"Engagement {code}")] if new_commitment else []
    decisions = []
    for i in range(n):
        vote = _vote(session, closed=True, i=i) if i % 2 else None
        d = ForumDecision(number=f"{uuid.uuid4().hex[:8]}-{i}", session_id=session.id, session_title="Séance",
                          session_kind=SessionKind.PLENARY, agenda_position=1, agenda_text="Accueil",
                          title=f"Décision {i}", text="Texte.", outcome="adopted", method="online_vote" if vote else "consensus",
                          vote_id=vote.id if vote else None, commitment_code=code, commitment_title="Engagement",
                          rule_check=CHECK.model_dump_json(), recorded_by="x",
                          recorded_at=utcnow() - timedelta(minutes=i), event_id=_id())
        rows += [d, ForumFollowUp(decision_id=d.id, seq=1, status="in_progress", updated_by="x", event_id=_id())]
        rows += [vote] if vote else []
        decisions.append(d)
    await _add(h, rows)
    return decisions


async def _same_count(log: StatementLog, h: ForumHarness, request: Any, grow: Any, check: Any = None,
                      at_most: int | None = None) -> int:
    """Statements for `request`, before and after `grow()` adds rows: the same number; returns it."""
    reply, before = await log.statements(h.rpc, request)
    if check:
        check(reply)
    await grow()
    reply, after = await log.statements(h.rpc, request)
    if check:
        check(reply)
    assert len(after) == len(before), f"{len(before)} statements, then {len(after)}:\n{show(after)}"
    if at_most is not None:
        assert len(after) <= at_most, show(after)
    return len(after)


async def test_session_lists_run_the_same_statements_for_5_or_50_sessions(h: ForumHarness, log: StatementLog) -> None:
    actor, *others = await _members(h, 3)
    for past in (False, True):
        await _sessions(h, 5, actor, others, past=past)

    def waitlisted_second(reply: Any) -> None:
        mine = [s.my_rsvp for s in reply.sessions if s.my_rsvp is not None]
        assert mine and all(r.state == RsvpState.WAITLISTED and r.waitlist_position == 2 for r in mine)

    async def more() -> None:
        for past in (False, True):
            await _sessions(h, 45, actor, others, past=past)

    upcoming = ListSessions(when=SessionPeriod.UPCOMING, actor_id=actor, limit=20)
    # page, total, seats, agendas, attendance (past only), the actor's RSVPs and their waitlist positions
    await _same_count(log, h, upcoming, more, waitlisted_second, at_most=6)
    past = ListSessions(when=SessionPeriod.PAST, actor_id=actor, limit=20)
    anonymous = ListSessions(when=SessionPeriod.PAST, limit=20)
    _, with_actor = await log.statements(h.rpc, past)
    _, without = await log.statements(h.rpc, anonymous)
    assert len(with_actor) <= 7 and len(without) <= 5, show(with_actor)
    await _same_count(log, h, past, lambda: _sessions(h, 20, actor, others, past=True), waitlisted_second)


async def test_decision_register_runs_the_same_statements_for_5_or_50_decisions(
        h: ForumHarness, log: StatementLog) -> None:
    actor, *others = await _members(h, 3)
    [session] = await _sessions(h, 1, actor, others, past=True)
    code = uuid.uuid4().hex[:6]
    decisions = await _decisions(h, 5, session, code)

    def complete(reply: Any) -> None:
        assert reply.decisions and all(d.follow_ups for d in reply.decisions)
        assert any(d.vote is not None and d.vote.session_title == "Séance 0" for d in reply.decisions)

    register = ListDecisions(commitment_code=code, limit=20)
    # page, total, follow-ups, votes with their sessions' titles
    await _same_count(log, h, register, lambda: _decisions(h, 45, session, code, False), complete, at_most=4)
    await _same_count(log, h, ListDecisions(limit=20), lambda: _decisions(h, 10, session, uuid.uuid4().hex[:6]),
                      complete, at_most=4)
    await _same_count(log, h, ListCommitments(), lambda: _decisions(h, 1, session, uuid.uuid4().hex[:6]), at_most=2)
    # the decision, its follow-ups, its vote with its session's title, the check-in sheet (a correction's
    # numbers would be one more)
    _, one = await log.statements(h.rpc, GetDecision(decision_id=decisions[1].id))
    assert len(one) <= 5, show(one)


async def test_vote_list_runs_the_same_statements_for_5_or_50_votes(h: ForumHarness, log: StatementLog) -> None:
    actor, *others = await _members(h, 3)
    [session] = await _sessions(h, 1, actor, others, past=True)
    await _votes(h, 6, session, actor)

    def both(reply: Any) -> None:
        assert {v.status for v in reply.votes} == {"open", "closed"}

    def mixed(reply: Any) -> None:
        both(reply)
        assert all(v.my_ballot is not None for v in reply.votes if v.status == "open")

    # page with titles, total, ballots counted, electorate, the member, their check-ins, their ballots
    await _same_count(log, h, ListVotes(actor_id=actor, limit=20), lambda: _votes(h, 44, session, actor), mixed,
                      at_most=7)
    await _same_count(log, h, ListVotes(limit=20), lambda: _votes(h, 4, session, actor), both, at_most=4)


async def test_the_votes_page_is_one_read_the_same_for_5_or_50_votes(h: ForumHarness, log: StatementLog) -> None:
    actor, *others = await _members(h, 3)
    [session] = await _sessions(h, 1, actor, others, past=True)
    await _votes(h, 6, session, actor)
    ask = ListVoteGroups(actor_id=actor, closed_limit=20)

    def same_as_three_lists(reply: Any) -> None:
        assert reply.open.votes and reply.closed.votes and reply.upcoming is not None
        assert all(v.status == "open" for v in reply.open.votes)
        assert any(v.my_ballot is not None for v in reply.open.votes)  # (other tests' votes have none)
        assert all(v.status == "closed" for v in reply.closed.votes)

    # per group a page and its total (3 × 2), then the views of them all: ballots counted, electorate, the
    # member, their check-ins, their ballots
    await _same_count(log, h, ask, lambda: _votes(h, 44, session, actor), same_as_three_lists, at_most=11)
    groups = await h.rpc(ask)
    for status, listed in (("open", groups.open), ("upcoming", groups.upcoming), ("closed", groups.closed)):
        alone = await h.rpc(ListVotes(status=status, actor_id=actor, limit=50 if status != "closed" else 20))
        assert listed == alone, status
