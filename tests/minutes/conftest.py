"""The minutes service run in-process (real nats-server, real database), one per test module: what the
comptes rendus and search tests drive. A module may define its own `h` to run it differently."""
from __future__ import annotations

import pytest

from tests.minutes.harness import running_minutes
from tests.support import database_urls, drop_schemas, nats_server


@pytest.fixture(scope="module")
async def h(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    tmp = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    urls = database_urls(tmp)
    try:
        with nats_server() as url:
            async with running_minutes(tmp, url, urls["minutes"]) as harness:
                yield harness
    finally:
        drop_schemas(urls)
