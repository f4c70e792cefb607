"""The minutes service's part of a member's copy of their data: what it learnt about them from the
registry and the forum, the remarks they wrote while reviewing minutes (with the answers they got),
and what they did as secretariat. The public record holds no member id: where it names a member, it
is by the public pseudonym that the registry's part of the copy gives."""
from __future__ import annotations

from typing import Any

from sqlmodel import col, or_, select

from services.minutes.models import AttendanceFact, CommentRow, MemberFact, MinutesRow, SessionFact, VersionRow
from shared.contracts.minutes import ExportMinutesData, MinutesMemberData
from shared.personal_data import commands, fields, iso
from shared.service import HandlerContext


async def export_member_data(req: ExportMinutesData, ctx: HandlerContext) -> MinutesMemberData:
    """Everything the minutes service's tables hold about the actor."""
    me = req.actor_id
    async with ctx.db.read() as tx:
        member = await tx.get(MemberFact, me)
        attendance = [
            {**fields(a, "session_id", "college", "present", "observed_at"), "session_title": title}
            for a, title in (await tx.exec(
                select(AttendanceFact, SessionFact.title)
                .join(SessionFact, col(SessionFact.session_id) == AttendanceFact.session_id, isouter=True)
                .where(AttendanceFact.member_id == me).order_by(col(AttendanceFact.observed_at)))).all()]
        comments = [
            {**fields(c, "minutes_id", "anchor", "kind", "text", "paragraph", "draft_revision", "created_at",
                      "accepted", "reason", "answered_at", "applied_revision", comment_id="id"),
             "session_id": session_id}
            for c, session_id in (await tx.exec(
                select(CommentRow, MinutesRow.session_id).join(MinutesRow)
                .where(CommentRow.author_id == me).order_by(col(CommentRow.created_at)))).all()]
        drafted = [
            {"minutes_id": d.id, "session_id": d.session_id, "status": d.status,
             "created_by_you": d.created_by == me, "created_at": iso(d.created_at),
             "last_changed_by_you": d.updated_by == me, "updated_at": iso(d.updated_at)}
            for d in (await tx.exec(select(MinutesRow).where(or_(MinutesRow.created_by == me,
                                                                 MinutesRow.updated_by == me))
                                    .order_by(col(MinutesRow.created_at)))).all()]
        # The columns only: a version row also carries its PDF.
        published = [
            {"minutes_id": minutes_id, "version": version, "published_at": iso(at), "reason": reason}
            for minutes_id, version, at, reason in (await tx.exec(
                select(VersionRow.minutes_id, VersionRow.version, VersionRow.published_at, VersionRow.reason)
                .where(VersionRow.published_by == me).order_by(col(VersionRow.published_at)))).all()]
        # Their answer to someone's remark, not the remark: that is its author's.
        answered = [fields(c, "minutes_id", "accepted", "reason", "answered_at", comment_id="id") for c in (
            await tx.exec(select(CommentRow).where(CommentRow.answered_by == me)
                          .order_by(col(CommentRow.answered_at)))).all()]
        done = await commands(tx, me)
    data: dict[str, Any] = {
        "member": fields(member, "college", "role", "role_at", "organisation", "organisation_at", "erased")
        if member else None,
        "attendance": attendance,
        "comments": comments,
        "minutes_drafted": drafted,
        "versions_published": published,
        "comments_answered": answered,
        "commands": done,
    }
    return MinutesMemberData(data=data)
