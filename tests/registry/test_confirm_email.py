"""Confirming an address signs in: `CheckEmailLink` (the link's page) spends nothing, `ConfirmEmail` spends the
link and opens a session in one go, once; and the secretariat's dashboard reads registrations oldest first.
Through the real broker, registry and notifications processes, database and SMTP catcher."""
from __future__ import annotations

import asyncio

import pytest

from forum_ouvert.launcher import Stack
from shared.contracts.common import ErrorCode
from shared.contracts.registry import (
    CheckEmailLink, CheckSession, ConfirmEmail, EndSession, GetMember, ListMembers, MemberStatus, RedeemSignIn,
    VerifyEmail,
)
from shared.rpc import RpcClient, RpcError
from tests.registry.test_registry import expect_error, new_email, register, token_from_mail

pytestmark = pytest.mark.integration


async def test_checking_spends_nothing_and_confirming_signs_in_once(rpc: RpcClient, forum: Stack) -> None:
    email = new_email()
    reg = await register(rpc, email)
    token = await asyncio.to_thread(token_from_mail, forum, email, "Confirmez", "/inscription/verifier")

    for _ in range(3):  # a mail scanner, a preview, the person: opening the link changes nothing
        assert (await rpc(CheckEmailLink(token=token))).accepted
    assert (await rpc(GetMember(member_id=reg.member_id))).status == MemberStatus.PENDING_VERIFICATION

    signed_in = await rpc(ConfirmEmail(token=token))
    assert signed_in.member.member_id == reg.member_id
    assert signed_in.member.status == MemberStatus.PENDING_APPROVAL and signed_in.member.verified_at is not None
    live = await rpc(CheckSession(member_id=reg.member_id, session=signed_in.session))
    assert live.status == MemberStatus.PENDING_APPROVAL

    # Once: the link neither checks, confirms nor signs in again, and it is no sign-in link either.
    await expect_error(rpc(CheckEmailLink(token=token)), ErrorCode.EXPIRED, "token")
    await expect_error(rpc(ConfirmEmail(token=token)), ErrorCode.EXPIRED, "token")
    await expect_error(rpc(VerifyEmail(token=token)), ErrorCode.EXPIRED, "token")
    await expect_error(rpc(RedeemSignIn(token=token)), ErrorCode.INVALID, "token")
    await expect_error(rpc(CheckEmailLink(token="x" * 43)), ErrorCode.NOT_FOUND, "token")
    await expect_error(rpc(ConfirmEmail(token="x" * 43)), ErrorCode.NOT_FOUND, "token")

    # Its session ends like any other.
    await rpc(EndSession(member_id=reg.member_id, session=signed_in.session))
    await expect_error(rpc(CheckSession(member_id=reg.member_id, session=signed_in.session)), ErrorCode.NOT_FOUND)


async def test_a_newer_confirmation_link_makes_the_older_one_useless(rpc: RpcClient, forum: Stack) -> None:
    email = new_email()
    await register(rpc, email)
    older = await asyncio.to_thread(token_from_mail, forum, email, "Confirmez", "/inscription/verifier")
    await register(rpc, email)  # registering again mails a new confirmation link
    newer = await asyncio.to_thread(token_from_mail, forum, email, "Confirmez", "/inscription/verifier", 2)
    assert newer != older
    error = await expect_error(rpc(ConfirmEmail(token=older)), ErrorCode.EXPIRED, "token")
    assert "plus récent" in error.error.message
    assert (await rpc(ConfirmEmail(token=newer))).member.status == MemberStatus.PENDING_APPROVAL


async def test_registrations_awaiting_approval_oldest_first(rpc: RpcClient, forum: Stack, secretariat: str) -> None:
    ids = []
    for _ in range(2):
        email = new_email()
        ids.append((await register(rpc, email)).member_id)
        token = await asyncio.to_thread(token_from_mail, forum, email, "Confirmez", "/inscription/verifier")
        await rpc(VerifyEmail(token=token))
    status = MemberStatus.PENDING_APPROVAL
    newest = await rpc(ListMembers(actor_id=secretariat, status=status, limit=500))
    tail = max(0, (newest.total or 0) - 500)  # these two are the newest: at the end of the oldest-first list
    oldest = await rpc(ListMembers(actor_id=secretariat, status=status, limit=500, offset=tail, oldest_first=True))
    assert oldest.total == newest.total
    order = [m.member_id for m in oldest.members if m.member_id in ids]
    assert order == ids  # registered first, listed first
    assert [m.member_id for m in newest.members if m.member_id in ids] == ids[::-1]


async def test_session_checks_asked_together_each_get_their_own_answer(rpc: RpcClient, forum: Stack) -> None:
    """Checks that arrive together are answered by one query (`sign_in._check_group`): each still gets its own
    answer — a live session its member, an ended one, another member's and an unknown one NotFound."""
    sessions = []
    for _ in range(3):
        email = new_email()
        reg = await register(rpc, email)
        token = await asyncio.to_thread(token_from_mail, forum, email, "Confirmez", "/inscription/verifier")
        sessions.append((reg.member_id, (await rpc(ConfirmEmail(token=token))).session))
    (alice, alice_s), (bob, bob_s), (carol, carol_s) = sessions
    await rpc(EndSession(member_id=carol, session=carol_s))
    asked = [CheckSession(member_id=alice, session=alice_s), CheckSession(member_id=bob, session=bob_s),
             CheckSession(member_id=carol, session=carol_s), CheckSession(member_id=alice, session=bob_s),
             CheckSession(member_id=bob, session="y" * 43)] * 12
    answers = await asyncio.gather(*[rpc(c) for c in asked], return_exceptions=True)
    for check, answer in zip(asked, answers, strict=True):
        live = (check.member_id, check.session) in {(alice, alice_s), (bob, bob_s)}
        if live:
            assert not isinstance(answer, BaseException) and answer.member_id == check.member_id, answer
        else:
            assert isinstance(answer, RpcError) and answer.code == ErrorCode.NOT_FOUND, answer
