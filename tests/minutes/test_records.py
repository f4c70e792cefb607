"""The public record schema (v1): stable bytes, public fields only."""
import hashlib
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
import rfc8785

from forumlib.tlog import leaf_hash, record_leaf_bytes
from services.minutes.records import RECORDERS, make_record, public_record, record_of, utc_timestamp
from shared.contracts.envelope import make_event
from shared.contracts.registry import College, MemberApproved

# Frozen: third parties script against these bytes. Changing them is a breaking change (bump "schema").
GOLDEN_LEAF = (b'{"data":{"college":"civil_society","public_id":"a1b2c3d4e5f60718"},'
               b'"event_id":"7c0e3a4e-5f0b-4a59-9d7e-2a7f1c3b9e10","occurred_at":"2026-03-05T14:03:27.123456Z",'
               b'"schema":1,"type":"member.approved"}')


def _approved(**kw) -> object:  # noqa: ANN003
    data = MemberApproved(member_id="m-secret-123", public_id="a1b2c3d4e5f60718", college=College.CIVIL_SOCIETY, **kw)
    env = make_event(data, producer="registry")
    env.event_id = uuid.UUID("7c0e3a4e-5f0b-4a59-9d7e-2a7f1c3b9e10")
    env.occurred_at = datetime(2026, 3, 5, 14, 3, 27, 123456, tzinfo=UTC)
    return env


def _recorder(event_type: type) -> object:
    return next(r for r in RECORDERS if r.event is event_type)


def test_member_approved_record_is_frozen_v1() -> None:
    record = record_of(_recorder(MemberApproved), _approved())
    assert record == {"schema": 1, "type": "member.approved", "event_id": "7c0e3a4e-5f0b-4a59-9d7e-2a7f1c3b9e10",
                      "occurred_at": "2026-03-05T14:03:27.123456Z",
                      "data": {"public_id": "a1b2c3d4e5f60718", "college": "civil_society"}}
    assert record_leaf_bytes(record) == GOLDEN_LEAF
    assert leaf_hash(GOLDEN_LEAF) == hashlib.sha256(b"\x00" + GOLDEN_LEAF).digest()


def test_member_approved_record_holds_no_member_id() -> None:
    leaf = record_leaf_bytes(record_of(_recorder(MemberApproved), _approved()))
    assert b"m-secret-123" not in leaf and b"member_id" not in leaf


def test_college_may_be_absent() -> None:
    env = make_event(MemberApproved(member_id="m", public_id="p", college=None), producer="registry")
    assert record_of(_recorder(MemberApproved), env)["data"] == {"public_id": "p", "college": None}


def test_leaf_is_independent_of_key_order_and_library() -> None:
    record = record_of(_recorder(MemberApproved), _approved())
    shuffled = dict(reversed(list(record.items())))
    assert record_leaf_bytes(shuffled) == rfc8785.dumps(record) == GOLDEN_LEAF


@pytest.mark.parametrize(("value", "text"), [
    (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000000Z"),
    (datetime(2026, 1, 2, 4, 4, 5, 7, tzinfo=timezone(timedelta(hours=1))), "2026-01-02T03:04:05.000007Z"),
    (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05.000000Z"),  # naive = UTC (what SQLite returns)
])
def test_timestamps_have_one_form(value: datetime, text: str) -> None:
    assert utc_timestamp(value) == text


def test_values_outside_jcs_are_refused() -> None:
    with pytest.raises(rfc8785.IntegerDomainError):
        record_leaf_bytes(make_record("x.y", "e", datetime.now(UTC), {"n": 2**60}))
    with pytest.raises(rfc8785.FloatDomainError):
        record_leaf_bytes(make_record("x.y", "e", datetime.now(UTC), {"n": float("nan")}))


def test_one_record_type_per_event() -> None:
    with pytest.raises(ValueError):
        public_record(MemberApproved, "member.approved.again")
