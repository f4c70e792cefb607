"""The secretariat's decision pages: the list of decisions and votes, record a decision on a session's
agenda item (consensus or a show of hands counted per college), correct one by a new decision that
supersedes it, update its follow-up.

The forum service decides (rule met or not, session started, decision not already superseded); its
refusals come back next to the field they name, with what was typed kept and nothing recorded.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse, Response
from starlette.requests import Request

from shared.contracts.decisions import (
    FOLLOW_UP_LABELS, METHOD_LABELS, OUTCOME_LABELS, SIDE_LABELS, DecisionView, FollowUpStatus, GetDecision,
    HandCount, ListDecisions, ListVotes, Method, Outcome, RecordDecision, UpdateFollowUp,
)
from shared.contracts.forum import SessionView
from shared.contracts.registry import COLLEGE_LABELS, College, MemberView
from shared.rpc import RpcError
from services.web.forms import (
    ONCE_FIELD, ROOT, edge_checks, idempotency_key, read_form, validate, whole_number_or_none,
)
from services.web.pages import HTTP_STATUS, error_page, render, require_secretariat, rpc, rpc_error_page
from services.web.routes._common import (
    fetch, field_of, get_session, not_found, sentence, service_errors, unknown_session, valid_id,
)
from services.web.routes.commitments_and_rules import commitments, rule_for
from services.web.routes.votes import vote_context
from services.web.security import visitor

router = APIRouter(include_in_schema=False)

LIST_BACK = [("/secretariat/decisions", "Retour aux décisions (secrétariat)")]
FORM_METHODS = (Method.CONSENSUS, Method.SHOW_OF_HANDS)
HAND_KEYS = ("in_favour", "against", "abstain")
HAND_LABELS = {"in_favour": "Pour", "against": "Contre", "abstain": "Abstention"}
MAX_COUNT = 100_000
HAND_DIGITS = len(str(MAX_COUNT))  # the form's maxlength
TOO_MANY_HANDS = f"Ce nombre ne peut pas dépasser {MAX_COUNT:,}".replace(",", " ") + " voix."


def hand_field(college: College, key: str) -> str:
    return f"hands_{college.value}_{key}"


HAND_FIELDS = tuple(hand_field(c, k) for c in College for k in HAND_KEYS)
FIELDS = ("agenda_position", "title", "text", "method", "outcome", *HAND_FIELDS, "commitment_code", "supersedes")
LABELS: dict[str, str] = {
    "agenda_position": "Point de l'ordre du jour", "title": "Titre de la décision", "text": "Texte de la décision",
    "method": "Mode de décision", "outcome": "Issue", "hands": "Décompte des voix",
    "commitment_code": "Engagement du plan d'action", "supersedes": "Décision corrigée",
    **{hand_field(c, k): f"{HAND_LABELS[k]} ({COLLEGE_LABELS[c].lower()})" for c in College for k in HAND_KEYS},
}
LIMITS = {"agenda_position": 4, "title": 200, "text": 20_000, "method": 20, "outcome": 20, "commitment_code": 12,
          "supersedes": 36, **{h: 7 for h in HAND_FIELDS}}
MESSAGES = {
    "agenda_position": "Choisissez le point de l'ordre du jour sur lequel porte la décision.",
    "text": "Écrivez le texte de la décision.",
    "method": "Choisissez le mode de décision : consensus ou vote à main levée.",
    "outcome": "Choisissez l'issue : adoptée, rejetée ou reportée.",
    "commitment_code": "Choisissez un engagement de la liste, ou aucun.",
}
FOLLOW_UP_FIELDS = {"status": "Statut du suivi", "note": "Note de suivi"}


async def unknown_decision(request: Request) -> Response:
    return await not_found(request, "Cette décision", "Décision introuvable", LIST_BACK)


async def get_decision(request: Request, decision_id: str) -> DecisionView | Response:
    return await fetch(request, decision_id, lambda: GetDecision(decision_id=decision_id), unknown_decision)


# ---------------------------------------------------------------- list
@router.get("/secretariat/decisions")
async def decisions_list(request: Request, seance: str = Query("", max_length=40)) -> Response:
    await require_secretariat(request)
    if seance and not valid_id(seance):
        return await unknown_session(request)
    client = rpc(request)
    listed = await client(ListDecisions(session_id=seance or None, limit=500))
    votes = await client(ListVotes(session_id=seance or None, limit=500))
    return await render(request, "admin_decisions.html", decisions=listed.decisions, total=listed.total,
                        votes=votes.votes, seance=seance, outcome_labels=OUTCOME_LABELS, method_labels=METHOD_LABELS,
                        follow_up_labels=FOLLOW_UP_LABELS, **vote_context())


# ---------------------------------------------------------------- record (and correct)
def form_values(form: dict[str, str]) -> dict[str, str]:
    return {k: form.get(k, "").strip() for k in FIELDS}


def decision_values(view: DecisionView) -> dict[str, str]:
    d = view.decision
    values = {k: "" for k in FIELDS}
    values.update(agenda_position=str(d.agenda_position), title=d.title, text=d.text, outcome=d.outcome.value,
                  method=d.method.value if d.method in FORM_METHODS else "",
                  commitment_code=d.commitment.code if d.commitment else "", supersedes=d.decision_id)
    for college, count in (d.hands or {}).items():
        for key in HAND_KEYS:
            values[hand_field(College(college), key)] = str(getattr(count, key))
    return values


def decision_request(values: dict[str, str], actor_id: str, session_id: str) -> tuple[RecordDecision | None,
                                                                                      dict[str, str]]:
    edge = edge_checks(values, LIMITS)
    errors: dict[str, str] = {}
    data: dict[str, Any] = {"actor_id": actor_id, "session_id": session_id, "title": values["title"],
                            "text": values["text"]}
    if (position := whole_number_or_none(values["agenda_position"], minimum=1, maximum=9999)) is not None:
        data["agenda_position"] = position
    else:
        errors["agenda_position"] = MESSAGES["agenda_position"]
    if values["method"] in {m.value for m in FORM_METHODS}:
        data["method"] = values["method"]
    else:
        errors["method"] = MESSAGES["method"]
    if values["outcome"] in {o.value for o in Outcome}:
        data["outcome"] = values["outcome"]
    else:
        errors["outcome"] = MESSAGES["outcome"]
    if values["commitment_code"]:
        data["commitment_code"] = values["commitment_code"]
    if values["supersedes"]:
        data["supersedes"] = values["supersedes"]
    # The counts are read whatever the method: a value typed in the form is checked even where it is not used.
    hands: dict[str, HandCount] = {}
    for college in College:
        counts: dict[str, int] = {}
        for key in HAND_KEYS:
            name, raw = hand_field(college, key), values[hand_field(college, key)]
            if not raw:
                counts[key] = 0
            elif len(raw) > HAND_DIGITS:  # 0000007 too: the form's maxlength, held on the server
                errors[name] = f"Indiquez au plus {HAND_DIGITS} chiffres : {TOO_MANY_HANDS[:1].lower()}{TOO_MANY_HANDS[1:]}"
            elif (n := whole_number_or_none(raw, maximum=10**9)) is None:
                errors[name] = "Indiquez un nombre entier de voix, 0 ou plus."
            elif n > MAX_COUNT:
                errors[name] = TOO_MANY_HANDS
            else:
                counts[key] = n
        if len(counts) == len(HAND_KEYS):
            hands[college.value] = HandCount(**counts)
    if values["method"] == Method.SHOW_OF_HANDS:
        if not any(h.in_favour or h.against or h.abstain for h in hands.values()) and not any(
                n in errors for n in HAND_FIELDS):
            errors["hands"] = "Indiquez les voix pour, contre et les abstentions d'au moins un collège."
        data["hands"] = hands
    req, model_errors = validate(RecordDecision, data)
    for name, message in model_errors.items():
        target = field_of(name, LABELS)
        if name == ROOT and values["method"] == Method.SHOW_OF_HANDS:
            target = "hands"
        errors.setdefault(target, sentence(MESSAGES.get(target, message)))
    errors.update(edge)
    if errors:
        order = {n: i for i, n in enumerate(("agenda_position", "title", "text", "method", "outcome", "hands",
                                             *HAND_FIELDS, "commitment_code", "supersedes"))}
        return None, dict(sorted(errors.items(), key=lambda kv: order.get(kv[0], -1)))
    return req, {}


async def decision_form(request: Request, s: SessionView, *, values: dict[str, str],
                        errors: dict[str, str] | None = None, status_code: int = 200,
                        corrected: DecisionView | None = None) -> Response:
    return await render(request, "admin_decision_form.html", status_code=status_code, s=s, values=values,
                        errors=errors or {}, corrected=corrected, labels=LABELS,
                        commitment_choices=[(c.code, f"Engagement {c.code} — {c.title}")
                                            for c in await commitments(request)],
                        rule=await rule_for(request, s.kind), methods=FORM_METHODS, outcomes=list(Outcome),
                        method_labels=METHOD_LABELS, outcome_labels=OUTCOME_LABELS, colleges=list(College),
                        hand_keys=HAND_KEYS, hand_labels=HAND_LABELS, hand_field=hand_field, side_labels=SIDE_LABELS)


async def _record(request: Request, actor: MemberView, s: SessionView, form: dict[str, str],
                  corrected: DecisionView | None) -> Response:
    values, key = form_values(form), idempotency_key(form)
    # A correction goes through its own page, which says which decision it corrects.
    values["supersedes"] = corrected.decision.decision_id if corrected else ""
    req, errors = decision_request(values, actor.member_id, s.session_id)
    values[ONCE_FIELD] = key or ""
    if req is None:
        return await decision_form(request, s, values=values, errors=errors, status_code=422, corrected=corrected)
    try:
        view = await rpc(request)(req, idempotency_key=key)
    except RpcError as exc:
        if (errors := service_errors(exc, LABELS)) is None:
            return await rpc_error_page(request, exc, actions=LIST_BACK)
        return await decision_form(request, s, values=values, errors=errors, corrected=corrected,
                                   status_code=HTTP_STATUS.get(exc.code, 422))
    d = view.decision
    what = "corrige la décision n° " + corrected.decision.number if corrected else "est enregistrée"
    visitor(request).set_flash("success", f"La décision n° {d.number} « {d.title} » {what} "
                               f"({OUTCOME_LABELS[d.outcome].lower()}). {d.rule_check.summary}")
    return RedirectResponse(f"/decisions/{d.decision_id}", status_code=303)


@router.get("/secretariat/decisions/nouvelle")
async def new_decision(request: Request, seance: str = Query("", max_length=40)) -> Response:
    await require_secretariat(request)
    if not seance:
        return await error_page(request, 400, "Choisissez d'abord la séance : une décision porte sur un point de son "
                                "ordre du jour.", actions=[("/secretariat/seances?periode=past", "Choisir une séance"),
                                                           *LIST_BACK])
    s = await get_session(request, seance)
    if isinstance(s, Response):
        return s
    values = {k: "" for k in FIELDS}
    if len(s.agenda) == 1:
        values["agenda_position"] = "1"
    return await decision_form(request, s, values=values)


@router.post("/secretariat/decisions/nouvelle")
async def record_decision(request: Request, seance: str = Query("", max_length=40)) -> Response:
    actor = await require_secretariat(request)
    s = await get_session(request, seance)
    if isinstance(s, Response):
        return s
    return await _record(request, actor, s, await read_form(request), None)


async def _correction(request: Request, decision_id: str, *, resent: bool = False
                      ) -> tuple[DecisionView, SessionView] | Response:
    """The decision to correct and its session; the « already corrected » page if it was, unless the form
    is `resent` (it carries a token: the correction it made, if it was this one, answers again)."""
    view = await get_decision(request, decision_id)
    if isinstance(view, Response):
        return view
    if view.superseded_by and not resent:
        return await error_page(request, 409, "Cette décision a déjà été corrigée : corrigez plutôt la décision qui "
                                "la remplace.", title="Action impossible",
                                actions=[(f"/secretariat/decisions/{view.superseded_by}/corriger",
                                          "Corriger la décision qui la remplace"), *LIST_BACK])
    s = await get_session(request, view.decision.session_id)
    if isinstance(s, Response):
        return s
    return view, s


@router.get("/secretariat/decisions/{decision_id}/corriger")
async def correct_form(request: Request, decision_id: str) -> Response:
    await require_secretariat(request)
    found = await _correction(request, decision_id)
    if isinstance(found, Response):
        return found
    view, s = found
    return await decision_form(request, s, values=decision_values(view), corrected=view)


@router.post("/secretariat/decisions/{decision_id}/corriger")
async def correct(request: Request, decision_id: str) -> Response:
    actor = await require_secretariat(request)
    form = await read_form(request)
    found = await _correction(request, decision_id, resent=idempotency_key(form) is not None)
    if isinstance(found, Response):
        return found
    view, s = found
    return await _record(request, actor, s, form, view)


# ---------------------------------------------------------------- follow-up
async def follow_up_page(request: Request, view: DecisionView, *, values: dict[str, str],
                         errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    return await render(request, "admin_follow_up.html", status_code=status_code, d=view, values=values,
                        errors=errors or {}, labels=FOLLOW_UP_FIELDS, statuses=list(FollowUpStatus),
                        follow_up_labels=FOLLOW_UP_LABELS, outcome_labels=OUTCOME_LABELS)


@router.get("/secretariat/decisions/{decision_id}/suivi")
async def follow_up_form(request: Request, decision_id: str) -> Response:
    await require_secretariat(request)
    view = await get_decision(request, decision_id)
    if isinstance(view, Response):
        return view
    return await follow_up_page(request, view, values={"status": view.follow_up.value, "note": ""})


@router.post("/secretariat/decisions/{decision_id}/suivi")
async def follow_up(request: Request, decision_id: str) -> Response:
    actor = await require_secretariat(request)
    view = await get_decision(request, decision_id)
    if isinstance(view, Response):
        return view
    form = await read_form(request)
    values = {"status": form.get("status", "").strip(), "note": form.get("note", "").strip()}
    req, errors = validate(UpdateFollowUp, {"actor_id": actor.member_id, "decision_id": decision_id, **values},
                           limits={"status": 20, "note": 2000},
                           messages={"status": "Choisissez le statut du suivi."})
    key = idempotency_key(form)
    values[ONCE_FIELD] = key or ""
    if req is None:
        return await follow_up_page(request, view, values=values, status_code=422,
                                    errors={field_of(k, FOLLOW_UP_FIELDS): sentence(v) for k, v in errors.items()})
    try:
        updated = await rpc(request)(req, idempotency_key=key)
    except RpcError as exc:
        if (errors := service_errors(exc, FOLLOW_UP_FIELDS)) is None:
            return await rpc_error_page(request, exc, actions=LIST_BACK)
        return await follow_up_page(request, view, values=values, errors=errors,
                                    status_code=HTTP_STATUS.get(exc.code, 422))
    visitor(request).set_flash("success", f"Suivi de la décision n° {updated.decision.number} mis à jour : "
                               f"{FOLLOW_UP_LABELS[updated.follow_up].lower()}.")
    return RedirectResponse(f"/decisions/{decision_id}", status_code=303)
