"""Registry domain rules: plain functions over plain values, no I/O."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from shared.contracts.registry import STATUS_LABELS, MemberStatus, Role
from shared.errors import Conflict, Expired, Forbidden, Invalid

VERIFY_EMAIL = "verify_email"
SIGN_IN = "sign_in"


def normalise_email(email: str) -> str:
    return email.strip().lower()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_expiry(now: datetime, ttl_seconds: int) -> datetime:
    return now + timedelta(seconds=ttl_seconds)


def check_token_usable(*, purpose: str, expected: str, expires_at: datetime, used_at: datetime | None,
                       now: datetime, superseded_at: datetime | None = None) -> None:
    if purpose != expected:
        raise Invalid("Ce lien n'est pas valable pour cette action.", field="token")
    if used_at is not None:
        raise Expired("Ce lien a déjà été utilisé. Demandez-en un nouveau.", field="token")
    if superseded_at is not None:
        raise Expired("Un lien plus récent vous a été envoyé depuis : utilisez celui du dernier courriel reçu.",
                      field="token")
    if expires_at <= now:
        raise Expired("Ce lien a expiré. Demandez-en un nouveau.", field="token")


def check_can_decide(actor_role: Role | None, actor_status: MemberStatus | None) -> None:
    if actor_role != Role.SECRETARIAT or actor_status != MemberStatus.APPROVED:
        raise Forbidden("Seul le secrétariat du forum peut valider ou refuser une inscription.")


def check_decidable(status: MemberStatus) -> None:
    """Only members who verified their address await a decision; decisions are not silently redone."""
    if status == MemberStatus.PENDING_VERIFICATION:
        raise Conflict("Ce membre n'a pas encore confirmé son adresse électronique.")
    if status != MemberStatus.PENDING_APPROVAL:
        raise Conflict(f"Cette inscription a déjà été traitée (statut : {STATUS_LABELS[MemberStatus(status)].lower()}).")


def can_sign_in(status: MemberStatus) -> bool:
    """Who may hold a session (checked at sign-in and on every page, so an account that leaves these
    states is signed out everywhere at once)."""
    return status in (MemberStatus.PENDING_APPROVAL, MemberStatus.APPROVED, MemberStatus.REJECTED)


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def session_live(*, created_at: datetime, ended_at: datetime | None, max_age: int, now: datetime) -> bool:
    """A session lasts until it is ended, and never longer than `max_age` seconds after sign-in."""
    return ended_at is None and created_at + timedelta(seconds=max_age) > now
