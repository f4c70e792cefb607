"""Commands done once, through the real broker and databases of the running forum: the same request with
the same idempotency key, sent again or five times at once, schedules one session (one row, one event, one
leaf of the public record) and every answer is the first reply; another actor's key is their own; a refused
command frees its key; a key whose reply was lost answers « déjà enregistrée » instead of doing it again."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from forum_ouvert.launcher import Stack
from services.forum.models import ForumSession
from shared.clock import utcnow
from shared.contracts.common import ErrorCode
from shared.contracts.forum import CreateSession, GetSession, ListRsvps, SessionView, UpdateSession
from shared.contracts.minutes import ListEntries
from shared.idempotency import ALREADY_DONE, OTHER_DATA, CommandReply, Once
from shared.outbox import OutboxMessage
from shared.rpc import RpcClient, RpcError
from tests.forum.harness import session_request
from tests.web.test_web_sessions import ForumDb

pytestmark = pytest.mark.integration


def key() -> str:
    return str(uuid.uuid4())


def request(actor: str, title: str) -> CreateSession:
    return session_request(actor, title=title, now=utcnow().replace(second=0, microsecond=0))


def written(db: ForumDb, title: str) -> tuple[int, int]:
    """(sessions, outbox events) whose title holds `title`, read in the forum service's own tables."""
    with Session(db.engine) as tx:
        sessions = tx.exec(select(func.count()).select_from(ForumSession)
                           .where(col(ForumSession.title).contains(title))).one()
        events = tx.exec(select(func.count()).select_from(OutboxMessage)
                         .where(OutboxMessage.subject == "forum.session.scheduled",
                                col(OutboxMessage.payload).contains(title))).one()
    return int(sessions), int(events)


async def leaves(rpc: RpcClient, text: str) -> list[dict[str, Any]]:
    """The public record's entries whose record mentions `text`."""
    found, start = [], 0
    while entries := (await rpc(ListEntries(start=start, end=start + 1000))).entries:
        found += [e.record for e in entries if text in json.dumps(e.record, ensure_ascii=False)]
        start = entries[-1].index + 1
    return found


async def scheduled_leaves(rpc: RpcClient, secretariat: str, title: str) -> int:
    """Leaves of sessions titled `title`, once a session scheduled after them is in the record (the record
    takes the forum's events in order: whatever came before it is there too)."""
    marker = await rpc(request(secretariat, f"Repère {uuid.uuid4().hex}"))
    deadline = time.monotonic() + 60
    while not await leaves(rpc, marker.session_id):
        assert time.monotonic() < deadline, "the public record never took the marker session"
        await asyncio.sleep(0.2)
    return len([r for r in await leaves(rpc, title) if r["type"] == "session.scheduled"])


@pytest.fixture(scope="module")
async def other_secretariat(forum: Stack, rpc: RpcClient) -> str:
    """A second secretariat account, known to the forum service."""
    email = f"secretariat-{uuid.uuid4().hex[:8]}@tests.forum-ouvert.example"
    out = subprocess.run([sys.executable, "-m", "forum_ouvert.cli", "create-secretariat", email], check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "FORUM_DATABASE_URL": forum.database_urls["registry"],
                              "FORUM_DATA_DIR": str(forum.data_dir)})
    member_id = out.stdout.split("(id ", 1)[1].split(")", 1)[0]
    deadline = time.monotonic() + 30
    while True:  # "not found" once the forum knows the role, "forbidden" before
        try:
            await rpc(ListRsvps(actor_id=member_id, session_id=str(uuid.uuid4())))
        except RpcError as exc:
            if exc.code != ErrorCode.FORBIDDEN:
                return member_id
        assert time.monotonic() < deadline, "the second secretariat never reached the forum service"
        await asyncio.sleep(0.1)


async def test_the_same_key_twice_schedules_one_session_and_answers_the_first_reply(
        forum: Stack, rpc: RpcClient, secretariat: str) -> None:
    title = f"Plénière une fois {uuid.uuid4().hex[:8]}"
    req, k = request(secretariat, title), key()
    first = await rpc(req, idempotency_key=k)
    again = await rpc(req, idempotency_key=k)
    assert again == first
    assert written(ForumDb(forum), title) == (1, 1)
    assert await scheduled_leaves(rpc, secretariat, title) == 1

    # Without a key, the same request is a new command: the key is what makes it the same one.
    other = await rpc(req)
    assert other.session_id != first.session_id


async def test_five_at_once_with_one_key_schedule_one_session(forum: Stack, rpc: RpcClient, secretariat: str) -> None:
    title = f"Plénière cinq clics {uuid.uuid4().hex[:8]}"
    req, k = request(secretariat, title), key()
    replies: list[SessionView] = await asyncio.gather(*[rpc(req, idempotency_key=k) for _ in range(5)])
    assert len({r.session_id for r in replies}) == 1 and all(r == replies[0] for r in replies)
    assert written(ForumDb(forum), title) == (1, 1)
    assert await scheduled_leaves(rpc, secretariat, title) == 1


async def test_another_actor_with_the_same_key_gets_their_own_answer(
        forum: Stack, rpc: RpcClient, secretariat: str, other_secretariat: str) -> None:
    title = f"Plénière à deux mains {uuid.uuid4().hex[:8]}"
    k = key()
    mine = await rpc(request(secretariat, title), idempotency_key=k)
    theirs = await rpc(request(other_secretariat, title), idempotency_key=k)
    assert theirs.session_id != mine.session_id
    assert written(ForumDb(forum), title) == (2, 2)
    assert await rpc(request(secretariat, title), idempotency_key=k) == mine


async def test_the_same_key_with_other_data_is_refused(forum: Stack, rpc: RpcClient, secretariat: str) -> None:
    title = f"Plénière retouchée {uuid.uuid4().hex[:8]}"
    k = key()
    await rpc(request(secretariat, title), idempotency_key=k)
    with pytest.raises(RpcError) as refused:
        await rpc(request(secretariat, title + " (bis)"), idempotency_key=k)
    assert (refused.value.code, refused.value.error.message) == (ErrorCode.CONFLICT, OTHER_DATA)
    assert written(ForumDb(forum), title) == (1, 1)


async def test_a_refused_command_frees_its_key(forum: Stack, rpc: RpcClient, secretariat: str) -> None:
    created = await rpc(request(secretariat, f"Plénière à corriger {uuid.uuid4().hex[:8]}"))
    fields = created.model_dump(include={"title", "kind", "theme", "description", "starts_at", "ends_at", "place",
                                         "online_url", "capacity", "rsvp_opens_at", "rsvp_closes_at"})
    edit = UpdateSession.model_validate({**fields, "agenda": [a.text for a in created.agenda], "capacity": 80,
                                         "actor_id": secretariat, "session_id": created.session_id,
                                         "expected_revision": created.revision + 1})
    k = key()
    with pytest.raises(RpcError) as stale:  # a revision from the future: refused, nothing recorded
        await rpc(edit, idempotency_key=k)
    assert stale.value.code == ErrorCode.CONFLICT and stale.value.field == "expected_revision"
    with pytest.raises(RpcError):  # the same request again is refused again (not answered « done »)
        await rpc(edit, idempotency_key=k)

    fixed = edit.model_copy(update={"expected_revision": created.revision})
    updated = await rpc(fixed, idempotency_key=k)  # the corrected form, sent with the same token
    assert updated.capacity == 80 and updated.revision == created.revision + 1
    assert await rpc(fixed, idempotency_key=k) == updated
    assert (await rpc(GetSession(session_id=created.session_id))).revision == created.revision + 1


async def test_a_key_whose_reply_was_lost_is_not_done_again(forum: Stack, rpc: RpcClient, secretariat: str) -> None:
    """The work committed, then the process died before storing the reply: the repeat must not schedule a
    second session, and says so."""
    title = f"Plénière sans réponse {uuid.uuid4().hex[:8]}"
    req, k = request(secretariat, title), key()
    once = Once.of(req, k)
    db = ForumDb(forum)
    with Session(db.engine) as tx:
        tx.add(CommandReply(op=once.op, actor=once.actor, key=k, digest=once.digest, reply=None,
                            created_at=utcnow() - timedelta(minutes=10)))
        tx.commit()
    with pytest.raises(RpcError) as refused:
        await rpc(req, idempotency_key=k)
    assert (refused.value.code, refused.value.error.message) == (ErrorCode.CONFLICT, ALREADY_DONE)
    assert written(db, title) == (0, 0)


async def test_a_malformed_key_is_refused(rpc: RpcClient, secretariat: str) -> None:
    with pytest.raises(RpcError) as refused:
        await rpc(request(secretariat, "Plénière"), idempotency_key="x" * 65)
    assert refused.value.code == ErrorCode.INVALID and refused.value.field == "idempotency_key"
