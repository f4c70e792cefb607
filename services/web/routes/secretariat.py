"""The secretariat's back-office: its home (what needs doing today), registrations awaiting a decision,
approve or reject them.

The web front checks the role to show a clear page; the registry checks it again on every command.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse, Response
from starlette.requests import Request

from shared.clock import utcnow
from shared.contracts.common import ErrorCode
from shared.contracts.decisions import (
    FOLLOW_UP_LABELS, DecisionView, FollowUpStatus, ListDecisions, ListVotes, Outcome, VoteStatus, VoteView,
)
from shared.contracts.forum import ListSessions, SessionPeriod, SessionStatus, SessionView
from shared.contracts.minutes import ListMinutes, MinutesState, MinutesSummary
from shared.contracts.notifications import DeliveryLog, DeliveryState, SearchDeliveries
from shared.contracts.registry import (
    ApproveMember, ListMembers, MemberList, MemberStatus, MemberView, RejectMember,
)
from shared.rpc import RpcError
from services.web.forms import idempotency_key, read_form, validate
from services.web.pages import error_page, render, require_secretariat, rpc, rpc_error_page
from services.web.routes._common import optional, valid_id
from services.web.security import visitor

router = APIRouter(prefix="/secretariat", include_in_schema=False)
FILTERS = {
    "pending_approval": "En attente de validation",
    "pending_verification": "En attente de confirmation de l'adresse",
    "approved": "Membres validés",
    "rejected": "Inscriptions refusées",
    "all": "Tous les membres",
}
BACK = [("/secretariat/membres", "Retour à la liste des membres")]
MAX_ID = 64
PAGE_SIZE = 50


async def _members_page(request: Request, actor: MemberView, statut: str, *, page: int = 1, status_code: int = 200,
                        reject_errors: dict[str, str] | None = None, reject_values: dict[str, str] | None = None,
                        reject_tokens: dict[str, str] | None = None) -> Response:
    status = None if statut == "all" else MemberStatus(statut)
    listed = await rpc(request)(ListMembers(actor_id=actor.member_id, status=status, limit=PAGE_SIZE,
                                            offset=(page - 1) * PAGE_SIZE))
    total = listed.total or 0
    pages = max(1, -(-total // PAGE_SIZE))
    if page > pages:
        return await error_page(request, 404, "Cette page de la liste n'existe pas.", title="Page introuvable",
                                actions=[(f"/secretariat/membres?statut={statut}", "Revenir à la première page")])
    return await render(request, "secretariat_members.html", status_code=status_code, members=listed.members,
                        total=total, page=page, pages=pages, filters=FILTERS, statut=statut,
                        reject_errors=reject_errors or {}, reject_values=reject_values or {},
                        reject_tokens=reject_tokens or {})


# ---------------------------------------------------------------- the dashboard
DASHBOARD_ITEMS = 5
VOTES_CLOSING_WITHIN = timedelta(days=7)
# A follow-up « en cours » not updated for this long is due for news (the public reads it on the decision).
FOLLOW_UP_STALE_AFTER = timedelta(days=60)


@dataclass
class Dashboard:
    """What needs doing today, one list per kind of task (None: its service did not answer)."""

    pending: MemberList | None
    upcoming: list[SessionView] | None
    without_minutes: list[SessionView] | None
    drafts: list[MinutesSummary] | None
    follow_ups: list[DecisionView] | None
    follow_ups_total: int
    votes: list[VoteView] | None
    failed: DeliveryLog | None


async def _dashboard(request: Request, actor: MemberView) -> Dashboard:
    """Each service answers for its own data; the requests go out together."""
    client, now = rpc(request), utcnow()
    a = actor.member_id
    (pending, upcoming, past, minutes, todo, in_progress, votes, failed) = await asyncio.gather(
        optional(client(ListMembers(actor_id=a, status=MemberStatus.PENDING_APPROVAL, limit=DASHBOARD_ITEMS,
                                    oldest_first=True))),
        optional(client(ListSessions(when=SessionPeriod.UPCOMING, include_cancelled=False, limit=DASHBOARD_ITEMS))),
        optional(client(ListSessions(when=SessionPeriod.PAST, include_cancelled=False, limit=200))),
        optional(client(ListMinutes(actor_id=a, include_unpublished=True, limit=500))),
        optional(client(ListDecisions(outcome=Outcome.ADOPTED, follow_up=FollowUpStatus.TODO,
                                      include_superseded=False, limit=500))),
        optional(client(ListDecisions(outcome=Outcome.ADOPTED, follow_up=FollowUpStatus.IN_PROGRESS,
                                      include_superseded=False, limit=500))),
        optional(client(ListVotes(status=VoteStatus.OPEN, limit=500))),
        optional(client(SearchDeliveries(actor_id=a, state=DeliveryState.FAILED, limit=DASHBOARD_ITEMS))))
    without_minutes = drafts = None
    if past is not None and minutes is not None:
        with_minutes = {m.session.session_id for m in minutes.minutes}
        without_minutes = [s for s in past.sessions
                           if s.session_id not in with_minutes and s.status == SessionStatus.SCHEDULED]
        drafts = [m for m in minutes.minutes if m.state in (MinutesState.DRAFT, MinutesState.REVIEW)]
    follow_ups: list[DecisionView] | None = None
    follow_ups_total = 0
    if todo is not None and in_progress is not None:
        stale = [d for d in in_progress.decisions
                 if (d.follow_ups[-1].updated_at if d.follow_ups else d.decision.recorded_at)
                 <= now - FOLLOW_UP_STALE_AFTER]
        follow_ups = sorted([*todo.decisions, *stale], key=lambda d: d.decision.recorded_at)
        follow_ups_total = todo.total + len(stale)
    closing = None if votes is None else sorted(
        (v for v in votes.votes if v.vote.closes_at <= now + VOTES_CLOSING_WITHIN), key=lambda v: v.vote.closes_at)
    return Dashboard(pending=pending, upcoming=None if upcoming is None else upcoming.sessions,
                     without_minutes=without_minutes, drafts=drafts, follow_ups=follow_ups,
                     follow_ups_total=follow_ups_total, votes=closing, failed=failed)


@router.get("")
async def secretariat_home(request: Request) -> Response:
    """The secretariat's home: what needs doing, each item with a link to do it."""
    actor = await require_secretariat(request)
    return await render(request, "secretariat_home.html", board=await _dashboard(request, actor),
                        items=DASHBOARD_ITEMS, page_size=PAGE_SIZE, follow_up_labels=FOLLOW_UP_LABELS)


@router.get("/membres")
async def members(request: Request, statut: str = Query("pending_approval", max_length=40),
                  page: int = Query(1, ge=1, le=100_000)) -> Response:
    actor = await require_secretariat(request)
    if statut not in FILTERS:
        return await error_page(request, 400, "Ce filtre n'existe pas.", actions=BACK)
    return await _members_page(request, actor, statut, page=page)


def _check_id(member_id: str) -> bool:
    return len(member_id) <= MAX_ID and valid_id(member_id)


@router.post("/membres/{member_id}/approuver")
async def approve(request: Request, member_id: str) -> Response:
    actor = await require_secretariat(request)
    if not _check_id(member_id):
        return await error_page(request, 404, "Membre inconnu.", actions=BACK)
    key = idempotency_key(await read_form(request))
    try:
        member = await rpc(request)(ApproveMember(actor_id=actor.member_id, member_id=member_id), idempotency_key=key)
    except RpcError as exc:
        return await rpc_error_page(request, exc, actions=BACK)
    visitor(request).set_flash("success", f"L'inscription de {member.full_name} est validée.")
    return RedirectResponse("/secretariat/membres", status_code=303)


@router.post("/membres/{member_id}/refuser")
async def reject(request: Request, member_id: str) -> Response:
    actor = await require_secretariat(request)
    if not _check_id(member_id):
        return await error_page(request, 404, "Membre inconnu.", actions=BACK)
    form = await read_form(request)
    reason = form.get("reason", "").strip()
    key = idempotency_key(form)
    kept = {"reject_values": {member_id: reason}, "reject_tokens": {member_id: key or ""}}
    data = {"actor_id": actor.member_id, "member_id": member_id, **({"reason": reason} if reason else {})}
    req, errors = validate(RejectMember, data, limits={"reason": 1000},
                           messages={"reason": "Indiquez le motif du refus (au moins 3 caractères) : "
                                               "la personne le recevra."} if len(reason) < 3 else None)
    if req is None:
        return await _members_page(request, actor, "pending_approval", status_code=422,
                                   reject_errors={member_id: errors.get("reason") or next(iter(errors.values()))},
                                   **kept)
    try:
        member = await rpc(request)(req, idempotency_key=key)
    except RpcError as exc:
        if exc.code == ErrorCode.INVALID:
            return await _members_page(request, actor, "pending_approval", status_code=422,
                                       reject_errors={member_id: exc.error.message}, **kept)
        return await rpc_error_page(request, exc, actions=BACK)
    visitor(request).set_flash("success", f"L'inscription de {member.full_name} est refusée ; "
                                          "la personne en est informée par courriel.")
    return RedirectResponse("/secretariat/membres", status_code=303)
