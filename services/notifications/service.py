"""Notifications: every e-mail the forum sends, and the log of each one. It keeps who can be mailed
(members, from registry events; subscribers, who asked on /abonnements), turns events into member
e-mails and into notices to a topic's subscribers, sends the secretariat's announcements, and its
mail sender delivers every message once over pooled SMTP connections, recording each outcome."""
from __future__ import annotations

from services.notifications import (
    announcements, contact_form, contacts, member_notices, notices, outgoing, participation, personal_data, preferences, sender,
    session_notices, subscriptions,
)
from shared.service import Job, ServiceDef, batched

SERVICE = ServiceDef(
    "notifications", title="Notifications",
    operations=[
        outgoing.delivery_counts, personal_data.export_member_data,
        subscriptions.subscribe, subscriptions.confirm, subscriptions.get, subscriptions.update,
        subscriptions.unsubscribe, subscriptions.request_manage_link,
        preferences.get, preferences.set_preferences,
        announcements.save, announcements.get, announcements.get_public, announcements.send_test, announcements.control,
        announcements.list_announcements, announcements.search_deliveries,
        contact_form.send,
    ],
    consumers=[
        # The members' addresses and flags: a fetch's events in one transaction.
        *[batched(fn, preload=contacts.preload_recipients) for fn in (contacts.on_registered,
                                                                      contacts.on_profile_updated)],
        contacts.on_erased,
        # E-mails to one member each: a fetch's events queue theirs in one transaction.
        *[batched(fn, preload=outgoing.preload_members) for fn in (
            member_notices.on_verification_requested, member_notices.on_sign_in_requested,
            member_notices.on_registration_repeated, member_notices.on_approved, member_notices.on_rejected)],
        batched(participation.on_member_approved_flag, role="flag"), batched(participation.on_role_granted),
        session_notices.on_session_scheduled, session_notices.on_session_updated,
        session_notices.on_session_cancelled,
        # An RSVP rush: a fetch's answers queue their e-mails in one transaction.
        *[batched(fn, preload=session_notices.preload_rsvps) for fn in (
            session_notices.on_rsvp_confirmed, session_notices.on_rsvp_waitlisted, session_notices.on_rsvp_promoted,
            session_notices.on_rsvp_withdrawn, session_notices.on_rsvp_declined)],
        participation.on_attendance_recorded, participation.on_vote_opened, participation.on_minutes_review_opened,
        notices.on_decision_recorded, notices.on_minutes_published, notices.on_minutes_corrected,
    ],
    jobs=[
        # Woken by each commit that queues a message; the idle sweep (every second) picks up retries.
        Job(outgoing.MAIL_SENDER, sender.send_due, idle=lambda s: 1.0),
        Job(notices.FANOUT, notices.fan_out, idle=lambda s: 1.0),
        Job("session-reminders", session_notices.send_reminders, idle=lambda s: s.reminder_interval),
        Job("subscription-expiry", subscriptions.forget_unconfirmed, idle=lambda s: 3600.0),
        Job("contact-expiry", contact_form.forget_old, idle=lambda s: 3600.0),
        Job("delivery-log-expiry", outgoing.forget_old_addresses, idle=lambda s: 3600.0),
    ],
    health=outgoing.health,
    on_start=[sender.requeue_interrupted],
)
