"""One supervised forum for the tests that kill its processes (supervision, kill -9 soak): starting a
whole forum is the slow part, and each of those tests checks what it must relative to what was before it
(restarts counted from its start, its own accounts, sessions and decisions). Package-scoped (this folder
is a package for that): it stops once the tests of tests/stack are done."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from forum_ouvert.launcher import Stack
from tests.support import supervised_stack

SUPERVISED_ENV = {"FORUM_RATE_LIMIT_PER_MINUTE": "100000", "FORUM_OUTBOX_POLL_INTERVAL": "0.5",
                  "FORUM_MAIL_RETRY_BASE": "1", "FORUM_MAIL_RETRY_MAX": "4",
                  # longer than a repeated command waits for its first reply (shared.idempotency.WAIT_FOR_FIRST)
                  "FORUM_RPC_TIMEOUT": "6"}


@pytest.fixture(scope="package")
def supervised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, list[str]]]:
    """The whole forum with its own nats-server (so that it can be killed), supervised as `up` does;
    yields (stack, the supervisor's lines)."""
    with supervised_stack(tmp_path_factory.mktemp("supervised"), SUPERVISED_ENV) as running:
        yield running  # type: ignore[misc]
