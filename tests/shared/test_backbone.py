"""The backbone against a real nats-server and a real database: outbox relay, JetStream dedupe,
idempotent consumers, retries and the dead-letter subject."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from faststream import TestApp
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from sqlmodel import col, select, update

from shared.contracts.envelope import Envelope, make_event
from shared.contracts.registry import MemberApproved
from shared.migrations import upgrade
from shared.outbox import InboxMessage, OutboxMessage, UnitOfWork
from shared.service import Service, ServiceDef, consumer
from shared.settings import Settings
from tests.support import database_urls, drop_schemas, nats_server

pytestmark = pytest.mark.integration


@dataclass
class Backbone:
    svc: Service
    seen: list[str]       # member ids, at every attempt, committed or not
    committed: list[str]  # member ids whose handling committed
    batches: list[int]    # how many events each call of the batch consumer got
    js: JetStreamContext
    nc: NatsClient


@pytest.fixture(params=["one", "batch"])
async def harness(tmp_path: Path, request: pytest.FixtureRequest):
    """A throwaway service named 'forum' consuming registry.member.approved, with its own NATS: once
    with a plain consumer (one event per transaction), once with `consumer(..., batch=True)` (the
    events of one fetch in one transaction)."""
    urls = database_urls(tmp_path)
    upgrade("forum", urls["forum"])
    seen: list[str] = []
    committed: list[str] = []
    batches: list[int] = []

    async def handle(event: Envelope[MemberApproved], uow: UnitOfWork) -> None:
        seen.append(event.data.member_id)
        uow.on_commit(lambda: committed.append(event.data.member_id))
        if event.data.member_id.startswith("poison"):
            raise RuntimeError("cannot handle this one")

    async def on_approved(event: Envelope[MemberApproved], uow: UnitOfWork) -> None:
        await handle(event, uow)

    async def on_approved_batch(events: list[Envelope[MemberApproved]], uow: UnitOfWork) -> None:
        batches.append(len(events))
        for event in events:
            await handle(event, uow)

    consumers = [on_approved] if request.param == "one" else [consumer(on_approved_batch, batch=True)]
    definition = ServiceDef("forum", title="test", consumers=consumers)
    with nats_server() as url:
        settings = Settings(nats_url=url, database_url=urls["forum"], consumer_max_deliver=3,
                            consumer_backoff=[0.2], data_dir=tmp_path, outbox_poll_interval=0.2)
        svc = definition.build(settings)
        async with TestApp(svc.app):
            nc = await nats.connect(url)
            yield Backbone(svc, seen, committed, batches, nc.jetstream(), nc)
            await nc.close()
    drop_schemas(urls)


async def _wait(cond, timeout: float = 10.0) -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def _approved(member_id: str) -> Envelope:
    return make_event(MemberApproved(member_id=member_id, public_id="p", college="citizen"), producer="registry")


async def test_outbox_relays_committed_events_once_even_when_republished(harness: Backbone) -> None:
    svc, js = harness.svc, harness.js
    async with svc.unit_of_work() as uow:
        env = uow.emit(MemberApproved(member_id="m-outbox", public_id="p", college=None))
    await _wait(lambda: "m-outbox" in harness.seen)
    # The relay crashed after publishing and before marking: the row is published again.
    async with svc.db.transaction() as tx:
        await tx.exec(update(OutboxMessage).values(published_at=None))
    assert svc.relay is not None
    await svc.relay.relay_once()
    info = await js.stream_info("REGISTRY")
    msgs = [await js.get_msg("REGISTRY", seq) for seq in range(info.state.first_seq, info.state.last_seq + 1)]
    assert [json.loads(m.data)["event_id"] for m in msgs].count(str(env.event_id)) == 1
    await asyncio.sleep(0.5)
    assert harness.seen.count("m-outbox") == 1


async def test_rolled_back_transaction_emits_nothing(harness: Backbone) -> None:
    svc = harness.svc
    with pytest.raises(RuntimeError):
        async with svc.unit_of_work() as uow:
            uow.emit(MemberApproved(member_id="m-rollback", public_id="p", college=None))
            raise RuntimeError("command failed after emitting")
    async with svc.db.read() as tx:
        assert (await tx.exec(select(OutboxMessage))).all() == []


async def test_consumer_is_idempotent_on_event_id(harness: Backbone) -> None:
    js = harness.js
    env = _approved("m-dup")
    body = env.model_dump_json().encode()
    # Same event under two different Nats-Msg-Ids: JetStream keeps both, the inbox must drop one.
    await js.publish("registry.member.approved", body, headers={"Nats-Msg-Id": "a"})
    await js.publish("registry.member.approved", body, headers={"Nats-Msg-Id": "b"})
    await _wait(lambda: "m-dup" in harness.seen)
    await asyncio.sleep(1.0)
    assert harness.seen.count("m-dup") == 1
    async with harness.svc.db.read() as tx:
        rows = (await tx.exec(select(InboxMessage).where(InboxMessage.event_id == str(env.event_id)))).all()
    assert len(rows) == 1


async def test_failing_event_is_retried_then_parked_with_its_reason(harness: Backbone) -> None:
    js, seen = harness.js, harness.seen
    parked: list[dict] = []
    sub = await harness.nc.subscribe("deadletter.>", cb=_collector(parked))
    env = _approved("poison-1")
    await js.publish("registry.member.approved", env.model_dump_json().encode(),
                     headers={"Nats-Msg-Id": str(env.event_id)})
    await _wait(lambda: len(parked) == 1, timeout=15)
    assert seen.count("poison-1") == 3  # consumer_max_deliver
    assert "cannot handle this one" in parked[0]["error"]
    assert parked[0]["consumer"] == "forum--registry-member-approved"  # the durable name is unchanged
    assert json.loads(parked[0]["payload"])["event_id"] == str(env.event_id)
    async with harness.svc.db.read() as tx:  # the failed attempts left nothing behind
        assert (await tx.exec(select(InboxMessage).where(InboxMessage.event_id == str(env.event_id)))).all() == []
    # A healthy event behind it still flows.
    await js.publish("registry.member.approved", _approved("m-after").model_dump_json().encode())
    await _wait(lambda: "m-after" in seen)
    await sub.unsubscribe()


async def test_malformed_event_is_parked_at_once(harness: Backbone) -> None:
    parked: list[dict] = []
    sub = await harness.nc.subscribe("deadletter.>", cb=_collector(parked))
    await harness.js.publish("registry.member.approved", b'{"not": "an envelope"}')
    await _wait(lambda: len(parked) == 1)
    assert parked[0]["deliveries"] == 1 and "ValidationError" in parked[0]["error"]
    await sub.unsubscribe()


def _collector(into: list):  # noqa: ANN202
    async def collect(msg) -> None:  # noqa: ANN001
        into.append(json.loads(msg.data))
    return collect


async def test_a_burst_with_duplicates_and_a_poisoned_event_loses_nothing(harness: Backbone) -> None:
    """Many events at once (whole fetches for the batch consumer), one of them failing every time and
    one malformed: every healthy event is handled exactly once, the two bad ones are parked."""
    js = harness.js
    parked: list[dict] = []
    sub = await harness.nc.subscribe("deadletter.>", cb=_collector(parked))
    envs = [_approved(f"m-burst-{i}") for i in range(120)]
    envs.insert(37, _approved("poison-burst"))
    for env in envs:
        await js.publish("registry.member.approved", env.model_dump_json().encode())
    await js.publish("registry.member.approved", envs[5].model_dump_json().encode())  # redelivered copy
    await js.publish("registry.member.approved", b'{"not": "an envelope"}')
    done = harness.committed
    await _wait(lambda: len(parked) == 2 and all(f"m-burst-{i}" in done for i in range(120)), timeout=30)
    await asyncio.sleep(0.5)
    assert all(done.count(f"m-burst-{i}") == 1 for i in range(120)) and "poison-burst" not in done
    async with harness.svc.db.read() as tx:
        rows = (await tx.exec(select(InboxMessage).where(col(InboxMessage.event_id).in_(
            [str(e.event_id) for e in envs])))).all()
    assert len(rows) == 120  # every healthy event, once; nothing for the poisoned one
    assert sorted(p["error"].split(":")[0] for p in parked) == ["RuntimeError", "ValidationError"]
    if harness.batches:  # the batch consumer: events really shared transactions
        assert max(harness.batches) > 1, harness.batches
    await sub.unsubscribe()


async def test_a_trickling_burst_is_gathered_into_few_batches_in_order(harness: Backbone) -> None:
    """Events trickling in, eight every 40 ms for 0.4 s: the batch consumer pulls at most every
    `consumer_gather` seconds during the burst, so they share a few transactions (without gathering,
    each group would be a batch of its own at least), each handled once and in stream order; a lone event
    afterwards is not held back."""
    if not harness.svc.batch_consumers:
        pytest.skip("the plain consumer handles one event per transaction")
    harness.svc.settings.consumer_gather = 1.0
    ids = [f"m-trickle-{i:02d}" for i in range(80)]
    for group in range(10):
        for member_id in ids[group * 8:(group + 1) * 8]:  # a group arrives at once (no ack awaited)
            await harness.nc.publish("registry.member.approved", _approved(member_id).model_dump_json().encode())
        await harness.nc.flush()
        await asyncio.sleep(0.04)
    await _wait(lambda: all(i in harness.committed for i in ids))
    assert [i for i in harness.committed if i.startswith("m-trickle-")] == ids
    # The first pulls may catch a group half-arrived (fewer than GATHER_FROM); the first that finds
    # enough makes the next wait for the rest of the burst.
    assert len(harness.batches) <= 5, harness.batches
    # After the burst, a lone event (fewer than GATHER_FROM) goes through at once.
    await asyncio.sleep(1.2)
    started = asyncio.get_running_loop().time()
    await harness.js.publish("registry.member.approved", _approved("m-lone").model_dump_json().encode())
    await _wait(lambda: "m-lone" in harness.committed)
    assert asyncio.get_running_loop().time() - started < 0.9
