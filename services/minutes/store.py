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
from forumlib.tlog.tiles import MAX_ENTRY_SIZE, TILE_HEIGHT, TILE_WIDTH, Tile, encode_entry_bundle, gzip_bytes
from services.minutes.models import BundleRow, CheckpointRow, EntryRow, HeadRow, NodeRow
from shared.contracts.minutes import MAX_INDEX, MAX_PAGE
from shared.db import dialect_insert
from shared.clock import utcnow
from shared.errors import Invalid, NotFound
from shared.logging import get_logger

log = get_logger(__name__)
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
_PG_NODES_READ = ("SELECT n.level, n.idx, n.hash FROM unnest(%b::text::smallint[], %b::text::bigint[]) AS u(lv, ix) "
                  "JOIN ledger_node n ON n.level = u.lv AND n.idx = u.ix")


async def get_nodes(tx: AsyncSession, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
    """`NodeReader.get_nodes`, asynchronously: one query for all ids."""
    if not ids:
        return {}
    if _postgres(tx):  # one fixed statement: no expression to build and compile for each proof's shape
        rows = await _pg(tx, _PG_NODES_READ, [_int_array([lv for lv, _ in ids]), _int_array([ix for _, ix in ids])])
        return {(lv, ix): h for lv, ix, h in rows}
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
# On PostgreSQL a batch's rows go in one statement per table, sent as a few binary parameters (arrays,
# one blob of hashes, integer lists as array literals): one round trip and one executor run, not one per
# row, and little per-row work in the driver. The text of a record is its leaf's (UTF-8) bytes.
_PG_PRESENT = "SELECT event_id FROM ledger_entry WHERE event_id = ANY(%b::text[])"
_PG_ENTRIES = ("INSERT INTO ledger_entry (leaf_index, event_id, kind, leaf, record, created_at) "
               "SELECT %b::bigint + u.o - 1, u.e, (%b::text[])[u.k], u.l, convert_from(u.l, 'UTF8'), %b "
               "FROM unnest(%b::text[], %b::text::smallint[], %b::bytea[]) WITH ORDINALITY AS u(e, k, l, o)")
_PG_NODES = ("INSERT INTO ledger_node (level, idx, hash) SELECT u.lv, u.ix, substring(%b::bytea FROM (u.o * 32 - 31)::int FOR 32) "
             "FROM unnest(%b::text::smallint[], %b::text::bigint[]) WITH ORDINALITY AS u(lv, ix, o)")


def _int_array(values: Sequence[int]) -> str:
    return "{" + ",".join(map(str, values)) + "}"


def _postgres(tx: AsyncSession) -> bool:
    return tx.get_bind().dialect.name == "postgresql"


async def _pg(tx: AsyncSession, sql: str, params: Sequence[Any]) -> list[Any]:
    """Run `sql` with binary parameters on the transaction's own psycopg connection; its rows, if any."""
    conn = await tx.connection()
    raw = (await conn.get_raw_connection()).driver_connection
    async with raw.cursor(binary=True) as cur:  # bytea comes back as bytes, not hex text
        await cur.execute(sql, params)
        return await cur.fetchall() if cur.description else []


async def append(tx: AsyncSession, items: Sequence[Pending]) -> list[int]:
    """Append records (in order) inside the caller's transaction; returns the new leaf indices.

    Idempotent per event id: a record whose event is already in the log (or earlier in `items`)
    is skipped. Runs under the head lock, so the check cannot race with another appender.
    One record costs four statements (lock, entry, nodes, head); a batch five, whatever its size."""
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
        indices, leaves = [frontier.size], [leaf]
        nodes = [{"level": lv, "idx": ix, "hash": h} for (lv, ix), h in frontier.append(leaf_hash(leaf))]
        await tx.exec(insert(NodeRow.__table__), params=nodes)
    else:
        pg = _postgres(tx)
        ids = list(dict.fromkeys(p.event_id for p in items))
        present = ({r[0] for r in await _pg(tx, _PG_PRESENT, [ids])} if pg else
                   set((await tx.exec(select(EntryRow.event_id).where(col(EntryRow.event_id).in_(ids)))).all()))
        indices, event_ids, kinds, leaves = [], [], [], []
        levels, idxs, hashes = [], [], []
        for p in items:
            if p.event_id in present:
                continue
            present.add(p.event_id)
            leaf = record_leaf_bytes(p.record)
            indices.append(frontier.size)
            event_ids.append(p.event_id)
            kinds.append(p.kind)
            leaves.append(leaf)
            for (lv, ix), h in frontier.append(leaf_hash(leaf)):
                levels.append(lv)
                idxs.append(ix)
                hashes.append(h)
        if not indices:
            return []
        if pg:
            names = list(dict.fromkeys(kinds))
            number = {k: i for i, k in enumerate(names, 1)}
            await _pg(tx, _PG_ENTRIES, [indices[0], names, now, event_ids,
                                        _int_array([number[k] for k in kinds]), leaves])
            await _pg(tx, _PG_NODES, [b"".join(hashes), _int_array(levels), _int_array(idxs)])
        else:
            await tx.exec(insert(EntryRow.__table__), params=[  # type: ignore[call-overload]
                {"leaf_index": i, "event_id": e, "kind": k, "leaf": lf, "record": lf.decode("utf-8"), "created_at": now}
                for i, e, k, lf in zip(indices, event_ids, kinds, leaves, strict=True)])
            await tx.exec(insert(NodeRow.__table__), params=[  # type: ignore[call-overload]
                {"level": lv, "idx": ix, "hash": h} for lv, ix, h in zip(levels, idxs, hashes, strict=True)])
    await _store_bundles(tx, indices[0], leaves)
    await tx.exec(update(HeadRow.__table__).where(HeadRow.__table__.c.id == HEAD_ID).values(
        tree_size=frontier.size, root=frontier.root(), frontier=b"".join(h for _, h in frontier.nodes),
        updated_at=now))
    return indices


async def _store_bundles(tx: AsyncSession, first: int, leaves: Sequence[bytes]) -> None:
    """Store, gzipped, every full entry bundle these new leaves (indices `first`…) complete — the first
    one with the leaves of earlier appends it holds (one query) — unless a leaf is too large for one."""
    end = first + len(leaves)
    done = range(-(-(first + 1) // TILE_WIDTH) - 1, end // TILE_WIDTH)  # bundles whose last leaf is new
    if not done:
        return
    start = done[0] * TILE_WIDTH
    earlier = [bytes(leaf) for leaf in (await tx.exec(select(EntryRow.leaf).where(  # type: ignore[call-overload]
        col(EntryRow.leaf_index) >= start, col(EntryRow.leaf_index) < first).order_by(col(EntryRow.leaf_index)))).all()
               ] if start < first else []
    pool = [*earlier, *leaves]  # leaves start .. end - 1
    rows = []
    for n in done:
        bundle = pool[n * TILE_WIDTH - start:(n + 1) * TILE_WIDTH - start]
        if len(bundle) == TILE_WIDTH and max(map(len, bundle)) <= MAX_ENTRY_SIZE:
            rows.append({"idx": n, "data": gzip_bytes(encode_entry_bundle(bundle))})
    if rows:
        await tx.exec(insert(BundleRow.__table__), params=rows)  # type: ignore[call-overload]


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


async def locate(tx: AsyncSession, event_ids: Sequence[str]) -> list[tuple[str, int, str]]:
    """`(event_id, leaf index, record type)` of each of these events that is in the log, in log order
    (one query on the UNIQUE `event_id`; unknown ids left out)."""
    ids = list(dict.fromkeys(event_ids))
    if not ids:
        return []
    stmt = (select(EntryRow.event_id, EntryRow.leaf_index, EntryRow.kind)
            .where(col(EntryRow.event_id).in_(ids)).order_by(col(EntryRow.leaf_index)))
    return [(str(e), int(i), str(k)) for e, i, k in (await tx.exec(stmt)).all()]


@dataclass(frozen=True)
class ProvenRecord:
    """Leaf `index` of the log, and its inclusion path in the tree of the latest checkpoint (None when
    that checkpoint does not cover it yet)."""

    index: int
    leaf: bytes
    record: dict[str, Any]
    path: list[bytes] | None


async def prove_event(tx: AsyncSession, index: int, checkpoint: CheckpointRow | None) -> ProvenRecord | None:
    """The entry at `index` with its inclusion proof against `checkpoint` (two primary-key reads: a
    checkpoint is never beyond the head, so the size needs no check)."""
    row = (await tx.exec(select(EntryRow.leaf, EntryRow.record).where(EntryRow.leaf_index == index))).first()
    if row is None:
        return None
    path = None
    if checkpoint is not None and index < checkpoint.tree_size:
        reader = await reader_for(tx, inclusion_node_ids(index, checkpoint.tree_size))
        path = inclusion_proof(reader, index, checkpoint.tree_size)
    return ProvenRecord(index, bytes(row[0]), json.loads(row[1]), path)


# ---------------------------------------------------------------- tiles (C2SP tlog-tiles)
# On PostgreSQL the database concatenates each tile itself: one row per tile comes back, not 256.
_PG_HASH_TILES = ("SELECT idx / 256, count(*), string_agg(hash, ''::bytea ORDER BY idx) FROM ledger_node "
                  "WHERE level = %b AND idx >= %b AND idx < %b GROUP BY 1 ORDER BY 1")
_PG_ENTRY_BUNDLES = ("SELECT leaf_index / 256, count(*), max(length(leaf)), "
                     "string_agg(substring(int4send(length(leaf)) FROM 3) || leaf, ''::bytea ORDER BY leaf_index) "
                     "FROM ledger_entry WHERE leaf_index >= %b AND leaf_index < %b GROUP BY 1 ORDER BY 1")


_PG_BUNDLES = "SELECT idx, data FROM ledger_bundle WHERE idx >= %b AND idx < %b"


async def read_tiles(tx: AsyncSession, tile: Tile, ahead: int = 0) -> list[bytes]:
    """The bytes of a hash tile or entry bundle the log holds (`NotFound` otherwise), then those of up
    to `ahead` full tiles that follow it at its level, as far as the log holds them. Hashes are read
    from the stored nodes; entry bundles come **gzipped**: the full ones as stored by the append that
    completed them, others (a partial one, or one stored before bundles were) built from the leaves.

    Whatever is found complete is in the log (nodes, leaves and bundles are written with the head that
    covers them): the head is read only to say why a tile is not there."""
    wanted = range(tile.index, tile.index + 1 + (ahead if tile.full else 0))
    if tile.leaf_range()[1] > MAX_INDEX:
        raise NotFound(f"Aucune tuile {tile.path} : elle dépasse toute taille de registre possible "
                       f"(beyond any possible log size).", field="tile")
    if tile.level is None and tile.full:
        stored = await _stored_bundles(tx, wanted)
        if tile.index in stored:
            out = [stored[tile.index]]
            for n in wanted[1:]:
                if n not in stored:
                    break  # asked for on its own, it gets its own answer
                out.append(stored[n])
            return out
    found = await _built_tiles(tx, tile, wanted[0], wanted[-1] + 1)
    count, longest, data = found.get(tile.index, (0, 0, b""))
    if count != tile.width:
        size = (await read_head(tx)).size
        if not tile.within(size):
            raise NotFound(f"Le registre n'a que {size} feuilles : la tuile {tile.path} n'existe pas encore "
                           f"(the log has {size} leaves: no tile {tile.path} yet).", field="tile")
        # Not a 500: a verifier then reads these entries from /ledger/entries and names what is missing.
        log.error("ledger tile incomplete", tile=tile.path, stored=count, expected=tile.width)
        raise NotFound(f"Il manque des données au registre dans la tuile {tile.path} ({count} sur {tile.width}) "
                       f"(data missing from {tile.path}).", field="tile")
    if longest > MAX_ENTRY_SIZE:
        raise NotFound(f"La tuile {tile.path} contient une entrée de plus de {MAX_ENTRY_SIZE} octets, que le format "
                       f"tlog-tiles ne peut pas porter : lisez ces entrées par /ledger/entries (an entry of this "
                       f"bundle is too large for tlog-tiles: read it from /ledger/entries).", field="tile")
    out = [data]
    for n in wanted[1:]:
        count, longest, data = found.get(n, (0, 0, b""))
        if count != TILE_WIDTH or longest > MAX_ENTRY_SIZE:
            break
        out.append(data)
    if tile.level is None:
        out = [gzip_bytes(x) for x in out]
    return out


async def _stored_bundles(tx: AsyncSession, wanted: range) -> dict[int, bytes]:
    if _postgres(tx):
        rows = await _pg(tx, _PG_BUNDLES, [wanted[0], wanted[-1] + 1])
    else:
        rows = (await tx.exec(select(BundleRow.idx, BundleRow.data).where(  # type: ignore[call-overload]
            col(BundleRow.idx) >= wanted[0], col(BundleRow.idx) <= wanted[-1]))).all()
    return {int(n): bytes(d) for n, d in rows}


async def _built_tiles(tx: AsyncSession, tile: Tile, first: int, end: int) -> dict[int, tuple[int, int, bytes]]:
    """Tiles `first` <= n < `end` of `tile`'s level (the last one `tile`'s width when it is partial),
    concatenated from stored nodes or leaves: {n: (hashes or leaves found, longest leaf, bytes)}."""
    lo = first * TILE_WIDTH
    hi = min(end * TILE_WIDTH, tile.index * TILE_WIDTH + tile.width) if end - 1 == tile.index else end * TILE_WIDTH
    found: dict[int, tuple[int, int, bytes]] = {}
    pg = _postgres(tx)
    if tile.level is not None:
        if pg:
            rows = await _pg(tx, _PG_HASH_TILES, [TILE_HEIGHT * tile.level, lo, hi])
            return {int(n): (int(count), HASH_SIZE, bytes(data)) for n, count, data in rows}
        for idx, h in (await tx.exec(select(NodeRow.idx, NodeRow.hash).where(  # type: ignore[call-overload]
                NodeRow.level == TILE_HEIGHT * tile.level, col(NodeRow.idx) >= lo, col(NodeRow.idx) < hi)
                .order_by(col(NodeRow.idx)))).all():
            count, _, data = found.get(idx // TILE_WIDTH, (0, 0, b""))
            found[idx // TILE_WIDTH] = (count + 1, HASH_SIZE, data + bytes(h))
        return found
    if pg:
        rows = await _pg(tx, _PG_ENTRY_BUNDLES, [lo, hi])
        return {int(n): (int(count), int(longest), bytes(data)) for n, count, longest, data in rows}
    leaves: dict[int, list[bytes]] = {}
    for i, leaf in (await tx.exec(select(EntryRow.leaf_index, EntryRow.leaf).where(  # type: ignore[call-overload]
            col(EntryRow.leaf_index) >= lo, col(EntryRow.leaf_index) < hi).order_by(col(EntryRow.leaf_index)))).all():
        leaves.setdefault(i // TILE_WIDTH, []).append(bytes(leaf))
    for n, group in leaves.items():
        longest = max(map(len, group))
        found[n] = (len(group), longest, encode_entry_bundle(group) if longest <= MAX_ENTRY_SIZE else b"")
    return found


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
