from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.registry import rules
from shared.contracts.registry import MemberStatus, Register, Role
from shared.errors import Conflict, Expired, Forbidden, Invalid
from shared.validation import field_errors

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_email_is_normalised() -> None:
    assert rules.normalise_email("  Alice.Martin@Example.ORG ") == "alice.martin@example.org"


def test_tokens_are_random_and_only_their_hash_is_kept() -> None:
    a, b = rules.new_token(), rules.new_token()
    assert a != b and len(a) >= 40
    assert rules.hash_token(a) != a and len(rules.hash_token(a)) == 64
    assert rules.hash_token(a) == rules.hash_token(a)


def test_usable_token_passes() -> None:
    rules.check_token_usable(purpose="sign_in", expected="sign_in", expires_at=NOW + timedelta(minutes=1),
                             used_at=None, now=NOW)


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"expires_at": NOW - timedelta(seconds=1)}, Expired),
    ({"expires_at": NOW}, Expired),
    ({"used_at": NOW - timedelta(minutes=1)}, Expired),
    ({"superseded_at": NOW - timedelta(minutes=1)}, Expired),  # a newer link was mailed since
    ({"purpose": "verify_email"}, Invalid),
])
def test_unusable_tokens_are_refused(kwargs: dict, error: type) -> None:
    args = {"purpose": "sign_in", "expected": "sign_in", "expires_at": NOW + timedelta(hours=1), "used_at": None,
            "now": NOW} | kwargs
    with pytest.raises(error):
        rules.check_token_usable(**args)


def test_only_an_approved_secretariat_decides() -> None:
    rules.check_can_decide(Role.SECRETARIAT, MemberStatus.APPROVED)
    for role, status in [(Role.MEMBER, MemberStatus.APPROVED), (None, None),
                         (Role.SECRETARIAT, MemberStatus.ERASED)]:
        with pytest.raises(Forbidden):
            rules.check_can_decide(role, status)


def test_only_verified_pending_members_are_decidable() -> None:
    rules.check_decidable(MemberStatus.PENDING_APPROVAL)
    for status in MemberStatus:
        if status != MemberStatus.PENDING_APPROVAL:
            with pytest.raises(Conflict):
                rules.check_decidable(status)


def test_sign_in_allowed_once_verified() -> None:
    assert not rules.can_sign_in(MemberStatus.PENDING_VERIFICATION)
    assert not rules.can_sign_in(MemberStatus.ERASED)
    assert rules.can_sign_in(MemberStatus.APPROVED)


def test_a_session_lasts_until_ended_and_never_past_its_max_age() -> None:
    assert rules.session_live(created_at=NOW, ended_at=None, max_age=60, now=NOW + timedelta(seconds=59))
    assert not rules.session_live(created_at=NOW, ended_at=None, max_age=60, now=NOW + timedelta(seconds=60))
    assert not rules.session_live(created_at=NOW, ended_at=NOW, max_age=60, now=NOW + timedelta(seconds=1))
    a, b = rules.new_session_id(), rules.new_session_id()
    assert a != b and len(a) >= 40


GOOD = {"full_name": "Alice Martin", "email": "alice@example.org", "organisation": "Asso",
        "college": "civil_society", "charter_accepted": True}


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"email": "pas-une-adresse"}, "email", "Adresse électronique invalide."),
    ({"full_name": "A"}, "full_name", "au moins 2 caractères"),
    ({"full_name": "x" * 121}, "full_name", "pas dépasser 120 caractères"),
    ({"organisation": "x" * 161}, "organisation", "pas dépasser 160"),
    ({"college": "lobby"}, "college", "valeurs proposées"),
    ({"charter_accepted": False}, "charter_accepted", "charte"),
])
def test_register_request_is_validated_in_french(change: dict, field: str, message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Register(**(GOOD | change))
    errors = field_errors(exc.value)
    assert field in errors and message in errors[field]


def test_missing_field_is_named() -> None:
    with pytest.raises(ValidationError) as exc:
        Register(**{k: v for k, v in GOOD.items() if k != "full_name"})
    assert field_errors(exc.value) == {"full_name": "Ce champ est obligatoire."}


def test_valid_registration_is_stripped() -> None:
    r = Register(**(GOOD | {"full_name": "  Alice Martin  "}))
    assert r.full_name == "Alice Martin"
