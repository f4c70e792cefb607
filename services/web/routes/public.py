"""Public pages: home, charter, registration, e-mail verification, health."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.requests import Request

from shared.contracts.common import ErrorCode
from shared.contracts.registry import College, Register, VerifyEmail
from shared.rpc import RpcError
from shared.settings import SERVICES
from services.web.forms import ROOT, read_form, validate
from services.web.pages import error_page, render, rpc, rpc_error_page, web

router = APIRouter(include_in_schema=False)
health_router = APIRouter()

REGISTER_LIMITS = {"full_name": 120, "email": 254, "organisation": 160, "college": 32}
REGISTER_MESSAGES = {
    "college": "Choisissez votre collège.",
    "charter_accepted": "Vous devez accepter la charte du forum pour vous inscrire.",
}
NEW_LINK_ACTIONS = [("/connexion", "Recevoir un nouveau lien"), ("/", "Retour à l'accueil")]


@router.get("/")
async def home(request: Request) -> Response:
    return await render(request, "home.html")


@router.get("/charte")
async def charter(request: Request) -> Response:
    return await render(request, "charter.html")


@router.get("/accessibilite")
async def accessibility(request: Request) -> Response:
    return await render(request, "accessibility.html")


@router.get("/donnees-personnelles")
async def privacy(request: Request) -> Response:
    return await render(request, "privacy.html")


# ---------------------------------------------------------------- registration
@router.get("/inscription")
async def register_form(request: Request) -> Response:
    return await render(request, "register.html", colleges=list(College))


@router.post("/inscription")
async def register_submit(request: Request) -> Response:
    form = await read_form(request)
    values = {k: form.get(k, "").strip() for k in ("full_name", "email", "organisation", "college")}
    charter_accepted = form.get("charter_accepted") == "on"
    data: dict[str, object] = {k: v for k, v in values.items() if v or k == "organisation"}
    data["charter_accepted"] = charter_accepted
    req, errors = validate(Register, data, limits=REGISTER_LIMITS, messages=REGISTER_MESSAGES)
    if req is not None:
        try:
            await rpc(request)(req)
        except RpcError as exc:
            if exc.code != ErrorCode.INVALID:  # a known address answers like a new one: no conflict to show
                raise
            errors = {exc.field or ROOT: exc.error.message}
            status = 422
        else:
            return await render(request, "register_done.html", email=req.email)
    else:
        status = 422
    return await render(request, "register.html", status_code=status, colleges=list(College), errors=errors,
                        values={**values, "charter_accepted": charter_accepted})


@router.get("/inscription/verifier")
async def verify_email(request: Request, token: str = "") -> Response:
    try:
        req = VerifyEmail(token=token)
    except ValidationError:
        return await error_page(request, 404, "Ce lien n'est pas valable. Vérifiez qu'il a été copié en entier "
                                "depuis le courriel reçu.", title="Lien de confirmation non valable",
                                actions=NEW_LINK_ACTIONS)
    try:
        member = await rpc(request)(req)
    except RpcError as exc:
        titles = {ErrorCode.NOT_FOUND: "Lien de confirmation non valable", ErrorCode.EXPIRED:
                  "Lien de confirmation expiré ou déjà utilisé", ErrorCode.INVALID: "Lien de confirmation non valable"}
        if exc.code not in titles:
            raise
        return await rpc_error_page(request, exc, title=titles[exc.code], actions=NEW_LINK_ACTIONS,
                                    status_code=400 if exc.code == ErrorCode.INVALID else None)
    return await render(request, "verify_done.html", verified=member)


# ---------------------------------------------------------------- health
@health_router.get("/sante", summary="État du forum et de chacun de ses services")
async def health(request: Request) -> JSONResponse:
    """`ok` when every service answers its health check, else `degraded` (HTTP 503)."""
    w = web(request)
    timeout = min(2.0, w.settings.rpc_timeout)

    async def one(service: str) -> tuple[str, str]:
        try:
            h = await w.client().health(service, timeout=timeout)
        except RpcError as exc:
            return service, exc.error.message
        except Exception as exc:  # noqa: BLE001 - health must answer whatever happens
            return service, f"{type(exc).__name__}: {exc}"
        return service, "ok" if h.status == "ok" else f"{h.status}: {h.database}"

    services = dict(await asyncio.gather(*(one(s) for s in SERVICES)))
    ok = all(v == "ok" for v in services.values())
    return JSONResponse({"status": "ok" if ok else "degraded", "services": services},
                        status_code=200 if ok else 503)
