"""Signed checkpoints of the public record: the checkpoint signer job.

As soon as the tree grows, the signer signs a checkpoint (C2SP tlog-checkpoint in a signed note) for
the new head, at most one per `ledger_checkpoint_interval` seconds. Consumers that appended leaves
wake it once their transaction commits; it also looks every `ledger_checkpoint_poll` seconds, for
leaves another replica appended. At the first start it signs the empty tree, so
`GET /ledger/checkpoint` always has an answer.
"""
from __future__ import annotations

from typing import Any

from forumlib.tlog import Checkpoint, sign_checkpoint
from services.minutes import store
from services.minutes.keys import signer
from shared.service import Service

CHECKPOINT_SIGNER = "checkpoint-signer"


async def sign_if_grown(service: Service) -> int:
    """One step of the signer: sign the current head if it is newer than the latest checkpoint.
    Returns how many checkpoints it signed (0 or 1). A stored tree that disagrees with itself is
    never signed (`store.LedgerCorrupt`: the step fails, is logged and retried)."""
    async with service.db.read() as tx:
        head = await store.checkpoint_due(tx)
    if head is None:
        return 0
    settings = service.settings
    note = sign_checkpoint(Checkpoint(origin=settings.ledger_origin, size=head.size, root_hash=head.root),
                           signer(settings))
    async with service.db.transaction() as tx:
        await store.save_checkpoint(tx, head, note)
    return 1


def check_signing_key(service: Service) -> None:
    """Fail at start, not at the first checkpoint, if the key file is unusable (it is created at the
    first start)."""
    signer(service.settings)


async def health(service: Service) -> dict[str, Any]:
    """Size of the log and of its latest signed checkpoint (they differ while the signer catches up)."""
    async with service.db.read() as tx:
        head = await store.read_head(tx)
        cp = await store.latest_checkpoint(tx)
    return {"ledger_size": head.size, "ledger_checkpoint_size": cp.tree_size if cp else None}
