"""Sessions as the public and the members see them: upcoming and past sessions, a session's page
(agenda, place, seats left, attendance per college once it is over, its minutes' state), its `.ics` file and the
iCalendar feed of every session; for approved members, "Je participe" / "Je ne participe pas" /
"Retirer ma réponse" and the list of their own sessions.

The forum service decides everything (seats, waitlist order, windows); the web front only shows
what it answers, in French, in Europe/Paris time.
"""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse, Response
from starlette.requests import Request

from forumlib.ical import session_ics, sessions_feed
from shared.clock import as_paris
from shared.contracts.common import ErrorCode
from shared.contracts.forum import (
    ATTENDANCE_MARK_LABELS, KIND_LABELS, AnswerRsvp, AttendanceMark, GetSession, ListSessions, RsvpAnswer, RsvpState, SessionInfo, SessionKind,
    SessionPeriod, SessionView, Theme, WithdrawRsvp,
)
from shared.contracts.minutes import MinutesState
from shared.contracts.registry import MemberStatus, MemberView
from shared.rpc import RpcError
from services.web.forms import idempotency_key, read_form
from services.web.pages import (
    HTTP_STATUS, current_member, error_page, render, require_member, rpc, rpc_error_page, web,
)
from services.web.routes._common import SESSIONS_BACK as BACK, get_session, unknown_session, valid_id
from services.web.routes.decisions import LABELS as DECISION_LABELS, session_decisions
from services.web.routes.minutes import may_review, session_minutes
from services.web.security import visitor

router = APIRouter(include_in_schema=False)

# An RSVP waits for the seat lock behind everybody who answered in the same second: give it time
# rather than turning a rush into false "unavailable" errors.
RSVP_TIMEOUT = 30.0
PAGE_SIZE = 20
FEED_PAGE = 500
FEED_MAX = 5000
NOT_APPROVED = {
    MemberStatus.PENDING_VERIFICATION: "Confirmez d'abord votre adresse électronique (lien reçu par courriel) : "
                                       "vous pourrez répondre aux séances une fois votre inscription validée.",
    MemberStatus.PENDING_APPROVAL: "Votre inscription attend la validation du secrétariat du forum : vous pourrez "
                                   "répondre aux séances une fois validé·e.",
    MemberStatus.REJECTED: "Votre inscription n'a pas été validée par le secrétariat : vous ne pouvez pas répondre "
                           "aux séances.",
}
ANSWER_ERROR = "Choisissez « Je participe » ou « Je ne participe pas »."


# ---------------------------------------------------------------- helpers
def session_info(view: SessionView) -> SessionInfo:
    """The calendar's view of a session (fields map 1:1; the agenda is its texts in order)."""
    data = view.model_dump(include=set(SessionInfo.model_fields) - {"agenda"})
    return SessionInfo(**data, agenda=[item.text for item in view.agenda])


def not_approved_reason(member: MemberView) -> str | None:
    if member.status == MemberStatus.APPROVED:
        return None
    return NOT_APPROVED.get(member.status, "Seuls les membres validés du forum peuvent répondre aux séances.")


def waitlist_text(position: int | None) -> str:
    return f"Sur liste d'attente (position {position})" if position else "Sur liste d'attente"


async def session_page(request: Request, session_id: str, *, status_code: int = 200,
                       rsvp_error: str | None = None) -> Response:
    """The session's page; with `rsvp_error`, the answer that was refused and why."""
    member = await current_member(request)
    actor = member.member_id if member and member.status == MemberStatus.APPROVED else None
    try:  # the session, its decisions and its minutes (None if not answered) in one round trip's wait
        view, decisions, minutes = await asyncio.gather(
            rpc(request)(GetSession(session_id=session_id, actor_id=actor)),
            session_decisions(rpc(request), session_id), session_minutes(rpc(request), session_id))
    except RpcError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            return await unknown_session(request)
        raise
    reviewer = bool(actor and minutes and minutes.minutes_id and minutes.state == MinutesState.REVIEW
                    and await may_review(rpc(request), minutes.minutes_id, actor))
    return await render(request, "session.html", status_code=status_code, s=view, now=datetime.now(UTC),
                        decisions=decisions, minutes=minutes, reviewer=reviewer, **DECISION_LABELS,
                        not_approved=not_approved_reason(member) if member else None,
                        attendance_mark_labels=ATTENDANCE_MARK_LABELS,
                        waitlist_text=waitlist_text, errors={"__root__": rsvp_error} if rsvp_error else {})


# ---------------------------------------------------------------- the iCalendar feed and files
@router.get("/seances.ics")
async def feed(request: Request) -> Response:
    """Every session (cancelled ones too, so that STATUS:CANCELLED reaches the subscribed calendars)."""
    sessions: list[SessionView] = []
    while len(sessions) < FEED_MAX:
        page = await rpc(request)(ListSessions(when=SessionPeriod.ALL, include_cancelled=True, limit=FEED_PAGE,
                                               offset=len(sessions)))
        sessions.extend(page.sessions)
        if len(page.sessions) < FEED_PAGE or len(sessions) >= page.total:
            break
    body = sessions_feed([session_info(s) for s in sessions], web(request).settings.public_url, KIND_LABELS)
    return Response(body, media_type="text/calendar; charset=utf-8", headers={
        "Content-Disposition": 'inline; filename="forum-ouvert-seances.ics"', "Cache-Control": "public, max-age=300"})


@router.get("/seances/{session_id}.ics")
async def session_calendar(request: Request, session_id: str) -> Response:
    view = await get_session(request, session_id)
    if isinstance(view, Response):
        return view
    filename = f"seance-{as_paris(view.starts_at).date().isoformat()}-{view.session_id[:8]}.ics"
    return Response(session_ics(session_info(view), web(request).settings.public_url, KIND_LABELS),
                    media_type="text/calendar; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# ---------------------------------------------------------------- lists
async def _list(request: Request, when: SessionPeriod, kind: str, theme: str, page: int) -> Response:
    kinds = {k.value: k for k in SessionKind}
    themes = {t.value: t for t in Theme}
    if (kind and kind not in kinds) or (theme and theme not in themes):
        return await error_page(request, 400, "Ce filtre n'existe pas.", actions=BACK)
    member = await current_member(request)
    actor = member.member_id if member and member.status == MemberStatus.APPROVED else None
    listed = await rpc(request)(ListSessions(
        when=when, kind=kinds.get(kind), theme=themes.get(theme), include_cancelled=True, actor_id=actor,
        limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE))
    pages = max(1, -(-listed.total // PAGE_SIZE))
    if page > pages:  # past the last page (a stale link, a hand-typed address): say so, never an empty list
        return await error_page(request, 404, "Cette page de la liste des séances n'existe pas.",
                                title="Page introuvable", actions=BACK)
    return await render(request, "sessions.html", sessions=listed.sessions, total=listed.total, period=when.value,
                        kind=kind, theme=theme, page=page, pages=pages, now=datetime.now(UTC),
                        waitlist_text=waitlist_text, kinds=list(SessionKind), themes=list(Theme))


@router.get("/seances")
async def upcoming(request: Request, kind: str = Query("", alias="type", max_length=40),
                   theme: str = Query("", max_length=40), page: int = Query(1, ge=1, le=10_000)) -> Response:
    return await _list(request, SessionPeriod.UPCOMING, kind, theme, page)


@router.get("/seances/passees")
async def past(request: Request, kind: str = Query("", alias="type", max_length=40),
               theme: str = Query("", max_length=40), page: int = Query(1, ge=1, le=10_000)) -> Response:
    return await _list(request, SessionPeriod.PAST, kind, theme, page)


# ---------------------------------------------------------------- one session
@router.get("/seances/{session_id}")
async def show(request: Request, session_id: str) -> Response:
    if not valid_id(session_id):
        return await unknown_session(request)
    return await session_page(request, session_id)


async def _refused(request: Request, session_id: str, exc: RpcError) -> Response:
    """A refused answer or withdrawal: the session's page again, saying why (nothing was recorded)."""
    if exc.code == ErrorCode.NOT_FOUND:
        return await unknown_session(request)
    if exc.code in (ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL):
        return await rpc_error_page(request, exc, actions=[(f"/seances/{session_id}", "Revenir à la séance")])
    return await session_page(request, session_id, status_code=HTTP_STATUS.get(exc.code, 409),
                              rsvp_error=exc.error.message)


@router.post("/seances/{session_id}/reponse")
async def answer(request: Request, session_id: str) -> Response:
    """"Je participe" (a seat, or the waitlist when full) or "Je ne participe pas"."""
    member = await require_member(request)
    if not valid_id(session_id):
        return await unknown_session(request)
    form = await read_form(request)
    value = form.get("answer", "")
    if value not in (RsvpAnswer.ATTEND.value, RsvpAnswer.DECLINE.value):
        return await session_page(request, session_id, status_code=422, rsvp_error=ANSWER_ERROR)
    if reason := not_approved_reason(member):
        return await session_page(request, session_id, status_code=403, rsvp_error=reason)
    try:
        reply = await rpc(request)(AnswerRsvp(actor_id=member.member_id, session_id=session_id,
                                              answer=RsvpAnswer(value)), timeout=RSVP_TIMEOUT,
                                   idempotency_key=idempotency_key(form))
    except RpcError as exc:
        return await _refused(request, session_id, exc)
    if reply.state == RsvpState.CONFIRMED:
        message = ("Votre place est confirmée. Vous allez recevoir un courriel de confirmation avec l'invitation "
                   "pour votre agenda.")
    elif reply.state == RsvpState.WAITLISTED:
        message = (f"La séance est complète : vous êtes sur la liste d'attente, en position {reply.waitlist_position}. "
                   "Vous serez prévenu·e par courriel si une place se libère.")
    else:
        message = "Votre réponse est enregistrée : vous ne participez pas à cette séance."
    visitor(request).set_flash("success" if reply.state != RsvpState.WAITLISTED else "info", message)
    return RedirectResponse(f"/seances/{session_id}", status_code=303)


@router.post("/seances/{session_id}/retrait")
async def withdraw(request: Request, session_id: str) -> Response:
    """Give back one's seat (the first on the waitlist gets it) or one's place on the waitlist."""
    member = await require_member(request)
    if not valid_id(session_id):
        return await unknown_session(request)
    if reason := not_approved_reason(member):
        return await session_page(request, session_id, status_code=403, rsvp_error=reason)
    key = idempotency_key(await read_form(request))
    try:
        await rpc(request)(WithdrawRsvp(actor_id=member.member_id, session_id=session_id), timeout=RSVP_TIMEOUT,
                           idempotency_key=key)
    except RpcError as exc:
        return await _refused(request, session_id, exc)
    visitor(request).set_flash("success", "Votre réponse est retirée : vous ne participez plus à cette séance.")
    return RedirectResponse(f"/seances/{session_id}", status_code=303)


# ---------------------------------------------------------------- the member's own sessions
@router.get("/espace/seances")
async def my_sessions(request: Request) -> Response:
    member = await require_member(request)
    upcoming_mine: list[SessionView] = []
    past_mine: list[SessionView] = []
    reason = not_approved_reason(member)
    if reason is None:
        client = rpc(request)
        # Only the member's sessions (answered, or checked in: a walk-in's too), whatever the forum holds.
        coming, gone = await asyncio.gather(
            client(ListSessions(when=SessionPeriod.UPCOMING, actor_id=member.member_id, mine=True, limit=500)),
            client(ListSessions(when=SessionPeriod.PAST, actor_id=member.member_id, mine=True, limit=100)))
        upcoming_mine = [s for s in coming.sessions if (s.my_rsvp and s.my_rsvp.state != RsvpState.WITHDRAWN)
                         or s.my_attendance == AttendanceMark.PRESENT]
        # A past session is the member's if they held a seat or came (a declined answer is not attendance).
        past_mine = [s for s in gone.sessions if (s.my_rsvp and s.my_rsvp.state == RsvpState.CONFIRMED)
                     or s.my_attendance == AttendanceMark.PRESENT]
    return await render(request, "sessions_mine.html", upcoming=upcoming_mine, past=past_mine,
                        not_approved=reason, waitlist_text=waitlist_text,
                        attendance_mark_labels=ATTENDANCE_MARK_LABELS)
