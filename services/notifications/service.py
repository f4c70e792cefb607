"""Notifications: every e-mail the forum sends. It keeps who can be mailed (from registry events),
turns registry and forum events into e-mails queued in the same transaction, and its mail sender
delivers them at most once over SMTP. It also mails the 48-hour session reminders, and answers a
member's GDPR request for what it keeps about them."""
from __future__ import annotations

from services.notifications import contacts, member_notices, outgoing, session_notices
from shared.service import Job, ServiceDef

SERVICE = ServiceDef(
    "notifications", title="Notifications",
    operations=[outgoing.delivery_counts, contacts.export],
    consumers=[
        contacts.on_registered, contacts.on_profile_updated, contacts.on_erased,
        member_notices.on_verification_requested, member_notices.on_sign_in_requested,
        member_notices.on_approved, member_notices.on_rejected,
        session_notices.on_session_scheduled, session_notices.on_session_updated,
        session_notices.on_session_cancelled, session_notices.on_rsvp_confirmed,
        session_notices.on_rsvp_waitlisted, session_notices.on_rsvp_promoted,
        session_notices.on_rsvp_withdrawn, session_notices.on_rsvp_declined,
    ],
    jobs=[
        # Woken by each commit that queues an e-mail; the idle sweep (every second) picks up retries.
        Job(outgoing.MAIL_SENDER, outgoing.send_due, idle=lambda s: 1.0),
        Job("session-reminders", session_notices.send_reminders, idle=lambda s: s.reminder_interval),
    ],
    health=outgoing.health,
    on_start=[outgoing.mark_interrupted_uncertain],
)
