"""`verify` against the running minutes service (real nats-server, real database) through the public
ledger routes served by a real uvicorn server: a clean log verifies and its state advances; an altered
leaf, a removed leaf, a checkpoint signed by another key and a forked history are each detected — from
the entry bundles (C2SP tlog-tiles, the default) and from the entries API — also when the server refuses
the consistency proof."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

import pytest
import typer
from sqlalchemy import delete, update
from typer.testing import CliRunner

from forum_ouvert.verify import VerifyResult, verify_async, verify_command
from forumlib.tlog import Checkpoint, generate_key, parse_signer_key, record_leaf_bytes, sign_checkpoint
from services.minutes import store
from services.minutes.checkpoints import sign_if_grown
from services.minutes.models import CheckpointRow, EntryRow, HeadRow, NodeRow
from forum_ouvert.launcher import serve_ledger_api
from tests.minutes.harness import running_minutes
from tests.support import database_urls, drop_schemas, nats_server

pytestmark = pytest.mark.integration
N = 30


class Forum:
    def __init__(self, h, base: str, tmp: Path) -> None:  # noqa: ANN001
        self.h = h
        self.base = base
        self.key = h.signer.verifier.encode()
        self.state = tmp / "verify-state.json"

    async def verify(self, state: Path | None = None, **kw: Any) -> VerifyResult:
        return await verify_async(self.base, self.key, state or self.state, **kw)

    async def grow(self, n: int) -> None:
        size = await self.h.size()
        await self.h.publish_approved(n)
        await self.h.wait_checkpoint(size + n)

    async def execute(self, *statements) -> None:  # noqa: ANN002
        async with self.h.svc.db.transaction() as tx:
            for st in statements:
                await tx.exec(st)


@pytest.fixture
async def forum(tmp_path: Path):
    urls = database_urls(tmp_path)
    try:
        with nats_server() as url:
            async with running_minutes(tmp_path, url, urls["minutes"]) as h:
                async with serve_ledger_api(h.rpc) as base:
                    f = Forum(h, base, tmp_path)
                    await f.grow(N)
                    first = await f.verify()
                    assert first.ok, first.message
                    yield f
    finally:
        drop_schemas(urls)


async def test_clean_log_verifies_and_its_state_advances(forum: Forum) -> None:
    state = json.loads(forum.state.read_text())
    assert state["size"] == N and state["origin"] == forum.h.settings.ledger_origin
    await forum.grow(7)
    r = await forum.verify()
    assert r.ok and r.exit_code == 0 and r.previous_size == N and r.size == N + 7 and r.entries_checked == N + 7
    assert json.loads(forum.state.read_text())["size"] == N + 7
    again = await forum.verify()
    assert again.ok and again.previous_size == again.size == N + 7


async def test_the_cli_command_exits_0_then_1(forum: Forum) -> None:
    app = typer.Typer()
    app.command()(verify_command)
    runner = CliRunner()
    args = [forum.base, "--key", forum.key, "--state", str(forum.state)]
    ok = await asyncio.to_thread(runner.invoke, app, args)
    assert ok.exit_code == 0 and "OK" in ok.output, ok.output
    await forum.execute(update(EntryRow).where(EntryRow.leaf_index == 0).values(record="{}"))
    bad = await asyncio.to_thread(runner.invoke, app, [*args, "--via", "api"])
    assert bad.exit_code == 1 and "ÉCHEC" in bad.output and "FAILED" in bad.output
    await forum.execute(update(EntryRow).where(EntryRow.leaf_index == 0).values(leaf=b"{}"))
    bad = await asyncio.to_thread(runner.invoke, app, args)  # from the entry bundles
    assert bad.exit_code == 1 and "ÉCHEC" in bad.output and "FAILED" in bad.output
    usage = await asyncio.to_thread(runner.invoke, app, [*args, "--via", "ftp"])
    assert usage.exit_code == 2


async def test_leaf_altered_in_the_database_is_detected(forum: Forum) -> None:
    before = forum.state.read_text()
    async with forum.h.svc.db.read() as tx:
        row = await tx.get(EntryRow, 4)
    record = json.loads(row.record)
    record["data"]["college"] = "public_actor" if record["data"]["college"] != "public_actor" else "citizen"
    leaf = record_leaf_bytes(record)
    # Consistent leaf + record, but not what was signed.
    await forum.execute(update(EntryRow).where(EntryRow.leaf_index == 4).values(leaf=leaf, record=leaf.decode()))
    for via in ("tiles", "api"):
        r = await forum.verify(via=via)
        assert not r.ok and r.problem == "root_mismatch" and r.exit_code == 1, r.message
    # Record changed but not its leaf bytes: what the entries API serves beside the leaf.
    await forum.execute(update(EntryRow).where(EntryRow.leaf_index == 4).values(leaf=row.leaf))
    r = await forum.verify(via="api")
    assert not r.ok and r.problem == "leaf_mismatch", r.message
    assert forum.state.read_text() == before


@pytest.mark.parametrize("via", ["auto", "api"])
@pytest.mark.parametrize("where", ["last", "middle"])
async def test_leaf_removed_is_detected(forum: Forum, where: str, via: str) -> None:
    index = N - 1 if where == "last" else 11
    await forum.execute(delete(EntryRow).where(EntryRow.leaf_index == index))
    r = await forum.verify(via=via)  # auto: the bundle is refused, its entries read from the API
    assert not r.ok and r.problem == "entries_missing" and r.exit_code == 1, r.message
    assert str(index) in r.message


async def test_checkpoint_signed_by_another_key_is_detected(forum: Forum) -> None:
    async with forum.h.svc.db.read() as tx:
        cp = await store.latest_checkpoint(tx)
    # Same origin, same tree, but a key the auditor does not trust.
    intruder = parse_signer_key(generate_key(forum.h.settings.ledger_origin)[0])
    forged = sign_checkpoint(Checkpoint(forum.h.settings.ledger_origin, cp.tree_size, cp.root), intruder)
    await forum.execute(update(CheckpointRow).where(CheckpointRow.tree_size == cp.tree_size).values(note=forged))
    r = await forum.verify()
    assert not r.ok and r.problem == "signature" and r.exit_code == 1, r.message
    # A checkpoint whose body was changed after signing (a bigger size) fails too.
    altered = cp.note.replace(f"\n{cp.tree_size}\n", f"\n{cp.tree_size + 1}\n", 1)
    await forum.execute(update(CheckpointRow).where(CheckpointRow.tree_size == cp.tree_size).values(note=altered))
    r = await forum.verify()
    assert not r.ok and r.problem == "signature", r.message


async def rewrite_history(forum: Forum, extra: int) -> None:
    """The operator rewrites the whole log (one record changed) and re-signs it with the genuine key."""
    async with forum.h.svc.db.read() as tx:
        rows = (await tx.exec(EntryRow.__table__.select().order_by(EntryRow.leaf_index))).all()
    records = [json.loads(r.record) for r in rows]
    records[2]["data"]["public_id"] = "ffffffffffffffff"
    async with forum.h.svc.db.transaction() as tx:
        for table in (EntryRow, NodeRow, CheckpointRow, HeadRow):
            await tx.exec(delete(table))
        await store.append(tx, [store.Pending(f"{r['event_id']}-forged", r["type"], r) for r in records])
        await store.append(tx, [store.Pending(f"more-{i}", "member.approved", {**records[0], "event_id": f"more-{i}"})
                               for i in range(extra)])
    await sign_if_grown(forum.h.svc)  # (or the background signer got there first)
    await forum.h.wait_checkpoint(N + extra)


@pytest.mark.parametrize("extra", [3, 0])
async def test_forked_log_with_a_valid_signature_is_detected(forum: Forum, tmp_path: Path, extra: int) -> None:
    before = forum.state.read_text()
    await rewrite_history(forum, extra)
    fresh = await forum.verify(tmp_path / "newcomer.json")
    assert fresh.ok, fresh.message  # self-consistent and validly signed: only history can tell
    r = await forum.verify()
    assert not r.ok and r.problem == "fork" and r.exit_code == 1, r.message
    assert forum.state.read_text() == before


async def test_rolled_back_log_is_detected(forum: Forum) -> None:
    async with forum.h.svc.db.transaction() as tx:
        for table in (EntryRow, NodeRow, CheckpointRow, HeadRow):
            await tx.exec(delete(table))
        await store.append(tx, [store.Pending(f"r-{i}", "test", {"i": i}) for i in range(5)])
    await sign_if_grown(forum.h.svc)
    r = await forum.verify()
    assert not r.ok and r.problem == "rollback", r.message


class RefusingProofs(httpx.AsyncHTTPTransport):
    """The real server, except that it answers 503 to every consistency proof request."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ledger/proof/consistency":
            return httpx.Response(503, json={"detail": "Service indisponible"})
        return await super().handle_async_request(request)


@pytest.mark.parametrize("via", ["tiles", "api"])
async def test_a_rewritten_history_is_reported_when_the_consistency_proof_is_refused(forum: Forum, tmp_path: Path,
                                                                                    via: str) -> None:
    before = forum.state.read_text()
    async with httpx.AsyncClient(transport=RefusingProofs()) as client:
        await forum.grow(4)  # an honest extension: the leaves alone prove it
        honest = tmp_path / "honest.json"
        honest.write_text(before)
        r = await forum.verify(honest, via=via, client=client)
        assert r.ok and r.previous_size == N and "consistency_proof_refused" in r.details, r.message
        await rewrite_history(forum, 3)
        r = await forum.verify(via=via, client=client)
    assert not r.ok and r.problem == "fork" and r.exit_code == 1, r.message
    assert "refused the consistency proof" in r.message
    assert forum.state.read_text() == before
