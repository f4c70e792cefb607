"""Minutes: the comptes rendus of the sessions and the forum's public record.

The comptes rendus: for a session that has taken place, the secretariat opens a draft pre-filled from
what the forum recorded (kept here from the forum's and the registry's events: sessions, check-ins,
organisations, decisions, closed votes, who is secretariat), edits it, gives it to the session's
attendees for review, answers their comments, and publishes it — adopted by a later decision or a
vote, or not — as version 1, frozen (Markdown, paragraphs with stable anchors, canonical JSON and its
SHA-256, HTML, PDF); corrections are versions n+1 with their reason. Each publication and correction
is a public fact.

The public record: every public fact (a member approved, a session scheduled, changed or cancelled, a
decision recorded or superseded, a follow-up, a vote opened or closed, a rule changed, minutes
published or corrected) becomes one leaf of an append-only RFC 9162 Merkle tree; a signer publishes
signed checkpoints of it, and the web front serves its entries, proofs and C2SP tlog-tiles at `/ledger/*`
so that `forum-ouvert verify` can check it holding nothing but the verifier key. See LEDGER.md for the
format."""
from __future__ import annotations

from services.minutes import (
    checkpoints, drafts, personal_data, public_record, publication, reading, records, review, search, session_facts,
)
from shared.contracts.minutes import MINUTES_EVENTS
from shared.service import Job, ServiceDef, consumer

SERVICE = ServiceDef(
    "minutes", title="Comptes rendus et registre public",
    operations=[
        public_record.ledger_checkpoint, public_record.ledger_key, public_record.ledger_entries,
        public_record.ledger_inclusion, public_record.ledger_consistency, public_record.ledger_locate,
        public_record.ledger_prove_events, public_record.ledger_tile,
        drafts.open_minutes_draft, drafts.save_minutes_draft, drafts.get_minutes,
        review.open_minutes_review, review.comment_minutes, review.answer_minutes_comment,
        review.list_minutes_comments,
        publication.publish_minutes, publication.correct_minutes,
        reading.list_minutes, reading.get_minutes_version, reading.get_minutes_pdf, reading.diff_minutes,
        reading.minutes_of_session, reading.minutes_of_decision,
        search.search,
        personal_data.export_member_data,
    ],
    consumers=[
        # A batch of leaves per transaction (what JetStream has ready, up to 500): the head lock and the
        # commit are paid once per batch.
        *[consumer(public_record.appender(r), event=r.event, batch=True, batch_size=500) for r in records.RECORDERS],
        *session_facts.CONSUMERS,
    ],
    jobs=[Job(checkpoints.CHECKPOINT_SIGNER, checkpoints.sign_if_grown,
              idle=lambda s: s.ledger_checkpoint_poll, pace=lambda s: s.ledger_checkpoint_interval)],
    produces=MINUTES_EVENTS,
    health=checkpoints.health,
    on_start=[checkpoints.check_signing_key],
)
