"""The forum: its sessions and what they decide. The secretariat schedules plenaries and working
groups with their agendas; approved members answer, taking a seat or a place on an arrival-order
waitlist that is promoted as seats free up (a seat is never given twice: see `seats`); the
secretariat checks people in, records decisions against the forum's adoption rules, links them to
the action plan's commitments and follows them up, and runs majority-judgment votes that the
`vote-closer` job tallies into decisions at their closing time. Who the members are, it learns
only from the registry's events."""
from __future__ import annotations

from services.forum import attendance, commitments, decisions, members, personal_data, rsvps, sessions, votes
from shared.contracts.decisions import DECISION_EVENTS
from shared.contracts.forum import FORUM_EVENTS
from shared.service import Job, ServiceDef, batched

SERVICE = ServiceDef(
    "forum", title="Séances et décisions",
    operations=[
        sessions.create_session, sessions.update_session, sessions.cancel_session,
        sessions.list_sessions, sessions.get_session,
        rsvps.answer_rsvp, rsvps.withdraw_rsvp, rsvps.list_rsvps,
        attendance.attendance, attendance.check_in,
        commitments.list_commitments, commitments.save_commitment, commitments.get_rules, commitments.set_rule,
        decisions.record_decision, decisions.get_decision, decisions.list_decisions, decisions.update_follow_up,
        votes.open_vote, votes.get_vote, votes.list_votes, votes.list_vote_groups, votes.cast_ballot, votes.close_vote,
        personal_data.export_member_data,
    ],
    consumers=[
        # Projections of the registry's members: a fetch's events in one transaction (erasure emits events:
        # one at a time).
        *[batched(fn, preload=members.preload_members) for fn in (
            members.on_member_registered, members.on_member_approved, members.on_profile_updated,
            members.on_role_granted)],
        members.on_member_erased,
    ],
    jobs=[Job("vote-closer", votes.close_due_votes, idle=lambda s: s.vote_close_interval)],
    produces=[*FORUM_EVENTS, *DECISION_EVENTS],
)
