"""Session fixtures: one real forum (every service as its own process) shared by the tests that
only need a running forum; tests that kill processes build their own `Stack`."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from forum_ouvert.launcher import Stack
from tests.support import database_urls, drop_schemas, nats_server


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    with nats_server() as url:
        yield url


@pytest.fixture(scope="session")
def forum(tmp_path_factory: pytest.TempPathFactory, nats_url: str) -> Iterator[Stack]:
    """The whole forum, running: web front, registry, forum, minutes, notifications, mail catcher."""
    data = tmp_path_factory.mktemp("forum")
    urls = database_urls(data, f"main_{uuid.uuid4().hex[:6]}")  # unique: parallel runs share the server
    stack = Stack(data, nats_url=nats_url, database_urls=urls, log_dir=data / "logs",
                  env={"FORUM_RATE_LIMIT_PER_MINUTE": "100000", "FORUM_OUTBOX_POLL_INTERVAL": "0.5",
                       "FORUM_REMINDER_INTERVAL": "1",
                       # the secretariat account signs in once per test module: no hourly cap on its links
                       "FORUM_LINK_MAIL_LIMIT": "100000",
                       # tests change the forum over RPC, behind the web front's back, and read the public
                       # page at once: no page kept (tests/web/test_web_page_cache.py tests the cache)
                       "FORUM_PAGE_CACHE_SECONDS": "0"})
    with stack:
        yield stack
    drop_schemas(urls)


@pytest.fixture(scope="session")
def mail_dir(forum: Stack) -> Path:
    return forum.mail_dir


@pytest.fixture(scope="session")
async def rpc(forum: Stack):
    """A request/reply client on the running forum's NATS (what the web front uses)."""
    from faststream.nats import NatsBroker

    from shared.rpc import RpcClient

    async with NatsBroker(forum.nats_url) as broker:
        yield RpcClient(broker, timeout=10)


@pytest.fixture(scope="session")
async def secretariat(forum: Stack, rpc) -> str:  # noqa: ANN001 - the RpcClient fixture
    """A secretariat account created with the real CLI command; returns its member id once the services
    that check the role themselves (forum, minutes, notifications) have learnt it from the registry's event."""
    import asyncio
    import os
    import subprocess
    import sys
    import time

    from shared.contracts.common import ErrorCode
    from shared.contracts.forum import ListRsvps
    from shared.contracts.minutes import OpenMinutesDraft
    from shared.contracts.notifications import GetAnnouncement
    from shared.rpc import RpcError

    email = "secretariat@tests.forum-ouvert.example"
    out = subprocess.run([sys.executable, "-m", "forum_ouvert.cli", "create-secretariat", email], check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "FORUM_DATABASE_URL": forum.database_urls["registry"],
                              "FORUM_DATA_DIR": str(forum.data_dir)})
    member_id = out.stdout.split("(id ", 1)[1].split(")", 1)[0]
    unknown = "00000000-0000-0000-0000-000000000000"
    for probe in (ListRsvps(actor_id=member_id, session_id=unknown),
                  OpenMinutesDraft(actor_id=member_id, session_id=unknown),
                  GetAnnouncement(actor_id=member_id, announcement_id=unknown)):
        deadline = time.monotonic() + 30
        while True:  # unknown session: "not found" once the role is known, "forbidden" before
            try:
                await rpc(probe)
            except RpcError as exc:
                if exc.code != ErrorCode.FORBIDDEN:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"{type(probe).__name__}: the secretariat role never reached the service")
            await asyncio.sleep(0.1)
    return member_id
