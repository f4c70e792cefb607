"""Public subscriptions by e-mail, no account needed: `/abonnements` (the form, beside the list of feeds),
the confirmation link (double opt-in), the manage page, the unsubscribe link and « send me a link to
manage my subscription ».

A link's GET only shows a button: the token is used by a POST, so the scanners that open links in
advance confirm and unsubscribe no one. The one exception to the CSRF check is the unsubscribe POST:
mail providers post it for their users (RFC 8058 one-click, no cookie, no form token). The answer to
« subscribe » and to « send me a link » is the same whether the address is known or not.
"""
from __future__ import annotations

from typing import Any

from email_validator import EmailNotValidError, validate_email
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.requests import Request

from shared.contracts.common import ErrorCode
from shared.contracts.notifications import (
    THEME_TOPIC_PREFIX, TOPICS, ConfirmSubscription, GetSubscription, RequestManageLink, Subscribe,
    SubscriptionStatus, SubscriptionView, Unsubscribe, UpdateSubscription, topic_label,
)
from shared.rpc import RpcError
from services.web.feeds import FeedGroup, feed_catalogue
from services.web.forms import ROOT, edge_checks
from services.web.pages import HTTP_STATUS, error_page, render, rpc, rpc_error_page, web
from services.web.routes._common import sentence
from services.web.security import client_address

router = APIRouter(include_in_schema=False)

UNSUBSCRIBE_PATH = "/abonnements/desabonner"  # exempt from the CSRF check (services/web/app.py)
ONE_CLICK = [("List-Unsubscribe", "One-Click")]  # the RFC 8058 body, once parsed
LABELS = {"email": "Adresse électronique", "topics": "Sujets suivis"}
LIMITS = {"email": 254}
BAD_EMAIL = "Adresse électronique invalide : vérifiez-la (format attendu : nom@domaine.fr)."
NO_TOPIC = "Cochez au moins un sujet à suivre."
UNKNOWN_TOPIC = "Ce sujet n'existe pas : choisissez parmi les sujets proposés."
START_AGAIN = [("/abonnements", "S'abonner à nouveau"), ("/", "Retour à l'accueil")]
NEW_MANAGE_LINK = [("/abonnements/lien", "Recevoir un nouveau lien"), ("/abonnements", "S'abonner")]

# What a link's page says when its token cannot be used: (link kind, error code) -> (status, title, text).
_LINK_WORDS = {"confirm": "Ce lien de confirmation", "manage": "Ce lien de gestion de l'abonnement",
               "unsubscribe": "Ce lien de désabonnement"}
_LINK_TITLES = {"confirm": "Lien de confirmation", "manage": "Lien de gestion", "unsubscribe": "Lien de désabonnement"}


def topic_groups() -> list[tuple[str, list[tuple[str, str]]]]:
    """The topics as the form shows them: what the forum publishes, then the working groups."""
    kinds = [(t, topic_label(t)) for t in TOPICS if not t.startswith(THEME_TOPIC_PREFIX)]
    themes = [(t, topic_label(t).removeprefix("Groupe de travail : ")) for t in TOPICS
              if t.startswith(THEME_TOPIC_PREFIX)]
    return [("Ce que publie le forum", kinds), ("Groupes de travail", themes)]


def topic_id(topic: str) -> str:
    """A checkbox's id: `topics-theme-health`."""
    return "topics-" + topic.replace(":", "-").replace("_", "-")


def feeds(request: Request) -> list[FeedGroup]:
    return feed_catalogue(web(request).settings.public_url)


async def _form(request: Request) -> tuple[dict[str, str], list[str]]:
    """The posted text fields, and the checked topics (several values of one name)."""
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    topics = [t.strip() for t in form.getlist("topics") if isinstance(t, str)]
    return values, topics


def check_email(email: str) -> str | None:
    """The syntax only (no DNS lookup): a French message, or None."""
    if not email:
        return "Indiquez votre adresse électronique."
    if (edge := edge_checks({"email": email}, LIMITS)):
        return edge["email"]
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return BAD_EMAIL
    return None


def check_topics(topics: list[str], *, required: bool = True) -> str | None:
    if len(topics) > len(TOPICS) or any(t not in TOPICS for t in topics):
        return UNKNOWN_TOPIC
    if required and not topics:
        return NO_TOPIC
    return None


def refusal(exc: RpcError) -> dict[str, str] | None:
    """A service's refusal of the form, next to its field; None for failures the error page tells."""
    if exc.code in (ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL):
        return None
    name = (exc.field or "").split(".", 1)[0]
    return {name if name in LABELS else ROOT: sentence(exc.error.message)}


# ---------------------------------------------------------------- the form
async def subscribe_page(request: Request, *, values: dict[str, str] | None = None, topics: list[str] | None = None,
                         errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    return await render(request, "subscriptions.html", status_code=status_code, values=values or {},
                        checked=set(topics or []), errors=errors or {}, labels=LABELS, groups=topic_groups(),
                        topic_id=topic_id, feeds=feeds(request))


@router.get("/abonnements")
async def subscribe_form(request: Request, sujet: str = "") -> Response:
    """`?sujet=minutes` pre-checks a topic (the links « s'abonner » of the other pages)."""
    return await subscribe_page(request, topics=[sujet] if sujet in TOPICS else [])


@router.post("/abonnements")
async def subscribe(request: Request) -> Response:
    values, topics = await _form(request)
    email = values.get("email", "").strip()
    errors = {k: v for k, v in (("email", check_email(email)), ("topics", check_topics(topics))) if v}
    kept = [t for t in topics if t in TOPICS]
    if errors:
        return await subscribe_page(request, values={"email": email}, topics=kept, errors=errors,
                                    status_code=400 if "topics" in errors and topics else 422)
    try:
        accepted = await rpc(request)(Subscribe(email=email, topics=topics, client=client_address(request)[:100]))
    except ValidationError:  # the contract's own limits, already checked above
        return await subscribe_page(request, values={"email": email}, topics=kept, status_code=422,
                                    errors={"email": BAD_EMAIL})
    except RpcError as exc:
        if (refused := refusal(exc)) is None:
            raise
        return await subscribe_page(request, values={"email": email}, topics=kept, errors=refused,
                                    status_code=HTTP_STATUS.get(exc.code, 422))
    return await render(request, "subscriptions_sent.html", message=accepted.message)


# ---------------------------------------------------------------- links: confirm, manage, unsubscribe
async def bad_link(request: Request, kind: str, exc: RpcError | None = None) -> Response:
    """A link that cannot be used, said plainly, with a way to start again. The service's own words are
    kept where they say more than ours (a link replaced by a newer one, an address forgotten since)."""
    what, name = _LINK_WORDS[kind], _LINK_TITLES[kind]
    actions = START_AGAIN if kind == "confirm" else NEW_MANAGE_LINK
    code = exc.code if exc else None
    if code == ErrorCode.EXPIRED:
        again = ("Abonnez-vous à nouveau : un nouveau lien vous sera envoyé." if kind == "confirm"
                 else "Demandez un nouveau lien : il vous sera envoyé par courriel.")
        return await error_page(request, 410, f"{what} a expiré. {again}", title=f"{name} expiré", actions=actions)
    if exc is not None and code in (ErrorCode.CONFLICT, ErrorCode.NOT_FOUND):
        title = (("Lien de confirmation remplacé ou périmé" if kind == "confirm" else "Action impossible")
                 if code == ErrorCode.CONFLICT else f"{name} non valable")
        return await error_page(request, HTTP_STATUS[code], sentence(exc.error.message), title=title,
                                actions=actions)
    return await error_page(request, 400, f"{what} n'est pas valable. Vérifiez qu'il a été copié en entier depuis "
                            "le courriel reçu, ou recommencez.", title=f"{name} non valable", actions=actions)


def _token(raw: str) -> str | None:
    """A token as it may be sent to the service (its length and characters are checked there)."""
    try:
        return GetSubscription(token=raw).token
    except ValidationError:
        return None


async def _ask(request: Request, kind: str, req: Any) -> SubscriptionView | Response:
    """The service's view after a link's request, or the clear page of a link that cannot be used."""
    try:
        return await rpc(request)(req)
    except RpcError as exc:
        if exc.code in (ErrorCode.EXPIRED, ErrorCode.INVALID, ErrorCode.NOT_FOUND, ErrorCode.CONFLICT):
            return await bad_link(request, kind, exc)
        return await rpc_error_page(request, exc)


def labelled(topics: list[str]) -> list[str]:
    return [topic_label(t) for t in TOPICS if t in topics]


@router.get("/abonnements/confirmer")
async def confirm_page(request: Request, token: str = "") -> Response:
    """Only a button: opening the link confirms nothing."""
    if (checked := _token(token)) is None:
        return await bad_link(request, "confirm")
    return await render(request, "subscriptions_confirm.html", token=checked)


@router.post("/abonnements/confirmer")
async def confirm(request: Request, token: str = "") -> Response:
    values, _ = await _form(request)
    if (checked := _token(values.get("token") or token)) is None:
        return await bad_link(request, "confirm")
    view = await _ask(request, "confirm", ConfirmSubscription(token=checked))
    if isinstance(view, Response):
        return view
    return await render(request, "subscriptions_confirmed.html", sub=view, topics=labelled(view.topics))


async def manage_page(request: Request, view: SubscriptionView, *, errors: dict[str, str] | None = None,
                      checked: list[str] | None = None, status_code: int = 200, saved: bool = False) -> Response:
    return await render(request, "subscriptions_manage.html", status_code=status_code, sub=view,
                        checked=set(view.topics if checked is None else checked), errors=errors or {},
                        labels=LABELS, groups=topic_groups(), topic_id=topic_id, saved=saved,
                        topics=labelled(view.topics), active=view.status == SubscriptionStatus.CONFIRMED)


@router.get("/abonnements/gerer")
async def manage(request: Request, token: str = "") -> Response:
    if (checked := _token(token)) is None:
        return await bad_link(request, "manage")
    view = await _ask(request, "manage", GetSubscription(token=checked))
    if isinstance(view, Response):
        return view
    return await manage_page(request, view)


@router.post("/abonnements/gerer")
async def manage_save(request: Request) -> Response:
    values, topics = await _form(request)
    if (checked := _token(values.get("token", ""))) is None:
        return await bad_link(request, "manage")
    if (error := check_topics(topics, required=False)) is not None:
        view = await _ask(request, "manage", GetSubscription(token=checked))
        if isinstance(view, Response):
            return view
        return await manage_page(request, view, errors={"topics": error}, status_code=400,
                                 checked=[t for t in topics if t in TOPICS])
    view = await _ask(request, "manage", UpdateSubscription(token=checked, topics=topics))
    if isinstance(view, Response):
        return view
    if view.status == SubscriptionStatus.UNSUBSCRIBED:
        return await render(request, "subscriptions_unsubscribed.html", sub=view)
    return await manage_page(request, view, saved=True)


@router.get(UNSUBSCRIBE_PATH)
async def unsubscribe_page(request: Request, token: str = "") -> Response:
    """Who and what, and a confirm button: opening the link unsubscribes no one."""
    if (checked := _token(token)) is None:
        return await bad_link(request, "unsubscribe")
    view = await _ask(request, "unsubscribe", GetSubscription(token=checked))
    if isinstance(view, Response):
        return view
    return await render(request, "subscriptions_unsubscribe.html", sub=view, token=checked,
                        topics=labelled(view.topics), active=view.status != SubscriptionStatus.UNSUBSCRIBED)


@router.post(UNSUBSCRIBE_PATH)
async def unsubscribe(request: Request, token: str = "") -> Response:
    """The RFC 8058 one-click POST of a mail provider (body `List-Unsubscribe=One-Click`, no cookie, no
    form token), or the button of the page above: both stop every notice at once."""
    form = await request.form()
    one_click = form.multi_items() == ONE_CLICK
    posted = form.get("token")
    if (checked := _token(token or (posted if isinstance(posted, str) else ""))) is None:
        return await bad_link(request, "unsubscribe")
    view = await _ask(request, "unsubscribe", Unsubscribe(token=checked, one_click=one_click))
    if isinstance(view, Response):
        return view
    return await render(request, "subscriptions_unsubscribed.html", sub=view)


# ---------------------------------------------------------------- « send me a link to manage it »
@router.get("/abonnements/lien")
async def manage_link_form(request: Request) -> Response:
    return await render(request, "subscriptions_link.html", labels=LABELS)


@router.post("/abonnements/lien")
async def manage_link(request: Request) -> Response:
    values, _ = await _form(request)
    email = values.get("email", "").strip()
    if (error := check_email(email)) is not None:
        return await render(request, "subscriptions_link.html", status_code=422, labels=LABELS,
                            values={"email": email}, errors={"email": error})
    try:
        accepted = await rpc(request)(RequestManageLink(email=email, client=client_address(request)[:100]))
    except RpcError as exc:
        if (refused := refusal(exc)) is None:
            raise
        return await render(request, "subscriptions_link.html", status_code=HTTP_STATUS.get(exc.code, 422),
                            labels=LABELS, values={"email": email}, errors=refused)
    return await render(request, "subscriptions_sent.html", message=accepted.message, manage_link=True)
