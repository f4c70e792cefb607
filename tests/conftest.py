"""Session fixtures: one real forum (every service as its own process) shared by the tests that
only need a running forum; tests that kill processes build their own `Stack`."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.launcher import Stack
from tests.support import database_urls, drop_schemas, nats_server


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    with nats_server() as url:
        yield url


@pytest.fixture(scope="session")
def forum(tmp_path_factory: pytest.TempPathFactory, nats_url: str) -> Iterator[Stack]:
    """The whole forum, running: web front, registry, forum, minutes, notifications, mail catcher."""
    data = tmp_path_factory.mktemp("forum")
    urls = database_urls(data, "main")
    stack = Stack(data, nats_url=nats_url, database_urls=urls, log_dir=data / "logs",
                  env={"FORUM_RATE_LIMIT_PER_MINUTE": "100000", "FORUM_OUTBOX_POLL_INTERVAL": "0.5"})
    with stack:
        yield stack
    drop_schemas(urls)


@pytest.fixture(scope="session")
def mail_dir(forum: Stack) -> Path:
    return forum.mail_dir
