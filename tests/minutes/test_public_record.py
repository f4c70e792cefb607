"""The public record in the minutes service, against a real nats-server and a real database
(PostgreSQL when FORUM_TEST_DATABASE_URL is set, SQLite otherwise): consumers, idempotent append,
concurrent appenders, signed checkpoints, proofs over RPC checked with the pure verifier, typed errors."""
from __future__ import annotations

import asyncio
import base64
import gzip
import random
from pathlib import Path

import pytest
from sqlmodel import delete, func, select

from services.minutes import store
from forumlib.tlog import (
    EMPTY_ROOT, MemoryNodeStore, leaf_hash, open_checkpoint, parse_verifier_key, record_leaf_bytes,
    verify_consistency, verify_inclusion,
)
from forumlib.tlog.tiles import Tile, encode_entry_bundle
from services.minutes.models import BundleRow, EntryRow, NodeRow
from tests.minutes.harness import approved_event, running_minutes
from shared.contracts.common import ErrorCode
from shared.contracts.minutes import (
    GetConsistencyProof, GetInclusionProof, GetVerifierKey, ListEntries, ProveEvents,
)
from shared.outbox import InboxMessage
from shared.rpc import RpcError
from tests.support import database_urls, drop_schemas, nats_server

pytestmark = pytest.mark.integration


@pytest.fixture
async def minutes(tmp_path: Path):
    urls = database_urls(tmp_path)
    try:
        with nats_server() as url:
            async with running_minutes(tmp_path, url, urls["minutes"]) as h:
                yield h
    finally:
        drop_schemas(urls)


def b64d(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


async def key_of(h) -> object:  # noqa: ANN001
    return parse_verifier_key((await h.rpc(GetVerifierKey())).key)


async def all_entries(h) -> list:  # noqa: ANN001
    out: list = []
    while True:
        page = await h.rpc(ListEntries(start=len(out), end=len(out) + 1000))
        if not page.entries:
            return out
        out.extend(page.entries)


async def test_empty_log_has_a_signed_checkpoint_at_first_start(minutes) -> None:  # noqa: ANN001
    cp = await minutes.wait_checkpoint(0)
    checkpoint, _ = open_checkpoint(cp.note, [await key_of(minutes)], minutes.settings.ledger_origin)
    assert checkpoint.size == 0 and checkpoint.root_hash == EMPTY_ROOT
    assert minutes.settings.ledger_key_path.stat().st_mode & 0o077 == 0


async def test_member_approved_becomes_one_public_leaf(minutes) -> None:  # noqa: ANN001
    env = approved_event(public_id="0123456789abcdef")
    await minutes.publish(env)
    await minutes.wait_size(1)
    cp = await minutes.wait_checkpoint(1)
    (entry,) = (await all_entries(minutes))
    assert entry.index == 0
    assert entry.record == {"schema": 1, "type": "member.approved", "event_id": str(env.event_id),
                            "occurred_at": entry.record["occurred_at"],
                            "data": {"public_id": "0123456789abcdef", "college": "citizen"}}
    assert entry.record["occurred_at"].endswith("Z")
    leaf = b64d(entry.leaf)
    assert leaf == record_leaf_bytes(entry.record)
    assert env.data.member_id.encode() not in leaf
    checkpoint, _ = open_checkpoint(cp.note, [await key_of(minutes)], minutes.settings.ledger_origin)
    assert checkpoint.size == 1 and checkpoint.root_hash == leaf_hash(leaf)


async def test_redelivered_event_never_makes_a_second_leaf(minutes) -> None:  # noqa: ANN001
    env = approved_event()
    # Same event under two Nats-Msg-Ids: JetStream delivers both; the inbox drops the second.
    await minutes.publish(env, msg_id="first")
    await minutes.publish(env, msg_id="second")
    marker = approved_event()
    await minutes.publish(marker)
    await minutes.wait_size(2)
    await asyncio.sleep(0.5)
    # And if the inbox row were lost (e.g. another consumer name), the ledger's own key still holds.
    async with minutes.svc.db.transaction() as tx:
        appended = await store.append(tx, [store.Pending(str(env.event_id), "member.approved",
                                                        {"schema": 1, "type": "x", "data": {}})])
    assert appended == []
    assert await minutes.size() == 2
    async with minutes.svc.db.read() as tx:
        ids = (await tx.exec(select(EntryRow.event_id).order_by(EntryRow.leaf_index))).all()
        inbox = (await tx.exec(select(func.count()).select_from(InboxMessage))).one()
    assert ids == [str(env.event_id), str(marker.event_id)]
    assert inbox == 2


async def test_a_burst_with_redeliveries_becomes_one_leaf_per_event_in_stream_order(minutes) -> None:  # noqa: ANN001
    """1,200 events and 150 second copies of some of them (other Nats-Msg-Ids, later in the stream) land
    in batches: one leaf per event, in the order the stream first carried them, one tree."""
    envs = [approved_event() for _ in range(1200)]
    copies = [envs[i] for i in range(0, 1200, 8)]
    sent = [(e, f"copy-{e.event_id}" if n >= 1200 else str(e.event_id)) for n, e in enumerate(envs + copies)]
    random.Random(7).shuffle(sent)
    acks = await asyncio.gather(*[minutes.js.publish(e.type, e.model_dump_json().encode(), timeout=30,
                                                     headers={"Nats-Msg-Id": msg_id}) for e, msg_id in sent])
    first_seq: dict[str, int] = {}
    for (e, _), ack in zip(sent, acks, strict=True):
        first_seq[str(e.event_id)] = min(ack.seq, first_seq.get(str(e.event_id), ack.seq))
    await minutes.wait_size(1200, timeout=60)
    await asyncio.sleep(0.5)
    async with minutes.svc.db.read() as tx:
        ids = (await tx.exec(select(EntryRow.event_id).order_by(EntryRow.leaf_index))).all()
        head = await store.read_head(tx)
    assert ids == sorted(first_seq, key=first_seq.__getitem__)
    mem = MemoryNodeStore()
    mem.append([leaf_hash(b64d(e.leaf)) for e in await all_entries(minutes)])
    assert head.size == 1200 and head.root == mem.root()
    (batch,) = [b for b in minutes.svc.batch_consumers if b.durable == "minutes--registry-member-approved"]
    assert batch.handled == 1350 and batch.batches < 1350 / 2, (batch.batches, batch.handled)


async def test_concurrent_appenders_get_consecutive_indices_and_one_tree(minutes) -> None:  # noqa: ANN001
    """Twenty transactions at once (as replicas would): the head lock serialises them."""

    async def one(batch: int) -> list[int]:
        async with minutes.svc.db.transaction() as tx:
            return await store.append(tx, [store.Pending(f"c-{batch}-{i}", "test", {"batch": batch, "i": i})
                                          for i in range(5)])

    results = await asyncio.gather(*[one(b) for b in range(20)])
    indices = sorted(i for r in results for i in r)
    assert indices == list(range(100))
    for r in results:
        assert r == list(range(r[0], r[0] + 5))  # a transaction's records stay together, in order
    entries = await all_entries(minutes)
    mem = MemoryNodeStore()
    mem.append([leaf_hash(b64d(e.leaf)) for e in entries])
    async with minutes.svc.db.read() as tx:
        head = await store.read_head(tx)
        nodes = (await tx.exec(select(func.count()).select_from(NodeRow))).one()
    assert head.size == 100 and head.root == mem.root()
    assert nodes == len(mem)  # each complete subtree stored exactly once
    cp = await minutes.wait_checkpoint(100)
    assert b64d(cp.root) == mem.root()


async def test_appends_store_each_full_entry_bundle_once_whatever_their_sizes(minutes) -> None:  # noqa: ANN001
    """Appends of every size, across bundle boundaries (one leaf completing a bundle, one append completing
    three): each full tlog-tiles entry bundle is stored, gzipped, equal to the one built from the leaves."""
    n = 0
    for size in (1, 254, 1, 300, 3, 1, 900, 5, 256):  # ends at 1721: six full bundles
        async with minutes.svc.db.transaction() as tx:
            await store.append(tx, [store.Pending(f"b-{n + i}", "test", {"n": n + i, "pad": "x" * (i % 50)})
                                    for i in range(size)])
        n += size
    leaves = [b64d(e.leaf) for e in await all_entries(minutes)]
    async with minutes.svc.db.read() as tx:
        stored = {r.idx: r.data for r in (await tx.exec(select(BundleRow))).all()}
        assert sorted(stored) == list(range(6))
        for b in range(6):
            assert gzip.decompress(stored[b]) == encode_entry_bundle(leaves[b * 256:(b + 1) * 256])
            assert await store.read_tiles(tx, Tile(None, b)) == [stored[b]]
        # Stored bundles come with the stored ones that follow; a partial bundle, or one whose stored copy
        # is gone, is built from the leaves (with those that follow it), gzipped alike.
        await tx.exec(delete(BundleRow).where(BundleRow.idx == 2))
        assert await store.read_tiles(tx, Tile(None, 0), ahead=7) == [stored[0], stored[1]]
        first, *ahead = await store.read_tiles(tx, Tile(None, 2), ahead=7)
        assert [gzip.decompress(x) for x in [first, *ahead]] == [
            encode_entry_bundle(leaves[b * 256:(b + 1) * 256]) for b in range(2, 6)]
        (partial,) = await store.read_tiles(tx, Tile(None, 6, 1721 - 6 * 256))
        assert gzip.decompress(partial) == encode_entry_bundle(leaves[6 * 256:])
        level0 = await store.read_tiles(tx, Tile(0, 0), ahead=15)
        assert level0 == [b"".join(leaf_hash(x) for x in leaves[b * 256:(b + 1) * 256]) for b in range(6)]


async def test_proofs_over_rpc_verify_with_the_pure_verifier(minutes) -> None:  # noqa: ANN001
    n = 37
    await minutes.publish_approved(n)
    await minutes.wait_size(n)
    cp = await minutes.wait_checkpoint(n)
    entries = await all_entries(minutes)
    assert [e.index for e in entries] == list(range(n))
    leaves = [leaf_hash(b64d(e.leaf)) for e in entries]
    mem = MemoryNodeStore()
    roots = [EMPTY_ROOT]
    for h in leaves:
        roots.append(mem.append([h]))
    assert b64d(cp.root) == roots[n]
    rng = random.Random(4)
    for size in [1, 2, 3, 7, 8, 9, 16, 31, 32, 33, n]:
        for index in {0, size - 1, rng.randrange(size)}:
            p = await minutes.rpc(GetInclusionProof(index=index, size=size))
            assert (p.leaf_index, p.tree_size) == (index, size)
            verify_inclusion(index, size, leaves[index], [b64d(x) for x in p.hashes], roots[size])
    for first, second in [(0, n), (1, 2), (1, n), (7, 8), (8, 16), (15, 33), (32, n), (n, n), (5, 5)]:
        p = await minutes.rpc(GetConsistencyProof(first=first, second=second))
        verify_consistency(first, second, roots[first], roots[second], [b64d(x) for x in p.hashes])


async def test_bad_inputs_are_typed_errors(minutes) -> None:  # noqa: ANN001
    await minutes.publish_approved(5)
    await minutes.wait_size(5)
    cases = [
        ("ledger-inclusion", {"index": 5, "size": 5}, ErrorCode.INVALID, "index"),
        ("ledger-inclusion", {"index": 0, "size": 6}, ErrorCode.NOT_FOUND, "size"),
        ("ledger-inclusion", {"index": -1, "size": 3}, ErrorCode.INVALID, "index"),
        ("ledger-inclusion", {"index": 0, "size": 2**70}, ErrorCode.INVALID, "size"),
        ("ledger-consistency", {"first": 4, "second": 3}, ErrorCode.INVALID, "first"),
        ("ledger-consistency", {"first": 1, "second": 6}, ErrorCode.NOT_FOUND, "second"),
        ("ledger-consistency", {"first": -2, "second": 3}, ErrorCode.INVALID, "first"),
        ("ledger-entries", {"start": 3, "end": 3}, ErrorCode.INVALID, "start"),
        ("ledger-entries", {"start": 4, "end": 1}, ErrorCode.INVALID, "start"),
        ("ledger-entries", {"start": -1, "end": 1}, ErrorCode.INVALID, "start"),
        ("ledger-entries", {"start": "a", "end": 1}, ErrorCode.INVALID, "start"),
    ]
    for op, body, code, field in cases:
        msg = await minutes.broker.request(body, f"rpc.minutes.{op}", timeout=10)
        reply = await msg.decode()
        assert reply["ok"] is False, (op, body)
        assert (reply["error"]["code"], reply["error"]["field"]) == (code, field), (op, body, reply)
    # Entries past the end are simply not there; a page never exceeds 1000.
    page = await minutes.rpc(ListEntries(start=3, end=10**12))
    assert [e.index for e in page.entries] == [3, 4]
    assert (await minutes.rpc(ListEntries(start=9, end=20))).entries == []
    with pytest.raises(RpcError) as exc:
        await minutes.rpc(GetInclusionProof(index=9, size=9))
    assert exc.value.code == ErrorCode.INVALID


async def test_prove_events_brings_locations_entry_and_a_proof_that_verifies(minutes) -> None:  # noqa: ANN001
    async with minutes.svc.db.transaction() as tx:
        await store.append(tx, [store.Pending(f"e-{i}", "test", {"i": i}) for i in range(12)])
    cp = await minutes.wait_checkpoint(12)
    got = await minutes.rpc(ProveEvents(event_ids=["e-9", "unknown", "e-3"], prove="e-9"))
    assert [(loc.event_id, loc.index, loc.type) for loc in got.locations] == [("e-3", 3, "test"), ("e-9", 9, "test")]
    assert got.key == (await minutes.rpc(GetVerifierKey())).key
    assert got.checkpoint is not None and got.checkpoint.size >= 12
    verifier = parse_verifier_key(got.key)
    checkpoint, _ = open_checkpoint(got.checkpoint.note, [verifier], verifier.name)
    assert got.entry is not None and (got.entry.index, got.entry.record) == (9, {"i": 9})
    assert got.proof is not None and (got.proof.leaf_index, got.proof.tree_size) == (9, checkpoint.size)
    verify_inclusion(9, checkpoint.size, leaf_hash(b64d(got.entry.leaf)), [b64d(x) for x in got.proof.hashes],
                     checkpoint.root_hash)
    assert checkpoint.size >= cp.size
    # An event not in the log: where the others are, and no entry to prove.
    got = await minutes.rpc(ProveEvents(event_ids=["unknown", "e-0"], prove="unknown"))
    assert [loc.index for loc in got.locations] == [0] and got.entry is None and got.proof is None
    # `prove` must be one of the events; at least one event.
    for body, field in (({"event_ids": ["e-1"], "prove": "e-2"}, "prove"), ({"event_ids": []}, "event_ids")):
        reply = await (await minutes.broker.request(body, "rpc.minutes.ledger-prove-events", timeout=10)).decode()
        assert reply["ok"] is False and (reply["error"]["code"], reply["error"]["field"]) == ("invalid", field)


async def test_page_size_is_bounded(minutes) -> None:  # noqa: ANN001
    async with minutes.svc.db.transaction() as tx:
        await store.append(tx, [store.Pending(f"p-{i}", "test", {"i": i}) for i in range(1203)])
    page = await minutes.rpc(ListEntries(start=0, end=5000))
    assert [e.index for e in page.entries] == list(range(1000))
    page = await minutes.rpc(ListEntries(start=1000, end=5000))
    assert [e.index for e in page.entries] == list(range(1000, 1203))


async def test_key_and_log_survive_a_restart(tmp_path: Path) -> None:
    urls = database_urls(tmp_path)
    try:
        with nats_server() as url:
            async with running_minutes(tmp_path, url, urls["minutes"]) as h:
                await h.publish_approved(3)
                first = await h.wait_checkpoint(3)
                key = (await key_of(h)).encode()
            async with running_minutes(tmp_path, url, urls["minutes"]) as h:
                await h.publish_approved(2)
                second = await h.wait_checkpoint(5)
                assert (await key_of(h)).encode() == key
                p = await h.rpc(GetConsistencyProof(first=3, second=5))
                verify_consistency(3, 5, b64d(first.root), b64d(second.root), [b64d(x) for x in p.hashes])
                async with h.svc.db.read() as tx:
                    n = (await tx.exec(select(func.count()).select_from(EntryRow))).one()
                assert n == 5
    finally:
        drop_schemas(urls)


async def test_database_tree_reproduces_the_rfc_9162_test_vectors(tmp_path: Path) -> None:
    """The Certificate Transparency reference vectors (tests/forumlib/tlog/vectors.py), through the
    database layout and its one-query node reads."""
    from sqlalchemy import insert

    from forumlib.tlog import Frontier
    from services.minutes.models import HeadRow
    from shared.db import Database
    from shared.migrations import upgrade
    from tests.forumlib.tlog import vectors

    urls = database_urls(tmp_path)
    await asyncio.to_thread(upgrade, "minutes", urls["minutes"])
    db = Database(urls["minutes"])
    try:
        frontier, rows = Frontier(), []
        for leaf in vectors.LEAF_INPUTS:
            rows += [{"level": lv, "idx": ix, "hash": h} for (lv, ix), h in frontier.append(leaf_hash(leaf))]
        async with db.transaction() as tx:
            await tx.exec(insert(NodeRow.__table__), params=rows)
            await tx.exec(insert(HeadRow.__table__).values(id=store.HEAD_ID, tree_size=frontier.size,
                                                          root=frontier.root(), frontier=b"".join(
                                                              h for _, h in frontier.nodes)))
        async with db.read() as tx:
            for size, root in enumerate(vectors.ROOTS):
                assert await store.stored_root(tx, size) == root
            for index, size, proof in vectors.INCLUSION_PROOFS:
                assert await store.prove_inclusion(tx, index, size) == proof
            for first, second, proof in vectors.CONSISTENCY_PROOFS:
                assert await store.prove_consistency(tx, first, second) == proof
    finally:
        await db.dispose()
        drop_schemas(urls)
