"""Decisions, the decision register, the forum's adoption rules and majority-judgment votes, over
the real broker and database: rules met and not met, supersession, follow-ups, commitments, and a
full online vote (ballots, refusals, closing by the secretariat and by the background closer) whose
result is recomputed here independently from the ballots.

Long because each rule is checked against the real broker and database in one shared forum."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import select

from services.forum.votes import close_due_votes
from services.forum.models import ForumBallot, ForumMember, ForumVoter, MemberStanding
from shared.contracts.common import ErrorCode
from shared.contracts.decisions import (
    BallotView, CastBallot, CloseVote, DecisionRecorded, DecisionSuperseded, DecisionView, FollowUpUpdated,
    GetDecision, GetRules, GetVote, ListCommitments, ListDecisions, ListVotes, OpenVote, RecordDecision, Rule,
    RuleUpdated, RuleView, SaveCommitment, SetRule, UpdateFollowUp, VoteCancelled, VoteClosed, VoteOpened, VoteStatus,
    VoteView,
)
from shared.contracts.forum import CancelSession, CheckIn, GetSession, SessionView, UpdateSession
from shared.contracts.registry import College, MemberErased
from shared.clock import utcnow
from forumlib.majority_judgment import GRADES
from tests.forum.harness import ForumHarness, running_forum

pytestmark = pytest.mark.integration
H = timedelta(hours=1)
PA, CS, CI = College.PUBLIC_ACTOR, College.CIVIL_SOCIETY, College.CITIZEN


@pytest.fixture(scope="module")
async def h(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ForumHarness]:
    async with running_forum(tmp_path_factory.mktemp("forum-decisions")) as harness:
        yield harness


async def started(h: ForumHarness, kind: str = "plenary", **over: Any) -> SessionView:
    """A session that began an hour ago (decisions may be recorded on it)."""
    now = utcnow()
    fields: dict[str, Any] = dict(rsvp_opens_at=now - 4 * H, rsvp_closes_at=now - 2 * H, starts_at=now - H,
                                  ends_at=now + H, kind=kind)
    if kind == "working_group":
        fields["theme"] = "health"
    return await h.create_session(**(fields | over))


async def check_in(h: ForumHarness, session_id: str, *members: str) -> None:
    for m in members:
        await h.call(CheckIn(actor_id=await h.secretariat(), session_id=session_id, member_id=m))


async def record(h: ForumHarness, session_id: str, **over: Any) -> DecisionView:
    req = decision_fields(await h.secretariat(), session_id) | over
    return await h.call(RecordDecision.model_validate(req))


def decision_fields(actor: str, session_id: str) -> dict[str, Any]:
    return dict(actor_id=actor, session_id=session_id, agenda_position=2, title="Calendrier du plan d'action",
                text="Le forum adopte le **calendrier** proposé.", outcome="adopted", method="consensus")


def hands(pa: tuple[int, int, int], cs: tuple[int, int, int], ci: tuple[int, int, int] = (0, 0, 0)) -> dict:
    return {c.value: {"in_favour": f, "against": a, "abstain": b} for c, (f, a, b) in ((PA, pa), (CS, cs), (CI, ci))}


async def set_rule(h: ForumHarness, kind: str, quorum: dict[College, int], double: bool) -> RuleView:
    return await h.call(SetRule(actor_id=await h.secretariat(),
                                rule=Rule(kind=kind, quorum=quorum, double_majority=double)))


async def emitted_for(h: ForumHarness, event: Any, key: str, value: str) -> list[dict[str, Any]]:
    return [d for d in await h.emitted(event) if _dig(d, key) == value]


def _dig(d: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        d = d.get(part, {}) if isinstance(d, dict) else {}
    return d


# ================================================================ rules
async def test_rules_default_then_set_by_the_secretariat(h: ForumHarness) -> None:
    rules = await h.call(GetRules())
    assert [(r.rule.kind, r.rule.quorum, r.rule.double_majority, r.updated_at) for r in rules.rules] == [
        ("plenary", {}, False, None), ("working_group", {}, False, None)]
    member = await h.member()
    await h.error(SetRule(actor_id=member, rule=Rule(kind="plenary")), ErrorCode.FORBIDDEN)
    await h.error_raw(SetRule, {"actor_id": await h.secretariat(),
                                "rule": {"kind": "plenary", "quorum": {"citizen": -1}}}, ErrorCode.INVALID)
    saved = await set_rule(h, "working_group", {PA: 1, CS: 1}, True)
    assert saved.updated_at is not None
    again = await set_rule(h, "working_group", {PA: 1, CS: 1}, True)  # an upsert, not a second row
    rules = await h.call(GetRules())
    wg = next(r for r in rules.rules if r.rule.kind == "working_group")
    assert wg.rule == Rule(kind="working_group", quorum={PA: 1, CS: 1}, double_majority=True)
    assert wg.updated_at == again.updated_at
    events = [e for e in await h.emitted(RuleUpdated) if e["rule"]["kind"] == "working_group"]
    assert len(events) == 2 and events[-1]["rule"]["double_majority"] is True


# ================================================================ decisions and the rule
async def test_show_of_hands_with_quorum_and_double_majority(h: ForumHarness) -> None:
    await set_rule(h, "working_group", {PA: 1, CS: 1}, True)
    sid = (await started(h, "working_group")).session_id
    await check_in(h, sid, await h.member(PA), await h.member(CS), await h.member(CI))

    ok = await record(h, sid, method="show_of_hands", hands=hands((3, 1, 0), (4, 2, 1), (1, 0, 0)))
    d = ok.decision
    assert (d.outcome, d.method, d.agenda_text, d.session_kind) == ("adopted", "show_of_hands",
                                                                    "Bilan des engagements", "working_group")
    check = d.rule_check
    assert check.met and check.quorum_met and check.majority_met
    assert [(m.side, m.in_favour, m.against, m.met) for m in check.majority] == [
        (None, 8, 3, True), ("public", 3, 1, True), ("civil", 5, 2, True)]
    assert [(q.college, q.required, q.present) for q in check.quorum] == [(PA, 1, 1), (CS, 1, 1)]
    assert ok.follow_up == "todo" and ok.follow_ups == [] and ok.superseded_by is None
    assert d.number.startswith(f"{utcnow().year}-") and len(d.number) == 8
    [event] = await emitted_for(h, DecisionRecorded, "decision.decision_id", d.decision_id)
    assert DecisionView.model_validate({**ok.model_dump(), "decision": event["decision"]}).decision == d

    # Overall majority, but civil society voted against: the double majority is not met.
    split = hands((5, 0, 0), (1, 3, 0))
    err = await h.error(RecordDecision.model_validate(
        decision_fields(await h.secretariat(), sid) | {"method": "show_of_hands", "hands": split}),
        ErrorCode.CONFLICT, "outcome")
    assert "double majorité non atteinte" in err.error.message
    refused = await record(h, sid, method="show_of_hands", hands=split, outcome="rejected")
    assert refused.decision.outcome == "rejected" and refused.decision.rule_check.met is False
    # A show of hands that met the rule cannot be recorded as rejected.
    await h.error(RecordDecision.model_validate(
        decision_fields(await h.secretariat(), sid) | {"method": "show_of_hands", "outcome": "rejected",
                                                       "hands": hands((3, 0, 0), (3, 0, 0))}),
        ErrorCode.CONFLICT, "outcome")

    # Nobody of the public actors came: no quorum, nothing can be adopted, even by consensus.
    empty = (await started(h, "working_group")).session_id
    await check_in(h, empty, await h.member(CS))
    err = await h.error(RecordDecision.model_validate(decision_fields(await h.secretariat(), empty)),
                        ErrorCode.CONFLICT, "outcome")
    assert "Quorum non atteint" in err.error.message
    deferred = await record(h, empty, outcome="deferred")
    assert deferred.decision.rule_check.quorum_met is False and deferred.decision.outcome == "deferred"
    await set_rule(h, "working_group", {}, False)  # back to the default for the other tests


async def test_bad_decisions_are_refused(h: ForumHarness) -> None:
    sec = await h.secretariat()
    sid = (await started(h)).session_id
    future = (await h.create_session()).session_id
    cancelled = (await h.create_session()).session_id
    await h.call(CancelSession(actor_id=sec, session_id=cancelled, reason="Salle indisponible."))
    member = await h.member()

    def req(session_id: str = sid, **over: Any) -> dict[str, Any]:
        return decision_fields(sec, session_id) | over

    await h.error_raw(RecordDecision, req(actor_id=member), ErrorCode.FORBIDDEN)
    err = await h.error_raw(RecordDecision, req(future), ErrorCode.CONFLICT, "session_id")
    assert "pas encore commencé" in err.error.message
    await h.error_raw(RecordDecision, req(cancelled), ErrorCode.CONFLICT, "session_id")
    await h.error_raw(RecordDecision, req("nope"), ErrorCode.NOT_FOUND, "session_id")
    await h.error_raw(RecordDecision, req(agenda_position=9), ErrorCode.NOT_FOUND, "agenda_position")
    await h.error_raw(RecordDecision, req(commitment_code="99"), ErrorCode.NOT_FOUND, "commitment_code")
    await h.error_raw(RecordDecision, req(supersedes="nope"), ErrorCode.NOT_FOUND, "supersedes")
    await h.error_raw(RecordDecision, req(method="online_vote"), ErrorCode.INVALID, "method")
    await h.error_raw(RecordDecision, req(method="show_of_hands"), ErrorCode.INVALID)
    await h.error_raw(RecordDecision, req(hands=hands((1, 0, 0), (1, 0, 0))), ErrorCode.INVALID)
    listed = await h.call(ListDecisions(session_id=sid))
    assert listed.total == 0


# ================================================================ register: commitments, supersession, follow-up
async def test_commitments_supersession_and_follow_up(h: ForumHarness) -> None:
    sec = await h.secretariat()
    for code, title in (("10", "Ouvrir les données de la commande publique"), ("2", "Associer les citoyens"),
                        ("1", "Transparence des algorithmes publics"), ("3.1", "Budget participatif")):
        await h.call(SaveCommitment(actor_id=sec, code=code, title=title))
    edited = await h.call(SaveCommitment(actor_id=sec, code="2",
                                         title="Associer les citoyens aux décisions publiques"))
    assert (edited.title, edited.plan, edited.decisions) == ("Associer les citoyens aux décisions publiques",
                                                             "2024-2026", 0)
    await h.error(SaveCommitment(actor_id=await h.member(), code="4", title="Quatrième"),
                  ErrorCode.FORBIDDEN)
    await h.error_raw(SaveCommitment, {"actor_id": sec, "code": "no spaces", "title": "Titre"},
                      ErrorCode.INVALID, "code")

    sid = (await started(h)).session_id
    first = await record(h, sid, commitment_code="2")
    assert first.decision.commitment.model_dump() == {"code": "2", "title": edited.title}
    second = await record(h, sid, commitment_code="2", supersedes=first.decision.decision_id,
                          title="Calendrier du plan d'action (corrigé)")
    assert second.decision.supersedes == first.decision.decision_id
    assert second.decision.number > first.decision.number
    old = await h.call(GetDecision(decision_id=first.decision.decision_id))
    assert old.decision == first.decision  # the old one stays public, unchanged
    assert old.superseded_by == second.decision.decision_id and old.superseded_event_id
    assert (old.supersedes_number, old.superseded_by_number) == (None, second.decision.number)
    new = await h.call(GetDecision(decision_id=second.decision.decision_id))
    assert (new.supersedes_number, new.superseded_by_number) == (first.decision.number, None)
    # The page also shows the session's check-in sheet as it stands today.
    assert (new.attendance_now.session_id, new.attendance_now.final) == (sid, False)
    await check_in(h, sid, await h.member(College.CIVIL_SOCIETY))
    now = (await h.call(GetDecision(decision_id=second.decision.decision_id))).attendance_now
    assert now.total == new.attendance_now.total + 1
    assert now.by_college["civil_society"] == new.attendance_now.by_college["civil_society"] + 1
    [sup] = await emitted_for(h, DecisionSuperseded, "decision_id", first.decision.decision_id)
    assert sup["superseded_by"] == second.decision.decision_id
    err = await h.error(RecordDecision.model_validate(
        decision_fields(sec, sid) | {"supersedes": first.decision.decision_id}), ErrorCode.CONFLICT, "supersedes")
    assert first.decision.number in err.error.message

    commitments = await h.call(ListCommitments())
    assert [c.code for c in commitments.commitments] == ["1", "2", "3.1", "10"]
    assert next(c for c in commitments.commitments if c.code == "2").decisions == 1  # the superseded one excluded

    a = await h.call(UpdateFollowUp(actor_id=sec, decision_id=second.decision.decision_id,
                                    status="in_progress", note="Groupe de suivi constitué."))
    b = await h.call(UpdateFollowUp(actor_id=sec, decision_id=second.decision.decision_id, status="done"))
    assert a.follow_up == "in_progress" and b.follow_up == "done"
    assert [(f.status, f.note) for f in b.follow_ups] == [("in_progress", "Groupe de suivi constitué."),
                                                           ("done", "")]
    assert b.follow_ups[0].updated_at <= b.follow_ups[1].updated_at
    events = await emitted_for(h, FollowUpUpdated, "decision_id", second.decision.decision_id)
    assert [e["status"] for e in events] == ["in_progress", "done"]
    assert {f.event_id for f in b.follow_ups} <= {e for e in await _event_ids(h, FollowUpUpdated)}
    await h.error(UpdateFollowUp(actor_id=await h.member(), decision_id=second.decision.decision_id,
                                 status="done"), ErrorCode.FORBIDDEN)
    await h.error(UpdateFollowUp(actor_id=sec, decision_id="nope", status="done"),
                  ErrorCode.NOT_FOUND, "decision_id")

    listed = await h.call(ListDecisions(session_id=sid))
    assert [d.decision.decision_id for d in listed.decisions] == [second.decision.decision_id,
                                                                   first.decision.decision_id]
    assert listed.total == 2
    current = await h.call(ListDecisions(session_id=sid, include_superseded=False))
    assert [d.decision.decision_id for d in current.decisions] == [second.decision.decision_id]
    done = await h.call(ListDecisions(commitment_code="2", follow_up="done"))
    assert [d.decision.decision_id for d in done.decisions] == [second.decision.decision_id]
    paged = await h.call(ListDecisions(session_id=sid, limit=1, offset=1))
    assert paged.total == 2 and [d.decision.decision_id for d in paged.decisions] == [first.decision.decision_id]


async def _event_ids(h: ForumHarness, event: Any) -> set[str]:
    from shared.outbox import OutboxMessage

    async with h.service.db.read() as tx:
        return set((await tx.exec(select(OutboxMessage.event_id).where(OutboxMessage.subject == event.TYPE))).all())


# ================================================================ majority judgment
def _median_sequence(ranks: list[int]) -> list[int]:
    """Independent reference: remove the lower median one at a time (grades as ranks, 0 = best)."""
    ranks, out = sorted(ranks), []
    while ranks:
        out.append(ranks.pop(len(ranks) // 2))  # best first: index n // 2 is the worse middle one
    return out


def recompute(ballots: list[dict[int, str]], n_options: int) -> tuple[dict[int, dict[str, int]], list[int]]:
    """Merit profiles and the options best first, straight from the ballots."""
    scale = [g.value for g in GRADES]
    profiles = {i: {g: sum(1 for b in ballots if b[i] == g) for g in scale} for i in range(1, n_options + 1)}
    keys = {i: _median_sequence([scale.index(b[i]) for b in ballots]) for i in range(1, n_options + 1)}
    return profiles, sorted(keys, key=lambda i: keys[i])


async def open_vote(h: ForumHarness, session_id: str, **over: Any) -> VoteView:
    now = utcnow()
    req = dict(actor_id=await h.secretariat(), session_id=session_id, agenda_position=2,
               question="Quel calendrier pour le prochain plan ?",
               options=["Printemps 2027", "Automne 2027", "Printemps 2028"], opens_at=now, closes_at=now + H) | over
    return await h.call(OpenVote.model_validate(req))


async def cast(h: ForumHarness, member: str, vote_id: str, grades: dict[int, str]) -> BallotView:
    return await h.call(CastBallot.model_validate({"actor_id": member, "vote_id": vote_id, "grades": grades}))


async def test_a_full_majority_judgment_vote(h: ForumHarness) -> None:
    sec = await h.secretariat()
    sid = (await started(h)).session_id
    voters = [await h.member(c) for c in (PA, PA, CS, CI, CI)]
    registered = await h.register()
    vote = await open_vote(h, sid)
    vid = vote.vote.vote_id
    assert vote.status == "open" and vote.ballots == 0 and vote.eligible >= 5 and vote.result is None
    assert [g.value for g in vote.vote.grades] == [g.value for g in GRADES]
    assert [(o.option_id, o.label) for o in vote.vote.options] == [(1, "Printemps 2027"), (2, "Automne 2027"),
                                                                   (3, "Printemps 2028")]
    [opened] = await emitted_for(h, VoteOpened, "vote.vote_id", vid)
    assert opened["vote"]["eligibility"] == "approved_members"

    mine = await h.call(GetVote(vote_id=vid, actor_id=voters[0]))
    assert (mine.may_vote, mine.not_eligible_reason, mine.my_ballot) == (True, None, None)

    ballots = {
        voters[0]: {1: "bien", 2: "tres_bien", 3: "passable"},
        voters[1]: {1: "assez_bien", 2: "bien", 3: "insuffisant"},
        voters[2]: {1: "tres_bien", 2: "bien", 3: "a_rejeter"},
        voters[3]: {1: "passable", 2: "excellent", 3: "bien"},
        voters[4]: {1: "excellent", 2: "a_rejeter", 3: "a_rejeter"},
    }
    for m, g in ballots.items():
        assert (await cast(h, m, vid, g)).replaced is False
    ballots[voters[4]] = {1: "insuffisant", 2: "assez_bien", 3: "passable"}  # changes their mind
    recast = await cast(h, voters[4], vid, ballots[voters[4]])
    assert recast.replaced is True and recast.grades == {1: "insuffisant", 2: "assez_bien", 3: "passable"}
    mine = await h.call(GetVote(vote_id=vid, actor_id=voters[4]))
    assert mine.my_ballot is not None and mine.my_ballot.grades == recast.grades and mine.ballots == 5

    # Refusals, each typed, none of them counted.
    err = await h.error(CastBallot(actor_id=sec, vote_id=vid, grades=ballots[voters[0]]),
                        ErrorCode.FORBIDDEN)
    assert "secrétariat" in err.error.message
    err = await h.error(CastBallot(actor_id=registered, vote_id=vid, grades=ballots[voters[0]]),
                        ErrorCode.FORBIDDEN)
    assert "validée" in err.error.message
    not_yet = await h.call(GetVote(vote_id=vid, actor_id=registered))
    assert not_yet.may_vote is False and "validée" in (not_yet.not_eligible_reason or "")
    await h.error(CastBallot(actor_id=voters[0], vote_id="nope", grades={1: "bien"}),
                  ErrorCode.NOT_FOUND, "vote_id")
    err = await h.error(CastBallot(actor_id=voters[0], vote_id=vid, grades={1: "bien", 3: "bien"}),
                        ErrorCode.INVALID, "grades")
    assert "Automne 2027" in err.error.message
    err = await h.error(CastBallot(actor_id=voters[0], vote_id=vid,
                                   grades={1: "bien", 2: "bien", 3: "bien", 4: "bien"}),
                        ErrorCode.INVALID, "grades")
    assert "4" in err.error.message
    await h.error_raw(CastBallot, {"actor_id": voters[0], "vote_id": vid,
                                   "grades": {"1": "génial", "2": "bien", "3": "bien"}}, ErrorCode.INVALID, "grades.1")
    upcoming = await open_vote(h, sid, opens_at=utcnow() + H, closes_at=utcnow() + 2 * H)
    assert upcoming.status == "upcoming"
    err = await h.error(CastBallot(actor_id=voters[0], vote_id=upcoming.vote.vote_id, grades=ballots[voters[0]]),
                        ErrorCode.CONFLICT, "vote_id")
    assert err.error.message.startswith("Le vote n'est pas encore ouvert")
    await h.error(CloseVote(actor_id=sec, vote_id=upcoming.vote.vote_id), ErrorCode.CONFLICT)
    await h.error(CloseVote(actor_id=voters[0], vote_id=vid), ErrorCode.FORBIDDEN)

    # Close now: the result is what anyone recomputes from the ballots; the ballots are gone.
    closed = await h.call(CloseVote(actor_id=sec, vote_id=vid))
    assert closed.status == "closed" and closed.result is not None and closed.decision_id
    result = closed.result
    profiles, order = recompute(list(ballots.values()), 3)
    assert [o.option_id for o in result.options] == order == [2, 1, 3]
    assert result.winner_option_id == 2 and result.tie is False and result.ballots == 5
    assert {o.option_id: {gc.grade.value: gc.count for gc in o.profile} for o in result.options} == profiles
    assert [o.majority_grade for o in result.options] == ["bien", "assez_bien", "passable"]
    assert result.participation == {PA: 2, CS: 1, CI: 2} and result.eligible == closed.eligible
    async with h.service.db.read() as tx:
        left = (await tx.exec(select(func.count()).select_from(ForumBallot).where(ForumBallot.vote_id == vid))).one()
        voted = (await tx.exec(select(func.count()).select_from(ForumVoter).where(ForumVoter.vote_id == vid))).one()
    assert (left, voted) == (0, 5)

    decision = await h.call(GetDecision(decision_id=closed.decision_id))
    d = decision.decision
    assert (d.method, d.outcome, d.vote_id, d.title) == ("online_vote", "adopted", vid, vote.vote.question)
    assert "« Automne 2027 »" in d.text and "Bien" in d.text
    assert d.rule_check.met and decision.vote is not None and decision.vote.result == result
    [vc] = await emitted_for(h, VoteClosed, "vote.vote_id", vid)
    assert vc["decision_id"] == d.decision_id and vc["result"]["winner_option_id"] == 2
    assert "ballots" not in str(vc.get("vote"))  # no ballot travels, only the profiles
    [dr] = await emitted_for(h, DecisionRecorded, "decision.decision_id", d.decision_id)
    assert dr["decision"]["method"] == "online_vote"

    # Closed: no more ballots, and closing again is a no-op.
    err = await h.error(CastBallot(actor_id=voters[0], vote_id=vid, grades=ballots[voters[0]]),
                        ErrorCode.EXPIRED, "vote_id")
    assert err.error.message.startswith("Le vote est clos")
    again = await h.call(CloseVote(actor_id=sec, vote_id=vid))
    assert again.closed_event_id == closed.closed_event_id and again.result == result
    assert len(await emitted_for(h, VoteClosed, "vote.vote_id", vid)) == 1
    after = await h.call(GetVote(vote_id=vid, actor_id=voters[4]))
    assert after.my_ballot is None and after.may_vote is False
    listed = await h.call(ListVotes(session_id=sid, status="closed"))
    assert [v.vote.vote_id for v in listed.votes] == [vid] and listed.total == 1
    listed = await h.call(ListVotes(session_id=sid, status="upcoming"))
    assert [v.vote.vote_id for v in listed.votes] == [upcoming.vote.vote_id]


async def test_attendees_only_vote_and_bad_openings(h: ForumHarness) -> None:
    sec = await h.secretariat()
    sid = (await started(h)).session_id
    came, away = await h.member(CI), await h.member(CS)
    await check_in(h, sid, came)
    vote = await open_vote(h, sid, eligibility="attendees", options=["Oui", "Non"])
    assert vote.eligible == 1
    err = await h.error(CastBallot(actor_id=away, vote_id=vote.vote.vote_id, grades={1: "bien", 2: "passable"}),
                        ErrorCode.FORBIDDEN)
    assert "présents" in err.error.message
    assert (await cast(h, came, vote.vote.vote_id, {1: "bien", 2: "passable"})).replaced is False

    now = utcnow()
    await h.error(OpenVote(actor_id=sec, session_id=sid, agenda_position=1, question="Trop tard ?",
                           options=["Oui", "Non"], opens_at=now - 2 * H, closes_at=now - H),
                  ErrorCode.INVALID, "closes_at")
    await h.error_raw(OpenVote, {"actor_id": sec, "session_id": sid, "agenda_position": 1, "question": "Doublon ?",
                                 "options": ["Oui", "oui"], "opens_at": now.isoformat(),
                                 "closes_at": (now + H).isoformat()}, ErrorCode.INVALID, "options")
    await h.error_raw(OpenVote, {"actor_id": sec, "session_id": sid, "agenda_position": 1, "question": "Une seule ?",
                                 "options": ["Oui"], "opens_at": now.isoformat(),
                                 "closes_at": (now + H).isoformat()}, ErrorCode.INVALID, "options")
    await h.error(OpenVote(actor_id=sec, session_id=sid, agenda_position=7, question="Quel point ?",
                           options=["Oui", "Non"], opens_at=now, closes_at=now + H),
                  ErrorCode.NOT_FOUND, "agenda_position")
    await h.error(OpenVote(actor_id=came, session_id=sid, agenda_position=1, question="Moi ?",
                           options=["Oui", "Non"], opens_at=now, closes_at=now + H), ErrorCode.FORBIDDEN)


async def test_the_background_closer_closes_a_vote_at_its_closing_time(h: ForumHarness) -> None:
    sid = (await started(h)).session_id
    a, b = await h.member(CI), await h.member(PA)
    now = utcnow()
    vote = await open_vote(h, sid, opens_at=now, closes_at=now + timedelta(seconds=2), options=["Oui", "Non"])
    vid = vote.vote.vote_id
    await cast(h, a, vid, {1: "bien", 2: "insuffisant"})
    await cast(h, b, vid, {1: "assez_bien", 2: "bien"})
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        asked_at = utcnow()  # before the answer is made: the answer may be made before closes_at, read after
        view = await h.call(GetVote(vote_id=vid))
        if view.result is not None:
            break
        if asked_at >= vote.vote.closes_at:
            assert view.status == "closed"  # past its closing time: closed, result pending
        assert asyncio.get_running_loop().time() < deadline, "the closer never closed the vote"
        await asyncio.sleep(0.2)
    assert view.closed_at is not None and view.closed_at >= vote.vote.closes_at
    # Majority grades: « Oui » assez bien (lower median of bien, assez bien), « Non » insuffisant.
    assert view.result.winner_option_id == 1 and view.result.ballots == 2
    d = await h.call(GetDecision(decision_id=view.decision_id))
    assert d.decision.outcome == "adopted" and d.vote is not None and d.vote.status == "closed"
    assert await close_due_votes(h.service) == 0  # a sweep after the closing changes nothing
    assert len(await emitted_for(h, VoteClosed, "vote.vote_id", vid)) == 1
    async with h.service.db.read() as tx:
        assert (await tx.exec(select(func.count()).select_from(ForumBallot)
                              .where(ForumBallot.vote_id == vid))).one() == 0


async def test_an_erased_members_ballot_no_longer_counts(h: ForumHarness) -> None:
    sid = (await started(h)).session_id
    a, b = await h.member(CI), await h.member(CS)
    now = utcnow()
    vid = (await open_vote(h, sid, opens_at=now, closes_at=now + H, options=["Oui", "Non"])).vote.vote_id
    await cast(h, a, vid, {1: "excellent", 2: "a_rejeter"})
    await cast(h, b, vid, {1: "passable", 2: "bien"})
    assert (await h.call(GetVote(vote_id=vid))).ballots == 2
    async with h.service.db.read() as tx:
        public_id = (await tx.get(ForumMember, a)).public_id
    await h.publish(MemberErased(member_id=a, public_id=public_id or "p"))
    await h.wait_members([a], MemberStanding.ERASED)
    view = await h.call(GetVote(vote_id=vid))
    assert view.ballots == 1
    closed = await h.call(CloseVote(actor_id=await h.secretariat(), vote_id=vid))
    assert closed.result is not None and closed.result.ballots == 1 and closed.result.winner_option_id == 2


async def test_a_session_vote_becomes_a_decision_only_once_the_session_has_started(h: ForumHarness) -> None:
    """A vote closes into one of its session's decisions: never before that session has started. Opening one
    that would close earlier, closing one early, moving the session after its closing are refused with
    the reason; cancelling the session cancels its vote, untallied, as a public fact."""
    sec = await h.secretariat()
    voter = await h.member(CI)
    now = utcnow()
    later = await h.create_session(starts_at=now + 2 * H, ends_at=now + 4 * H)  # RSVPs open, not started
    sid = later.session_id
    err = await h.error(OpenVote(actor_id=sec, session_id=sid, agenda_position=2, question="Trop tôt ?",
                                 options=["Oui", "Non"], opens_at=now, closes_at=now + H),
                        ErrorCode.INVALID, "closes_at")
    assert "après le début de la séance" in err.error.message
    vote = await open_vote(h, sid, opens_at=now, closes_at=now + 3 * H, options=["Oui", "Non"])
    vid = vote.vote.vote_id
    assert vote.status == "open"
    await cast(h, voter, vid, {1: "bien", 2: "passable"})
    err = await h.error(CloseVote(actor_id=sec, vote_id=vid), ErrorCode.CONFLICT, "vote_id")
    assert "pas encore commencé" in err.error.message and "à partir du" in err.error.message
    assert (await h.call(GetVote(vote_id=vid))).status == "open"  # the refusal changed nothing
    assert await emitted_for(h, VoteClosed, "vote.vote_id", vid) == []

    # Moving the session after the vote's closing is refused; before it, allowed.
    view = await h.call(GetSession(session_id=sid))
    fields = {k: getattr(view, k) for k in ("title", "kind", "theme", "description", "place", "online_url",
                                            "capacity", "rsvp_opens_at", "rsvp_closes_at")}
    fields |= {"agenda": [a.text for a in view.agenda], "actor_id": sec, "session_id": sid}
    err = await h.error(UpdateSession.model_validate(fields | {"starts_at": now + 5 * H, "ends_at": now + 6 * H}),
                        ErrorCode.CONFLICT, "starts_at")
    assert "se clôt le" in err.error.message and "annulez la séance" in err.error.message
    moved = await h.call(UpdateSession.model_validate(fields | {"starts_at": now + 150 * timedelta(minutes=1),
                                                                "ends_at": now + 4 * H}))
    assert moved.revision == view.revision + 1

    # Cancelled with its session: no decision, ballots gone uncounted, a public fact, no more ballots.
    await h.call(CancelSession(actor_id=sec, session_id=sid, reason="Salle indisponible."))
    cancelled = await h.call(GetVote(vote_id=vid))
    assert (cancelled.status, cancelled.result, cancelled.decision_id) == ("cancelled", None, None)
    assert cancelled.closed_at is not None
    [fact] = await emitted_for(h, VoteCancelled, "vote.vote_id", vid)
    assert fact["reason"] == "Salle indisponible." and cancelled.closed_event_id
    err = await h.error(CastBallot(actor_id=voter, vote_id=vid, grades={1: "bien", 2: "bien"}),
                        ErrorCode.EXPIRED, "vote_id")
    assert "annulé" in err.error.message
    assert (await h.call(CloseVote(actor_id=sec, vote_id=vid))).status == "cancelled"  # nothing to close
    async with h.service.db.read() as tx:
        assert (await tx.exec(select(func.count()).select_from(ForumBallot)
                              .where(ForumBallot.vote_id == vid))).one() == 0
    assert await close_due_votes(h.service) == 0
    listed = await h.call(ListVotes(status=VoteStatus.CANCELLED, session_id=sid))
    assert [v.vote.vote_id for v in listed.votes] == [vid]
