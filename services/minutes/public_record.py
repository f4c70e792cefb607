"""The public record in and out: public facts appended as leaves, and the queries the web front
answers `/ledger/*` with.

In: one durable batch consumer per public fact of `records.RECORDERS` (`minutes--<event-type>`). The
records of a batch of events are appended under one head lock, in the transaction that also holds
their inbox rows, and the checkpoint signer is woken once it commits.

Out: the latest signed checkpoint, the verifier key, pages of entries, RFC 9162 inclusion and
consistency proofs, C2SP tlog-tiles (hash tiles and entry bundles), and where given events' records
are in the log (contracts in `shared/contracts/minutes.py`). Hashes, leaves and tiles travel as base64.
"""
from __future__ import annotations

import base64
from typing import Any

from forumlib.tlog.tiles import Tile
from services.minutes import store
from services.minutes.checkpoints import CHECKPOINT_SIGNER
from services.minutes.keys import signer
from services.minutes.records import Recorder, record_of
from shared.contracts.common import ErrorCode
from shared.contracts.envelope import Envelope
from shared.contracts.minutes import (
    ConsistencyProof, EntryLocation, EntryLocations, EventRecords, GetCheckpoint, GetConsistencyProof,
    GetInclusionProof, GetTile, GetVerifierKey, InclusionProof, LedgerCheckpoint, LedgerEntries, LedgerEntry, LedgerKey,
    LedgerTile, ListEntries, LocateEntries, ProveEvents,
)
from shared.errors import DomainError, Invalid
from shared.outbox import UnitOfWork
from shared.service import EventHandler, HandlerContext


# ---------------------------------------------------------------- public facts in
def appender(recorder: Recorder) -> EventHandler:
    """The batch consumer that appends the records of `recorder`'s events (named after its record
    type, which the AsyncAPI document shows)."""

    async def append_records(events: list[Envelope[Any]], uow: UnitOfWork) -> None:
        items = [store.Pending(str(e.event_id), recorder.record_type, record_of(recorder, e)) for e in events]
        if await store.append(uow.tx, items):
            uow.wake_after_commit(CHECKPOINT_SIGNER)

    append_records.__name__ = append_records.__qualname__ = f"record_{recorder.record_type.replace('.', '_')}"
    append_records.__doc__ = f"Appends `{recorder.record_type}` records to the public record (transparency log)."
    return append_records


# ---------------------------------------------------------------- queries
async def ledger_checkpoint(req: GetCheckpoint, ctx: HandlerContext) -> LedgerCheckpoint:
    """The latest signed checkpoint of the public record (C2SP signed note)."""
    async with ctx.db.read() as tx:
        cp = await store.latest_checkpoint(tx)
    if cp is None:
        raise DomainError("Le registre n'a pas encore de point de contrôle signé ; réessayez dans un instant "
                          "(no checkpoint signed yet).", code=ErrorCode.UNAVAILABLE)
    return LedgerCheckpoint(note=cp.note, size=cp.tree_size, root=_b64(cp.root))


async def ledger_key(req: GetVerifierKey, ctx: HandlerContext) -> LedgerKey:
    """The note verifier key of the public record."""
    return LedgerKey(key=signer(ctx.settings).verifier.encode(), origin=ctx.settings.ledger_origin)


async def ledger_entries(req: ListEntries, ctx: HandlerContext) -> LedgerEntries:
    """Entries start <= index < end (at most 1000; fewer at the end of the log or of a full page)."""
    async with ctx.db.read() as tx:
        rows = await store.read_entries(tx, req.start, req.end)
    return LedgerEntries.model_validate(  # one validation call in pydantic-core: the fastest way here
        {"entries": [{"index": i, "leaf": _b64(leaf), "record": rec} for i, leaf, rec in rows]})


async def ledger_inclusion(req: GetInclusionProof, ctx: HandlerContext) -> InclusionProof:
    """RFC 9162 inclusion proof of leaf `index` in the tree of `size` leaves."""
    async with ctx.db.read() as tx:
        hashes = await store.prove_inclusion(tx, req.index, req.size)
    return InclusionProof(leaf_index=req.index, tree_size=req.size, hashes=[_b64(h) for h in hashes])


async def ledger_consistency(req: GetConsistencyProof, ctx: HandlerContext) -> ConsistencyProof:
    """RFC 9162 consistency proof between the trees of `first` and `second` leaves."""
    async with ctx.db.read() as tx:
        hashes = await store.prove_consistency(tx, req.first, req.second)
    return ConsistencyProof(first=req.first, second=req.second, hashes=[_b64(h) for h in hashes])


async def ledger_locate(req: LocateEntries, ctx: HandlerContext) -> EntryLocations:
    """Leaf index and record type of the records these events carried (unknown ids left out), and
    the current size of the log."""
    async with ctx.db.read() as tx:
        rows, size = await store.locate(tx, req.event_ids), (await store.read_head(tx)).size
    return EntryLocations(locations=[EntryLocation(event_id=e, index=i, type=k) for e, i, k in rows], size=size)


async def ledger_prove_events(req: ProveEvents, ctx: HandlerContext) -> EventRecords:
    """Where these events' records are in the log and, for `prove`, its entry and inclusion proof
    against the latest signed checkpoint, with that checkpoint and the verifier key (one transaction)."""
    async with ctx.db.read() as tx:
        rows = await store.locate(tx, req.event_ids)
        cp = await store.latest_checkpoint(tx)
        index = next((i for e, i, _ in rows if e == req.prove), None)
        proven = await store.prove_event(tx, index, cp) if index is not None else None
    entry = proof = None
    if proven is not None:
        entry = LedgerEntry(index=proven.index, leaf=_b64(proven.leaf), record=proven.record)
        if proven.path is not None and cp is not None:
            proof = InclusionProof(leaf_index=proven.index, tree_size=cp.tree_size,
                                   hashes=[_b64(h) for h in proven.path])
    return EventRecords(
        locations=[EntryLocation(event_id=e, index=i, type=k) for e, i, k in rows],
        key=signer(ctx.settings).verifier.encode(),
        checkpoint=LedgerCheckpoint(note=cp.note, size=cp.tree_size, root=_b64(cp.root)) if cp else None,
        entry=entry, proof=proof)


TILE_REPLY_BYTES = 480_000
"""Tile bytes per `ledger-tile` reply (base64 makes them a third larger; NATS's default max payload is
1 MB): a larger tile comes in parts, and tiles read ahead only while they fit."""


async def ledger_tile(req: GetTile, ctx: HandlerContext) -> LedgerTile:
    """A C2SP tlog-tiles resource: a hash tile (from the stored nodes) or an entry bundle (the leaves,
    gzipped: JSON shrinks about five-fold, and the web front serves them so), and up to `ahead` of the
    full tiles that follow it (what a sequential reader asks for next)."""
    async with ctx.db.read() as tx:
        tiles = await store.read_tiles(tx, Tile(req.level, req.index, req.width), req.ahead if req.offset == 0 else 0)
    first = tiles[0]
    if req.offset > len(first):
        raise Invalid(f"offset {req.offset} au-delà des {len(first)} octets de la tuile "
                      f"(offset past the end of the tile).", field="offset")
    part = first[req.offset:req.offset + TILE_REPLY_BYTES]
    room = TILE_REPLY_BYTES - len(part)
    ahead = []
    if req.offset == 0 and len(first) <= TILE_REPLY_BYTES:
        for data in tiles[1:]:
            if len(data) > room:
                break
            ahead.append(_b64(data))
            room -= len(data)
    return LedgerTile(encoding="identity" if req.level is not None else "gzip", data=_b64(part), total=len(first),
                      ahead=ahead)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
