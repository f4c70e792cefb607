"""The forum's part of a member's copy of their data: what it learnt about them from the registry, their
RSVPs and waitlist places, their check-ins, the votes they took part in, and what they did as
secretariat. A ballot's grades are never part of it: the vote is secret, and a copy that showed how
someone voted could be demanded of them."""
from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from services.forum.models import (
    ForumAttendance, ForumBallot, ForumDecision, ForumFollowUp, ForumMember, ForumRsvp, ForumRule, ForumSession,
    ForumVote, ForumVoter,
)
from services.forum.seats import waitlist_position
from shared.contracts.forum import ExportForumData, ForumMemberData
from shared.personal_data import commands, fields, iso
from shared.service import HandlerContext


async def export_member_data(req: ExportForumData, ctx: HandlerContext) -> ForumMemberData:
    """Everything the forum's tables hold about the actor (never the content of a ballot)."""
    me = req.actor_id
    async with ctx.db.read() as tx:
        member = await tx.get(ForumMember, me)
        rsvps = []
        for r, s in (await tx.exec(select(ForumRsvp, ForumSession).join(ForumSession)
                                   .where(ForumRsvp.member_id == me).order_by(col(ForumSession.starts_at)))).all():
            rsvps.append({"session_id": s.id, "session_title": s.title, "session_starts_at": iso(s.starts_at),
                          **fields(r, "state", "responded_at", "confirmed_at", "updated_at"),
                          "waitlist_position": await waitlist_position(tx, r)})
        attendance = [
            {"session_id": s.id, "session_title": s.title, **fields(a, "college", "walk_in", "recorded_at")}
            for a, s in (await tx.exec(select(ForumAttendance, ForumSession).join(ForumSession)
                                       .where(ForumAttendance.member_id == me)
                                       .order_by(col(ForumAttendance.recorded_at)))).all()]
        # Only the ids of the votes whose ballot is still kept: its grades column is not even read.
        ballots = set((await tx.exec(select(ForumBallot.vote_id).where(ForumBallot.member_id == me))).all())
        votes = [
            {"vote_id": v.id, "question": v.question, "session_id": v.session_id, "voted_at": iso(voter.voted_at),
             "college": voter.college, "closed": v.closed_at is not None, "ballot_kept_until_closing": v.id in ballots}
            for voter, v in (await tx.exec(select(ForumVoter, ForumVote).join(ForumVote)
                                           .where(ForumVoter.member_id == me)
                                           .order_by(col(ForumVoter.voted_at)))).all()]
        sessions_created = [fields(s, "title", "created_at", session_id="id") for s in (await tx.exec(
            select(ForumSession).where(ForumSession.created_by == me).order_by(col(ForumSession.created_at)))).all()]
        # Whom they checked in is the attendees' data, not theirs: the session and the time only.
        check_ins = [fields(a, "session_id", "walk_in", "recorded_at") for a in (await tx.exec(
            select(ForumAttendance).where(ForumAttendance.recorded_by == me)
            .order_by(col(ForumAttendance.recorded_at)))).all()]
        decisions = [fields(d, "number", "title", "session_id", "recorded_at", decision_id="id") for d in (
            await tx.exec(select(ForumDecision).where(ForumDecision.recorded_by == me)
                          .order_by(col(ForumDecision.recorded_at)))).all()]
        follow_ups = [fields(f, "decision_id", "seq", "status", "note", "updated_at") for f in (await tx.exec(
            select(ForumFollowUp).where(ForumFollowUp.updated_by == me).order_by(col(ForumFollowUp.updated_at)))).all()]
        votes_opened = [fields(v, "question", "session_id", "created_at", vote_id="id") for v in (await tx.exec(
            select(ForumVote).where(ForumVote.created_by == me).order_by(col(ForumVote.created_at)))).all()]
        rules = [fields(r, "kind", "updated_at") for r in (await tx.exec(
            select(ForumRule).where(ForumRule.updated_by == me))).all()]
        done = await commands(tx, me)
    data: dict[str, Any] = {
        "member": fields(member, "public_id", "college", "role", "standing", "full_name", "organisation",
                         "updated_at") if member else None,
        "rsvps": rsvps,
        "attendance": attendance,
        "votes": votes,
        "sessions_created": sessions_created,
        "check_ins_recorded": check_ins,
        "decisions_recorded": decisions,
        "follow_ups_written": follow_ups,
        "votes_opened": votes_opened,
        "rules_set": rules,
        "commands": done,
    }
    return ForumMemberData(data=data)
