"""The secretariat's reference lists for decisions: the commitments of the national action plan a
decision may serve, and the rule that decides what « adoptée » means for each kind of session.

The forum service checks the role and the values again; its refusals come back next to the field
they name, with what was typed kept.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse, Response
from starlette.requests import Request

from shared.contracts.decisions import (
    SIDE_LABELS, CommitmentView, GetRules, ListCommitments, Rule, RuleView, SaveCommitment, SetRule,
)
from shared.contracts.forum import KIND_LABELS, SessionKind
from shared.contracts.registry import COLLEGE_LABELS, College
from shared.rpc import RpcError
from services.web.forms import ONCE_FIELD, idempotency_key, read_form, validate, whole_number_or_none
from services.web.pages import HTTP_STATUS, error_page, render, require_secretariat, rpc, rpc_error_page
from services.web.routes._common import field_of, sentence, service_errors
from services.web.security import visitor

router = APIRouter(include_in_schema=False)

COMMITMENT_LABELS = {"code": "Code", "title": "Intitulé de l'engagement", "plan": "Plan d'action"}
RULE_LABELS = {**{f"quorum_{c.value}": f"Quorum : {COLLEGE_LABELS[c].lower()}" for c in College},
               "double_majority": "Double majorité"}
MAX_QUORUM = 100_000


async def commitments(request: Request) -> list[CommitmentView]:
    return (await rpc(request)(ListCommitments())).commitments


async def rule_for(request: Request, kind: SessionKind) -> RuleView | None:
    rules = await rpc(request)(GetRules())
    return next((r for r in rules.rules if r.rule.kind == kind), None)


# ---------------------------------------------------------------- commitments
async def commitments_page(request: Request, *, values: dict[str, str] | None = None,
                           errors: dict[str, str] | None = None, status_code: int = 200, editing: bool = False
                           ) -> Response:
    return await render(request, "admin_commitments.html", status_code=status_code,
                        commitments=await commitments(request), values=values or {"code": "", "title": "",
                                                                                   "plan": "2024-2026"},
                        errors=errors or {}, labels=COMMITMENT_LABELS, editing=editing)


@router.get("/secretariat/engagements")
async def commitments_list(request: Request, code: str = Query("", max_length=12)) -> Response:
    await require_secretariat(request)
    if code:
        found = next((c for c in await commitments(request) if c.code == code), None)
        if found is None:
            return await error_page(request, 404, "Cet engagement n'existe pas.", title="Engagement introuvable",
                                    actions=[("/secretariat/engagements", "Retour aux engagements")])
        return await commitments_page(request, values={"code": found.code, "title": found.title, "plan": found.plan},
                                      editing=True)
    return await commitments_page(request)


@router.post("/secretariat/engagements")
async def save_commitment(request: Request) -> Response:
    actor = await require_secretariat(request)
    form = await read_form(request)
    values = {k: form.get(k, "").strip() for k in COMMITMENT_LABELS}
    editing = form.get("editing") == "1"
    data: dict[str, Any] = {"actor_id": actor.member_id, "code": values["code"], "title": values["title"]}
    if values["plan"]:
        data["plan"] = values["plan"]
    req, errors = validate(SaveCommitment, data, limits={"code": 12, "title": 300, "plan": 20}, messages={
        "code": "Le code de l'engagement : 1 à 12 caractères, chiffres, lettres, points ou tirets (par exemple 7 "
                "ou 3.2).",
        "plan": "Indiquez le plan d'action, par exemple 2024-2026."})
    if req is None:
        return await commitments_page(request, values=values, status_code=422, editing=editing,
                                      errors={field_of(k, COMMITMENT_LABELS): sentence(v) for k, v in errors.items()})
    try:
        saved = await rpc(request)(req)
    except RpcError as exc:
        if (errors := service_errors(exc, COMMITMENT_LABELS)) is None:
            return await rpc_error_page(request, exc, actions=[("/secretariat/engagements", "Retour aux engagements")])
        return await commitments_page(request, values=values, errors=errors, editing=editing,
                                      status_code=HTTP_STATUS.get(exc.code, 422))
    visitor(request).set_flash("success", f"L'engagement {saved.code} « {saved.title} » est enregistré.")
    return RedirectResponse("/secretariat/engagements", status_code=303)


# ---------------------------------------------------------------- rules
def rule_values(rule: Rule) -> dict[str, str]:
    return {**{f"quorum_{c.value}": str(rule.quorum.get(c, 0)) for c in College},
            "double_majority": "1" if rule.double_majority else ""}


async def rules_page(request: Request, *, posted: SessionKind | None = None, values: dict[str, str] | None = None,
                     errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    rules = await rpc(request)(GetRules())
    by_kind = {r.rule.kind: r for r in rules.rules}
    forms = []
    for kind in SessionKind:
        view = by_kind.get(kind) or RuleView(rule=Rule(kind=kind), updated_at=None)
        forms.append({"kind": kind, "view": view,
                      "values": values if kind == posted and values is not None else rule_values(view.rule),
                      "errors": (errors or {}) if kind == posted else {}})
    return await render(request, "admin_rules.html", status_code=status_code, forms=forms, labels=RULE_LABELS,
                        colleges=list(College), kind_labels=KIND_LABELS, side_labels=SIDE_LABELS,
                        errors=errors or {})


@router.get("/secretariat/regles")
async def rules(request: Request) -> Response:
    await require_secretariat(request)
    return await rules_page(request)


@router.post("/secretariat/regles")
async def set_rule(request: Request) -> Response:
    actor = await require_secretariat(request)
    form = await read_form(request)
    kind_raw = form.get("kind", "")
    if kind_raw not in {k.value for k in SessionKind}:
        return await error_page(request, 400, "Ce type de séance n'existe pas.",
                                actions=[("/secretariat/regles", "Retour aux règles")])
    kind = SessionKind(kind_raw)
    key = idempotency_key(form)
    values = {**{f"quorum_{c.value}": form.get(f"quorum_{c.value}", "").strip() for c in College},
              "double_majority": "1" if form.get("double_majority") else "", ONCE_FIELD: key or ""}
    errors: dict[str, str] = {}
    quorum: dict[str, int] = {}
    for c in College:
        name, raw = f"quorum_{c.value}", values[f"quorum_{c.value}"]
        if not raw:
            quorum[c.value] = 0
        elif (n := whole_number_or_none(raw, maximum=10**9)) is None:
            errors[name] = ("Indiquez un nombre entier de membres présents (chiffres 0 à 9), 0 si aucun n'est "
                            "requis.")
        elif n > MAX_QUORUM:
            errors[name] = f"Ce nombre ne peut pas dépasser {MAX_QUORUM:,}".replace(",", " ") + " membres."
        else:
            quorum[c.value] = n
    if errors:
        return await rules_page(request, posted=kind, values=values, errors=errors, status_code=422)
    req = SetRule(actor_id=actor.member_id, rule=Rule(kind=kind, quorum={College(k): v for k, v in quorum.items() if v},
                                                      double_majority=bool(values["double_majority"])))
    try:
        await rpc(request)(req, idempotency_key=key)
    except RpcError as exc:
        if (found := service_errors(exc, RULE_LABELS)) is None:
            return await rpc_error_page(request, exc, actions=[("/secretariat/regles", "Retour aux règles")])
        return await rules_page(request, posted=kind, values=values, errors=found,
                                status_code=HTTP_STATUS.get(exc.code, 422))
    visitor(request).set_flash("success", f"La règle des séances de type « {KIND_LABELS[kind].lower()} » est "
                               "enregistrée. Elle s'applique aux décisions enregistrées à partir de maintenant.")
    return RedirectResponse("/secretariat/regles", status_code=303)
