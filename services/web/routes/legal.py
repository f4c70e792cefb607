"""The pages a French public site must have: mentions légales (LCEN art. 6), personal data (RGPD art. 13-14),
the accessibility statement (RGAA), and a contact form that reaches the secretariat.

Their texts are files, not code: the defaults in services/web/legal/, each replaced by a file of the same
name in the operator's `legal_dir`. The operator's facts (publisher, director of publication, host, data
protection officer, secretariat's address, RGAA status) are settings, given to the texts as `site`.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request

from shared.contracts.common import ErrorCode
from shared.contracts.notifications import (
    CONTACT_MESSAGE_MAX, CONTACT_NAME_MAX, CONTACT_TITLE_MAX, ContactAccepted, SendContactMessage,
)
from shared.rpc import RpcError
from shared.settings import Settings
from services.web.forms import ONCE_FIELD, idempotency_key, read_form, validate
from services.web.pages import HTTP_STATUS, render, rpc, rpc_error_page, web
from services.web.routes._common import service_errors
from services.web.security import client_address, visitor

router = APIRouter(include_in_schema=False)

DEFAULT_TEXTS = Path(__file__).resolve().parents[1] / "legal"
CONTACT_PATH = "/contact"
CONTACT_LABELS = {"name": "Nom et prénom", "email": "Adresse électronique", "title": "Objet",
                  "message": "Votre message"}
CONTACT_LIMITS = {"name": CONTACT_NAME_MAX, "email": 254, "title": CONTACT_TITLE_MAX, "message": CONTACT_MESSAGE_MAX}
CONTACT_MESSAGES = {
    "name": "Indiquez votre nom (2 à 120 caractères).",
    "email": "Indiquez une adresse électronique valide, par exemple nom@exemple.fr : la réponse y sera envoyée.",
    "title": "Indiquez l'objet de votre message (3 à 200 caractères).",
    "message": "Écrivez votre message (10 à 5 000 caractères).",
}


# ---------------------------------------------------------------- the texts
@lru_cache(maxsize=4)
def _texts(operator_dir: Path | None) -> Environment:
    folders = [str(operator_dir)] if operator_dir else []
    # The loaders check each file's date: an operator's edit shows at the next request, no restart needed.
    return Environment(loader=ChoiceLoader([FileSystemLoader(f) for f in [*folders, str(DEFAULT_TEXTS)]]),
                       autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


def site_facts(settings: Settings) -> dict[str, Any]:
    """What the texts may name (`site.*`)."""
    return {
        "publisher": settings.site_publisher, "publisher_address": settings.site_publisher_address,
        "director": settings.publication_director, "host": settings.site_host,
        "host_address": settings.site_host_address, "dpo_contact": settings.dpo_contact,
        "dpo_email": settings.dpo_email, "secretariat_email": settings.secretariat_email,
        "accessibility_status": settings.accessibility_status, "public_url": settings.public_url.rstrip("/"),
        "session_days": round(settings.session_max_age / 86400),
        "subscription_confirm_days": round(settings.subscription_confirm_ttl / 86400),
        "contact_days": settings.contact_retention_days, "contact_limit": settings.contact_limit,
        "delivery_log_days": settings.delivery_log_retention_days,
    }


def legal_text(settings: Settings, name: str) -> Markup:
    """The text `name` (the operator's file if there is one, else the default) rendered with the facts.
    The files are the operator's own, trusted as the theme's templates are."""
    template = _texts(Path(settings.legal_dir) if settings.legal_dir else None).get_template(name)
    return Markup(template.render(site=site_facts(settings)))  # noqa: S704 - operator's file, autoescaped facts


async def legal_page(request: Request, template: str, text: str, **ctx: Any) -> Response:
    return await render(request, template, text=legal_text(web(request).settings, text), **ctx)


@router.get("/mentions-legales")
async def legal_notice(request: Request) -> Response:
    return await legal_page(request, "legal_page.html", "mentions_legales.html", heading="Mentions légales")


@router.get("/donnees-personnelles")
async def privacy(request: Request) -> Response:
    return await legal_page(request, "legal_page.html", "donnees_personnelles.html",
                            heading="Données personnelles", wide=True)  # its tables need the width


@router.get("/accessibilite")
async def accessibility(request: Request) -> Response:
    return await legal_page(request, "legal_page.html", "accessibilite.html",
                            heading="Déclaration d'accessibilité")


# ---------------------------------------------------------------- contact
async def contact_page(request: Request, values: dict[str, str] | None = None,
                       errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    return await legal_page(request, "contact.html", "contact.html", status_code=status_code, values=values or {},
                            errors=errors or {}, labels=CONTACT_LABELS, limits=CONTACT_LIMITS,
                            site_contact_days=web(request).settings.contact_retention_days)


@router.get(CONTACT_PATH)
async def contact_form(request: Request) -> Response:
    return await contact_page(request)


@router.post(CONTACT_PATH)
async def contact_submit(request: Request) -> Response:
    form = await read_form(request)
    values = {k: form.get(k, "").strip() for k in CONTACT_LABELS}
    key = idempotency_key(form)
    values[ONCE_FIELD] = key or ""
    data: dict[str, object] = {k: v for k, v in values.items() if k in CONTACT_LABELS and v}
    data["client"] = client_address(request)[:100]
    req, errors = validate(SendContactMessage, data, limits=CONTACT_LIMITS)
    if req is None:
        # An empty field is told what to write; a filled one keeps the precise reason (too short, line break…).
        errors = {k: CONTACT_MESSAGES[k] if not values.get(k) else v for k, v in errors.items() if k != "client"}
        return await contact_page(request, values, errors, 422)
    try:
        sent: ContactAccepted = await rpc(request)(req, idempotency_key=key)
    except RpcError as exc:
        if (refused := service_errors(exc, CONTACT_LABELS)) is None:
            return await rpc_error_page(request, exc, actions=[(CONTACT_PATH, "Revenir au formulaire"),
                                                               ("/", "Retour à l'accueil")])
        # Over the per-address limit: « too many requests », said next to the address.
        status = 429 if exc.code == ErrorCode.CONFLICT and exc.field == "email" else HTTP_STATUS.get(exc.code, 422)
        return await contact_page(request, values, refused, status)
    visitor(request).set_flash("success", sent.message)
    return RedirectResponse(f"{CONTACT_PATH}/envoye", status_code=303)


@router.get(f"{CONTACT_PATH}/envoye")
async def contact_sent(request: Request) -> Response:
    return await render(request, "contact_sent.html")
