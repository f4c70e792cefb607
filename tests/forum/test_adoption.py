"""What "adopted" means (services/forum/adoption.py): quorum per college, (double) majority,
consensus, online vote, and the outcomes the rule refuses."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.forum.adoption import check_outcome, check_rule, default_rule, majority_lines, quorum_lines, vote_outcome
from shared.contracts.decisions import SIDE_OF, HandCount, Method, Outcome, Rule, Side
from shared.contracts.forum import SessionKind
from shared.contracts.registry import College
from shared.errors import Conflict

PA, CS, CI = College.PUBLIC_ACTOR, College.CIVIL_SOCIETY, College.CITIZEN
HANDS = Method.SHOW_OF_HANDS


def rule(quorum: dict[College, int] | None = None, double: bool = False) -> Rule:
    return Rule(kind=SessionKind.PLENARY, quorum=quorum or {}, double_majority=double)


def h(yes: int = 0, no: int = 0, abstain: int = 0) -> HandCount:
    return HandCount(in_favour=yes, against=no, abstain=abstain)


# ---------------------------------------------------------------- quorum
def test_default_rule_requires_nobody_and_a_simple_majority() -> None:
    r = default_rule(SessionKind.WORKING_GROUP)
    assert r.kind == SessionKind.WORKING_GROUP and r.quorum == {} and not r.double_majority
    c = check_rule(r, Method.CONSENSUS, {})
    assert c.met and c.quorum_met and c.quorum == [] and c.majority == [] and c.majority_met is None
    assert c.summary == "Pas de quorum requis."


def test_quorum_met_and_not_met_per_college() -> None:
    r = rule({PA: 2, CS: 3})
    lines = quorum_lines(r, {PA: 2, CS: 2, CI: 40})
    assert [(q.college, q.required, q.present, q.met) for q in lines] == [(PA, 2, 2, True), (CS, 3, 2, False)]
    assert check_rule(r, Method.CONSENSUS, {PA: 2, CS: 3}).quorum_met
    assert check_rule(r, Method.CONSENSUS, {PA: 5, CS: 30}).met
    c = check_rule(r, Method.CONSENSUS, {PA: 2, CS: 2, CI: 40})
    assert not c.quorum_met and not c.met


def test_colleges_not_named_require_nobody() -> None:
    r = rule({CS: 1})
    c = check_rule(r, Method.CONSENSUS, {CS: 1})  # no public actor, no citizen present: fine
    assert c.met and [q.college for q in c.quorum] == [CS]
    # A quorum of 0 is the same as not naming the college.
    assert quorum_lines(rule({PA: 0, CS: 1}), {}) == quorum_lines(r, {})


def test_a_college_absent_from_attendance_counts_zero() -> None:
    (line,) = quorum_lines(rule({CI: 1}), {})
    assert (line.present, line.met) == (0, False)


# ---------------------------------------------------------------- majority
def test_simple_majority_abstentions_not_counted() -> None:
    c = check_rule(rule(), HANDS, {}, {PA: h(3, 2, 50)})
    assert c.majority_met and c.met
    (overall,) = c.majority
    assert (overall.side, overall.in_favour, overall.against, overall.abstain) == (None, 3, 2, 50)
    # Abstentions never count against: even 1 for, 0 against and 100 abstentions is a majority.
    assert check_rule(rule(), HANDS, {}, {CI: h(1, 0, 100)}).met


def test_a_tie_is_not_a_majority() -> None:
    c = check_rule(rule(), HANDS, {}, {PA: h(2, 1), CS: h(1, 2)})
    assert not c.majority_met and not c.met
    assert not check_rule(rule(), HANDS, {}, {}).met  # nobody voted: 0 for, 0 against


def test_double_majority_public_side_against_civil_side() -> None:
    """Civil society = civil_society + citizen: they are counted together."""
    assert SIDE_OF == {PA: Side.PUBLIC, CS: Side.CIVIL, CI: Side.CIVIL}
    r = rule(double=True)
    # Civil side: organisations 2-3 but citizens 4-1 → 6-4 for; public side 3-2 for → met.
    c = check_rule(r, HANDS, {}, {PA: h(3, 2), CS: h(2, 3), CI: h(4, 1)})
    assert c.met
    assert [(m.side, m.in_favour, m.against, m.met) for m in c.majority] == [
        (None, 9, 6, True), (Side.PUBLIC, 3, 2, True), (Side.CIVIL, 6, 4, True)]
    # A large overall majority is not enough when the public actors are against.
    c = check_rule(r, HANDS, {}, {PA: h(1, 2), CS: h(20, 0), CI: h(10, 0)})
    assert [m.met for m in c.majority] == [True, False, True] and not c.majority_met and not c.met
    # Nor when civil society is tied.
    c = check_rule(r, HANDS, {}, {PA: h(5, 0), CS: h(1, 2), CI: h(1, 0)})
    assert [m.met for m in c.majority] == [True, True, False] and not c.met
    # A side that did not vote has no majority.
    assert not check_rule(r, HANDS, {}, {PA: h(5, 0)}).met
    # Without the double majority, the same count is adopted.
    assert check_rule(rule(), HANDS, {}, {PA: h(1, 2), CS: h(20, 0), CI: h(10, 0)}).met


def test_quorum_and_majority_are_both_needed() -> None:
    r = rule({PA: 3})
    c = check_rule(r, HANDS, {PA: 2}, {PA: h(2, 0)})
    assert c.majority_met and not c.quorum_met and not c.met
    c = check_rule(r, HANDS, {PA: 3}, {PA: h(1, 2)})
    assert c.quorum_met and not c.majority_met and not c.met
    assert check_rule(r, HANDS, {PA: 3}, {PA: h(2, 1)}).met


counts = st.builds(HandCount, in_favour=st.integers(0, 30), against=st.integers(0, 30), abstain=st.integers(0, 30))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(College)), counts), st.booleans())
def test_majority_lines_add_up(hands: dict[College, HandCount], double: bool) -> None:
    lines = majority_lines(rule(double=double), hands)
    overall = lines[0]
    assert overall.side is None
    assert overall.in_favour == sum(x.in_favour for x in hands.values())
    assert overall.against == sum(x.against for x in hands.values())
    assert overall.met == (overall.in_favour > overall.against)
    if double:
        assert [m.side for m in lines[1:]] == [Side.PUBLIC, Side.CIVIL]
        assert sum(m.in_favour for m in lines[1:]) == overall.in_favour
        assert sum(m.abstain for m in lines[1:]) == overall.abstain
        if all(m.met for m in lines[1:]):  # a majority on each side is a majority overall
            assert overall.met
    else:
        assert len(lines) == 1
    c = check_rule(rule(double=double), HANDS, {}, hands)
    assert c.met == c.majority_met == all(m.met for m in lines)


# ---------------------------------------------------------------- consensus and online vote
def test_consensus_checks_only_the_quorum() -> None:
    r = rule({CS: 2}, double=True)
    c = check_rule(r, Method.CONSENSUS, {CS: 2}, {PA: h(0, 9)})  # a count given anyway is ignored
    assert c.met and c.majority == [] and c.majority_met is None
    assert not check_rule(r, Method.CONSENSUS, {CS: 1}).met


def test_online_vote_needs_the_quorum_and_a_single_winner() -> None:
    r = rule({CI: 2})
    c = check_rule(r, Method.ONLINE_VOTE, {CI: 2}, single_winner=True)
    assert c.met and c.majority_met is None and c.summary == "Quorum atteint."
    c = check_rule(r, Method.ONLINE_VOTE, {CI: 2}, single_winner=False)
    assert not c.met and c.summary == "Quorum atteint ; pas de gagnant unique."
    assert not check_rule(r, Method.ONLINE_VOTE, {CI: 1}, single_winner=True).met
    assert vote_outcome(check_rule(r, Method.ONLINE_VOTE, {CI: 2})) == Outcome.ADOPTED
    assert vote_outcome(check_rule(r, Method.ONLINE_VOTE, {CI: 2}, single_winner=False)) == Outcome.DEFERRED
    assert vote_outcome(check_rule(r, Method.ONLINE_VOTE, {CI: 0})) == Outcome.DEFERRED


# ---------------------------------------------------------------- outcomes the rule refuses
def test_adopted_is_refused_while_the_rule_is_not_met() -> None:
    check = check_rule(rule({PA: 2}), HANDS, {PA: 1}, {PA: h(1, 0)})
    with pytest.raises(Conflict) as exc:
        check_outcome(HANDS, Outcome.ADOPTED, check)
    assert exc.value.field == "outcome"
    assert "ne peut pas être adoptée" in exc.value.message and check.summary in exc.value.message
    with pytest.raises(Conflict):
        check_outcome(Method.CONSENSUS, Outcome.ADOPTED, check_rule(rule({PA: 2}), Method.CONSENSUS, {}))


def test_rejected_is_refused_when_a_show_of_hands_met_the_rule() -> None:
    check = check_rule(rule(), HANDS, {}, {PA: h(3, 1)})
    with pytest.raises(Conflict) as exc:
        check_outcome(HANDS, Outcome.REJECTED, check)
    assert exc.value.field == "outcome" and "ne peut pas être rejetée" in exc.value.message
    check_outcome(HANDS, Outcome.ADOPTED, check)
    # A failed count may be rejected; a consensus that met the quorum may still be a rejection.
    check_outcome(HANDS, Outcome.REJECTED, check_rule(rule(), HANDS, {}, {PA: h(1, 3)}))
    check_outcome(Method.CONSENSUS, Outcome.REJECTED, check_rule(rule(), Method.CONSENSUS, {}))


@pytest.mark.parametrize("check", [
    check_rule(rule(), HANDS, {}, {PA: h(3, 1)}),
    check_rule(rule(), HANDS, {}, {PA: h(1, 3)}),
    check_rule(rule({CS: 5}), Method.CONSENSUS, {}),
    check_rule(rule(), Method.ONLINE_VOTE, {}, single_winner=False),
])
@pytest.mark.parametrize("method", list(Method))
def test_deferred_is_always_allowed(check, method: Method) -> None:  # noqa: ANN001
    check_outcome(method, Outcome.DEFERRED, check)


# ---------------------------------------------------------------- the French summary
def test_summaries_read_as_french_sentences() -> None:
    r = rule({PA: 2, CI: 1}, double=True)
    assert check_rule(r, HANDS, {PA: 2, CI: 3}, {PA: h(2, 0), CI: h(3, 1, 1)}).summary == \
        "Quorum atteint ; 5 voix pour, 1 contre, 1 abstention ; double majorité atteinte."
    assert check_rule(r, HANDS, {PA: 1}, {PA: h(1)}).summary == (
        "Quorum non atteint (1 présent sur 2 requis chez les acteurs publics, 0 présent sur 1 requis chez les "
        "citoyennes et citoyens) ; 1 voix pour, 0 contre, 0 abstention ; double majorité non atteinte.")
    assert check_rule(rule({CS: 4}), HANDS, {CS: 3}, {CS: h(1, 1, 2)}).summary == (
        "Quorum non atteint (3 présents sur 4 requis chez les organisations de la société civile) ; "
        "1 voix pour, 1 contre, 2 abstentions ; majorité non atteinte.")
    assert check_rule(rule(), HANDS, {}, {CS: h(4, 1)}).summary == \
        "Pas de quorum requis ; 4 voix pour, 1 contre, 0 abstention ; majorité atteinte."
    assert check_rule(rule(), Method.CONSENSUS, {}).summary == "Pas de quorum requis."
