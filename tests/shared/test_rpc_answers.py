"""A service's request subjects against a real nats-server and a real database: every request answered
(data, a typed error, or `internal`), at most `rpc_workers` at once (more for an operation whose requests wait
at a desk), and the answers under way finished
when the service stops."""
from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
from faststream import TestApp
from faststream.nats import NatsBroker
from pydantic import BaseModel, Field

from shared.contracts.common import ErrorCode, Reply, Request
from shared.desk import Grouped, Pending
from shared.errors import DomainError
from shared.migrations import upgrade
from shared.rpc import RpcClient, RpcError
from shared.service import HandlerContext, ServiceDef
from shared.settings import Settings
from tests.support import database_urls, drop_schemas, nats_server

pytestmark = pytest.mark.integration


class Slept(BaseModel):
    seconds: float
    correlation_id: str


class Sleep(Request[Slept], op="forum.test-sleep"):
    seconds: float = Field(ge=0, le=5)
    refuse: bool = False
    crash: bool = False


class Nap(Request[Slept], op="forum.test-nap"):
    seconds: float = Field(ge=0, le=5)


class Gauge:
    def __init__(self) -> None:
        self.now = self.most = self.done = 0


async def test_requests_are_answered_bounded_and_finished_on_stop(tmp_path: Path) -> None:
    urls = database_urls(tmp_path)
    upgrade("forum", urls["forum"])
    gauge = Gauge()

    async def sleep(req: Sleep, ctx: HandlerContext) -> Slept:
        if req.refuse:
            raise DomainError("Déjà fait.")
        if req.crash:
            raise RuntimeError("the handler broke")
        gauge.now += 1
        gauge.most = max(gauge.most, gauge.now)
        try:
            await asyncio.sleep(req.seconds)
        finally:
            gauge.now -= 1
        gauge.done += 1
        return Slept(seconds=req.seconds, correlation_id=ctx.correlation_id)

    napping = Gauge()

    async def rest(_: str, group: list[Pending[Nap, Slept]]) -> None:
        await asyncio.sleep(group[0].req.seconds)
        for p in group:
            p.settle(Slept(seconds=p.req.seconds, correlation_id=p.ctx.correlation_id))

    naps = Grouped(rest, group=8)

    @naps  # its requests wait at a desk: more of them taken at once than rpc_workers
    async def nap(req: Nap, ctx: HandlerContext) -> Slept:
        napping.now += 1
        napping.most = max(napping.most, napping.now)
        try:
            return await naps.submit(ctx, "", req)
        finally:
            napping.now -= 1

    definition = ServiceDef("forum", title="test", operations=[sleep, nap])
    try:
        with nats_server() as url:
            svc = definition.build(Settings(nats_url=url, database_url=urls["forum"], data_dir=tmp_path, rpc_workers=3))
            async with NatsBroker(url) as broker:
                rpc = RpcClient(broker, timeout=10)
                async with TestApp(svc.app):
                    # Ready only once every subject is subscribed: the broker starts them in no set order.
                    assert (await rpc.health("forum")).status == "ok"
                    svc.broker.running = False  # (as while its subscribers are still starting)
                    assert (await rpc.health("forum")).status == "starting"
                    svc.broker.running = True

                    # Typed errors: the field of an invalid request, a domain refusal, an internal failure.
                    with pytest.raises(RpcError) as invalid:
                        await rpc(Sleep.model_construct(seconds=-1, refuse=False, crash=False))
                    assert (invalid.value.code, invalid.value.field) == (ErrorCode.INVALID, "seconds")
                    with pytest.raises(RpcError) as refused:
                        await rpc(Sleep(seconds=0, refuse=True))
                    assert refused.value.code == ErrorCode.CONFLICT
                    with pytest.raises(RpcError) as crashed:
                        await rpc(Sleep(seconds=0, crash=True))
                    assert (crashed.value.code, str(crashed.value)) == (ErrorCode.INTERNAL, "Erreur interne du service.")

                    # A body that is not JSON at all still gets a typed reply.
                    nc = await nats.connect(url)
                    raw = await nc.request(Sleep.subject(), b"\xff not json", timeout=5)
                    await nc.close()
                    reply = Reply.model_validate_json(raw.data)
                    assert not reply.ok and reply.error is not None and reply.error.code == ErrorCode.INVALID

                    # Ten at once: all answered, never more than rpc_workers under way.
                    answers = await asyncio.gather(*(rpc(Sleep(seconds=0.2)) for _ in range(10)))
                    assert len(answers) == 10 and gauge.most == 3
                    napped = await asyncio.gather(*(rpc(Nap(seconds=0.2)) for _ in range(10)))
                    assert len(napped) == 10 and napping.most == 8

                    # Requests under way when the service stops are answered before it stops.
                    gauge.most = gauge.done = 0
                    under_way = [asyncio.create_task(rpc(Sleep(seconds=1.0))) for _ in range(3)]
                    while gauge.now < 3:
                        await asyncio.sleep(0.01)
                # TestApp has stopped the service: its graceful stop waited for the three.
                assert gauge.done == 3
                assert [a.seconds for a in await asyncio.gather(*under_way)] == [1.0, 1.0, 1.0]
    finally:
        drop_schemas(urls)
