"""The secretariat's announcements and delivery log: write a notice in Markdown, preview it as the e-mail
will look, send a test to oneself, then send it to a topic's confirmed subscribers (after a confirm step
naming the topic); pause and resume a send and watch its progress (the page shows the current figures,
/static/js/annonce.js refreshes them from `/progression`); and the log of every message sent by the
forum, searched by address, topic, notice or state.

The notifications service checks the role again on every request and decides what may change (only a
draft can be edited or sent).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.requests import Request

from shared.contracts.common import ErrorCode, text_problem
from shared.contracts.notifications import (
    DELIVERY_STATE_LABELS, NOTICE_STATE_LABELS, TOPICS, AnnouncementAction, AnnouncementView, ControlAnnouncement,
    DeliveryState, GetAnnouncement, ListAnnouncements, NoticeState, SaveAnnouncement, SearchDeliveries,
    SendAnnouncementTest, topic_label,
)
from shared.contracts.registry import MemberView
from shared.rpc import RpcError
from services.web.forms import ONCE_FIELD, ROOT, idempotency_key, read_form, validate
from services.web.pages import (
    HTTP_STATUS, current_member, error_page, is_secretariat, render, require_secretariat, rpc, rpc_error_page,
)
from services.web.routes._common import fetch, field_of, not_found, sentence, service_errors, valid_id
from services.web.security import visitor

router = APIRouter(prefix="/secretariat", include_in_schema=False)

LIST_BACK = [("/secretariat/annonces", "Retour aux annonces")]
LABELS = {"title": "Objet", "body": "Texte de l'annonce", "topic": "Destinataires"}
LIMITS = {"title": 200, "body": 50_000, "topic": 60}
MESSAGES = {"title": "Écrivez l'objet du courriel (3 à 200 caractères).",
            "body": "Écrivez le texte de l'annonce : il ne peut pas être vide.",
            "topic": "Choisissez les abonnés à qui l'envoyer, dans la liste proposée."}
TALLY_KEYS = ("sent", "deferred", "failed", "suppressed", "cancelled", "queued", "held", "sending")
TALLY_LABELS = {"sent": "envoyés", "deferred": "différés", "failed": "en échec", "suppressed": "non envoyés",
                "cancelled": "annulés (désabonnés avant l'envoi)", "queued": "en attente",
                "held": "retenus par la pause", "sending": "en cours d'envoi"}
# The log's « type » column: what caused a message (the service's delivery kinds; others shown as they are).
KIND_LABELS = {
    "announcement": "Annonce", "announcement_test": "Annonce (essai)", "session": "Avis : séance",
    "decision": "Avis : décision", "minutes": "Avis : compte rendu",
    "subscription_confirm": "Confirmation d'abonnement", "subscription_known": "Abonnement déjà confirmé",
    "manage_link": "Lien de gestion d'abonnement", "verify_email": "Confirmation d'adresse",
    "sign_in": "Lien de connexion", "approved": "Inscription validée", "rejected": "Inscription refusée",
    "rsvp_confirmed": "Réponse à une séance", "rsvp_waitlisted": "Liste d'attente", "rsvp_promoted": "Place libérée",
    "session_changed": "Séance modifiée", "session_cancelled": "Séance annulée", "session_reminder": "Rappel de séance",
    "vote_opened": "Vote ouvert", "minutes_review": "Compte rendu à relire",
    "contact_secretariat": "Message du formulaire de contact", "contact_copy": "Copie d'un message de contact",
}
LOG_LABELS = {"adresse": "L'adresse contient", "sujet": "Abonnement", "annonce": "Identifiant de l'annonce ou de l'avis",
              "etat": "État"}
PAGE_SIZE = 50
MAX_PAGE = 10_000


def topic_choices() -> list[tuple[str, str]]:
    return [(t, topic_label(t)) for t in TOPICS]


async def unknown_announcement(request: Request) -> Response:
    return await not_found(request, "Cette annonce", "Annonce introuvable", LIST_BACK)


async def get_announcement(request: Request, actor: MemberView, announcement_id: str) -> AnnouncementView | Response:
    return await fetch(request, announcement_id,
                       lambda: GetAnnouncement(actor_id=actor.member_id, announcement_id=announcement_id),
                       unknown_announcement)


def progress(view: AnnouncementView) -> dict[str, Any]:
    """The figures of a send: by outcome so far, out of the messages planned."""
    tally = view.tally
    return {"state": view.state.value, "state_label": NOTICE_STATE_LABELS[view.state],
            "total": tally.total or view.recipients_planned or 0,
            "done": tally.sent + tally.failed + tally.suppressed + tally.cancelled,
            "finished": view.state == NoticeState.SENT,
            **{k: getattr(tally, k) for k in TALLY_KEYS}}


# ---------------------------------------------------------------- the list
@router.get("/annonces")
async def announcements(request: Request, page: int = 1) -> Response:
    actor = await require_secretariat(request)
    page = min(max(page, 1), MAX_PAGE)
    listed = await rpc(request)(ListAnnouncements(sent_only=False, actor_id=actor.member_id,
                                                  offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE))
    pages = max(1, -(-listed.total // PAGE_SIZE))
    return await render(request, "admin_announcements.html", items=listed.items, total=listed.total, page=page,
                        pages=pages, state_labels=NOTICE_STATE_LABELS, progress=progress)


# ---------------------------------------------------------------- write, preview, test
async def announcement_page(request: Request, *, view: AnnouncementView | None, values: dict[str, str],
                            errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    return await render(request, "admin_announcement.html", status_code=status_code, a=view, values=values,
                        errors=errors or {}, labels=LABELS, topics=topic_choices(),
                        state_labels=NOTICE_STATE_LABELS, tally_labels=TALLY_LABELS, tally_keys=TALLY_KEYS[:-1],
                        figures=progress(view) if view else None,
                        editable=view is None or view.state == NoticeState.DRAFT)


def view_values(view: AnnouncementView) -> dict[str, str]:
    return {"title": view.title, "body": view.body, "topic": view.topic}


async def _save(request: Request, actor: MemberView, view: AnnouncementView | None) -> Response:
    form = await read_form(request)
    values = {k: form.get(k, "").strip() for k in LABELS}
    data: dict[str, Any] = {"actor_id": actor.member_id, **{k: v for k, v in values.items() if v}}
    key = idempotency_key(form)
    values[ONCE_FIELD] = key or ""
    if view is not None:
        data["announcement_id"] = view.announcement_id
    req, errors = validate(SaveAnnouncement, data, limits=LIMITS, messages=MESSAGES)
    if req is None:
        mapped: dict[str, str] = {}
        for name, message in errors.items():
            target = field_of(name, LABELS)
            if target == ROOT:  # shared.validation drops a field named « body » (FastAPI's prefix) from the path
                target, message = "body", MESSAGES["body"] if not values["body"] else message
            mapped.setdefault(target, message)
        errors = mapped
        return await announcement_page(request, view=view, values=values, errors=errors, status_code=422)
    try:
        saved = await rpc(request)(req, idempotency_key=key)
    except RpcError as exc:
        if (refused := service_errors(exc, LABELS)) is None:
            return await rpc_error_page(request, exc, actions=LIST_BACK)
        return await announcement_page(request, view=view, values=values, errors=refused,
                                       status_code=HTTP_STATUS.get(exc.code, 422))
    visitor(request).set_flash("success", "Brouillon enregistré. Relisez l'aperçu, envoyez-vous un essai, puis "
                                          "envoyez l'annonce aux abonnés.")
    return RedirectResponse(f"/secretariat/annonces/{saved.announcement_id}#apercu", status_code=303)


@router.get("/annonces/nouvelle")
async def new_announcement(request: Request) -> Response:
    await require_secretariat(request)
    return await announcement_page(request, view=None, values={"topic": "announcements"})


@router.post("/annonces/nouvelle")
async def create_announcement(request: Request) -> Response:
    actor = await require_secretariat(request)
    return await _save(request, actor, None)


@router.get("/annonces/{announcement_id}")
async def announcement(request: Request, announcement_id: str) -> Response:
    actor = await require_secretariat(request)
    view = await get_announcement(request, actor, announcement_id)
    if isinstance(view, Response):
        return view
    return await announcement_page(request, view=view, values=view_values(view))


@router.post("/annonces/{announcement_id}")
async def edit_announcement(request: Request, announcement_id: str) -> Response:
    actor = await require_secretariat(request)
    view = await get_announcement(request, actor, announcement_id)
    if isinstance(view, Response):
        return view
    if view.state != NoticeState.DRAFT:
        return await _not_a_draft(request, view)
    return await _save(request, actor, view)


async def _not_a_draft(request: Request, view: AnnouncementView) -> Response:
    return await error_page(request, 409, "Cette annonce n'est plus un brouillon : son envoi a commencé, elle ne "
                            "peut plus être modifiée.", title="Action impossible",
                            actions=[(f"/secretariat/annonces/{view.announcement_id}", "Revenir à l'annonce"),
                                     *LIST_BACK])


async def _refused_action(request: Request, view: AnnouncementView, exc: RpcError) -> Response:
    if exc.code in (ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL):
        raise exc
    return await rpc_error_page(request, exc, title="Action impossible",
                                actions=[(f"/secretariat/annonces/{view.announcement_id}", "Revenir à l'annonce"),
                                         *LIST_BACK])


@router.post("/annonces/{announcement_id}/essai")
async def send_test(request: Request, announcement_id: str) -> Response:
    return await _act(request, announcement_id,
                      lambda actor: SendAnnouncementTest(actor_id=actor, announcement_id=announcement_id),
                      lambda updated, email: f"Un essai de l'annonce est envoyé à votre adresse, {email}, tel que "
                                             "les abonnés le recevront.")


# ---------------------------------------------------------------- send, pause, resume, progress
@router.get("/annonces/{announcement_id}/envoyer")
async def send_confirm(request: Request, announcement_id: str) -> Response:
    """The confirm step: which subscribers will get it, and that it cannot be undone."""
    actor = await require_secretariat(request)
    view = await get_announcement(request, actor, announcement_id)
    if isinstance(view, Response):
        return view
    if view.state != NoticeState.DRAFT:
        return RedirectResponse(f"/secretariat/annonces/{announcement_id}", status_code=303)
    return await render(request, "admin_announcement_send.html", a=view)


async def _act(request: Request, announcement_id: str, command: Callable[[str], Any],
               done: Callable[[AnnouncementView, str], str], anchor: str = "") -> Response:
    """A secretariat's command on one announcement, then back to its page with what happened."""
    actor = await require_secretariat(request)
    view = await get_announcement(request, actor, announcement_id)
    if isinstance(view, Response):
        return view
    key = idempotency_key(await read_form(request))
    try:
        updated = await rpc(request)(command(actor.member_id), idempotency_key=key)
    except RpcError as exc:
        return await _refused_action(request, view, exc)
    visitor(request).set_flash("success", done(updated, actor.email))
    return RedirectResponse(f"/secretariat/annonces/{announcement_id}{anchor}", status_code=303)


async def _control(request: Request, announcement_id: str, action: AnnouncementAction, done: str) -> Response:
    return await _act(request, announcement_id,
                      lambda actor: ControlAnnouncement(actor_id=actor, announcement_id=announcement_id, action=action),
                      lambda updated, _: done.format(topic=updated.topic_label.lower()), anchor="#progression")


@router.post("/annonces/{announcement_id}/envoyer")
async def send(request: Request, announcement_id: str) -> Response:
    return await _control(request, announcement_id, AnnouncementAction.SEND,
                          "L'envoi de l'annonce aux abonnés confirmés (« {topic} ») a commencé.")


@router.post("/annonces/{announcement_id}/pause")
async def pause(request: Request, announcement_id: str) -> Response:
    return await _control(request, announcement_id, AnnouncementAction.PAUSE,
                          "L'envoi est en pause : plus aucun courriel ne part jusqu'à sa reprise.")


@router.post("/annonces/{announcement_id}/reprendre")
async def resume(request: Request, announcement_id: str) -> Response:
    return await _control(request, announcement_id, AnnouncementAction.RESUME, "L'envoi a repris.")


@router.get("/annonces/{announcement_id}/progression")
async def progress_json(request: Request, announcement_id: str) -> Response:
    """The figures the page's script polls (JSON; a refusal is JSON too)."""
    member = await current_member(request)
    if not is_secretariat(member):
        return JSONResponse({"error": "Réservé au secrétariat : reconnectez-vous."}, status_code=403)
    if not valid_id(announcement_id):
        return JSONResponse({"error": "Annonce introuvable."}, status_code=404)
    assert member is not None
    try:
        view = await rpc(request)(GetAnnouncement(actor_id=member.member_id, announcement_id=announcement_id))
    except RpcError as exc:
        return JSONResponse({"error": exc.error.message}, status_code=HTTP_STATUS.get(exc.code, 500))
    return JSONResponse(progress(view))


# ---------------------------------------------------------------- the delivery log
def _log_filters(adresse: str, sujet: str, annonce: str, etat: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The query as SearchDeliveries fields, or errors next to the filters."""
    errors: dict[str, str] = {}
    query: dict[str, Any] = {}
    if adresse:
        if len(adresse) > 254:
            errors["adresse"] = "Ce champ ne doit pas dépasser 254 caractères."
        elif problem := text_problem(adresse, multiline=False):
            errors["adresse"] = sentence(problem)
        else:
            query["address"] = adresse
    if sujet:
        if sujet in TOPICS:
            query["topic"] = sujet
        else:
            errors["sujet"] = "Cet abonnement n'existe pas : choisissez dans la liste."
    if annonce:
        if valid_id(annonce):
            query["notice_id"] = annonce
        else:
            errors["annonce"] = "Identifiant invalide : lettres, chiffres et tirets, 36 caractères au plus."
    if etat:
        if etat in {s.value for s in DeliveryState}:
            query["state"] = etat
        else:
            errors["etat"] = "Cet état n'existe pas : choisissez dans la liste."
    return query, errors


@router.get("/envois")
async def deliveries(request: Request, adresse: str = "", sujet: str = "", annonce: str = "", etat: str = "",
                     page: int = 1) -> Response:
    actor = await require_secretariat(request)
    values = {"adresse": adresse.strip(), "sujet": sujet.strip(), "annonce": annonce.strip(), "etat": etat.strip()}
    page = min(max(page, 1), MAX_PAGE)
    query, errors = _log_filters(**values)
    log = None
    if not errors:
        try:
            log = await rpc(request)(SearchDeliveries(actor_id=actor.member_id, offset=(page - 1) * PAGE_SIZE,
                                                      limit=PAGE_SIZE, **query))
        except RpcError as exc:
            if (refused := service_errors(exc, {})) is None:
                raise
            errors = {ROOT: next(iter(refused.values()))}
    pages = max(1, -(-log.total // PAGE_SIZE)) if log else 1
    base = "/secretariat/envois?" + urlencode({k: v for k, v in values.items() if v} | {"page": ""})
    return await render(request, "admin_deliveries.html", status_code=422 if errors else 200, log=log,
                        values=values, errors=errors, labels=LOG_LABELS, topics=topic_choices(),
                        states=[(s.value, DELIVERY_STATE_LABELS[s]) for s in DeliveryState],
                        state_labels=DELIVERY_STATE_LABELS, topic_label=_label, page=page, pages=pages,
                        kind_labels=KIND_LABELS,
                        pagination_base=base)


def _label(topic: str | None) -> str:
    if not topic:
        return ""
    try:
        return topic_label(topic)
    except (KeyError, ValueError):
        return topic

