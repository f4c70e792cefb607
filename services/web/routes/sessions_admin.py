"""The secretariat's session pages: schedule, edit and cancel sessions; who comes (confirmed, the
waitlist in order, who declined) and its CSV export; check-in on the day, walk-ins included.

Forms take Europe/Paris local date-times and send aware UTC times. The web front checks the role to
show a clear page; the forum service checks it again on every command.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse, Response
from starlette.requests import Request

from shared.clock import as_paris
from shared.contracts.common import ErrorCode
from shared.contracts.forum import (
    MAX_AGENDA_ITEMS, RSVP_STATE_LABELS, CancelSession, CheckIn, CreateSession, ListRsvps, ListSessions,
    RsvpList, SessionKind, SessionPeriod, SessionView, Theme, UpdateSession,
)
from shared.contracts.registry import COLLEGE_LABELS, ListMembers, MemberStatus, MemberView
from shared.rpc import RpcError
from services.web.forms import (
    ONCE_FIELD, ROOT, edge_checks, idempotency_key, local_input, parse_paris, read_form, validate, whole_number,
    whole_number_or_none,
)
from services.web.pages import HTTP_STATUS, error_page, render, require_secretariat, rpc, rpc_error_page
from services.web.routes._common import (
    csv_cell, csv_response, fetch, get_session, sentence, unknown_session, valid_id,
)
from services.web.security import visitor

router = APIRouter(prefix="/secretariat/seances", include_in_schema=False)

PERIODS = {"upcoming": "Séances à venir", "past": "Séances passées", "all": "Toutes les séances"}
DATE_FIELDS = ("starts_at", "ends_at", "rsvp_opens_at", "rsvp_closes_at")
FIELDS = ("title", "kind", "theme", "description", "starts_at", "ends_at", "place", "online_url", "capacity",
          "rsvp_opens_at", "rsvp_closes_at", "agenda")
LABELS = {
    "title": "Titre", "kind": "Type de séance", "theme": "Thème", "description": "Présentation",
    "starts_at": "Début", "ends_at": "Fin", "place": "Lieu", "online_url": "Lien de participation en ligne",
    "capacity": "Nombre de places", "rsvp_opens_at": "Ouverture des réponses",
    "rsvp_closes_at": "Clôture des réponses", "agenda": "Ordre du jour",
}
LIMITS = {"title": 200, "kind": 32, "theme": 40, "description": 5000, "place": 300, "online_url": 500,
          "capacity": 6, "agenda": MAX_AGENDA_ITEMS * 302, **{d: 40 for d in DATE_FIELDS}}
MESSAGES = {
    "kind": "Choisissez le type de séance.",
    "agenda": f"L'ordre du jour ne peut pas compter plus de {MAX_AGENDA_ITEMS} points.",
}
# Mirrors the forum's check-in window (the service decides; this only hides buttons that would fail).
CHECK_IN_OPENS_BEFORE = timedelta(hours=24)
CHECK_IN_CLOSES_AFTER = timedelta(days=7)
LIST_BACK = [("/secretariat/seances", "Retour aux séances")]


# ---------------------------------------------------------------- the session form
def form_values(form: dict[str, str]) -> dict[str, str]:
    return {k: form.get(k, "").strip() for k in FIELDS}


def view_values(v: SessionView) -> dict[str, str]:
    return {"title": v.title, "kind": v.kind.value, "theme": v.theme.value if v.theme else "",
            "description": v.description, "place": v.place or "", "online_url": v.online_url or "",
            "capacity": str(v.capacity), "agenda": "\n".join(item.text for item in v.agenda),
            **{k: local_input(getattr(v, k)) for k in DATE_FIELDS}}


def session_request(model: type[CreateSession] | type[UpdateSession], values: dict[str, str], actor_id: str,
                    extra: dict[str, Any] | None = None) -> tuple[Any, dict[str, str]]:
    """(request, {}) or (None, {field: French message}) for the posted session form."""
    edge = edge_checks(values, LIMITS)
    data: dict[str, Any] = {"actor_id": actor_id, **(extra or {})}
    for k in ("title", "kind", "place", "online_url"):
        if values[k]:
            data[k] = values[k]
    number_errors: dict[str, str] = {}
    if values["capacity"]:
        try:  # the service says which capacities it accepts
            data["capacity"] = whole_number(values["capacity"], maximum=10**9)
        except ValueError as exc:
            number_errors["capacity"] = str(exc)
    data["theme"] = values["theme"] or None
    data["description"] = values["description"]
    data["agenda"] = [line.strip() for line in values["agenda"].splitlines() if line.strip()]
    date_errors: dict[str, str] = {}
    for k in DATE_FIELDS:
        if values[k]:
            try:
                data[k] = parse_paris(values[k])
            except ValueError as exc:
                date_errors[k] = str(exc)
    req, errors = validate(model, data, messages=MESSAGES)
    out: dict[str, str] = {}
    for name, message in errors.items():
        if name.startswith("agenda."):
            index = int(name.split(".")[1]) if name.split(".")[1].isdigit() else 0
            out.setdefault("agenda", f"Point {index + 1} : {sentence(message)}")
        elif name in LABELS:
            out[name] = sentence(message)
        else:
            out.setdefault(ROOT, sentence(message))
    out.update(date_errors)
    out.update(number_errors)
    out.update(edge)
    if out:
        return None, {k: out[k] for k in sorted(out, key=lambda n: FIELDS.index(n) if n in FIELDS else -1)}
    return req, {}


async def form_page(request: Request, *, mode: str, values: dict[str, str], errors: dict[str, str] | None = None,
                    status_code: int = 200, session: SessionView | None = None, revision: str = "") -> Response:
    return await render(request, "admin_session_form.html", status_code=status_code, mode=mode, values=values,
                        errors=errors or {}, s=session, revision=revision, labels=LABELS, kinds=list(SessionKind),
                        themes=list(Theme), max_agenda=MAX_AGENDA_ITEMS)


def service_field_error(exc: RpcError) -> dict[str, str] | None:
    """A service error the form can show next to a field (or at its top), else None."""
    if exc.code == ErrorCode.INVALID:
        return {exc.field if exc.field in LABELS else ROOT: sentence(exc.error.message)}
    if exc.code == ErrorCode.CONFLICT and exc.field in LABELS:
        return {exc.field: sentence(exc.error.message)}  # e.g. capacity below the confirmed seats
    if exc.code == ErrorCode.CONFLICT and exc.field == "expected_revision":
        return {ROOT: exc.error.message}
    return None


# ---------------------------------------------------------------- list
@router.get("")
async def sessions_list(request: Request, periode: str = Query("upcoming", max_length=20)) -> Response:
    await require_secretariat(request)
    if periode not in PERIODS:
        return await error_page(request, 400, "Ce filtre n'existe pas.", actions=LIST_BACK)
    listed = await rpc(request)(ListSessions(when=SessionPeriod(periode), include_cancelled=True, limit=500))
    return await render(request, "admin_sessions.html", sessions=listed.sessions, total=listed.total,
                        periode=periode, periods=PERIODS)


# ---------------------------------------------------------------- create
@router.get("/nouvelle")
async def new_form(request: Request) -> Response:
    await require_secretariat(request)
    return await form_page(request, mode="create", values={k: "" for k in FIELDS})


@router.post("/nouvelle")
async def create(request: Request) -> Response:
    actor = await require_secretariat(request)
    form = await read_form(request)
    values, key = form_values(form), idempotency_key(form)
    values[ONCE_FIELD] = key or ""
    req, errors = session_request(CreateSession, values, actor.member_id)
    if req is None:
        return await form_page(request, mode="create", values=values, errors=errors, status_code=422)
    try:
        view = await rpc(request)(req, idempotency_key=key)
    except RpcError as exc:
        if (errors := service_field_error(exc)) is None:
            return await rpc_error_page(request, exc, actions=LIST_BACK)
        return await form_page(request, mode="create", values=values, errors=errors,
                               status_code=HTTP_STATUS.get(exc.code, 422))
    visitor(request).set_flash("success", f"La séance « {view.title} » est programmée.")
    return RedirectResponse(f"/seances/{view.session_id}", status_code=303)


# ---------------------------------------------------------------- edit
async def _not_editable(request: Request, view: SessionView) -> Response:
    return await error_page(request, 409, "Cette séance a été annulée : elle ne peut plus être modifiée.",
                            title="Action impossible", actions=[(f"/seances/{view.session_id}", "Voir la séance"),
                                                                *LIST_BACK])


@router.get("/{session_id}/modifier")
async def edit_form(request: Request, session_id: str) -> Response:
    await require_secretariat(request)
    view = await get_session(request, session_id)
    if isinstance(view, Response):
        return view
    if view.status == "cancelled":
        return await _not_editable(request, view)
    return await form_page(request, mode="edit", values=view_values(view), session=view, revision=str(view.revision))


@router.post("/{session_id}/modifier")
async def edit(request: Request, session_id: str) -> Response:
    actor = await require_secretariat(request)
    view = await get_session(request, session_id)
    if isinstance(view, Response):
        return view
    form = await read_form(request)
    values, key = form_values(form), idempotency_key(form)
    values[ONCE_FIELD] = key or ""
    revision = form.get("revision", "").strip()
    extra: dict[str, Any] = {"session_id": session_id}
    if (expected := whole_number_or_none(revision, maximum=10**9)) is not None:
        extra["expected_revision"] = expected
    req, errors = session_request(UpdateSession, values, actor.member_id, extra)
    if req is None:
        return await form_page(request, mode="edit", values=values, errors=errors, status_code=422, session=view,
                               revision=revision)
    try:
        updated = await rpc(request)(req, idempotency_key=key)
    except RpcError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            return await unknown_session(request)
        if exc.code == ErrorCode.CONFLICT and exc.field == "session_id":
            return await _not_editable(request, view)
        if (errors := service_field_error(exc)) is None:
            return await rpc_error_page(request, exc, actions=LIST_BACK)
        return await form_page(request, mode="edit", values=values, errors=errors, session=view, revision=revision,
                               status_code=HTTP_STATUS.get(exc.code, 422))
    # Against the revision the form was filled from: a re-sent form answers as the first one did.
    if updated.revision == (req.expected_revision if req.expected_revision is not None else view.revision):
        message = "Aucune modification : la séance est inchangée."
    else:
        message = (f"La séance « {updated.title} » est modifiée. Si l'horaire ou le lieu a changé, les membres "
                   "inscrits ou en liste d'attente en sont informés par courriel.")
    visitor(request).set_flash("success", message)
    return RedirectResponse(f"/seances/{session_id}", status_code=303)


# ---------------------------------------------------------------- cancel
@router.get("/{session_id}/annuler")
async def cancel_form(request: Request, session_id: str) -> Response:
    await require_secretariat(request)
    view = await get_session(request, session_id)
    if isinstance(view, Response):
        return view
    return await render(request, "admin_session_cancel.html", s=view, values={"reason": ""})


@router.post("/{session_id}/annuler")
async def cancel(request: Request, session_id: str) -> Response:
    actor = await require_secretariat(request)
    view = await get_session(request, session_id)
    if isinstance(view, Response):
        return view
    form = await read_form(request)
    reason, key = form.get("reason", "").strip(), idempotency_key(form)
    values = {"reason": reason, ONCE_FIELD: key or ""}
    req, errors = validate(CancelSession, {"actor_id": actor.member_id, "session_id": session_id, "reason": reason},
                           limits={"reason": 1000},
                           messages={"reason": "Indiquez le motif de l'annulation (au moins 3 caractères) : les "
                                               "membres inscrits le recevront."} if len(reason) < 3 else None)
    if req is None:
        return await render(request, "admin_session_cancel.html", status_code=422, s=view,
                            values=values, errors={"reason": sentence(next(iter(errors.values())))})
    try:
        cancelled = await rpc(request)(req, idempotency_key=key)
    except RpcError as exc:
        if exc.code == ErrorCode.INVALID:
            return await render(request, "admin_session_cancel.html", status_code=422, s=view,
                                values=values, errors={"reason": sentence(exc.error.message)})
        return await rpc_error_page(request, exc, actions=[(f"/seances/{session_id}", "Voir la séance"), *LIST_BACK])
    told = cancelled.confirmed_count + cancelled.waitlist_count
    visitor(request).set_flash("success", f"La séance « {cancelled.title} » est annulée."
                               + (f" {told} membre{'s' if told > 1 else ''} inscrit{'s' if told > 1 else ''} "
                                  "ou en liste d'attente en sont informés par courriel." if told else ""))
    return RedirectResponse(f"/seances/{session_id}", status_code=303)


# ---------------------------------------------------------------- participants and check-in
def check_in_open(view: SessionView, now: datetime) -> bool:
    return (view.status != "cancelled" and view.starts_at - CHECK_IN_OPENS_BEFORE <= now
            <= view.ends_at + CHECK_IN_CLOSES_AFTER)


async def _rsvps(request: Request, actor: MemberView, session_id: str) -> RsvpList | Response:
    return await fetch(request, session_id, lambda: ListRsvps(actor_id=actor.member_id, session_id=session_id),
                       unknown_session, timeout=30)


async def participants_page(request: Request, actor: MemberView, session_id: str, *, status_code: int = 200,
                            error: str | None = None, walk_in_error: str | None = None,
                            walk_in_value: str = "") -> Response:
    rsvps = await _rsvps(request, actor, session_id)
    if isinstance(rsvps, Response):
        return rsvps
    client = rpc(request)
    now = datetime.now(UTC)
    open_ = check_in_open(rsvps.session, now)
    walk_ins: list[MemberView] = []
    if open_:
        present = {a.member_id for a in rsvps.attendees}
        approved = await client(ListMembers(actor_id=actor.member_id, status=MemberStatus.APPROVED), timeout=30)
        walk_ins = sorted((m for m in approved.members if m.member_id not in present),
                          key=lambda m: (m.full_name.casefold(), m.member_id))
    errors = {}
    if error:
        errors[ROOT] = error
    if walk_in_error:
        errors["member_id"] = walk_in_error
    return await render(request, "admin_session_participants.html", status_code=status_code, s=rsvps.session,
                        rsvps=rsvps, check_in_open=open_, walk_ins=walk_ins, errors=errors,
                        values={"member_id": walk_in_value}, now=now)


@router.get("/{session_id}/participants")
async def participants(request: Request, session_id: str) -> Response:
    actor = await require_secretariat(request)
    return await participants_page(request, actor, session_id)


@router.post("/{session_id}/emargement")
async def check_in(request: Request, session_id: str) -> Response:
    """Mark a member present ("Présent·e", or a walk-in chosen in the list), or take it back."""
    actor = await require_secretariat(request)
    if not valid_id(session_id):
        return await unknown_session(request)
    form = await read_form(request)
    member_id = form.get("member_id", "").strip()
    present = form.get("present", "1") != "0"
    walk_in = form.get("walk_in") == "1"
    if not valid_id(member_id):
        return await participants_page(request, actor, session_id, status_code=422,
                                       walk_in_error="Choisissez le membre à enregistrer comme présent·e.")
    try:
        done = await rpc(request)(CheckIn(actor_id=actor.member_id, session_id=session_id, member_id=member_id,
                                          present=present), timeout=30)
    except RpcError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            return await unknown_session(request)
        if exc.code in (ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL):
            raise
        status = HTTP_STATUS.get(exc.code, 409)
        if exc.field == "member_id" and walk_in:
            return await participants_page(request, actor, session_id, status_code=status,
                                           walk_in_error=sentence(exc.error.message), walk_in_value=member_id)
        return await participants_page(request, actor, session_id, status_code=status,
                                       error=sentence(exc.error.message))
    total = done.counts.total
    what = "Présence enregistrée" if present else "Présence retirée"
    extra = " (venu·e sans inscription)" if present and done.walk_in else ""
    visitor(request).set_flash("success", f"{what}{extra} : {total} présent{'s' if total > 1 else ''} au total.")
    return RedirectResponse(f"/secretariat/seances/{session_id}/participants", status_code=303)


@router.get("/{session_id}/participants.csv")
async def participants_csv(request: Request, session_id: str) -> Response:
    """UTF-8 with a BOM and `;` separators: what French spreadsheets open as is."""
    actor = await require_secretariat(request)
    rsvps = await _rsvps(request, actor, session_id)
    if isinstance(rsvps, Response):
        return rsvps
    present = {a.member_id: a for a in rsvps.attendees}
    rows: list[list[object]] = [["Réponse", "Rang sur la liste d'attente", "Nom", "Organisation", "Collège",
                                 "Identifiant public", "Répondu le (heure de Paris)", "Présent·e",
                                 "Venu·e sans inscription"]]

    def college(c: object) -> str:
        return COLLEGE_LABELS.get(c, "") if c else ""  # type: ignore[call-overload]

    for entry in [*rsvps.confirmed, *rsvps.waitlisted, *rsvps.declined]:
        a = present.get(entry.member_id)
        rows.append([csv_cell(RSVP_STATE_LABELS[entry.state]), entry.waitlist_position or "",
                     csv_cell(entry.full_name), csv_cell(entry.organisation), college(entry.college),
                     csv_cell(entry.public_id or ""), local_input(entry.responded_at).replace("T", " "),
                     "oui" if a else "non", "oui" if a and a.walk_in else "non"])
    answered = {e.member_id for e in [*rsvps.confirmed, *rsvps.waitlisted, *rsvps.declined]}
    for a in rsvps.attendees:
        if a.member_id not in answered:
            rows.append(["Sans réponse", "", csv_cell(a.full_name), csv_cell(a.organisation), college(a.college),
                         csv_cell(a.public_id or ""), "", "oui", "oui" if a.walk_in else "non"])
    day = as_paris(rsvps.session.starts_at).date().isoformat()
    return csv_response(rows, f"participants-seance-{day}-{session_id[:8]}.csv")

