"""The minutes service: the public record's consumers, queries and checkpoint signer.

`build_service()` makes a fresh `Service` with everything registered (the app module keeps one;
tests build their own with their own settings):

- one durable batch consumer per public fact in `records.RECORDERS` (`registry.member.approved`,
  the forum's session, decision, vote and rule facts), appending the records of a batch of events
  to the log in the same transaction as their inbox rows;
- RPCs `ledger-checkpoint`, `ledger-key`, `ledger-entries`, `ledger-inclusion`, `ledger-consistency`,
  `ledger-locate` (contracts in `shared/contracts/minutes.py`);
- a background signer: as soon as the tree grows it signs a checkpoint, at most one per
  `ledger_checkpoint_interval` seconds (it also signs the empty tree at first start, so
  `/ledger/checkpoint` always answers).
"""
from __future__ import annotations

import asyncio
from typing import Any

from services.minutes import store
from services.minutes.keys import load_or_create_signer
from forumlib.tlog import Signer
from services.minutes.records import RECORDERS, Recorder, record_of
from services.minutes.settings import MinutesSettings
from shared.contracts.common import ErrorCode
from shared.contracts.minutes import (
    OP_CHECKPOINT, OP_CONSISTENCY, OP_ENTRIES, OP_INCLUSION, OP_KEY, OP_LOCATE, ConsistencyProof, EntryLocation,
    EntryLocations, GetCheckpoint, GetConsistencyProof, GetInclusionProof, GetVerifierKey, InclusionProof,
    LedgerCheckpoint, LedgerEntries, LedgerKey, ListEntries, LocateEntries,
)
from shared.contracts.envelope import Envelope
from shared.errors import DomainError
from shared.logging import get_logger
from shared.outbox import UnitOfWork
from shared.service import HandlerContext, Service
from shared.settings import Settings, get_settings

log = get_logger(__name__)


class PublicRecord:
    """The log's configuration and signing key, shared by the handlers of one service instance."""

    def __init__(self, svc: Service, settings: MinutesSettings) -> None:
        self.svc = svc
        self.settings = settings
        self.origin = settings.ledger_origin
        self._signer: Signer | None = None
        self._wake = asyncio.Event()
        self.checkpoints_signed = 0

    def wake(self) -> None:
        """Leaves were committed: sign a checkpoint covering them as soon as the interval allows."""
        self._wake.set()

    def signer(self) -> Signer:
        """The signing key, loaded (or created, at first start) on first use."""
        if self._signer is None:
            self._signer = load_or_create_signer(self.settings.key_path, self.origin)
        return self._signer

    async def sign_if_grown(self) -> int | None:
        """Sign a checkpoint for the current head if it is newer than the latest one; returns its size."""
        async with self.svc.db.read() as s:
            head = await store.checkpoint_due(s)
        if head is None:
            return None
        note = store.signed_note(head, self.origin, self.signer())
        async with self.svc.db.transaction() as s:
            await store.save_checkpoint(s, head, note)
        self.checkpoints_signed += 1
        return head.size

    async def run_signer(self) -> None:
        wake = self._wake
        interval = self.settings.ledger_checkpoint_interval
        task = asyncio.current_task()
        while True:
            try:
                await self.sign_if_grown()
            except Exception as exc:  # noqa: BLE001 - keep trying; the log says why (never the key)
                if task is not None and task.cancelling():
                    # A driver turned our cancellation into an error: stop anyway, or shutdown hangs.
                    raise asyncio.CancelledError from exc
                log.error("ledger checkpoint not signed, will retry", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(interval)
            try:
                await asyncio.wait_for(wake.wait(), timeout=self.settings.ledger_checkpoint_poll)
            except TimeoutError:
                pass
            wake.clear()


def build_service(settings: Settings | None = None, minutes_settings: MinutesSettings | None = None
                  ) -> Service:
    settings = settings or get_settings()
    svc = Service("minutes", title="Comptes rendus et registre public", settings=settings)
    ledger = PublicRecord(svc, minutes_settings or MinutesSettings(data_dir=settings.data_dir))
    svc.ledger = ledger  # type: ignore[attr-defined] - for tests and the app module

    # ------------------------------------------------------------ public facts in
    for recorder in RECORDERS:
        _register_consumer(svc, ledger, recorder)

    # ------------------------------------------------------------ queries
    @svc.rpc(OP_CHECKPOINT)
    async def ledger_checkpoint(req: GetCheckpoint, ctx: HandlerContext) -> LedgerCheckpoint:
        """The latest signed checkpoint of the public record (C2SP signed note)."""
        async with svc.db.read() as s:
            cp = await store.latest_checkpoint(s)
        if cp is None:
            raise DomainError("Le registre n'a pas encore de point de contrôle signé ; réessayez dans un instant "
                              "(no checkpoint signed yet).", code=ErrorCode.UNAVAILABLE)
        return LedgerCheckpoint(note=cp.note, size=cp.tree_size, root=store.b64(cp.root))

    @svc.rpc(OP_KEY)
    async def ledger_key(req: GetVerifierKey, ctx: HandlerContext) -> LedgerKey:
        """The note verifier key of the public record."""
        return LedgerKey(key=ledger.signer().verifier.encode(), origin=ledger.origin)

    @svc.rpc(OP_ENTRIES)
    async def ledger_entries(req: ListEntries, ctx: HandlerContext) -> LedgerEntries:
        """Entries start <= index < end (at most 1000; fewer at the end of the log or of a full page)."""
        async with svc.db.read() as s:
            rows = await store.read_entries(s, req.start, req.end)
        return LedgerEntries.model_validate(  # one validation call in pydantic-core: the fastest way here
            {"entries": [{"index": i, "leaf": store.b64(leaf), "record": rec} for i, leaf, rec in rows]})

    @svc.rpc(OP_INCLUSION)
    async def ledger_inclusion(req: GetInclusionProof, ctx: HandlerContext) -> InclusionProof:
        """RFC 9162 inclusion proof of leaf `index` in the tree of `size` leaves."""
        async with svc.db.read() as s:
            hashes = await store.prove_inclusion(s, req.index, req.size)
        return InclusionProof(leaf_index=req.index, tree_size=req.size, hashes=[store.b64(h) for h in hashes])

    @svc.rpc(OP_CONSISTENCY)
    async def ledger_consistency(req: GetConsistencyProof, ctx: HandlerContext) -> ConsistencyProof:
        """RFC 9162 consistency proof between the trees of `first` and `second` leaves."""
        async with svc.db.read() as s:
            hashes = await store.prove_consistency(s, req.first, req.second)
        return ConsistencyProof(first=req.first, second=req.second, hashes=[store.b64(h) for h in hashes])

    @svc.rpc(OP_LOCATE)
    async def ledger_locate(req: LocateEntries, ctx: HandlerContext) -> EntryLocations:
        """Leaf index and record type of the records these events carried (unknown ids left out), and
        the current size of the log."""
        async with svc.db.read() as s:
            rows, size = await store.locate(s, req.event_ids)
        return EntryLocations(locations=[EntryLocation(event_id=e, index=i, type=k) for e, i, k in rows], size=size)

    # ------------------------------------------------------------ checkpoints and health
    svc.background(ledger.run_signer)

    async def health() -> dict[str, Any]:
        async with svc.db.read() as s:
            head = await store.read_head(s)
            cp = await store.latest_checkpoint(s)
        return {"ledger_size": head.size, "ledger_checkpoint_size": cp.tree_size if cp else None}

    svc.health_details = health
    return svc


def _register_consumer(svc: Service, ledger: PublicRecord, recorder: Recorder) -> None:
    async def handler(events: list[Envelope[Any]], uow: UnitOfWork) -> None:
        items = [store.Pending(str(e.event_id), recorder.record_type, record_of(recorder, e)) for e in events]
        if await store.append(uow.tx, items):
            uow.on_commit(ledger.wake)

    handler.__name__ = f"record_{recorder.record_type.replace('.', '_')}"
    handler.__doc__ = f"Appends `{recorder.record_type}` records to the public record (transparency log)."
    # A batch of leaves per transaction: the head lock and the commit are paid once per batch.
    svc.consume_batch(recorder.event)(handler)
