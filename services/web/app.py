"""The web front: public site, member space and secretariat back-office (FastAPI + Jinja2, DSFR theme).

It speaks to the services only through NATS request/reply (`RpcClient`); it has no database.
Run by `forum-ouvert serve web` as `uvicorn services.web.app:create_app --factory`.
"""
from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.telemetry import TelemetryConfig
from faststream.nats import NatsBroker
from pydantic import ValidationError
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.contracts.common import Request as ServiceRequest
from shared.contracts.registry import MembersChanged
from shared.gc_tuning import settle_after_start
from shared.logging import configure_logging, get_logger, log_context
from shared.rpc import RpcClient, RpcError
from shared.settings import Settings, get_settings
from shared.validation import field_errors
from services.web.pages import (
    ERROR_TITLES, SignInRequired, Web, error_page, make_environment, rpc_error_page, static_folder,
)
from services.web.routes import (
    auth, commitments_and_rules, decisions, decisions_admin, dev, ledger, member, open_data, public, record, secretariat,
    sessions, sessions_admin, votes,
)
from services.web.routes import minutes, minutes_admin
from services.web.routes import search
from services.web.routes import announcements, feeds
from services.web.routes import announcements_admin, subscriptions
from services.web.routes import legal, seo
from services.web.security import (
    COOKIE_NAME, CSRF_FIELD, SECURITY_HEADERS, BodyLimit, CsrfError, SlidingWindowLimiter, client_address,
    secret_key, valid_request_id, visitor,
)
from services.web.page_cache import PageCache
from services.web.session_checks import SessionChecks

log = get_logger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]
# POSTs that make the forum send an e-mail
RATE_LIMITED = ("/inscription", "/connexion", "/abonnements", "/abonnements/lien", legal.CONTACT_PATH)
MAX_BODY = 64 * 1024
# The clerk posts whole minutes (a draft, a correction): room for the longest text the service accepts.
LONG_TEXT_FORMS = re.compile(r"/secretariat/comptes-rendus/[\w-]+/(brouillon|corriger)")
MAX_LONG_TEXT_BODY = 1024 * 1024
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
HTTP_MESSAGES = {
    400: "La requête est incorrecte.",
    404: "La page que vous cherchez n'existe pas ou n'est plus disponible. Vérifiez l'adresse.",
    405: "Cette action n'est pas possible à cette adresse.",
    413: "Les données envoyées sont trop volumineuses.",
    415: "Ce formulaire doit être envoyé depuis sa page sur le site (en données de formulaire, pas dans un autre "
         "format). Rechargez la page, puis envoyez-le à nouveau.",
}
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def dsfr_folder() -> Path | None:
    """`node_modules/@gouvfr/dsfr/dist` (installed by `npm ci` at the root of the repository)."""
    for root in (REPO_ROOT, Path.cwd()):
        p = root / "node_modules" / "@gouvfr" / "dsfr" / "dist"
        if p.is_dir():
            return p
    return None


def form_page(path: str) -> str:
    """The page that shows the form posted to `path` (where to go back to after a stale form)."""
    if re.fullmatch(r"/secretariat/(decisions/[\w-]+/(corriger|suivi)|votes/[\w-]+/cloturer)", path):
        return path  # the same address shows the form
    if re.fullmatch(r"/votes/[\w-]+/bulletin", path):
        return path.removesuffix("/bulletin")
    if re.fullmatch(r"/comptes-rendus/[\w-]+/relecture", path):
        return path
    if m := re.match(r"/secretariat/comptes-rendus/([\w-]+)/", path):
        return f"/secretariat/comptes-rendus/{m.group(1)}"
    for prefix, page in (("/secretariat/seances", "/secretariat/seances"), ("/seances", "/seances"),
                         ("/secretariat/comptes-rendus", "/secretariat/comptes-rendus"),
                         ("/secretariat/decisions", "/secretariat/decisions"),
                         ("/secretariat/votes", "/secretariat/decisions"),
                         ("/secretariat/engagements", "/secretariat/engagements"),
                         ("/secretariat/regles", "/secretariat/regles"),
                         ("/secretariat/annonces", "/secretariat/annonces"), ("/secretariat/envois", "/secretariat/envois"),
                         ("/abonnements/lien", "/abonnements/lien"), ("/abonnements", "/abonnements"),
                         ("/secretariat/", "/secretariat/membres"), ("/espace/suppression", "/espace/suppression"),
                         ("/espace", "/espace"), ("/connexion", "/connexion"), ("/inscription", "/inscription"),
                         (legal.CONTACT_PATH, legal.CONTACT_PATH)):
        if path.startswith(prefix):
            return page
    return "/"


def body_limit(path: str) -> int:
    return MAX_LONG_TEXT_BODY if LONG_TEXT_FORMS.fullmatch(path) else MAX_BODY


def _body_too_large(request: Request) -> bool:
    """What Content-Length announces is too much: answered before reading anything. A body sent without
    it (chunked) or longer than it said is counted as it arrives (`BodyLimit`)."""
    raw = request.headers.get("content-length") or "0"
    return not (raw.isascii() and raw.isdigit()) or len(raw) > 12 or int(raw) > body_limit(request.url.path)


async def csrf_guard(request: Request) -> None:
    """Every form POST carries the visitor's CSRF token."""
    if request.method in UNSAFE_METHODS and request.url.path != subscriptions.UNSUBSCRIBE_PATH:
        # (the one exception: mail providers post the RFC 8058 one-click unsubscribe, no cookie, no token)
        kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if kind and kind not in FORM_TYPES:  # JSON, text…: not a form of ours (and no token could be read)
            raise StarletteHTTPException(415)
        form = await request.form()
        if not visitor(request).check_csrf(form.get(CSRF_FIELD)):
            raise CsrfError()


def service_requests() -> set[str]:
    """The names of every request a service answers."""
    found, todo = set(), list(ServiceRequest.__subclasses__())
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return found


class FrontDoor:
    """What every request goes through (pure ASGI: Starlette's `BaseHTTPMiddleware` ran each request in a
    task group of its own, a fifth of the web front's CPU in the RSVP rush): a correlation id, the 413 and
    429 refusals, a French page for anything unhandled, the security headers, one log line."""

    def __init__(self, app: ASGIApp, settings: Settings, state: Web) -> None:
        self.app, self.settings, self.state = app, settings, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        header = request.headers.get("x-request-id")
        correlation_id = header if valid_request_id(header) else str(uuid.uuid4())
        started, path, status, answering = time.perf_counter(), request.url.path, 500, False
        static = path.startswith("/static/")  # static files neither read nor vary by the cookie

        async def with_headers(message: Message) -> None:
            nonlocal status, answering
            if message["type"] == "http.response.start":
                status, answering = message["status"], True
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if self.settings.https:  # browsers ignore it over plain HTTP; it must not pin a test host to HTTPS
                    headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
                headers["X-Request-ID"] = correlation_id
                if not static:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        with log_context(correlation_id=correlation_id):
            if not static:
                visitor(request).forget_if_older_than(self.settings.session_max_age)
            try:
                refusal = await self.refusal(request, path)
                await (refusal or self.app)(scope, receive, with_headers)
            except Exception:  # noqa: BLE001 - a French page, never a stack trace; the trace goes to the log
                log.exception("unhandled error", method=request.method, path=path)
                if not answering:  # (once the answer has begun, the client can only see it cut short)
                    try:
                        page = await error_page(request, 500, "Une erreur inattendue s'est produite. Elle a été "
                                                "enregistrée ; réessayez dans un instant.")
                    except Exception:  # noqa: BLE001
                        page = Response("Erreur inattendue. Réessayez dans un instant.", status_code=500,
                                        media_type="text/plain; charset=utf-8")
                    await page(scope, receive, with_headers)
            log.info("request", method=request.method, path=path, status=status,
                     ms=round((time.perf_counter() - started) * 1000, 1))

    async def refusal(self, request: Request, path: str) -> Response | None:
        """The answer given without running the application: a body announced too large, a rate limit hit."""
        if request.method in UNSAFE_METHODS and _body_too_large(request):
            return await error_page(request, 413, HTTP_MESSAGES[413])
        limiter = self.state.limiters.get(path) if request.method == "POST" else None
        if limiter is None or limiter.hit(client_address(request)):
            return None
        retry = limiter.retry_after(client_address(request))
        log.warning("rate limited", path=path)
        return await error_page(
            request, 429, "Vous avez fait trop de demandes en peu de temps. Patientez une minute, "
            f"puis réessayez (ce sera possible dans {retry} secondes au plus).", headers={"Retry-After": str(retry)},
            actions=[(back, "Revenir au formulaire"), ("/", "Retour à l'accueil")]
            if (back := form_page(path)) != "/" else None)


NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
"""FastAPI's own OpenTelemetry hooks, off: the forum exports no traces (its log lines carry the correlation
id), and asking at every request whether a provider was set up cost about 11 µs."""


def create_served_app() -> FastAPI:
    """The web front of `forum-ouvert serve web`: its process is its own (see `shared.gc_tuning`)."""
    return create_app(settle=True)


def create_app(settings: Settings | None = None, *, settle: bool = False) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings, "web")
    state = Web(settings=settings, env=make_environment(settings),
                limiters={p: SlidingWindowLimiter(settings.rate_limit_per_minute, 60.0) for p in RATE_LIMITED},
                session_checks=SessionChecks(settings.session_check_seconds))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Requests, and one subscription: the registry's notices that members changed. A notice missed
        # while the connection was down could leave a session check stale: they are all forgotten then.
        async def reconnected() -> None:
            state.session_checks.forget_all()

        broker = NatsBroker(settings.nats_url.split(","), name="forum-web",
                            inbox_prefix="_INBOX.web",  # its replies only: deploy/nats/auth.conf
                            reconnected_cb=reconnected)
        await broker.connect()
        await broker.connection.subscribe(MembersChanged.SUBJECT, cb=state.session_checks.heard)
        state.rpc = RpcClient(broker, settings.rpc_timeout)
        if settle:
            settle_after_start()
        log.info("web front started", nats=settings.nats_url, url=settings.public_url)
        try:
            yield
        finally:
            state.rpc = None
            await broker.stop()

    app = FastAPI(title="Forum ouvert", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  telemetry=NO_TELEMETRY,
                  description="Le forum ouvert du Partenariat pour un gouvernement ouvert, accueilli par le CESE.",
                  dependencies=[Depends(csrf_guard)])
    app.state.web = state

    # ------------------------------------------------------------ routes and static files
    for module in (public, auth, member, secretariat, sessions, sessions_admin, decisions, decisions_admin,
                   commitments_and_rules, votes, record, open_data, minutes_admin, minutes, dev):
        app.include_router(module.router)
    app.include_router(search.router)
    app.include_router(feeds.router)  # Atom/RSS feeds, and the public pages of announcements
    app.include_router(announcements.router)
    app.include_router(subscriptions.router)
    app.include_router(announcements_admin.router)
    app.include_router(public.health_router)
    app.include_router(ledger.router)  # the public record's JSON/text API (errors stay JSON)
    app.include_router(legal.router)  # mentions légales, personal data, accessibility, contact
    app.include_router(seo.router)  # robots.txt, sitemap.xml

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return RedirectResponse("/static/dsfr/favicon/favicon.ico", status_code=301)

    dsfr = dsfr_folder()
    if dsfr is not None:
        app.mount("/static/dsfr", StaticFiles(directory=dsfr), name="dsfr")
    else:
        log.warning("DSFR not found: run `npm ci` at the root of the repository; pages will be unstyled")
    app.mount("/static", StaticFiles(directory=static_folder(settings)), name="static")

    # ------------------------------------------------------------ errors: always a French page
    @app.exception_handler(RpcError)
    async def on_rpc_error(request: Request, exc: RpcError) -> Response:
        return await rpc_error_page(request, exc)

    @app.exception_handler(CsrfError)
    async def on_csrf(request: Request, exc: CsrfError) -> Response:
        return await error_page(request, 403, "Ce formulaire n'est plus valable (il a expiré ou a été ouvert dans "
                                "une autre session). Rechargez la page, puis envoyez-le à nouveau.",
                                title="Formulaire expiré, rechargez la page",
                                actions=[(back, "Recharger la page"), ("/", "Retour à l'accueil")]
                                if (back := form_page(request.url.path)) != "/" else None)

    @app.exception_handler(SignInRequired)
    async def on_sign_in_required(request: Request, exc: SignInRequired) -> Response:
        visitor(request).set_flash("info", "Connectez-vous pour accéder à cette page.")
        return RedirectResponse("/connexion", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = HTTP_MESSAGES.get(exc.status_code) or ERROR_TITLES.get(exc.status_code, "Erreur.")
        return await error_page(request, exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def on_bad_request(request: Request, exc: RequestValidationError) -> Response:
        return await error_page(request, 400, HTTP_MESSAGES[400])

    @app.exception_handler(ValidationError)
    async def on_unbuildable_request(request: Request, exc: ValidationError) -> Response:
        """A service request that what was sent could not even make is bad input (a route that let it
        through unchecked gets a warning); any other model that does not validate is our bug: a 500."""
        if exc.title not in service_requests():
            raise exc
        name, message = next(iter(field_errors(exc).items()))
        log.warning("service request refused before sending", request=exc.title, field=name)
        message = message[:1].lower() + message[1:].rstrip(".")
        return await error_page(request, 400, f"La requête est incorrecte : {message} (champ « {name} »).")

    # ------------------------------------------------------------ every request
    # Counts the body bytes received, wherever a handler reads them; its 413 goes through the handlers above.
    # Added first = innermost, next to the handlers that answer its 413.
    app.add_middleware(BodyLimit, limit_for=body_limit)
    # Inside the front door (which adds each answer's request id and headers), outside the handlers.
    app.add_middleware(PageCache, seconds=settings.page_cache_seconds)
    app.add_middleware(FrontDoor, settings=settings, state=state)

    # Outside the front door, so that its error pages can read and write the visitor's cookie too.
    app.add_middleware(SessionMiddleware, secret_key=secret_key(settings), session_cookie=COOKIE_NAME,
                       max_age=settings.session_max_age, same_site="lax", https_only=bool(settings.cookie_secure))
    return app
