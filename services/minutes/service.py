"""Minutes: the forum's public record, a transparency log anyone can audit. Every public fact (a
member approved, a session scheduled, changed or cancelled, a decision recorded or superseded, a
follow-up, a vote opened or closed, a rule changed) becomes one leaf of an append-only RFC 9162
Merkle tree; a signer publishes signed checkpoints of it, and the web front serves its entries and
proofs at `/ledger/*` so that `forum-ouvert verify` can check it holding nothing but the verifier key.
(The minutes of the sessions themselves will live here too.) See LEDGER.md for the format."""
from __future__ import annotations

from services.minutes import checkpoints, public_record, records
from shared.service import Job, ServiceDef, consumer

SERVICE = ServiceDef(
    "minutes", title="Comptes rendus et registre public",
    operations=[
        public_record.ledger_checkpoint, public_record.ledger_key, public_record.ledger_entries,
        public_record.ledger_inclusion, public_record.ledger_consistency, public_record.ledger_locate,
    ],
    # A batch of leaves per transaction: the head lock and the commit are paid once per batch.
    consumers=[consumer(public_record.appender(r), event=r.event, batch=True) for r in records.RECORDERS],
    jobs=[Job(checkpoints.CHECKPOINT_SIGNER, checkpoints.sign_if_grown,
              idle=lambda s: s.ledger_checkpoint_poll, pace=lambda s: s.ledger_checkpoint_interval)],
    health=checkpoints.health,
    on_start=[checkpoints.check_signing_key],
)
