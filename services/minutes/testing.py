"""Helpers to run the minutes service in-process (tests and benchmarks): a real nats-server, a real
database, the real consumers, RPCs and checkpoint signer, plus the public ledger routes over HTTP.

Not used by the running forum.
"""
from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nats
from faststream import TestApp
from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from services.minutes import store
from services.minutes.handlers import PublicRecord, build_service
from services.minutes.settings import MinutesSettings
from shared.contracts.minutes import SERVICE, GetCheckpoint, LedgerCheckpoint
from shared.contracts.registry import College, MemberApproved
from shared.envelope import Envelope, make_event
from shared.migrations import upgrade
from shared.rpc_client import RpcClient
from shared.service import Service
from shared.settings import Settings


def approved_event(public_id: str | None = None, college: College | None = College.CITIZEN,
                   occurred_at: datetime | None = None) -> Envelope[Any]:
    env = make_event(MemberApproved(member_id=str(uuid.uuid4()), public_id=public_id or uuid.uuid4().hex[:16],
                                    college=college), producer="registry")
    if occurred_at is not None:
        env.occurred_at = occurred_at
    return env


@dataclass
class MinutesHarness:
    svc: Service
    js: JetStreamContext
    rpc: RpcClient
    broker: NatsBroker
    settings: Settings
    minutes_settings: MinutesSettings
    published: list[Envelope[Any]] = field(default_factory=list)

    @property
    def ledger(self) -> PublicRecord:
        return self.svc.ledger  # type: ignore[attr-defined, no-any-return]

    async def publish(self, env: Envelope[Any], msg_id: str | None = None) -> None:
        await self.js.publish(env.type, env.model_dump_json().encode(), timeout=10,
                              headers={"Nats-Msg-Id": msg_id or str(env.event_id)})
        self.published.append(env)

    async def publish_approved(self, n: int = 1, **kw: Any) -> list[Envelope[Any]]:
        envs = [approved_event(**kw) for _ in range(n)]
        await asyncio.gather(*[self.js.publish(e.type, e.model_dump_json().encode(), timeout=30,
                                               headers={"Nats-Msg-Id": str(e.event_id)}) for e in envs])
        self.published.extend(envs)
        return envs

    async def size(self) -> int:
        async with self.svc.db.session() as s:
            return (await store.read_head(s)).size

    async def wait_size(self, n: int, timeout: float = 30.0) -> None:
        await _until(lambda: self._size_at_least(n), timeout, f"log size {n}")

    async def _size_at_least(self, n: int) -> bool:
        return await self.size() >= n

    async def checkpoint(self) -> LedgerCheckpoint:
        return await self.rpc.call(SERVICE, "ledger-checkpoint", GetCheckpoint(), LedgerCheckpoint)

    async def wait_checkpoint(self, n: int, timeout: float = 30.0) -> LedgerCheckpoint:
        async def covered() -> bool:
            async with self.svc.db.session() as s:
                cp = await store.latest_checkpoint(s)
            return cp is not None and cp.tree_size >= n

        await _until(covered, timeout, f"a checkpoint covering {n} leaves")
        return await self.checkpoint()


async def _until(cond: Any, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await cond():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running_minutes(data_dir: Path, nats_url: str, database_url: str, *,
                          checkpoint_interval: float = 0.1, migrate: bool = True, **settings: Any
                          ) -> AsyncIterator[MinutesHarness]:
    """The minutes service, started in this event loop against `nats_url` and `database_url`."""
    if migrate:
        await asyncio.to_thread(upgrade, "minutes", database_url)
    s = Settings(nats_url=nats_url, database_url=database_url, data_dir=data_dir,
                 **{"consumer_backoff": [0.2], "outbox_poll_interval": 0.2, "log_level": "WARNING",
                    "rpc_workers": 4, **settings})  # rpc_workers also sizes the DB pool: spare a shared server
    ms = MinutesSettings(data_dir=data_dir, ledger_checkpoint_interval=checkpoint_interval,
                         ledger_checkpoint_poll=1.0)
    svc = build_service(s, ms)
    async with TestApp(svc.app):
        nc = await nats.connect(nats_url)
        try:
            async with NatsBroker(nats_url) as broker:
                yield MinutesHarness(svc, nc.jetstream(timeout=30), RpcClient(broker, timeout=30), broker, s, ms)
        finally:
            await nc.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def ledger_http(rpc: RpcClient) -> AsyncIterator[str]:
    """The public ledger routes on a real uvicorn server in this event loop; yields its base URL."""
    import uvicorn
    from fastapi import FastAPI

    from services.web.routes import ledger

    app = FastAPI(title="ledger test")
    app.include_router(ledger.router)
    app.state.rpc = rpc
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
