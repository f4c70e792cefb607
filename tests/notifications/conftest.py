"""The notifications service running in this process (`SERVICE.build(settings)` under FastStream's
TestApp), on a nats-server of its own, its own database and a real SMTP server (aiosmtpd)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from faststream import TestApp

from forum_ouvert.launcher import free_port
from shared.migrations import upgrade
from shared.service import Service
from shared.settings import Settings
from tests.notifications.harness import SmtpServer
from tests.support import database_urls, drop_schemas, nats_server


@pytest.fixture(scope="module")
def own_nats() -> Iterator[str]:
    """Not the session's server: the whole forum may be running there, and this service would share
    its durable consumers."""
    with nats_server() as url:
        yield url


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(port=free_port())
    controller = Controller(server, hostname="127.0.0.1", port=server.port)
    controller.start()
    yield server
    controller.stop()


@pytest.fixture
def notifications_db(tmp_path: Path) -> Iterator[str]:
    urls = database_urls(tmp_path)
    upgrade("notifications", urls["notifications"])
    yield urls["notifications"]
    drop_schemas(urls)


@pytest.fixture
def start(own_nats: str, smtp: SmtpServer, notifications_db: str, tmp_path: Path
          ) -> Callable[..., Any]:
    """`async with start(**settings) as service:` the service runs, its jobs included."""
    from services.notifications.service import SERVICE

    @asynccontextmanager
    async def running(**overrides: Any) -> AsyncIterator[Service]:
        settings = Settings(nats_url=own_nats, database_url=notifications_db, data_dir=tmp_path,
                            smtp_port=smtp.port, public_url="https://forum.example.org",
                            outbox_poll_interval=0.2, **overrides)
        service = SERVICE.build(settings)
        async with TestApp(service.app):
            yield service

    return running
