"""The forum's public facts in the public record (schema v1): exact data, public fields only, one
textual form per instant, and a vote result anyone can recompute from its record alone."""
from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from forumlib.majority_judgment import GRADES, Grade, majority_grade, rank, winner
from forumlib.tlog import record_leaf_bytes
from services.minutes.records import RECORDERS, Recorder, public_json, record_of
from shared.contracts.decisions import (
    DECISION_EVENTS, CommitmentRef, DecisionSuperseded, Eligibility, FollowUpStatus, FollowUpUpdated, Method,
    Outcome, Rule, RuleUpdated, VoteOpened,
)
from shared.contracts.forum import SessionCancelled, SessionKind, SessionScheduled, SessionStatus, SessionUpdated
from shared.contracts.envelope import Envelope, make_event
from shared.contracts.registry import College
from tests.minutes.harness import T0, decision_event, session_info, vote_closed_event

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
SECRET_IDS = ["m-secret-0001", "m-secret-0002", "3f1c0b9e-1111-4222-8333-944455556666"]


def _recorder(event_type: type) -> Recorder:
    return next(r for r in RECORDERS if r.event is event_type)


def _record(env: Envelope[Any]) -> dict[str, Any]:
    return record_of(_recorder(type(env.data)), env)


def _walk(value: Any) -> list[Any]:
    """Every scalar of a JSON value, at any depth."""
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in [k, *_walk(v)]]
    if isinstance(value, list):
        return [x for v in value for x in _walk(v)]
    return [value]


SESSION_DATA = {
    "session_id": "s-1", "revision": 0, "status": "scheduled", "title": "Plénière de printemps",
    "kind": "plenary", "theme": "open_data", "description": "Point d'étape du plan d'action.",
    "starts_at": "2026-03-05T14:00:00.000000Z", "ends_at": "2026-03-05T16:00:00.000000Z",
    "place": "CESE, Paris", "online_url": None, "capacity": 80,
    "rsvp_opens_at": "2026-02-23T14:00:00.000000Z", "rsvp_closes_at": "2026-03-04T14:00:00.000000Z",
    "agenda": ["Ouverture", "Engagement 5"], "cancel_reason": None, "updated_at": "2026-02-13T14:00:00.000000Z",
}

VOTE_DATA = {
    "vote_id": "v-1", "session_id": "s-1", "agenda_position": 2, "agenda_text": "Engagement 5",
    "question": "Quel calendrier pour l'engagement 5 ?",
    "options": [{"option_id": 1, "label": "Option A"}, {"option_id": 2, "label": "Option B"},
                {"option_id": 3, "label": "Option C"}],
    "grades": ["excellent", "tres_bien", "bien", "assez_bien", "passable", "insuffisant", "a_rejeter"],
    "eligibility": "approved_members",
    "opens_at": "2026-03-05T14:00:00.000000Z", "closes_at": "2026-03-12T14:00:00.000000Z",
}


def _all_events() -> list[Envelope[Any]]:
    """One event of every forum public fact, each carrying personal data where its event has any."""
    closed = vote_closed_event()
    return [
        make_event(SessionScheduled(session=session_info()), producer="forum"),
        make_event(SessionUpdated(session=session_info(revision=1, place="Palais d'Iéna"), changes=["place"],
                                  time_or_place_changed=True, notify_member_ids=SECRET_IDS), producer="forum"),
        make_event(SessionCancelled(session=session_info(revision=2, status=SessionStatus.CANCELLED,
                                                         cancel_reason="Grève des transports"),
                                    reason="Grève des transports", notify_member_ids=SECRET_IDS), producer="forum"),
        decision_event(),
        make_event(DecisionSuperseded(decision_id="d-1", superseded_by="d-3", superseded_at=T0), producer="forum"),
        make_event(FollowUpUpdated(decision_id="d-1", status=FollowUpStatus.IN_PROGRESS, note="Premier jet publié",
                                   updated_at=T0), producer="forum"),
        make_event(VoteOpened(vote=closed.data.vote), producer="forum"),
        closed,
        make_event(RuleUpdated(rule=Rule(kind=SessionKind.WORKING_GROUP, quorum={College.CITIZEN: 2}),
                               updated_at=T0), producer="forum"),
    ]


# ---------------------------------------------------------------- registration
def test_every_forum_public_fact_has_exactly_one_record_type() -> None:
    expected = {
        "forum.session.scheduled": "session.scheduled", "forum.session.updated": "session.updated",
        "forum.session.cancelled": "session.cancelled", "forum.decision.recorded": "decision.recorded",
        "forum.decision.superseded": "decision.superseded",
        "forum.decision.follow_up_updated": "decision.follow_up_updated",
        "forum.vote.opened": "vote.opened", "forum.vote.closed": "vote.closed", "forum.vote.cancelled": "vote.cancelled",
        "forum.rule.updated": "rule.updated",
        "registry.member.approved": "member.approved",
        "minutes.published": "minutes.published", "minutes.corrected": "minutes.corrected",
    }
    assert {r.event.TYPE: r.record_type for r in RECORDERS} == expected
    assert {e.TYPE for e in DECISION_EVENTS} <= set(expected)


# ---------------------------------------------------------------- exact shapes
def test_session_scheduled() -> None:
    env = make_event(SessionScheduled(session=session_info()), producer="forum")
    record = _record(env)
    assert record["type"] == "session.scheduled" and record["event_id"] == str(env.event_id)
    assert record["data"] == {"session": SESSION_DATA}


def test_session_updated_names_the_changes_and_not_who_is_told() -> None:
    env = make_event(SessionUpdated(session=session_info(revision=1, place="Palais d'Iéna"), changes=["place"],
                                    time_or_place_changed=True, notify_member_ids=SECRET_IDS), producer="forum")
    assert _record(env)["data"] == {"session": {**SESSION_DATA, "revision": 1, "place": "Palais d'Iéna"},
                                    "changes": ["place"], "time_or_place_changed": True}


def test_session_cancelled_with_its_reason() -> None:
    env = make_event(SessionCancelled(session=session_info(revision=2, status=SessionStatus.CANCELLED,
                                                           cancel_reason="Grève des transports"),
                                      reason="Grève des transports", notify_member_ids=SECRET_IDS),
                     producer="forum")
    assert _record(env)["data"] == {
        "session": {**SESSION_DATA, "revision": 2, "status": "cancelled", "cancel_reason": "Grève des transports"},
        "reason": "Grève des transports"}


def test_decision_recorded() -> None:
    data = _record(decision_event())["data"]
    assert data == {"decision": {
        "decision_id": "d-1", "number": "2026-001", "session_id": "s-1", "session_title": "Plénière de printemps",
        "session_kind": "plenary", "agenda_position": 2, "agenda_text": "Engagement 5",
        "title": "Publication des avis du forum", "text": "Le forum **adopte** la publication.",
        "outcome": "adopted", "method": "show_of_hands",
        "hands": {"public_actor": {"in_favour": 3, "against": 1, "abstain": 0},
                  "civil_society": {"in_favour": 5, "against": 2, "abstain": 1},
                  "citizen": {"in_favour": 1, "against": 1, "abstain": 0}},
        "vote_id": None, "commitment": None, "supersedes": None,
        "rule_check": {
            "rule": {"kind": "plenary", "quorum": {"public_actor": 2, "civil_society": 3}, "double_majority": True},
            "quorum": [{"college": "public_actor", "required": 2, "present": 4, "met": True},
                       {"college": "civil_society", "required": 3, "present": 8, "met": True}],
            "quorum_met": True,
            "majority": [{"side": None, "in_favour": 9, "against": 4, "abstain": 1, "met": True},
                         {"side": "public", "in_favour": 3, "against": 1, "abstain": 0, "met": True},
                         {"side": "civil", "in_favour": 6, "against": 3, "abstain": 1, "met": True}],
            "majority_met": True, "met": True,
            "summary": "Quorum atteint ; 9 voix pour, 4 contre, 1 abstention ; double majorité atteinte."},
        "recorded_at": "2026-03-05T15:00:00.000000Z"}}


def test_decision_recorded_by_consensus_with_a_commitment_superseding_another() -> None:
    env = decision_event("d-3", method=Method.CONSENSUS, hands=None, outcome=Outcome.DEFERRED, supersedes="d-1",
                         commitment=CommitmentRef(code="5", title="Ouvrir les données de la commande publique"))
    d = _record(env)["data"]["decision"]
    assert (d["method"], d["hands"], d["outcome"], d["supersedes"]) == ("consensus", None, "deferred", "d-1")
    assert d["commitment"] == {"code": "5", "title": "Ouvrir les données de la commande publique"}


def test_decision_superseded() -> None:
    env = make_event(DecisionSuperseded(decision_id="d-1", superseded_by="d-3",
                                        superseded_at=datetime(2026, 4, 1, 9, 30, tzinfo=UTC)), producer="forum")
    assert _record(env)["data"] == {"decision_id": "d-1", "superseded_by": "d-3",
                                    "superseded_at": "2026-04-01T09:30:00.000000Z"}


def test_follow_up_updated() -> None:
    env = make_event(FollowUpUpdated(decision_id="d-1", status=FollowUpStatus.DONE, note="Publié le 2 avril",
                                     updated_at=datetime(2026, 4, 2, 12, 0, 0, 250, tzinfo=UTC)), producer="forum")
    assert _record(env)["data"] == {"decision_id": "d-1", "status": "done", "note": "Publié le 2 avril",
                                    "updated_at": "2026-04-02T12:00:00.000250Z"}


def test_vote_opened() -> None:
    env = make_event(VoteOpened(vote=vote_closed_event().data.vote), producer="forum")
    assert _record(env)["data"] == {"vote": VOTE_DATA}


def test_vote_opened_for_attendees() -> None:
    vote = vote_closed_event().data.vote.model_copy(update={"eligibility": Eligibility.ATTENDEES})
    assert _record(make_event(VoteOpened(vote=vote), producer="forum"))["data"]["vote"]["eligibility"] == "attendees"


def test_vote_closed_carries_the_merit_profiles() -> None:
    data = _record(vote_closed_event())["data"]

    def profile(*counts: int) -> list[dict[str, Any]]:
        return [{"grade": g.value, "count": n} for g, n in zip(GRADES, counts, strict=True)]

    assert data == {
        "vote": VOTE_DATA, "closed_at": "2026-03-12T14:00:00.000000Z", "decision_id": "d-2",
        "result": {
            "ballots": 3, "eligible": 12, "participation": {"citizen": 3},
            "options": [
                {"option_id": 1, "label": "Option A", "profile": profile(1, 1, 1, 0, 0, 0, 0),
                 "majority_grade": "tres_bien", "rank": 1},
                {"option_id": 2, "label": "Option B", "profile": profile(0, 0, 1, 1, 1, 0, 0),
                 "majority_grade": "assez_bien", "rank": 2},
                {"option_id": 3, "label": "Option C", "profile": profile(0, 0, 1, 0, 0, 1, 1),
                 "majority_grade": "insuffisant", "rank": 3}],
            "winner_option_id": 1, "tie": False}}


@pytest.mark.parametrize("ballots", [
    [],
    [[Grade.BIEN, Grade.BIEN, Grade.BIEN]],  # an exact three-way tie
    [[Grade.PASSABLE, Grade.PASSABLE, Grade.EXCELLENT], [Grade.BIEN, Grade.A_REJETER, Grade.EXCELLENT],
     [Grade.TRES_BIEN, Grade.BIEN, Grade.A_REJETER], [Grade.PASSABLE, Grade.INSUFFISANT, Grade.A_REJETER]],
])
def test_anyone_can_recompute_a_vote_from_its_record_alone(ballots: list[list[Grade]]) -> None:
    """Parse the leaf bytes only (as an auditor would) and re-run majority judgment on the profiles."""
    record = json.loads(record_leaf_bytes(_record(vote_closed_event(ballots=ballots))))
    result = record["data"]["result"]
    profiles = {o["option_id"]: {Grade(c["grade"]): c["count"] for c in o["profile"]} for o in result["options"]}
    assert all(sum(p.values()) == result["ballots"] == len(ballots) for p in profiles.values())
    for o in result["options"]:
        mg = majority_grade(profiles[o["option_id"]])
        assert o["majority_grade"] == (mg.value if mg else None)
    assert {k: r for k, r in rank(profiles)} == {o["option_id"]: o["rank"] for o in result["options"]}
    assert result["winner_option_id"] == winner(profiles)


def test_rule_updated() -> None:
    env = make_event(RuleUpdated(rule=Rule(kind=SessionKind.WORKING_GROUP, quorum={College.CITIZEN: 2},
                                           double_majority=False), updated_at=T0), producer="forum")
    assert _record(env)["data"] == {"rule": {"kind": "working_group", "quorum": {"citizen": 2},
                                             "double_majority": False},
                                    "updated_at": "2026-03-05T14:00:00.000000Z"}


# ---------------------------------------------------------------- properties of every record
@pytest.mark.parametrize("env", _all_events(), ids=lambda e: e.type)
def test_no_personal_data_in_any_leaf(env: Envelope[Any]) -> None:
    leaf = record_leaf_bytes(_record(env))
    for secret in SECRET_IDS:
        assert secret.encode() not in leaf
    assert b"notify" not in leaf and b"member_id" not in leaf and b"@" not in leaf


@pytest.mark.parametrize("env", _all_events(), ids=lambda e: e.type)
def test_every_record_is_plain_json_with_one_timestamp_form(env: Envelope[Any]) -> None:
    record = _record(env)
    leaf = record_leaf_bytes(record)
    assert json.loads(leaf) == record  # JSON-friendly: survives the round trip unchanged
    scalars = _walk(record)
    assert not any(isinstance(x, float) for x in scalars)
    assert all(x is None or isinstance(x, (str, int, bool)) for x in scalars)
    # Every string that looks like an instant has exactly the occurred_at form.
    stamps = [x for x in scalars if isinstance(x, str) and re.match(r"^\d{4}-\d\d-\d\dT", x)]
    assert stamps and all(TS.match(x) for x in stamps), stamps


def test_nested_timestamps_are_utc_with_six_decimals_whatever_the_offset() -> None:
    paris = datetime(2026, 3, 5, 15, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    env = make_event(FollowUpUpdated(decision_id="d", status=FollowUpStatus.TODO, note="", updated_at=paris),
                     producer="forum")
    assert _record(env)["data"]["updated_at"] == "2026-03-05T15:00:00.000000Z"
    # pydantic's own JSON form would drop the decimals: the record must not depend on it.
    assert public_json({"a": [{"b": datetime(2026, 1, 1, tzinfo=UTC)}]}) == \
        {"a": [{"b": "2026-01-01T00:00:00.000000Z"}]}


def test_same_event_same_leaf() -> None:
    env = vote_closed_event()
    again = Envelope[type(env.data)].model_validate_json(env.model_dump_json())  # as a consumer decodes it
    assert record_leaf_bytes(_record(env)) == record_leaf_bytes(_record(again))


def test_public_json_refuses_what_it_cannot_represent() -> None:
    with pytest.raises(TypeError):
        public_json({"x": uuid.uuid4().bytes})
