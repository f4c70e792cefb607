"""Validation of the decision contracts (shared/contracts/decisions.py), with the field each error
names as the RPC layer reports it (`shared.validation.field_errors`, first message per field)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from shared.contracts.decisions import (
    MAX_OPTIONS, CastBallot, Eligibility, HandCount, ListDecisions, Method, OpenVote, Outcome, RecordDecision,
    Rule, SetRule, UpdateFollowUp,
)
from shared.contracts.registry import College
from forumlib.majority_judgment import GRADES, Grade
from shared.rpc_answers import validation_reply
from shared.validation import field_errors

T = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def errors_of(model: type[BaseModel], data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as exc:
        model.model_validate(data)
    return field_errors(exc.value)


def decision(**over: Any) -> dict[str, Any]:
    return {"actor_id": "sec-1", "session_id": "s-1", "agenda_position": 1, "title": "Avis sur l'engagement 5",
            "text": "Le forum adopte l'avis.", "outcome": "adopted", "method": "consensus", **over}


def vote(**over: Any) -> dict[str, Any]:
    return {"actor_id": "sec-1", "session_id": "s-1", "agenda_position": 2, "question": "Quel calendrier ?",
            "options": ["Au printemps", "À l'automne"], "opens_at": T, "closes_at": T + timedelta(days=7), **over}


# ---------------------------------------------------------------- RecordDecision
def test_a_consensus_needs_no_count() -> None:
    d = RecordDecision.model_validate(decision())
    assert d.method == Method.CONSENSUS and d.hands is None and d.outcome == Outcome.ADOPTED


def test_a_show_of_hands_needs_its_count() -> None:
    assert errors_of(RecordDecision, decision(method="show_of_hands")) == {
        "hands": "indiquez les voix pour, contre et les abstentions"}
    assert "hands" in errors_of(RecordDecision, decision(method="show_of_hands", hands={}))
    d = RecordDecision.model_validate(decision(method="show_of_hands",
                                               hands={"citizen": {"in_favour": 3, "against": 1}}))
    assert d.hands == {College.CITIZEN: HandCount(in_favour=3, against=1, abstain=0)}


def test_a_count_is_refused_without_a_show_of_hands() -> None:
    assert errors_of(RecordDecision, decision(method="consensus", hands={"citizen": {"in_favour": 1}})) == {
        "hands": "les décomptes de voix ne concernent que le vote à main levée"}


def test_online_vote_is_not_recorded_by_hand() -> None:
    errs = errors_of(RecordDecision, decision(method="online_vote"))
    assert errs == {"method": "une décision par vote en ligne est enregistrée à la clôture du vote"}
    # Even with a count, the method is what is wrong.
    assert list(errors_of(RecordDecision, decision(method="online_vote", hands={"citizen": {"in_favour": 1}}))) == [
        "method"]


@pytest.mark.parametrize(("over", "field"), [
    ({"title": "ab"}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"text": "   "}, "text"),
    ({"agenda_position": 0}, "agenda_position"),
    ({"outcome": "approved"}, "outcome"),
    ({"method": "raised_hands"}, "method"),
    ({"commitment_code": "5 bis!"}, "commitment_code"),
    ({"method": "show_of_hands", "hands": {"citizen": {"in_favour": -1}}}, "hands.citizen.in_favour"),
    ({"method": "show_of_hands", "hands": {"citizen": {"in_favour": 100_001}}}, "hands.citizen.in_favour"),
    ({"method": "show_of_hands", "hands": {"martians": {"in_favour": 1}}}, "hands.martians.[key]"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_decisions_name_their_field(over: dict[str, Any], field: str) -> None:
    assert field in errors_of(RecordDecision, decision(**over))


def test_errors_reach_the_rpc_reply_with_their_field() -> None:
    with pytest.raises(ValidationError) as exc:
        RecordDecision.model_validate(decision(method="show_of_hands"))
    reply = validation_reply(exc.value)
    assert reply.ok is False and reply.error is not None
    assert (reply.error.field, reply.error.message) == ("hands", "indiquez les voix pour, contre et les abstentions")


# ---------------------------------------------------------------- OpenVote
def test_a_vote_with_two_to_ten_options() -> None:
    v = OpenVote.model_validate(vote())
    assert v.eligibility == Eligibility.APPROVED_MEMBERS and v.options == ["Au printemps", "À l'automne"]
    assert len(OpenVote.model_validate(vote(options=[f"Option {i}" for i in range(MAX_OPTIONS)])).options) == 10
    assert "options" in errors_of(OpenVote, vote(options=["Seule"]))
    assert "options" in errors_of(OpenVote, vote(options=[]))
    assert "options" in errors_of(OpenVote, vote(options=[f"Option {i}" for i in range(MAX_OPTIONS + 1)]))
    assert "options.1" in errors_of(OpenVote, vote(options=["Oui", "  "]))


def test_options_must_be_distinct_whatever_the_case_and_spaces() -> None:
    assert errors_of(OpenVote, vote(options=["Oui", " oui "])) == {"options": "deux options portent le même libellé"}
    assert errors_of(OpenVote, vote(options=["Paris", "Lyon", "PARIS"]))["options"] == \
        "deux options portent le même libellé"


@pytest.mark.parametrize("field", ["opens_at", "closes_at"])
def test_times_must_be_aware(field: str) -> None:
    naive = {"opens_at": datetime(2026, 5, 4, 9, 0), "closes_at": datetime(2026, 5, 11, 9, 0)}[field]
    assert errors_of(OpenVote, vote(**{field: naive})) == {
        field: "indiquez le fuseau horaire de cette date (UTC attendu)"}
    assert field in errors_of(OpenVote, vote(**{field: "2026-05-04T09:00:00"}))  # the JSON form too


def test_aware_times_in_any_offset_are_accepted() -> None:
    paris = timezone(timedelta(hours=2))
    v = OpenVote.model_validate(vote(opens_at=datetime(2026, 5, 4, 11, 0, tzinfo=paris),
                                     closes_at="2026-05-04T09:00:01Z"))
    assert v.closes_at > v.opens_at


@pytest.mark.parametrize("closes_at", [T, T - timedelta(seconds=1), datetime(2026, 5, 4, 11, 0,
                                                                            tzinfo=timezone(timedelta(hours=2)))])
def test_a_vote_closes_after_it_opens(closes_at: datetime) -> None:
    assert errors_of(OpenVote, vote(closes_at=closes_at)) == {
        "closes_at": "la clôture du vote doit être après son ouverture"}


def test_a_bad_opening_time_is_the_only_error_reported() -> None:
    # No comparison with an opening time that is itself invalid.
    assert list(errors_of(OpenVote, vote(opens_at="demain", closes_at=T))) == ["opens_at"]


def test_eligibility_is_one_of_the_two() -> None:
    assert OpenVote.model_validate(vote(eligibility="attendees")).eligibility == Eligibility.ATTENDEES
    assert "eligibility" in errors_of(OpenVote, vote(eligibility="everyone"))


# ---------------------------------------------------------------- CastBallot
def test_a_ballot_grades_on_the_scale() -> None:
    b = CastBallot.model_validate({"actor_id": "m-1", "vote_id": "v-1", "grades": {"1": "tres_bien", "2": "a_rejeter"}})
    assert b.grades == {1: Grade.TRES_BIEN, 2: Grade.A_REJETER}
    assert {g.value for g in GRADES} == {"excellent", "tres_bien", "bien", "assez_bien", "passable", "insuffisant",
                                         "a_rejeter"}


@pytest.mark.parametrize("grade", ["super", "Très bien", "", 3, None, "EXCELLENT"])
def test_a_grade_outside_the_scale_is_refused(grade: object) -> None:
    errs = errors_of(CastBallot, {"actor_id": "m-1", "vote_id": "v-1", "grades": {"1": "bien", "2": grade}})
    assert list(errs) == ["grades.2"]


def test_a_ballot_names_options_by_number() -> None:
    assert "grades.premier.[key]" in errors_of(CastBallot, {"actor_id": "m-1", "vote_id": "v-1",
                                                           "grades": {"premier": "bien"}})
    assert "actor_id" in errors_of(CastBallot, {"vote_id": "v-1", "grades": {}})


# ---------------------------------------------------------------- other requests
def test_rules_follow_ups_and_lists() -> None:
    r = SetRule.model_validate({"actor_id": "sec", "rule": {"kind": "plenary", "quorum": {"citizen": 3},
                                                            "double_majority": True}}).rule
    assert r == Rule(kind="plenary", quorum={College.CITIZEN: 3}, double_majority=True)
    assert "rule.quorum.citizen" in errors_of(SetRule, {"actor_id": "sec", "rule": {"kind": "plenary",
                                                                                    "quorum": {"citizen": -1}}})
    assert "rule.kind" in errors_of(SetRule, {"actor_id": "sec", "rule": {"kind": "assemblee"}})
    assert "status" in errors_of(UpdateFollowUp, {"actor_id": "sec", "decision_id": "d", "status": "finished"})
    assert "note" in errors_of(UpdateFollowUp, {"actor_id": "sec", "decision_id": "d", "status": "done",
                                                "note": "x" * 2001})
    assert "limit" in errors_of(ListDecisions, {"limit": 501})
