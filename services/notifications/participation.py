"""E-mails that invite members to take part: a vote they may cast a ballot in has opened, the minutes
of a session they attended are open for their review. Notifications keeps what it needs to know who
that is, from registry and forum events: which members are approved or secretariat (on `Recipient`)
and who was checked in at which session (`NoticeAttendee`), so it needs no call to another service.

Each notice is one delivery per member in the event's transaction (a few thousand members at most);
the (event, member) key keeps a redelivered event from mailing anyone twice. The recipients are
loaded before queueing, so queue_mail finds each one in the session without another query."""
from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import col, select

from services.notifications.models import NoticeAttendee, NoticeSession, Recipient
from services.notifications.outgoing import queue_mail
from shared.clock import paris_long, utcnow
from shared.contracts.decisions import Eligibility, VoteInfo, VoteOpened
from shared.contracts.envelope import Envelope
from shared.contracts.forum import AttendanceRecorded, SessionInfo
from shared.contracts.minutes import MinutesReviewOpened
from shared.contracts.registry import MemberApproved, Role, RoleGranted
from shared.errors import RetryLater
from shared.outbox import UnitOfWork

# Member notice kinds: the member's preferences (MemberNoticeKind.VOTES, .MINUTES_REVIEW) are applied
# by queue_mail under these names.
VOTE_OPENED = "vote_opened"
MINUTES_REVIEW = "minutes_review"


def _link(uow: UnitOfWork, path: str) -> str:
    return uow.settings.public_url.rstrip("/") + path


# ---------------------------------------------------------------- who is who
async def _recipient(uow: UnitOfWork, member_id: str) -> Recipient:
    r = await uow.tx.get(Recipient, member_id)
    if r is None:
        # The registration event may not have been applied yet (different consumer): try again shortly.
        raise RetryLater(f"no recipient yet for member {member_id}")
    return r


async def on_member_approved_flag(event: Envelope[MemberApproved], uow: UnitOfWork) -> None:
    """Remember that the member is approved: they are mailed when a vote opens to approved members."""
    r = await _recipient(uow, event.data.member_id)
    if not r.approved:
        r.approved = True
        uow.tx.add(r)


async def on_role_granted(event: Envelope[RoleGranted], uow: UnitOfWork) -> None:
    """Remember that the member is secretariat: secretariat accounts do not vote."""
    if event.data.role != Role.SECRETARIAT:
        return
    r = await _recipient(uow, event.data.member_id)
    if not r.secretariat:
        r.secretariat = True
        uow.tx.add(r)


async def on_attendance_recorded(event: Envelope[AttendanceRecorded], uow: UnitOfWork) -> None:
    """Keep who was checked in at each session (a correction, `present` false, removes the member)."""
    d = event.data
    row = await uow.tx.get(NoticeAttendee, (d.session_id, d.member_id))
    if d.present and row is None:
        uow.tx.add(NoticeAttendee(session_id=d.session_id, member_id=d.member_id))
    elif not d.present and row is not None:
        await uow.tx.delete(row)


async def _attendees(uow: UnitOfWork, session_id: str) -> Sequence[Recipient]:
    """The members checked in at the session whom notifications can reach (an erased member has no
    recipient any more), in a stable order."""
    stmt = (select(Recipient).join(NoticeAttendee, col(NoticeAttendee.member_id) == col(Recipient.member_id))
            .where(NoticeAttendee.session_id == session_id).order_by(col(Recipient.member_id)))
    return (await uow.tx.exec(stmt)).all()


async def _voters(uow: UnitOfWork, vote: VoteInfo) -> Sequence[Recipient]:
    """The vote's electorate as the forum counts it: approved members, not secretariat accounts, and
    for a vote among the attendees only those checked in at its session."""
    if vote.eligibility == Eligibility.ATTENDEES:
        candidates = await _attendees(uow, vote.session_id)
    else:
        stmt = select(Recipient).where(Recipient.approved == True)  # noqa: E712 - SQL comparison
        candidates = (await uow.tx.exec(stmt.order_by(col(Recipient.member_id)))).all()
    return [r for r in candidates if r.approved and not r.secretariat]


async def _session_title(uow: UnitOfWork, session_id: str) -> str | None:
    """The session's title if notifications knows the session (it only adds context to the e-mail)."""
    row = await uow.tx.get(NoticeSession, session_id)
    return SessionInfo.model_validate_json(row.info).title if row is not None else None


# ---------------------------------------------------------------- the notices
async def on_vote_opened(event: Envelope[VoteOpened], uow: UnitOfWork) -> None:
    """Mail every member who may vote that the vote is open, with its question and closing time."""
    v = event.data.vote
    opens_later = v.opens_at > utcnow()  # opened for a later date: say when ballots can be cast
    ctx = {
        "question": v.question, "agenda_text": v.agenda_text, "options": [o.label for o in v.options],
        "session_title": await _session_title(uow, v.session_id),
        "among_attendees": v.eligibility == Eligibility.ATTENDEES,
        "opens": paris_long(v.opens_at) if opens_later else None, "closes": paris_long(v.closes_at),
        "link": _link(uow, f"/votes/{v.vote_id}"),
    }
    subject = f"Vote ouvert : {v.question}"  # mail.render makes any title one safe header line
    for r in await _voters(uow, v):
        await queue_mail(uow, str(event.event_id), r.member_id, VOTE_OPENED, template="vote_opened",
                         subject=subject, **ctx)


async def on_minutes_review_opened(event: Envelope[MinutesReviewOpened], uow: UnitOfWork) -> None:
    """Mail the session's attendees that its draft minutes are open for their review, and until when."""
    d = event.data
    ctx = {"session_title": d.session_title, "until": paris_long(d.until), "moved": d.moved,
           "link": _link(uow, f"/comptes-rendus/{d.minutes_id}/relecture")}
    prefix = "Nouvelle date de relecture" if d.moved else "Compte rendu à relire"
    subject = f"{prefix} : {d.session_title}"
    for r in await _attendees(uow, d.session_id):
        await queue_mail(uow, str(event.event_id), r.member_id, MINUTES_REVIEW, template="minutes_review",
                         subject=subject, **ctx)

