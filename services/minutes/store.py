"""The public record in the minutes database: append, read, prove, and keep the signed checkpoints.

The pure tree code (`forumlib.tlog`) reads nodes through a synchronous `NodeReader`;
here the node ids a computation needs are known up front (`*_node_ids`), fetched with **one**
primary-key query (`(level = ? AND idx IN (…)) OR …`), and handed to it as a `DictNodeReader`.

Appending locks the single `ledger_head` row (`SELECT … FOR UPDATE` on PostgreSQL; on SQLite the
service's process-wide write lock already serialises transactions) inside the caller's transaction
— the consumer's, which also records the event in the inbox — so indices are consecutive and a
leaf, its nodes, the new head and the inbox row commit together or not at all.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, insert, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from forumlib.tlog import (
    EMPTY_ROOT,
    HASH_SIZE,
    DictNodeReader,
    Frontier,
    NodeId,
    consistency_node_ids,
    consistency_proof,
    inclusion_node_ids,
    inclusion_proof,
    leaf_hash,
    record_leaf_bytes,
    root_hash,
    root_node_ids,
)
from services.minutes.models import CheckpointRow, EntryRow, HeadRow, NodeRow
from shared.contracts.minutes import MAX_PAGE
from shared.db import dialect_insert
from shared.clock import utcnow
from shared.errors import Invalid, NotFound

HEAD_ID = 1
MAX_PAGE_BYTES = 400_000
"""A page of entries stops growing past this many bytes of leaves (NATS's default max payload is 1 MB,
and each entry travels twice: as base64 leaf and as the parsed record)."""


class LedgerCorrupt(RuntimeError):
    """The stored tree disagrees with itself (head frontier/root vs nodes): never append to or sign it."""


@dataclass(frozen=True)
class Head:
    size: int
    root: bytes


@dataclass(frozen=True)
class Pending:
    """A record waiting to be appended, keyed by the event that carried it."""

    event_id: str
    kind: str
    record: Mapping[str, Any]


def _insert_ignore(tx: AsyncSession, table: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING for the transaction's dialect."""
    return dialect_insert(tx, table).on_conflict_do_nothing()


# ---------------------------------------------------------------- nodes
async def get_nodes(tx: AsyncSession, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
    """`NodeReader.get_nodes`, asynchronously: one query for all ids."""
    if not ids:
        return {}
    # `(level = ? AND idx IN (…)) OR …`, one term per level: both SQLite and PostgreSQL answer it with
    # primary-key lookups (SQLite answers a row-value `(level, idx) IN (VALUES …)` with a full scan).
    by_level: dict[int, list[int]] = {}
    for level, idx in ids:
        by_level.setdefault(level, []).append(idx)
    stmt = select(NodeRow.level, NodeRow.idx, NodeRow.hash).where(or_(*(
        and_(col(NodeRow.level) == level, col(NodeRow.idx).in_(idxs)) for level, idxs in by_level.items())))
    return {(lv, ix): bytes(h) for lv, ix, h in (await tx.exec(stmt)).all()}


async def reader_for(tx: AsyncSession, ids: Sequence[NodeId]) -> DictNodeReader:
    return DictNodeReader(await get_nodes(tx, ids))


# ---------------------------------------------------------------- head
def _frontier(size: int, blob: bytes) -> Frontier:
    blob = bytes(blob)
    return Frontier(size, [blob[i:i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)])


async def read_head(tx: AsyncSession) -> Head:
    row = (await tx.exec(select(HeadRow.tree_size, HeadRow.root).where(HeadRow.id == HEAD_ID))).first()
    return Head(0, EMPTY_ROOT) if row is None else Head(int(row[0]), bytes(row[1]))


async def lock_head(tx: AsyncSession) -> Frontier:
    """The current frontier, with the head row locked until the end of the transaction (created on
    first use). Checked against the stored root: never append to a head that disagrees with itself."""
    stmt = (select(HeadRow.tree_size, HeadRow.root, HeadRow.frontier)
            .where(HeadRow.id == HEAD_ID).with_for_update())
    row = (await tx.exec(stmt)).first()
    if row is None:
        await tx.exec(_insert_ignore(tx, HeadRow.__table__).values(
            id=HEAD_ID, tree_size=0, root=EMPTY_ROOT, frontier=b"", updated_at=utcnow()))
        row = (await tx.exec(stmt)).first()
        assert row is not None
    frontier = _frontier(int(row[0]), row[2])
    if frontier.root() != bytes(row[1]):
        raise LedgerCorrupt(f"the head's frontier gives root {frontier.root().hex()} for size {frontier.size}, "
                            f"the head says {bytes(row[1]).hex()}")
    return frontier


# ---------------------------------------------------------------- append
async def append(tx: AsyncSession, items: Sequence[Pending]) -> list[int]:
    """Append records (in order) inside the caller's transaction; returns the new leaf indices.

    Idempotent per event id: a record whose event is already in the log (or earlier in `items`)
    is skipped. Runs under the head lock, so the check cannot race with another appender.
    One record (the consumers' case) costs four statements: lock, entry, nodes, head."""
    if not items:
        return []
    frontier = await lock_head(tx)
    now = utcnow()
    if len(items) == 1:
        # Optimistic: the UNIQUE event_id decides, nothing else is written for a duplicate.
        p = items[0]
        leaf = record_leaf_bytes(p.record)
        stmt = _insert_ignore(tx, EntryRow.__table__).values(
            leaf_index=frontier.size, event_id=p.event_id, kind=p.kind, leaf=leaf, record=leaf.decode("utf-8"),
            created_at=now).returning(EntryRow.__table__.c.leaf_index)
        if (await tx.exec(stmt)).first() is None:
            return []
        indices = [frontier.size]
        nodes = [{"level": lv, "idx": ix, "hash": h} for (lv, ix), h in frontier.append(leaf_hash(leaf))]
    else:
        ids = list(dict.fromkeys(p.event_id for p in items))
        present = set((await tx.exec(select(EntryRow.event_id).where(
            col(EntryRow.event_id).in_(ids)))).all())
        entries, nodes = [], []
        for p in items:
            if p.event_id in present:
                continue
            present.add(p.event_id)
            leaf = record_leaf_bytes(p.record)
            entries.append({"leaf_index": frontier.size, "event_id": p.event_id, "kind": p.kind, "leaf": leaf,
                            "record": leaf.decode("utf-8"), "created_at": now})
            nodes.extend({"level": lv, "idx": ix, "hash": h} for (lv, ix), h in frontier.append(leaf_hash(leaf)))
        if not entries:
            return []
        await tx.exec(insert(EntryRow.__table__), params=entries)
        indices = [e["leaf_index"] for e in entries]
    await tx.exec(insert(NodeRow.__table__), params=nodes)
    await tx.exec(update(HeadRow.__table__).where(HeadRow.__table__.c.id == HEAD_ID).values(
        tree_size=frontier.size, root=frontier.root(), frontier=b"".join(h for _, h in frontier.nodes),
        updated_at=now))
    return indices


# ---------------------------------------------------------------- reads
async def read_entries(tx: AsyncSession, start: int, end: int) -> list[tuple[int, bytes, dict[str, Any]]]:
    """Entries start <= index < end, at most MAX_PAGE, stopping early past MAX_PAGE_BYTES."""
    if start >= end:
        raise Invalid("start doit être inférieur à end (start must be less than end).", field="start")
    size = (await read_head(tx)).size
    stop = min(end, start + MAX_PAGE, size)
    if start >= stop:
        return []
    stmt = (select(EntryRow.leaf_index, EntryRow.leaf, EntryRow.record)
            .where(EntryRow.leaf_index >= start, EntryRow.leaf_index < stop)
            .order_by(col(EntryRow.leaf_index)))
    out: list[tuple[int, bytes, dict[str, Any]]] = []
    total = 0
    for index, leaf, record in (await tx.exec(stmt)).all():
        leaf = bytes(leaf)
        total += 2 * len(leaf)
        if out and total > MAX_PAGE_BYTES:
            break
        out.append((int(index), leaf, json.loads(record)))
    return out


async def locate(tx: AsyncSession, event_ids: Sequence[str]) -> tuple[list[tuple[str, int, str]], int]:
    """`(event_id, leaf index, record type)` of each of these events that is in the log, in log order
    (one query on the UNIQUE `event_id`; unknown ids left out), and the current size of the log."""
    ids = list(dict.fromkeys(event_ids))
    stmt = (select(EntryRow.event_id, EntryRow.leaf_index, EntryRow.kind)
            .where(col(EntryRow.event_id).in_(ids)).order_by(col(EntryRow.leaf_index)))
    rows = [(str(e), int(i), str(k)) for e, i, k in (await tx.exec(stmt)).all()] if ids else []
    return rows, (await read_head(tx)).size


async def _check_size(tx: AsyncSession, size: int, field: str) -> None:
    current = (await read_head(tx)).size
    if size > current:
        raise NotFound(f"L'arbre n'a que {current} feuilles ; pas d'arbre de taille {size} "
                       f"(the log has {current} leaves, no tree of size {size}).", field=field)


async def prove_inclusion(tx: AsyncSession, index: int, size: int) -> list[bytes]:
    if index >= size:
        raise Invalid(f"index {index} hors d'un arbre de taille {size} "
                      f"(leaf index must be less than the tree size).", field="index")
    await _check_size(tx, size, "size")
    return inclusion_proof(await reader_for(tx, inclusion_node_ids(index, size)), index, size)


async def prove_consistency(tx: AsyncSession, first: int, second: int) -> list[bytes]:
    if first > second:
        raise Invalid(f"first ({first}) doit être inférieur ou égal à second ({second}) "
                      f"(first must not exceed second).", field="first")
    await _check_size(tx, second, "second")
    return consistency_proof(await reader_for(tx, consistency_node_ids(first, second)), first, second)


async def stored_root(tx: AsyncSession, size: int) -> bytes:
    return root_hash(await reader_for(tx, root_node_ids(size)), size)


# ---------------------------------------------------------------- checkpoints
async def latest_checkpoint(tx: AsyncSession) -> CheckpointRow | None:
    stmt = select(CheckpointRow).order_by(col(CheckpointRow.tree_size).desc()).limit(1)
    return (await tx.exec(stmt)).first()


async def checkpoint_due(tx: AsyncSession) -> Head | None:
    """The head to sign, if the tree grew past the latest checkpoint (or none was signed yet)."""
    head = await read_head(tx)
    latest = (await tx.exec(select(func.max(CheckpointRow.tree_size)))).first()
    if latest is not None and head.size <= latest:
        return None
    root = await stored_root(tx, head.size)
    if root != head.root:
        raise LedgerCorrupt(f"stored nodes give root {root.hex()} for size {head.size}, the head says "
                            f"{head.root.hex()}: refusing to sign")
    return head


async def save_checkpoint(tx: AsyncSession, head: Head, note: str) -> None:
    """Store a signed checkpoint; another replica may have stored the same size first (same note:
    Ed25519 signatures are deterministic)."""
    await tx.exec(_insert_ignore(tx, CheckpointRow.__table__).values(
        tree_size=head.size, root=head.root, note=note, created_at=utcnow()))
