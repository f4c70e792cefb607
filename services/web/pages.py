"""Rendering pages: the theme's templates, the signed-in member, French error pages.

Everything a page template gets comes from `render()`: the member (fresh from the registry), the
CSRF token, the one-time flash message, and the labels of statuses and colleges.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError
from starlette.requests import Request

from shared.contracts.common import ErrorBody, ErrorCode
from shared.contracts.forum import KIND_LABELS, RSVP_STATE_LABELS, THEME_LABELS
from shared.contracts.registry import (
    COLLEGE_LABELS, STATUS_LABELS, CheckSession, MemberStatus, MemberView, Role,
)
from shared import clock
from shared.logging import get_logger
from shared.rpc import RpcClient, RpcError
from shared.settings import Settings
from services.web.forms import form_token
from services.web.security import SlidingWindowLimiter, visitor
from services.web.session_checks import SessionChecks

log = get_logger(__name__)
DEFAULT_THEME = Path(__file__).parent / "theme"

# DSFR badge flavours, by status (the theme maps them to its own classes if it wants).
STATUS_KINDS = {
    MemberStatus.PENDING_VERIFICATION: "info",
    MemberStatus.PENDING_APPROVAL: "new",
    MemberStatus.APPROVED: "success",
    MemberStatus.REJECTED: "error",
    MemberStatus.ERASED: "info",
}
HTTP_STATUS = {
    ErrorCode.INVALID: 422,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.EXPIRED: 410,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}
ERROR_TITLES = {
    400: "Requête incorrecte",
    403: "Accès refusé",
    404: "Page introuvable",
    405: "Action non permise",
    409: "Action impossible",
    410: "Lien expiré",
    413: "Envoi trop volumineux",
    415: "Format d'envoi non pris en charge",
    422: "Données invalides",
    429: "Trop de tentatives",
    500: "Erreur inattendue",
    503: "Service momentanément indisponible",
}
_NOT_LOADED = object()


@dataclass
class Web:
    """Everything the routes share, kept on `app.state.web`."""

    settings: Settings
    env: Environment
    limiters: dict[str, SlidingWindowLimiter] = field(default_factory=dict)
    rpc: RpcClient | None = None
    session_checks: SessionChecks = field(default_factory=lambda: SessionChecks(0))

    def client(self) -> RpcClient:
        if self.rpc is None:
            raise rpc_failure(ErrorCode.UNAVAILABLE,
                              "Le forum n'est pas relié à ses services. Réessayez dans un instant.")
        return self.rpc


def rpc_failure(code: ErrorCode, message: str, field: str | None = None) -> RpcError:
    """An RpcError raised by the web front itself (same handling as a service's typed error)."""
    return RpcError(ErrorBody(code=code, message=message, field=field))


def web(request: Request) -> Web:
    return request.app.state.web  # type: ignore[no-any-return]


def rpc(request: Request) -> RpcClient:
    return web(request).client()


# ---------------------------------------------------------------- templates
def paris_iso(value: datetime | None) -> str:
    """The machine-readable time of a `<time datetime=…>`, in Europe/Paris."""
    return clock.as_paris(value or clock.utcnow()).isoformat()


def make_environment(settings: Settings) -> Environment:
    folders = []
    if settings.theme_dir:
        folders.append(str(Path(settings.theme_dir) / "templates"))
    folders.append(str(DEFAULT_THEME / "templates"))
    env = Environment(loader=ChoiceLoader([FileSystemLoader(f) for f in folders]),
                      autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["paris"] = clock.paris_datetime  # « 14/07/2030 à 14:05 »
    env.filters["paris_date"] = clock.paris_date
    env.filters["paris_iso"] = paris_iso
    env.filters["paris_long"] = clock.paris_long
    env.filters["paris_day"] = clock.paris_day
    env.filters["paris_hour"] = clock.paris_hour
    env.globals["paris_span"] = clock.paris_span
    env.globals["form_token"] = form_token  # a fresh one per rendered form (see the theme's `once` macro)
    env.globals.update(kind_labels=KIND_LABELS, theme_labels=THEME_LABELS, rsvp_state_labels=RSVP_STATE_LABELS)
    env.globals.update(status_labels=STATUS_LABELS, status_kinds=STATUS_KINDS, college_labels=COLLEGE_LABELS,
                       local_mode=settings.local_mode, MemberStatus=MemberStatus,
                       accessibility_status=settings.accessibility_status)  # the footer's RGAA status
    return env


def static_folder(settings: Settings) -> Path:
    if settings.theme_dir and (Path(settings.theme_dir) / "static").is_dir():
        return Path(settings.theme_dir) / "static"
    return DEFAULT_THEME / "static"


# ---------------------------------------------------------------- the signed-in member
async def current_member(request: Request, *, strict: bool = False) -> MemberView | None:
    """The signed-in member, fresh from the registry (status and role may have changed), while the session
    opened at sign-in is live: a request to the registry, or its answer of the last seconds
    (services/web/session_checks.py); none for a visitor.

    A session the registry ended (signed out here or everywhere, account erased, too old) signs the
    browser out. When the registry does not answer, public pages (strict=False) render as for a visitor,
    member pages (strict=True) fail with 503."""
    cached = getattr(request.state, "member", _NOT_LOADED)
    if cached is not _NOT_LOADED:
        if cached is None and strict and getattr(request.state, "member_error", None):
            raise request.state.member_error
        return cached  # type: ignore[return-value]
    who = visitor(request)
    member: MemberView | None = None
    checks = web(request).session_checks
    if who.member_id and (member := checks.get(who.member_id, who.session_id or "")) is None:
        try:
            try:
                check = CheckSession(member_id=who.member_id, session=who.session_id or "")
            except ValidationError:  # e.g. a cookie from before the registry kept sessions
                raise rpc_failure(ErrorCode.NOT_FOUND, "Session inconnue.") from None
            member = await rpc(request)(check)
            if member.status == MemberStatus.ERASED:
                raise rpc_failure(ErrorCode.NOT_FOUND, "Membre inconnu.")
            checks.put(check.member_id, check.session, member)
        except RpcError as exc:
            if exc.code in (ErrorCode.NOT_FOUND, ErrorCode.INVALID):
                log.info("ended session: signed out")
                signed_out(request)
            else:
                request.state.member = None
                request.state.member_error = exc
                if strict:
                    raise
                return None
    request.state.member = member
    return member


def signed_out(request: Request) -> None:
    """This browser is no longer signed in, and nothing kept here says otherwise for its member."""
    who = visitor(request)
    if who.member_id:
        web(request).session_checks.forget([who.member_id])
    who.sign_out()
    request.state.member = None


def is_secretariat(member: MemberView | None) -> bool:
    return bool(member and member.role == Role.SECRETARIAT and member.status == MemberStatus.APPROVED)


class SignInRequired(Exception):
    """A member page was asked for by a visitor who is not signed in: they are sent to sign in."""


async def require_member(request: Request) -> MemberView:
    member = await current_member(request, strict=True)
    if member is None:
        raise SignInRequired()
    return member


async def require_secretariat(request: Request) -> MemberView:
    member = await require_member(request)
    if not is_secretariat(member):
        raise rpc_failure(ErrorCode.FORBIDDEN, "Cette page est réservée au secrétariat du forum.")
    return member


# ---------------------------------------------------------------- responses
async def render(request: Request, template: str, status_code: int = 200,
                 headers: dict[str, str] | None = None, **ctx: Any) -> HTMLResponse:
    member = await current_member(request)
    who = visitor(request)
    context = {
        "request": request,
        "path": request.url.path,
        "member": member,
        "is_secretariat": is_secretariat(member),
        "csrf_token": who.csrf_token,
        "flash": who.pop_flash(),
        "errors": {},
        "values": {},
    }
    context.update(ctx)
    html = web(request).env.get_template(template).render(context)
    return HTMLResponse(html, status_code=status_code, headers=headers)


async def error_page(request: Request, status_code: int, message: str, *, title: str | None = None,
                     actions: list[tuple[str, str]] | None = None, headers: dict[str, str] | None = None
                     ) -> HTMLResponse:
    """A French error page: what happened, and where to go from here. Never a stack trace."""
    return await render(request, "error.html", status_code=status_code, headers=headers,
                        title=title or ERROR_TITLES.get(status_code, "Erreur"), message=message,
                        status=status_code, actions=actions or [("/", "Retour à l'accueil")])


async def rpc_error_page(request: Request, exc: RpcError, *, title: str | None = None,
                         actions: list[tuple[str, str]] | None = None, status_code: int | None = None
                         ) -> HTMLResponse:
    status_code = status_code or HTTP_STATUS.get(exc.code, 500)
    if exc.code == ErrorCode.UNAVAILABLE:
        log.warning("service unavailable", message=exc.error.message)
    elif exc.code == ErrorCode.INTERNAL:
        log.error("service internal error", message=exc.error.message)
    headers = {"Retry-After": "5"} if status_code == 503 else None
    return await error_page(request, status_code, exc.error.message, title=title, actions=actions, headers=headers)
