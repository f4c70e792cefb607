"""Registry commands through the real broker, the real registry and notifications processes, the
real database and the real SMTP catcher."""
from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import bindparam, create_engine, text

from forum_ouvert.launcher import Stack
from shared.contracts.common import ErrorCode
from shared.contracts.notifications import ExportNotificationsData
from shared.contracts.registry import (
    ApproveMember, EraseMember, ExportData, GetMember, RedeemSignIn, Register, Registered, RejectMember,
    RequestSignIn, UpdateProfile, VerifyEmail,
)
from shared.clock import utcnow
from shared.db import sync_url
from shared.rpc import RpcClient, RpcError
from tests.support import caught_mail, link_in

pytestmark = pytest.mark.integration


def new_email() -> str:
    return f"membre-{uuid.uuid4().hex[:10]}@example.org"


async def register(rpc: RpcClient, email: str, college: str = "citizen") -> Registered:
    return await rpc(Register(full_name="Jeanne Test", email=email, organisation="", college=college,
                              charter_accepted=True))


def token_from_mail(forum: Stack, email: str, subject: str, path: str, count: int = 1) -> str:
    mails = caught_mail(forum.mail_dir, email, subject, count=count)
    assert len(mails) >= count, f"expected {count} '{subject}' e-mail(s) to {email}"
    return link_in(mails[0], path).split("token=", 1)[1]


async def verified_member(rpc: RpcClient, forum: Stack) -> tuple[str, str]:
    email = new_email()
    reg = await register(rpc, email)
    token = await asyncio.to_thread(token_from_mail, forum, email, "Confirmez", "/inscription/verifier")
    await rpc(VerifyEmail(token=token))
    return reg.member_id, email


async def raw(rpc: RpcClient, op: str, payload: dict) -> dict:
    """Send a request the typed client would refuse to build, as a buggy or hostile caller could."""
    msg = await rpc.broker.request(payload, f"rpc.registry.{op}", timeout=5)
    reply = await msg.decode()
    assert reply["ok"] is False
    return reply


async def expect_error(coro, code: ErrorCode, field: str | None = None) -> RpcError:  # noqa: ANN001
    with pytest.raises(RpcError) as exc:
        await coro
    assert exc.value.code == code, exc.value.error
    if field:
        assert exc.value.field == field
    return exc.value


async def test_register_verify_sign_in_and_approval(rpc: RpcClient, forum: Stack, secretariat: str) -> None:
    email = new_email()
    reg = await register(rpc, email, "civil_society")
    assert reg.status == "pending_verification"
    token = await asyncio.to_thread(token_from_mail, forum, email, "Confirmez", "/inscription/verifier")
    member = await rpc(VerifyEmail(token=token))
    assert member.status == "pending_approval" and member.verified_at is not None

    await rpc(RequestSignIn(email=email.upper()))
    sign_in = await asyncio.to_thread(token_from_mail, forum, email, "connexion", "/connexion/lien")
    me = await rpc(RedeemSignIn(token=sign_in))
    assert me.member.member_id == reg.member_id and len(me.session) >= 32

    approved = await rpc(ApproveMember(actor_id=secretariat, member_id=reg.member_id))
    assert approved.status == "approved"
    mail = (await asyncio.to_thread(caught_mail, forum.mail_dir, email, "validée"))[0]
    assert mail.is_multipart() and mail.get_body(("html",)) is not None and mail.get_body(("plain",)) is not None
    assert mail["Message-ID"] and "Jeanne Test" in mail.get_body(("plain",)).get_content()


async def test_rejection_carries_the_reason(rpc: RpcClient, forum: Stack, secretariat: str) -> None:
    member_id, email = await verified_member(rpc, forum)
    reply = await raw(rpc, "reject-member", {"actor_id": secretariat, "member_id": member_id, "reason": " "})
    assert reply["error"]["code"] == "invalid" and reply["error"]["field"] == "reason"
    r = await rpc(RejectMember(actor_id=secretariat, member_id=member_id,
                               reason="Organisation hors du périmètre du forum."))
    assert r.status == "rejected"
    mail = (await asyncio.to_thread(caught_mail, forum.mail_dir, email, "pas été validée"))[0]
    assert "hors du périmètre" in mail.get_body(("plain",)).get_content()
    # A decision is not silently redone.
    await expect_error(rpc(ApproveMember(actor_id=secretariat, member_id=member_id)), ErrorCode.CONFLICT)


async def test_registering_again_makes_no_second_account_even_when_concurrent(rpc: RpcClient, forum: Stack) -> None:
    """A known address is not refused (the answer would tell who is a member): its account is the one
    registered, and each registration mails its owner a verification link, of which only the latest works."""
    email = new_email()
    results = await asyncio.gather(*[register(rpc, email) for _ in range(8)], return_exceptions=True)
    assert all(isinstance(r, Registered) for r in results), results
    assert len({r.member_id for r in results}) == 1  # type: ignore[union-attr]
    mails = await asyncio.to_thread(caught_mail, forum.mail_dir, email, "Confirmez", count=8)
    assert len(mails) == 8
    tokens = [link_in(m, "/inscription/verifier").split("token=", 1)[1] for m in mails]
    verified = []
    for token in tokens:
        try:
            verified.append(await rpc(VerifyEmail(token=token)))
        except RpcError as exc:
            assert exc.code == ErrorCode.EXPIRED, exc.error
    assert len(verified) == 1 and verified[0].member_id == results[0].member_id  # type: ignore[union-attr]


async def test_a_burst_of_registrations_is_written_together_each_as_if_alone(rpc: RpcClient, forum: Stack) -> None:
    """Registrations that arrive together share transactions (`members._register_group`): each new address
    gets its own account and link, an address given twice in the burst one account (the later link
    the one that works), and a known address no second account."""
    known = new_email()
    first = await register(rpc, known)
    twice = new_email()
    fresh = [new_email() for _ in range(30)]
    burst = [*fresh[:15], twice, known, *fresh[15:], twice]
    results = await asyncio.gather(*[register(rpc, e) for e in burst])
    by_email: dict[str, set[str]] = {}
    for email, r in zip(burst, results, strict=True):
        by_email.setdefault(email, set()).add(r.member_id)
    assert all(len(ids) == 1 for ids in by_email.values()), by_email
    assert by_email[known] == {first.member_id}
    assert len({next(iter(ids)) for ids in by_email.values()}) == len(by_email)  # one account per address

    def stored() -> tuple[list[tuple[str, str]], int]:
        engine = create_engine(sync_url(forum.database_urls["registry"]))
        with engine.connect() as c:
            rows = [(r[0], str(r[1])) for r in c.execute(text(
                "SELECT email, %s FROM member WHERE email IN :emails" % (
                    "xmin" if engine.dialect.name == "postgresql" else "'-'")).bindparams(
                bindparam("emails", expanding=True)), {"emails": [*fresh, twice]})]
            links = c.execute(text("SELECT count(*) FROM email_token t JOIN member m ON m.id = t.member_id "
                                   "WHERE m.email = :e AND t.superseded_at IS NULL"), {"e": twice}).scalar_one()
        engine.dispose()
        return rows, links

    rows, live_links = await asyncio.to_thread(stored)
    assert sorted(e for e, _ in rows) == sorted([*fresh, twice])
    assert live_links == 1  # the address given twice: only its latest link works
    if forum.database_urls["registry"].startswith("postgresql"):
        assert len({xid for _, xid in rows}) < len(rows)  # some were inserted by one transaction
    for email in fresh[:3]:
        mails = await asyncio.to_thread(caught_mail, forum.mail_dir, email, "Confirmez")
        assert len(mails) == 1
    assert len(await asyncio.to_thread(caught_mail, forum.mail_dir, twice, "Confirmez", count=2)) == 2


async def test_two_registry_processes_registering_the_same_addresses_make_one_account_each(
        rpc: RpcClient, forum: Stack) -> None:
    """Each registry process groups the registrations it receives; two processes writing groups with the same
    new addresses meet on the address's unique index, and the losing group is written again one
    registration at a time (`members._register_group`): every request is answered, each address has one
    account, and every answer for it names that account."""
    if not forum.database_urls["registry"].startswith("postgresql"):
        pytest.skip("several processes of a service share PostgreSQL, not a SQLite file (README)")
    second = forum.add_instance("registry")
    logs = [forum.log_dir / "registry.log", forum.log_dir / f"{second}.log"]

    def fallbacks() -> int:
        return sum(p.read_text().count("registration group failed") for p in logs if p.exists())

    try:
        await asyncio.to_thread(forum.wait_instance, second)
        before = fallbacks()
        for _ in range(10):  # the two processes must receive parts of one burst at the same moment
            emails = [new_email() for _ in range(25)]
            burst = [e for _ in range(4) for e in emails]  # each address four times, spread over the burst
            results = await asyncio.gather(*[register(rpc, e) for e in burst])
            accounts: dict[str, set[str]] = {}
            for email, r in zip(burst, results, strict=True):
                accounts.setdefault(email, set()).add(r.member_id)
            assert all(len(ids) == 1 for ids in accounts.values()), accounts
            if fallbacks() > before:
                break
        assert fallbacks() > before, "no two groups ever collided: the fallback was not exercised"
    finally:
        await asyncio.to_thread(forum.remove_instance, second)


async def test_bad_registration_input_writes_nothing(rpc: RpcClient, forum: Stack) -> None:
    email = new_email()
    for payload, field in [
        ({"full_name": "Jeanne", "email": "pas-une-adresse", "college": "citizen", "charter_accepted": True}, "email"),
        ({"email": email, "college": "citizen", "charter_accepted": True}, "full_name"),
        ({"full_name": "J" * 200, "email": email, "college": "citizen", "charter_accepted": True}, "full_name"),
        ({"full_name": "Jeanne", "email": email, "college": "lobby", "charter_accepted": True}, "college"),
        ({"full_name": "Jeanne", "email": email, "college": "citizen", "charter_accepted": False}, "charter_accepted"),
    ]:
        reply = await raw(rpc, "register", payload)
        assert reply["ok"] is False and reply["error"]["code"] == "invalid" and reply["error"]["field"] == field
    # Nothing was stored: a sign-in request for that address sends nothing.
    await rpc(RequestSignIn(email=email))
    await asyncio.sleep(1.5)
    assert await asyncio.to_thread(caught_mail, forum.mail_dir, email, "", 0) == []


def _expire_tokens(forum: Stack, member_id: str) -> None:
    engine = create_engine(sync_url(forum.database_urls["registry"]))
    with engine.begin() as c:
        c.execute(text("UPDATE email_token SET expires_at = :t WHERE member_id = :m"),
                  {"t": utcnow() - timedelta(minutes=1), "m": member_id})
    engine.dispose()


async def test_expired_reused_and_unknown_tokens(rpc: RpcClient, forum: Stack) -> None:
    email = new_email()
    reg = await register(rpc, email)
    token = await asyncio.to_thread(token_from_mail, forum, email, "Confirmez", "/inscription/verifier")
    await asyncio.to_thread(_expire_tokens, forum, reg.member_id)
    await expect_error(rpc(VerifyEmail(token=token)), ErrorCode.EXPIRED, "token")
    me = await rpc(GetMember(member_id=reg.member_id))
    assert me.status == "pending_verification"  # nothing half-done
    # A new link is sent by the sign-in form to an unverified member; it works once.
    await rpc(RequestSignIn(email=email))
    fresh = await asyncio.to_thread(token_from_mail, forum, email, "Confirmez", "/inscription/verifier", 2)
    assert fresh != token  # caught_mail lists the newest first
    await rpc(VerifyEmail(token=fresh))
    await expect_error(rpc(VerifyEmail(token=fresh)), ErrorCode.EXPIRED, "token")
    await expect_error(rpc(VerifyEmail(token="x" * 43)), ErrorCode.NOT_FOUND, "token")
    await expect_error(rpc(RedeemSignIn(token=fresh)), ErrorCode.INVALID, "token")


async def test_only_the_secretariat_decides(rpc: RpcClient, forum: Stack, secretariat: str) -> None:
    member_id, _ = await verified_member(rpc, forum)
    other_id, _ = await verified_member(rpc, forum)
    await expect_error(rpc(ApproveMember(actor_id=other_id, member_id=member_id)), ErrorCode.FORBIDDEN)
    await expect_error(rpc(ApproveMember(actor_id=secretariat, member_id=str(uuid.uuid4()))),
                       ErrorCode.NOT_FOUND, "member_id")
    me = await rpc(GetMember(member_id=member_id))
    assert me.status == "pending_approval"


async def test_unverified_member_cannot_be_approved(rpc: RpcClient, forum: Stack, secretariat: str) -> None:
    reg = await register(rpc, new_email())
    await expect_error(rpc(ApproveMember(actor_id=secretariat, member_id=reg.member_id)), ErrorCode.CONFLICT)


async def test_profile_export_and_erasure(rpc: RpcClient, forum: Stack) -> None:
    member_id, email = await verified_member(rpc, forum)
    updated = await rpc(UpdateProfile(actor_id=member_id, full_name="Jeanne Nouvelle", organisation="Collectif"))
    assert updated.full_name == "Jeanne Nouvelle"
    exported = await rpc(ExportData(actor_id=member_id))
    assert exported.data["member"]["email"] == email and exported.data["email_links"]
    for _ in range(100):  # notifications learns the contact from another consumer's event: give it a moment
        notif = (await rpc(ExportNotificationsData(actor_id=member_id))).data
        if notif["contact"]:
            break
        await asyncio.sleep(0.1)
    assert notif["contact"] and notif["contact"]["email"] == email and notif["emails"]

    await rpc(EraseMember(actor_id=member_id))
    await expect_error(rpc(GetMember(member_id=member_id)), ErrorCode.NOT_FOUND)
    engine = create_engine(sync_url(forum.database_urls["registry"]))
    with engine.connect() as c:
        row = c.execute(text("SELECT full_name, email, organisation, public_id, status FROM member WHERE id = :m"),
                        {"m": member_id}).one()
    engine.dispose()
    assert row[0] == "" and row[1] is None and row[2] == "" and row[3] and row[4] == "erased"

    async def notifications_forgot() -> bool:
        n = (await rpc(ExportNotificationsData(actor_id=member_id))).data
        # Nothing left to send either: a redacted e-mail still pending could never leave.
        return n["contact"] is None and all(e["to"] == "" and e["status"] != "queued" for e in n["emails"])

    for _ in range(100):
        if await notifications_forgot():
            break
        await asyncio.sleep(0.1)
    assert await notifications_forgot()
    # The address is free again.
    assert (await register(rpc, email)).status == "pending_verification"


async def test_promoting_an_existing_member_reaches_the_forum(rpc: RpcClient, forum: Stack) -> None:
    """create-secretariat on an existing account emits registry.member.role_granted; the forum service,
    which only learns members from events, then lets that account schedule sessions."""
    import os
    import subprocess
    import sys
    from datetime import UTC, datetime

    from shared.contracts.forum import CreateSession

    member_id, email = await verified_member(rpc, forum)
    start = datetime.now(UTC) + timedelta(days=30)
    request = CreateSession(actor_id=member_id, title="Séance créée par un membre promu", kind="plenary",
                            starts_at=start, ends_at=start + timedelta(hours=2), place="CESE", capacity=10,
                            rsvp_opens_at=start - timedelta(days=10), rsvp_closes_at=start - timedelta(days=1))
    await expect_error(rpc(request), ErrorCode.FORBIDDEN)
    await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "forum_ouvert.cli", "create-secretariat", email],
                            check=True, capture_output=True,
                            env={**os.environ, "FORUM_DATABASE_URL": forum.database_urls["registry"],
                                 "FORUM_DATA_DIR": str(forum.data_dir)})
    for _ in range(100):
        try:
            created = await rpc(request)
            break
        except RpcError as exc:
            assert exc.code == ErrorCode.FORBIDDEN
            await asyncio.sleep(0.1)
    else:
        raise AssertionError("the forum never learnt of the promotion")
    assert created.title == request.title
