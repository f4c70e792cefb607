"""The forum's central promise: a seat is never given twice.

500 approved members RSVP at once to a session of 100 seats, over the real broker, against the real
database (PostgreSQL with FORUM_TEST_DATABASE_URL, else SQLite): exactly 100 confirmed, 400
waitlisted with positions 1..400 in arrival order, every request answered. Then 30 confirmed
members withdraw at once: exactly the first 30 waitlisted are promoted.

"Arrival order" is the order in which the requests reached the seat lock: each waitlisted member
got a ticket under the lock, the position in their reply, and a timestamp taken under the lock; the
three orders must agree, with no gap and no duplicate.
"""
from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator

import pytest
from sqlmodel import select

from services.forum.models import ForumRsvp, ForumSession
from shared.contracts.common import ErrorCode
from shared.idempotency import CommandReply
from shared.rpc import RpcError
from shared.contracts.forum import (
    AnswerRsvp, GetSession, ListRsvps, RsvpConfirmed, RsvpPromoted, RsvpView, RsvpWaitlisted, RsvpWithdrawn,
    WithdrawRsvp,
)
from tests.forum.harness import ForumHarness, approved_members, rsvp_rush, running_forum

pytestmark = pytest.mark.integration
MEMBERS, CAPACITY, WITHDRAWING = 500, 100, 30


@pytest.fixture(scope="module")
async def h(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ForumHarness]:
    async with running_forum(tmp_path_factory.mktemp("forum-rush")) as harness:
        yield harness


async def rows(h: ForumHarness, session_id: str) -> list[ForumRsvp]:
    async with h.service.db.read() as tx:
        return list((await tx.exec(select(ForumRsvp).where(ForumRsvp.session_id == session_id))).all())


def check_allocation(rsvps: list[ForumRsvp], capacity: int, waiting: int) -> list[ForumRsvp]:
    """The database's own invariants; returns the waitlist in ticket order."""
    confirmed = [r for r in rsvps if r.state == "confirmed"]
    queue = sorted((r for r in rsvps if r.state == "waitlisted"), key=lambda r: r.waitlist_seq or 0)
    assert len(confirmed) == capacity, f"{len(confirmed)} seats given for {capacity}"
    assert len(queue) == waiting
    tickets = [r.waitlist_seq for r in queue]
    assert len(set(tickets)) == len(tickets), "two members share a waitlist ticket"
    stamps = [r.responded_at for r in queue]
    assert stamps == sorted(stamps), "waitlist tickets are not in arrival order"
    return queue


async def test_rsvp_rush_never_overbooks_and_promotes_in_order(h: ForumHarness) -> None:
    members = await approved_members(h, MEMBERS)
    session = await h.create_session(capacity=CAPACITY)
    sid = session.session_id

    async def attend(member_id: str) -> RsvpView:
        return await h.call(AnswerRsvp(actor_id=member_id, session_id=sid, answer="attend"), timeout=120)

    t0 = time.perf_counter()
    replies = await rsvp_rush(attend, members)
    rush_s = time.perf_counter() - t0
    failures = [r for r in replies if isinstance(r, BaseException)]
    assert not failures, f"{len(failures)} requests not answered, e.g. {failures[0]!r}"

    # Every request answered, exactly CAPACITY seats, the rest queued 1..N with no gap.
    confirmed = {r.member_id for r in replies if r.state == "confirmed"}
    position = {r.member_id: r.waitlist_position for r in replies if r.state == "waitlisted"}
    assert len(confirmed) == CAPACITY and len(position) == MEMBERS - CAPACITY
    assert sorted(position.values()) == list(range(1, MEMBERS - CAPACITY + 1))
    assert all(r.seats_left == 0 for r in replies if r.state == "waitlisted")
    assert sorted(r.seats_left for r in replies if r.state == "confirmed") == list(range(CAPACITY))

    # The database agrees: ticket order == reply positions == lock-time stamps.
    queue = check_allocation(await rows(h, sid), CAPACITY, MEMBERS - CAPACITY)
    assert [position[r.member_id] for r in queue] == list(range(1, MEMBERS - CAPACITY + 1))
    async with h.service.db.read() as tx:
        assert (await tx.get(ForumSession, sid)).waitlist_seq == MEMBERS - CAPACITY  # type: ignore[union-attr]

    listed = await h.call(ListRsvps(actor_id=await h.secretariat(), session_id=sid), timeout=30)
    assert {e.member_id for e in listed.confirmed} == confirmed
    assert [e.member_id for e in listed.waitlisted] == [r.member_id for r in queue]
    assert [e.waitlist_position for e in listed.waitlisted] == list(range(1, MEMBERS - CAPACITY + 1))
    view = await h.call(GetSession(session_id=sid, actor_id=queue[-1].member_id))
    assert (view.confirmed_count, view.waitlist_count, view.seats_left) == (CAPACITY, MEMBERS - CAPACITY, 0)
    assert view.my_rsvp and view.my_rsvp.waitlist_position == MEMBERS - CAPACITY
    assert len(await h.emitted(RsvpConfirmed, sid)) == CAPACITY
    assert sorted(e["position"] for e in await h.emitted(RsvpWaitlisted, sid)) == list(range(1, 401))

    # 30 confirmed members withdraw at once: exactly the first 30 waitlisted are promoted.
    leaving = random.Random(3).sample(sorted(confirmed), WITHDRAWING)
    first = [r.member_id for r in queue[:WITHDRAWING]]

    async def leave(member_id: str) -> RsvpView:
        return await h.call(WithdrawRsvp(actor_id=member_id, session_id=sid), timeout=120)

    t1 = time.perf_counter()
    out = await rsvp_rush(leave, leaving)
    withdraw_s = time.perf_counter() - t1
    assert not [r for r in out if isinstance(r, BaseException)]
    assert all(r.state == "withdrawn" and r.seats_left == 0 for r in out)

    after = await rows(h, sid)
    rest = check_allocation(after, CAPACITY, MEMBERS - CAPACITY - WITHDRAWING)
    now_confirmed = {r.member_id for r in after if r.state == "confirmed"}
    assert now_confirmed == (confirmed - set(leaving)) | set(first)
    assert [r.member_id for r in rest] == [r.member_id for r in queue[WITHDRAWING:]]  # the queue kept its order
    promoted = await h.emitted(RsvpPromoted, sid)
    assert [e["member_id"] for e in promoted] == first  # promoted one by one, head first
    assert {e["cause"] for e in promoted} == {"seat_freed"}
    assert sorted(e["member_id"] for e in await h.emitted(RsvpWithdrawn, sid)) == sorted(leaving)
    moved_up = await h.call(GetSession(session_id=sid, actor_id=rest[0].member_id))
    assert moved_up.my_rsvp and moved_up.my_rsvp.waitlist_position == 1

    print(f"\n{MEMBERS} concurrent RSVPs answered in {rush_s:.2f}s ({MEMBERS / rush_s:.0f}/s); "
          f"{WITHDRAWING} concurrent withdrawals in {withdraw_s:.2f}s [{h.service.db.engine.dialect.name}]")


async def test_the_same_member_answering_at_once_gets_one_place(h: ForumHarness) -> None:
    [member] = await approved_members(h, 1)
    sid = (await h.create_session(capacity=1)).session_id

    async def attend(_: str) -> RsvpView:
        return await h.call(AnswerRsvp(actor_id=member, session_id=sid, answer="attend"))

    replies = await rsvp_rush(attend, [member] * 10)
    ok = [r for r in replies if isinstance(r, RsvpView)]
    refused = [r for r in replies if not isinstance(r, RsvpView)]
    assert len(ok) == 1 and ok[0].state == "confirmed"
    assert len(refused) == 9 and all(getattr(r, "code", None) == "conflict" for r in refused), refused
    assert len(await rows(h, sid)) == 1 and len(await h.emitted(RsvpConfirmed, sid)) == 1


async def test_answers_decided_together_keep_each_request_apart(h: ForumHarness) -> None:
    """« Je participe » answers to one session are decided in groups (`rsvp_desk`): within one burst, a repeat
    of a form gets the first reply, a member the rules refuse gets their own error and leaves no trace, and
    the others are seated or queued as if each had come alone."""
    members = await approved_members(h, 6)
    outsider = await h.register()  # registered, not approved
    sid = (await h.create_session(capacity=3)).session_id

    async def attend(member_id: str, key: str) -> RsvpView:
        return await h.rpc(AnswerRsvp(actor_id=member_id, session_id=sid, answer="attend"), timeout=60,
                           idempotency_key=key)

    burst = [(m, f"form-{i:04d}") for i, m in enumerate(members)]
    burst += [(members[0], "form-0000")] * 3 + [(outsider, "form-outsider")]
    random.Random(5).shuffle(burst)
    replies = await rsvp_rush(lambda pair: attend(*pair), burst)  # type: ignore[arg-type]
    by_request = dict(zip([f"{m}/{k}" for m, k in burst], replies, strict=False))
    refused = by_request.pop(f"{outsider}/form-outsider")
    assert isinstance(refused, RpcError) and refused.code == ErrorCode.FORBIDDEN, refused
    first = [r for (m, k), r in zip(burst, replies, strict=True) if m == members[0]]
    assert all(isinstance(r, RsvpView) for r in first), first
    assert len({r.model_dump_json() for r in first}) == 1, "a repeat of the form got another reply"
    assert not [r for r in replies if isinstance(r, BaseException) and r is not refused]

    stored = await rows(h, sid)
    assert sorted(r.member_id for r in stored) == sorted(members)  # one RSVP each, none for the outsider
    check_allocation(stored, 3, 3)
    async with h.service.db.read() as tx:
        keys = (await tx.exec(select(CommandReply).where(CommandReply.op == AnswerRsvp.OP))).all()
    mine = {k.key: k for k in keys if k.key.startswith("form-")}
    assert "form-outsider" not in mine  # a refused request gives its key back
    assert all(mine[f"form-{i:04d}"].reply for i in range(6)), "a reply was not stored with its command"
