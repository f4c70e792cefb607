"""The forum service as its own process beside the real registry: it learns who is secretariat and
who is approved only from registry events, and releases an erased member's seat."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from forum_ouvert.launcher import Stack
from shared.contracts.common import ErrorCode
from shared.contracts.forum import AnswerRsvp, GetSession
from shared.contracts.registry import ApproveMember, EraseMember, Register, VerifyEmail
from shared.rpc import RpcClient, RpcError
from tests.forum.harness import session_request
from tests.support import caught_mail, link_in

pytestmark = pytest.mark.integration
T = TypeVar("T")


async def eventually(call: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
    """Retry while the forum has not yet heard of the member (the events are on their way)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await call()
        except RpcError as exc:
            if exc.code != ErrorCode.FORBIDDEN or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.2)


async def approved_member(rpc: RpcClient, forum: Stack, secretariat: str) -> str:
    email = f"rsvp-{uuid.uuid4().hex[:10]}@example.org"
    reg = await rpc(Register(full_name="Lou Garnier", email=email, organisation="", college="citizen",
                             charter_accepted=True))
    mails = await asyncio.to_thread(caught_mail, forum.mail_dir, email, "Confirmez", 60)
    assert mails, f"no verification e-mail to {email}"
    token = link_in(mails[0], "/inscription/verifier").split("token=", 1)[1]
    await rpc(VerifyEmail(token=token))
    await rpc(ApproveMember(actor_id=secretariat, member_id=reg.member_id))
    return reg.member_id


async def test_forum_learns_members_from_the_registry(rpc: RpcClient, forum: Stack, secretariat: str) -> None:
    session = await eventually(lambda: rpc(session_request(secretariat, capacity=1)))
    member = await approved_member(rpc, forum, secretariat)
    mine = await eventually(lambda: rpc(AnswerRsvp(actor_id=member, session_id=session.session_id, answer="attend")))
    assert mine.state == "confirmed" and mine.seats_left == 0

    await rpc(EraseMember(actor_id=member))
    deadline = asyncio.get_running_loop().time() + 30
    while (await rpc(GetSession(session_id=session.session_id))).confirmed_count != 0:
        assert asyncio.get_running_loop().time() < deadline, "the erased member's seat was not released"
        await asyncio.sleep(0.2)
