"""The secretariat's members list is read a page at a time, in two statements (the page and the total,
after the check of the secretariat's role), whatever the number of members: the same with 5 pending
registrations as with 50. The registry runs in this process on a real nats-server and database; the
members are written straight into its table, the list asked for over NATS as the web front asks."""
from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from faststream import TestApp
from faststream.nats import NatsBroker

from services.registry.models import Member
from services.registry.service import SERVICE
from shared.clock import utcnow
from shared.contracts.registry import ListMembers, MemberStatus, Role
from shared.migrations import upgrade
from shared.rpc import RpcClient
from shared.service import Service
from shared.settings import Settings
from tests.query_count import StatementLog, show
from tests.support import database_urls, drop_schemas, nats_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def registry(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Service, RpcClient]]:
    tmp: Path = tmp_path_factory.mktemp("registry-query-counts")
    urls = database_urls(tmp)
    await asyncio.to_thread(upgrade, "registry", urls["registry"])
    try:
        with nats_server() as url:
            service = SERVICE.build(Settings(nats_url=url, database_url=urls["registry"], data_dir=tmp,
                                             log_level="WARNING"))
            async with TestApp(service.app), NatsBroker(url) as client:
                yield service, RpcClient(client, timeout=30)
    finally:
        drop_schemas(urls)


START = utcnow() - timedelta(days=1)
_order = itertools.count()


async def _members(service: Service, n: int, status: MemberStatus, role: Role = Role.MEMBER) -> list[str]:
    """`n` members registered one second apart, after every member made before."""
    rows = [Member(full_name=f"Camille Test {i}", email=f"{uuid.uuid4().hex}@example.org", role=role, status=status,
                   registered_at=START + timedelta(seconds=next(_order))) for i in range(n)]
    async with service.db.transaction() as tx:
        tx.add_all(rows)
    return [m.id for m in rows]


async def test_members_list_is_two_statements_a_page_for_5_or_50_members(
        registry: tuple[Service, RpcClient]) -> None:
    service, rpc = registry
    [actor] = await _members(service, 1, MemberStatus.APPROVED, Role.SECRETARIAT)
    first = await _members(service, 5, MemberStatus.PENDING_APPROVAL)
    log = StatementLog(service.db.engine)
    try:
        page = ListMembers(actor_id=actor, status=MemberStatus.PENDING_APPROVAL, limit=20)
        small, before = await log.statements(rpc, page)
        assert [m.member_id for m in small.members] == first[::-1] and small.total == 5  # latest first
        later = await _members(service, 45, MemberStatus.PENDING_APPROVAL)
        big, after = await log.statements(rpc, page)
        assert [m.member_id for m in big.members] == later[::-1][:20] and big.total == 50
        last, _ = await log.statements(rpc, page.model_copy(update={"offset": 40}))
        assert [m.member_id for m in last.members] == later[::-1][40:] + first[::-1]
        # the actor's role, the page, the total
        assert len(before) == len(after) == 3, show(after)
        everyone, listed = await log.statements(rpc, ListMembers(actor_id=actor, limit=20))
        assert everyone.total == 51 and len(listed) == 3, show(listed)
    finally:
        log.close()
