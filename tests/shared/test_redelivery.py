"""Redelivery of a consumer's messages against a real nats-server and a real database: the message of a
process killed while handling it reaches another instance within seconds (a short ack wait), a handler
that takes several ack waits keeps its message (progress signals) and runs once, and a durable consumer
created by an older release with other settings is brought in line at start."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import pytest
from faststream import TestApp
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from shared.contracts.envelope import Envelope, make_event
from shared.contracts.registry import MemberApproved
from shared.migrations import upgrade
from shared.outbox import UnitOfWork
from shared.service import Service, ServiceDef, consumer
from shared.settings import Settings
from shared.streams import ensure_streams
from tests.support import database_urls, drop_schemas, nats_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SUBJECT, STREAM, DURABLE = "registry.member.approved", "REGISTRY", "forum--registry-member-approved"

# A service that writes down each event it receives, then never finishes handling it: killed meanwhile.
HANGING_SERVICE = """
import asyncio, os
from shared.contracts.envelope import Envelope
from shared.contracts.registry import MemberApproved
from shared.outbox import UnitOfWork
from shared.service import ServiceDef
from shared.settings import Settings

async def on_approved(event: Envelope[MemberApproved], uow: UnitOfWork) -> None:
    with open(os.environ["SEEN_FILE"], "a") as seen:
        seen.write(event.data.member_id + "\\n")
    await asyncio.sleep(3600)

asyncio.run(ServiceDef("forum", title="test", consumers=[on_approved]).build(Settings()).app.run())
"""


@pytest.fixture
def backbone(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(NATS URL, the forum database URL): a nats-server and a database of this test's own."""
    urls = database_urls(tmp_path)
    upgrade("forum", urls["forum"])
    with nats_server() as url:
        yield url, urls["forum"]
    drop_schemas(urls)


@asynccontextmanager
async def running(url: str, database_url: str, tmp_path: Path, handler: Any,
                  **settings: Any) -> AsyncIterator[Service]:
    svc = ServiceDef("forum", title="test", consumers=[handler]).build(
        Settings(nats_url=url, database_url=database_url, data_dir=tmp_path, **settings))
    async with TestApp(svc.app):
        yield svc


async def publish(url: str, member_id: str) -> None:
    nc = await nats.connect(url)
    try:
        await ensure_streams(nc.jetstream())  # what any service does at start
        env = make_event(MemberApproved(member_id=member_id, public_id="p", college="citizen"), producer="registry")
        await nc.jetstream().publish(SUBJECT, env.model_dump_json().encode(), headers={"Nats-Msg-Id": str(env.event_id)})
    finally:
        await nc.close()


async def consumer_config(url: str) -> Any:
    nc = await nats.connect(url)
    try:
        return await nc.jetstream().consumer_info(STREAM, DURABLE)
    finally:
        await nc.close()


async def until(cond: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_killed_consumers_message_reaches_another_instance_within_seconds(
        backbone: tuple[str, str], tmp_path: Path) -> None:
    url, database_url = backbone
    seen_file = tmp_path / "seen-by-the-first.txt"
    first = subprocess.Popen(
        [sys.executable, "-c", HANGING_SERVICE], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT), "FORUM_NATS_URL": url, "FORUM_DATABASE_URL": database_url,
             "FORUM_DATA_DIR": str(tmp_path), "SEEN_FILE": str(seen_file)})
    try:
        await publish(url, "m-killed")
        await until(lambda: seen_file.exists() and "m-killed" in seen_file.read_text(), timeout=60)
        first.kill()  # in the middle of handling it: never acked
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=10)
    killed_at = time.monotonic()

    seen: list[str] = []

    async def on_approved(event: Envelope[MemberApproved], uow: UnitOfWork) -> None:
        seen.append(event.data.member_id)

    async with running(url, database_url, tmp_path, on_approved):
        await until(lambda: "m-killed" in seen, timeout=30)
        elapsed = time.monotonic() - killed_at
        print(f"redelivered {elapsed:.1f} s after the kill")
        # The ack wait (5 s by default) plus this instance's start, not the minute it used to be.
        assert elapsed < 15, f"redelivered {elapsed:.1f} s after the kill"
        await until(lambda: seen.count("m-killed") == 1, timeout=1)
    info = await consumer_config(url)
    assert info.num_ack_pending == 0 and seen == ["m-killed"]


@pytest.mark.parametrize("batch", [False, True], ids=["one", "batch"])
async def test_a_handler_slower_than_the_ack_wait_keeps_its_message(backbone: tuple[str, str], tmp_path: Path,
                                                                    batch: bool) -> None:
    """Two instances share the durable consumer: without progress signals, the second would get the
    message while the first still works on it (or, for a batch consumer, on the group it is part of)."""
    url, database_url = backbone
    calls: list[str] = []

    async def on_approved(event: Envelope[MemberApproved], uow: UnitOfWork) -> None:
        calls.append(event.data.member_id)
        await asyncio.sleep(3.0)  # three ack waits

    async def on_approved_batch(events: list[Envelope[MemberApproved]], uow: UnitOfWork) -> None:
        calls.extend(event.data.member_id for event in events)
        await asyncio.sleep(3.0)

    handler = consumer(on_approved_batch, batch=True) if batch else on_approved
    async with AsyncExitStack() as instances:
        for _ in range(2):
            await instances.enter_async_context(running(url, database_url, tmp_path, handler,
                                                        consumer_ack_wait=1.0))
        await publish(url, "m-slow")
        await until(lambda: "m-slow" in calls, timeout=15)
        await asyncio.sleep(3.0 + 2.0)  # the handler's time, then two more ack waits
        info = await consumer_config(url)
    assert calls == ["m-slow"]
    assert info.num_redelivered == 0 and info.num_ack_pending == 0 and info.delivered.consumer_seq == 1


async def test_a_consumer_created_with_older_settings_is_updated_at_start(backbone: tuple[str, str],
                                                                         tmp_path: Path) -> None:
    url, database_url = backbone
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_streams(js)
    # What an earlier release left on the server: a one-minute ack wait, fewer attempts.
    await js.add_consumer(STREAM, ConsumerConfig(durable_name=DURABLE, filter_subject=SUBJECT, ack_wait=60,
                                                 max_deliver=3, ack_policy=AckPolicy.EXPLICIT,
                                                 deliver_policy=DeliverPolicy.ALL, max_ack_pending=1000))
    await nc.close()
    seen: list[str] = []

    async def on_approved(event: Envelope[MemberApproved], uow: UnitOfWork) -> None:
        seen.append(event.data.member_id)

    async with running(url, database_url, tmp_path, on_approved, consumer_max_deliver=6) as svc:
        info = await consumer_config(url)
        assert info.config.ack_wait == pytest.approx(svc.settings.consumer_ack_wait)
        assert info.config.max_deliver == 6
        await publish(url, "m-after-update")  # still bound and consuming
        await until(lambda: "m-after-update" in seen, timeout=15)
