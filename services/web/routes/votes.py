"""Online votes by majority judgment: the secretariat opens a vote on a session's agenda item and may
close it early; the public sees the votes (open, upcoming, closed), each with its question, options,
grade scale, times and turnout; an eligible signed-in member grades every option (and may change the
ballot until the closing); a closed vote shows its merit profiles, majority grades, ranking and the
decision it became.

Ballots are secret: the forum service publishes only the counts per grade and deletes the ballots at
the closing. The web front never sees anyone else's ballot.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse, Response
from starlette.requests import Request

from forumlib.majority_judgment import GRADE_LABELS, GRADES, Grade
from shared.clock import paris_long
from shared.contracts.common import ErrorCode
from shared.contracts.decisions import (
    ELIGIBILITY_LABELS, MAX_OPTIONS, MIN_OPTIONS, CastBallot, CloseVote, Eligibility, GetVote, ListVoteGroups,
    OpenVote, VoteStatus, VoteView,
)
from shared.contracts.registry import COLLEGE_LABELS, MemberStatus
from shared.rpc import RpcError
from services.web.forms import (
    ONCE_FIELD, ROOT, edge_checks, idempotency_key, local_input, parse_paris, read_form, validate,
    whole_number_or_none,
)
from services.web.pages import (
    HTTP_STATUS, current_member, error_page, render, require_member, require_secretariat, rpc, rpc_error_page,
)
from services.web.routes._common import fetch, field_of, get_session, not_found, sentence
from services.web.security import visitor

router = APIRouter(include_in_schema=False)

OPEN_FIELDS = ("agenda_position", "question", "options", "eligibility", "opens_at", "closes_at")
OPEN_LABELS = {"agenda_position": "Point de l'ordre du jour", "question": "Question posée",
               "options": "Options", "eligibility": "Qui peut voter", "opens_at": "Ouverture du vote",
               "closes_at": "Clôture du vote"}
OPEN_LIMITS = {"agenda_position": 4, "question": 200, "options": MAX_OPTIONS * 202 + 50, "eligibility": 32,
               "opens_at": 40, "closes_at": 40}
STATUS_LABELS = {VoteStatus.UPCOMING: "À venir", VoteStatus.OPEN: "Ouvert", VoteStatus.CLOSED: "Clos",
                 VoteStatus.CANCELLED: "Annulé"}
STATUS_KINDS = {VoteStatus.UPCOMING: "info", VoteStatus.OPEN: "success", VoteStatus.CLOSED: "new",
                VoteStatus.CANCELLED: "error"}
VOTES_BACK = [("/votes", "Voir les votes"), ("/", "Retour à l'accueil")]
PAGE_SIZE = 20  # closed votes per page
OPEN_MAX = 50   # open (or upcoming) votes listed at once: a handful in practice
GROUP_TITLES = {VoteStatus.OPEN: "Votes ouverts", VoteStatus.UPCOMING: "Votes à venir", VoteStatus.CLOSED: "Votes clos"}
# Bars of the merit profiles: one class per grade (the colours live in forum.css, no inline style).
GRADE_CLASSES = {g: f"forum-grade--{g.value.replace('_', '-')}" for g in GRADES}
_GRADE_FIELD = re.compile(r"^grade-([0-9]{1,2})$")  # not \d: it takes « ٣ », which int() reads as 3


def vote_context() -> dict[str, Any]:
    return {"grade_labels": GRADE_LABELS, "grades": GRADES, "grade_classes": GRADE_CLASSES,
            "vote_status_labels": STATUS_LABELS, "vote_status_kinds": STATUS_KINDS,
            "eligibility_labels": ELIGIBILITY_LABELS, "college_labels": COLLEGE_LABELS}


async def unknown_vote(request: Request) -> Response:
    return await not_found(request, "Ce vote", "Vote introuvable", VOTES_BACK)


async def get_vote(request: Request, vote_id: str, actor_id: str | None = None) -> VoteView | Response:
    return await fetch(request, vote_id, lambda: GetVote(vote_id=vote_id, actor_id=actor_id), unknown_vote)


# ================================================================ the secretariat
def open_values(form: dict[str, str]) -> dict[str, str]:
    return {k: form.get(k, "").strip() for k in OPEN_FIELDS}


def default_open_values(agenda_size: int) -> dict[str, str]:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return {"agenda_position": "1" if agenda_size == 1 else "", "question": "", "options": "",
            "eligibility": Eligibility.APPROVED_MEMBERS.value, "opens_at": local_input(now),
            "closes_at": local_input(now + timedelta(days=7))}


def open_request(values: dict[str, str], actor_id: str, session_id: str) -> tuple[OpenVote | None, dict[str, str]]:
    errors: dict[str, str] = {}
    data: dict[str, Any] = {"actor_id": actor_id, "session_id": session_id, "question": values["question"]}
    if (position := whole_number_or_none(values["agenda_position"], minimum=1, maximum=9999)) is not None:
        data["agenda_position"] = position
    else:
        errors["agenda_position"] = "Choisissez le point de l'ordre du jour sur lequel porte le vote."
    options = [line.strip() for line in values["options"].splitlines() if line.strip()]
    if not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        errors["options"] = (f"Indiquez de {MIN_OPTIONS} à {MAX_OPTIONS} options, une par ligne "
                             f"({len(options)} indiquée{'s' if len(options) > 1 else ''}).")
    data["options"] = options
    if values["eligibility"] in {e.value for e in Eligibility}:
        data["eligibility"] = values["eligibility"]
    else:
        errors["eligibility"] = "Choisissez qui peut voter."
    now = datetime.now(UTC)
    for name in ("opens_at", "closes_at"):
        if not values[name]:
            errors[name] = "Indiquez la date et l'heure (heure de Paris)."
            continue
        try:
            data[name] = parse_paris(values[name])
        except ValueError as exc:
            errors[name] = str(exc)
    if "closes_at" in data and data["closes_at"] <= now:
        errors["closes_at"] = "La clôture du vote doit être dans le futur."
    # An opening time already past (the form was filled in a while ago) opens the vote now (the service decides).
    req, model_errors = validate(OpenVote, data)
    for name, message in model_errors.items():
        target = field_of(name, OPEN_LABELS)
        if target == ROOT and "clôture" in message:
            target = "closes_at"
        if name.startswith("options."):
            index = name.split(".")[1]
            message = f"Option {int(index) + 1} : {sentence(message)}" if index.isdigit() else message
        errors.setdefault(target, sentence(message))
    errors.update(edge_checks(values, OPEN_LIMITS))
    if errors:
        return None, {k: errors[k] for k in sorted(errors, key=lambda n: OPEN_FIELDS.index(n)
                                                     if n in OPEN_FIELDS else -1)}
    return req, {}


async def open_form(request: Request, s: Any, *, values: dict[str, str], errors: dict[str, str] | None = None,
                    status_code: int = 200) -> Response:
    return await render(request, "admin_vote_form.html", status_code=status_code, s=s, values=values,
                        errors=errors or {}, labels=OPEN_LABELS, eligibilities=list(Eligibility),
                        min_options=MIN_OPTIONS, max_options=MAX_OPTIONS, **vote_context())


@router.get("/secretariat/votes/nouveau")
async def new_vote(request: Request, seance: str = Query("", max_length=40)) -> Response:
    await require_secretariat(request)
    if not seance:
        return await error_page(request, 400, "Choisissez d'abord la séance : un vote porte sur un point de son ordre "
                                "du jour.", actions=[("/secretariat/seances", "Choisir une séance")])
    s = await get_session(request, seance)
    if isinstance(s, Response):
        return s
    return await open_form(request, s, values=default_open_values(len(s.agenda)))


@router.post("/secretariat/votes/nouveau")
async def open_vote(request: Request, seance: str = Query("", max_length=40)) -> Response:
    actor = await require_secretariat(request)
    s = await get_session(request, seance)
    if isinstance(s, Response):
        return s
    form = await read_form(request)
    values, key = open_values(form), idempotency_key(form)
    req, errors = open_request(values, actor.member_id, s.session_id)
    values[ONCE_FIELD] = key or ""
    if req is None:
        return await open_form(request, s, values=values, errors=errors, status_code=422)
    try:
        view = await rpc(request)(req, idempotency_key=key)
    except RpcError as exc:
        if exc.code in (ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL):
            return await rpc_error_page(request, exc, actions=[(f"/seances/{s.session_id}", "Voir la séance")])
        return await open_form(request, s, values=values, errors={field_of(exc.field, OPEN_LABELS):
                                                                 sentence(exc.error.message)},
                               status_code=HTTP_STATUS.get(exc.code, 422))
    when = "est ouvert" if view.status == VoteStatus.OPEN else f"ouvrira le {paris_long(view.vote.opens_at)}"
    visitor(request).set_flash("success", f"Le vote « {view.vote.question} » {when} ; il sera clos le "
                               f"{paris_long(view.vote.closes_at)} (heure de Paris).")
    return RedirectResponse(f"/votes/{view.vote.vote_id}", status_code=303)


@router.get("/secretariat/votes/{vote_id}/cloturer")
async def close_confirm(request: Request, vote_id: str) -> Response:
    await require_secretariat(request)
    view = await get_vote(request, vote_id)
    if isinstance(view, Response):
        return view
    session = await get_session(request, view.vote.session_id)
    if isinstance(session, Response):
        return session
    # Said before the clerk tries: a vote of a session not yet started cannot become its decision.
    too_early = session.status != "cancelled" and datetime.now(UTC) < session.starts_at
    return await render(request, "admin_vote_close.html", v=view, session=session, too_early=too_early,
                        **vote_context())


@router.post("/secretariat/votes/{vote_id}/cloturer")
async def close_vote(request: Request, vote_id: str) -> Response:
    actor = await require_secretariat(request)
    view = await get_vote(request, vote_id)
    if isinstance(view, Response):
        return view
    key = idempotency_key(await read_form(request))
    if view.status == VoteStatus.CLOSED and key is None:  # with a token, a re-sent form answers as it did
        visitor(request).set_flash("info", "Ce vote est déjà clos : son résultat est publié.")
        return RedirectResponse(f"/votes/{vote_id}", status_code=303)
    try:
        closed = await rpc(request)(CloseVote(actor_id=actor.member_id, vote_id=vote_id), timeout=30,
                                    idempotency_key=key)
    except RpcError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            return await unknown_vote(request)
        return await rpc_error_page(request, exc, actions=[(f"/votes/{vote_id}", "Voir le vote"), *VOTES_BACK])
    n = closed.ballots
    visitor(request).set_flash("success", f"Le vote « {closed.vote.question} » est clos : {n} bulletin"
                               f"{'s' if n > 1 else ''} dépouillé{'s' if n > 1 else ''}, puis supprimé"
                               f"{'s' if n > 1 else ''}. Le résultat est publié et devient une décision.")
    return RedirectResponse(f"/votes/{vote_id}", status_code=303)


# ================================================================ the public and the members
@router.get("/votes")
async def votes_list(request: Request, page: int = Query(1, ge=1, le=10_000)) -> Response:
    """Open and upcoming votes (a handful, in practice) on the first page, and the closed ones a page at
    a time."""
    member = await current_member(request)
    actor = member.member_id if member else None
    listed = await rpc(request)(ListVoteGroups(current=page == 1, current_limit=OPEN_MAX, closed_limit=PAGE_SIZE,
                                               closed_offset=(page - 1) * PAGE_SIZE, actor_id=actor))
    pages = max(1, -(-listed.closed.total // PAGE_SIZE))
    if page > pages:
        return await error_page(request, 404, "Cette page des votes clos n'existe pas.", title="Page introuvable",
                                actions=VOTES_BACK)
    shown = [(VoteStatus.OPEN, listed.open), (VoteStatus.UPCOMING, listed.upcoming), (VoteStatus.CLOSED, listed.closed)]
    groups = [{"status": status, "title": GROUP_TITLES[status], "votes": one.votes, "total": one.total}
              for status, one in shown if one is not None]
    return await render(request, "votes.html", groups=groups, page=page, pages=pages, **vote_context())


async def vote_page(request: Request, vote_id: str, *, status_code: int = 200, errors: dict[str, str] | None = None,
                    chosen: dict[int, str] | None = None, token: str | None = None) -> Response:
    """The vote's page; after a refused ballot, the grades chosen and the ballot form's token kept."""
    member = await current_member(request)
    view = await get_vote(request, vote_id, member.member_id if member else None)
    if isinstance(view, Response):
        return view
    if chosen is None:
        chosen = {k: g.value for k, g in view.my_ballot.grades.items()} if view.my_ballot else {}
    winner = None
    if view.result and view.result.winner_option_id is not None:
        winner = next((o for o in view.result.options if o.option_id == view.result.winner_option_id), None)
    not_approved = None
    if member and member.status != MemberStatus.APPROVED:
        not_approved = "Seuls les membres validés du forum peuvent voter."
    return await render(request, "vote.html", status_code=status_code, v=view, errors=errors or {}, chosen=chosen,
                        winner=winner, not_approved=not_approved, now=datetime.now(UTC), ballot_token=token,
                        **vote_context())


@router.get("/votes/{vote_id}")
async def vote(request: Request, vote_id: str) -> Response:
    return await vote_page(request, vote_id)


@router.post("/votes/{vote_id}/bulletin")
async def cast(request: Request, vote_id: str) -> Response:
    member = await require_member(request)
    view = await get_vote(request, vote_id, member.member_id)
    if isinstance(view, Response):
        return view
    form = await read_form(request)
    key = idempotency_key(form)
    labels = {o.option_id: o.label for o in view.vote.options}
    chosen: dict[int, str] = {}
    errors: dict[str, str] = {}
    for name, value in form.items():
        m = _GRADE_FIELD.match(name)
        if m and int(m.group(1)) in labels:
            chosen[int(m.group(1))] = value.strip()
        elif m:
            errors[ROOT] = "Ce bulletin mentionne une option qui ne fait pas partie du vote : rechargez la page."
    grades: dict[int, Grade] = {}
    scale = {g.value for g in view.vote.grades}
    for option_id, label in labels.items():
        value = chosen.get(option_id, "")
        if not value:
            errors[f"option-{option_id}"] = (f"Choisissez une mention pour « {label} » : chaque option doit être "
                                             "évaluée.")
        elif value not in scale:
            errors[f"option-{option_id}"] = (f"La mention choisie pour « {label} » ne fait pas partie de l'échelle "
                                             "du vote.")
        else:
            grades[option_id] = Grade(value)
    if errors:
        if ROOT not in errors:
            errors = {ROOT: "Votre vote n'a pas été enregistré : évaluez chaque option avec une mention de l'échelle.",
                      **errors}
        return await vote_page(request, vote_id, status_code=422, errors=errors, chosen=chosen, token=key)
    try:
        ballot = await rpc(request)(CastBallot(actor_id=member.member_id, vote_id=vote_id, grades=grades), timeout=30,
                                    idempotency_key=key)
    except RpcError as exc:
        if exc.code in (ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL):
            raise
        errors = {ROOT: sentence(exc.error.message)}
        if exc.field and (m := re.match(r"^grades\.(\d+)$", exc.field)):
            errors[f"option-{m.group(1)}"] = sentence(exc.error.message)
        return await vote_page(request, vote_id, status_code=HTTP_STATUS.get(exc.code, 409), errors=errors,
                               chosen=chosen, token=key)
    visitor(request).set_flash(
        "success", ("Votre vote est modifié" if ballot.replaced else "Votre vote est enregistré")
        + f" le {paris_long(ballot.cast_at)}. Vous pouvez le changer jusqu'à la clôture du vote.")
    return RedirectResponse(f"/votes/{vote_id}#mon-vote", status_code=303)
