"""The forum service in-process against a real nats-server and a real database (PostgreSQL when
FORUM_TEST_DATABASE_URL is set, else SQLite), driven like the web front drives it: typed requests
over NATS request/reply. Approved members and secretariat accounts are made the only way the forum
learns of them: registry events published to JetStream.

The forum test modules import `ForumHarness` and `running_forum`; the web tests build their
sessions with `session_request`. `rsvp_rush` takes any "answer" callable, so the same rush can go
over NATS or through the web front.
"""
from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import nats
import pytest
from faststream import TestApp
from faststream.nats import NatsBroker
from pydantic import BaseModel
from sqlalchemy import func
from sqlmodel import col, select

from services.forum.models import ForumMember, MemberStanding
from services.forum.service import SERVICE
from shared.contracts.common import ErrorBody, ErrorCode, Request
from shared.contracts.forum import CreateSession, SessionView
from shared.contracts.registry import College, MemberApproved, MemberRegistered, Role
from shared.contracts.envelope import EventData, make_event
from shared.clock import utcnow
from shared.migrations import upgrade
from shared.outbox import OutboxMessage
from shared.rpc import RpcClient, RpcError
from shared.service import Service
from shared.settings import Settings
from tests.support import database_urls, drop_schemas, nats_server

R = TypeVar("R", bound=BaseModel)


class ForumHarness:
    def __init__(self, service: Service, js: Any, rpc: RpcClient) -> None:
        self.service = service
        self.js = js
        self.rpc = rpc
        self._secretariat: str | None = None

    # ------------------------------------------------------------ registry events
    async def publish(self, data: EventData) -> None:
        env = make_event(data, producer="registry")
        await self.js.publish(data.TYPE, env.model_dump_json().encode(), headers={"Nats-Msg-Id": str(env.event_id)})

    async def wait_members(self, member_ids: list[str], standing: str = MemberStanding.APPROVED,
                           timeout: float = 60) -> None:
        """Until the forum's projection shows every member with that standing."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            async with self.service.db.read() as tx:
                n = (await tx.exec(select(func.count()).select_from(ForumMember).where(
                    ForumMember.standing == standing,
                    col(ForumMember.member_id).in_(member_ids)))).one()
            if n == len(set(member_ids)):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"projection has {n}/{len(member_ids)} members '{standing}'")
            await asyncio.sleep(0.05)

    async def register(self, college: College | None = College.CITIZEN, role: Role = Role.MEMBER,
                       name: str = "Camille Martin") -> str:
        """A registered (not approved) member: the registry's `registry.member.registered`."""
        member_id = str(uuid.uuid4())
        await self.publish(MemberRegistered(member_id=member_id, public_id=uuid.uuid4().hex[:16], full_name=name,
                                            email=f"{member_id}@example.org", organisation="Association test",
                                            college=college, role=role))
        await self.wait_members([member_id], MemberStanding.APPROVED if role == Role.SECRETARIAT
                                else MemberStanding.REGISTERED)
        return member_id

    async def member(self, college: College = College.CITIZEN, name: str = "Camille Martin") -> str:
        """An approved member: registered, then approved by the secretariat."""
        member_id = await self.register(college, name=name)
        await self.publish(MemberApproved(member_id=member_id, public_id=uuid.uuid4().hex[:16], college=college))
        await self.wait_members([member_id])
        return member_id

    async def secretariat(self) -> str:
        if self._secretariat is None:
            self._secretariat = await self.register(None, Role.SECRETARIAT, name="Secrétariat CESE")
        return self._secretariat

    # ------------------------------------------------------------ requests
    async def call(self, request: Request[R], timeout: float | None = None) -> R:
        return await self.rpc(request, timeout=timeout)

    async def error(self, request: Request[Any], code: ErrorCode, field: str | None = None) -> RpcError:
        """The call fails with that typed error."""
        with pytest.raises(RpcError) as exc:
            await self.call(request)
        return _expect(exc.value, code, field)

    async def error_raw(self, op: type[Request[Any]], payload: dict[str, Any], code: ErrorCode,
                        field: str | None = None) -> RpcError:
        """`payload` sent as is to the operation's subject, as a buggy client could, fails with that
        typed error."""
        msg = await self.rpc.broker.request(payload, op.subject(), timeout=10)
        body = await msg.decode()
        assert body["ok"] is False, body
        return _expect(RpcError(ErrorBody(**body["error"])), code, field)

    async def create_session(self, *, now: datetime | None = None, **overrides: Any) -> SessionView:
        """A session whose RSVPs are open now (opened an hour ago, close in an hour, starts in two)."""
        return await self.call(session_request(await self.secretariat(), now=now, **overrides))

    # ------------------------------------------------------------ what was emitted
    async def emitted(self, event: type[EventData], session_id: str | None = None) -> list[dict[str, Any]]:
        """Data of the events committed to the outbox (the source of truth for what is published)."""
        async with self.service.db.read() as tx:
            rows = (await tx.exec(select(OutboxMessage).where(OutboxMessage.subject == event.TYPE)
                                  .order_by(OutboxMessage.id))).all()  # type: ignore[arg-type]
        datas = [json.loads(r.payload)["data"] for r in rows]
        if session_id is None:
            return datas
        return [d for d in datas if d.get("session_id", d.get("session", {}).get("session_id")) == session_id]


def _expect(err: RpcError, code: ErrorCode, field: str | None) -> RpcError:
    assert err.code == code, err.error
    if field is not None:
        assert err.field == field, err.error
    return err


def session_request(actor_id: str, *, now: datetime | None = None, **overrides: Any) -> CreateSession:
    return CreateSession.model_validate(session_fields(actor_id, now=now) | overrides)


def session_fields(actor_id: str, *, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    return dict(actor_id=actor_id, title="Séance plénière de rentrée", kind="plenary", theme=None,
                description="Point d'étape du plan d'action.", starts_at=now + timedelta(hours=2),
                ends_at=now + timedelta(hours=4), place="CESE, salle Hémicycle, 9 place d'Iéna, Paris",
                online_url="https://visio.example.org/pleniere", capacity=50,
                rsvp_opens_at=now - timedelta(hours=1), rsvp_closes_at=now + timedelta(hours=1),
                agenda=["Accueil", "Bilan des engagements", "Questions diverses"])


@asynccontextmanager
async def running_forum(tmp: Path, label: str | None = None) -> AsyncIterator[ForumHarness]:
    """A fresh database (migrated) and a fresh nats-server; the forum service running in this process."""
    urls = database_urls(tmp, label or f"fo{uuid.uuid4().hex[:6]}")
    await asyncio.to_thread(upgrade, "forum", urls["forum"])
    try:
        with nats_server() as url:
            settings = Settings(nats_url=url, database_url=urls["forum"], data_dir=tmp, outbox_poll_interval=0.2,
                                consumer_backoff=[0.2, 0.5], consumer_max_deliver=6, log_level="WARNING")
            service = SERVICE.build(settings)
            async with TestApp(service.app):
                nc = await nats.connect(url)
                async with NatsBroker(url) as client:
                    yield ForumHarness(service, nc.jetstream(), RpcClient(client, timeout=30))
                await nc.close()
    finally:
        drop_schemas(urls)


# ---------------------------------------------------------------- the RSVP rush, reusable
async def approved_members(h: ForumHarness, n: int, colleges: tuple[College, ...] = tuple(College)) -> list[str]:
    """`n` approved members, made by publishing `registry.member.approved` events."""
    ids = [str(uuid.uuid4()) for _ in range(n)]
    await asyncio.gather(*[h.publish(MemberApproved(member_id=m, public_id=uuid.uuid4().hex[:16],
                                                    college=colleges[i % len(colleges)]))
                           for i, m in enumerate(ids)])
    await h.wait_members(ids, timeout=120)
    return ids


async def rsvp_rush(answer: Any, member_ids: list[str]) -> list[Any]:
    """Every member answers at once; `answer(member_id)` is one RSVP (over NATS, or through the web).
    Returns each reply, or the exception it raised, in `member_ids` order."""
    return await asyncio.gather(*[answer(m) for m in member_ids], return_exceptions=True)

