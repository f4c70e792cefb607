"""Fault test: the registry dies after its transaction commits and before the outbox is relayed.

After a restart the event is published once and exactly one e-mail is sent, even when the
notifications process is killed and restarted too."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats
import pytest
from faststream.nats import NatsBroker
from sqlalchemy import create_engine, text

from forum_ouvert.launcher import MAILCATCHER, Stack
from shared.contracts.registry import Register, Registered
from shared.db import sync_url
from shared.rpc import RpcClient
from tests.support import caught_mail, database_urls, drop_schemas, nats_server

pytestmark = pytest.mark.integration


def _unpublished(url: str) -> int:
    engine = create_engine(sync_url(url))
    with engine.connect() as c:
        n = c.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar_one()
    engine.dispose()
    return n


def _mail_pending(url: str) -> int:
    engine = create_engine(sync_url(url))
    with engine.connect() as c:
        n = c.execute(text("SELECT count(*) FROM delivery WHERE status IN ('queued', 'sending', 'deferred')")).scalar_one()
    engine.dispose()
    return n


async def _consumers_caught_up(url: str, service: str) -> bool:
    """Every durable consumer of `service` has had each of its messages delivered and acknowledged (a message
    left unacknowledged by a kill counts until it is redelivered and handled)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for stream in await js.streams_info():
            for c in await js.consumers_info(stream.config.name):
                if c.name.startswith(f"{service}--") and (c.num_pending or c.num_ack_pending):
                    return False
        return True
    finally:
        await nc.close()


async def _stream_subjects(url: str, stream: str) -> list[str]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    info = await js.stream_info(stream)
    subjects = [(await js.get_msg(stream, seq)).subject
                for seq in range(info.state.first_seq, info.state.last_seq + 1)] if info.state.messages else []
    await nc.close()
    return subjects


def test_killed_after_commit_before_relay_publishes_once_and_mails_once(tmp_path: Path) -> None:
    urls = database_urls(tmp_path)
    with nats_server() as nats_url:
        stack = Stack(tmp_path, nats_url=nats_url, database_urls=urls, log_dir=tmp_path / "logs",
                      services=("registry", "notifications"), web=False)
        try:
            stack.migrate()
            stack.start_service(MAILCATCHER)
            stack.start_service("registry", {"FORUM_OUTBOX_RELAY_ENABLED": "false"})
            stack.start_service("notifications")
            stack.wait_ready()

            async def register() -> Registered:
                async with NatsBroker(nats_url) as br:
                    return await RpcClient(br)(Register(
                        full_name="Camille Durand", email="camille@example.org", organisation="Réseau associatif",
                        college="civil_society", charter_accepted=True))

            reply = asyncio.run(register())
            assert reply.status == "pending_verification"  # the command was accepted: it is committed
            assert _unpublished(urls["registry"]) == 2      # member.registered + email_verification.requested
            assert asyncio.run(_stream_subjects(nats_url, "REGISTRY")) == []

            stack.kill("registry")                           # SIGKILL: no chance to relay anything
            stack.start_service("registry")                  # relay on again
            stack.wait_ready(services=["registry"])

            mails = caught_mail(stack.mail_dir, "camille@example.org", "Confirmez")
            assert len(mails) == 1
            deadline = time.monotonic() + 10
            while _unpublished(urls["registry"]) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _unpublished(urls["registry"]) == 0
            assert sorted(asyncio.run(_stream_subjects(nats_url, "REGISTRY"))) == [
                "registry.email_verification.requested", "registry.member.registered"]

            # Kill and restart notifications too: nothing is re-sent, once it has gone through its consumers
            # again (whatever the kill left unacknowledged is redelivered) and no e-mail waits to leave.
            stack.kill("notifications")
            stack.start_service("notifications")
            stack.wait_ready(services=["notifications"])
            deadline = time.monotonic() + 30
            while not (asyncio.run(_consumers_caught_up(nats_url, "notifications"))
                       and _mail_pending(urls["notifications"]) == 0):
                assert time.monotonic() < deadline, "notifications never caught up after its restart"
                time.sleep(0.1)
            assert len(caught_mail(stack.mail_dir, "camille@example.org", "Confirmez", timeout=0)) == 1
        finally:
            stack.stop()
            drop_schemas(urls)
