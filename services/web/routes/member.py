"""The member space: status, profile, download of one's data, erasure of one's account."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response
from starlette.requests import Request

from shared.contracts.common import ActorRequest, ErrorCode
from shared.contracts.forum import ExportForumData
from shared.contracts.minutes import ExportMinutesData
from shared.contracts.notifications import (
    MEMBER_NOTICE_LABELS, ExportNotificationsData, GetMemberPreferences, MemberNoticeKind, SetMemberPreferences,
)
from shared.contracts.registry import EndAllSessions, EraseMember, ExportData, MemberView, UpdateProfile
from shared.logging import get_logger
from shared.rpc import RpcError
from services.web.forms import ROOT, read_form, validate
from services.web.pages import error_page, render, require_member, rpc, signed_out
from services.web.routes._common import sentence
from services.web.security import visitor

router = APIRouter(include_in_schema=False)
log = get_logger(__name__)
PROFILE_LIMITS = {"full_name": 120, "organisation": 160}


@dataclass(frozen=True)
class ExportPart:
    """One service's part of a member's copy of their data: its key in the file, the request that asks
    for it, who answers (in an error message), and its title and contents (in the file and on « Mon
    espace »)."""

    key: str
    request: type[ActorRequest[Any]]
    service: str
    title: str
    contents: str


EXPORT_PARTS = (
    ExportPart("registry", ExportData, "le registre des membres", "Votre compte",
               "Votre compte : nom, adresse électronique, organisation, collège, statut et dates de votre "
               "inscription ; les liens de confirmation et de connexion qui vous ont été envoyés (leurs dates) ; "
               "les navigateurs connectés à votre compte ; pour le secrétariat, les inscriptions validées ou "
               "refusées (décision et date)."),
    ExportPart("forum", ExportForumData, "le service des séances et des décisions", "Séances, présences et votes",
               "Vos réponses aux séances (place confirmée, rang en liste d'attente, refus, retrait), vos "
               "présences, et les votes auxquels vous avez participé avec la date — jamais vos mentions : le vote "
               "est secret ; pour le secrétariat, les séances programmées, les présences pointées, les décisions, "
               "leurs suivis, les votes ouverts et les règles modifiées."),
    ExportPart("minutes", ExportMinutesData, "le service des comptes rendus", "Comptes rendus",
               "Vos commentaires et propositions de rédaction sur les comptes rendus en relecture, avec la réponse "
               "reçue, et les présences et l'organisation que ce service connaît de vous ; pour le secrétariat, "
               "les comptes rendus rédigés et publiés et les réponses aux commentaires."),
    ExportPart("notifications", ExportNotificationsData, "le service des courriels", "Courriels",
               "Votre adresse et vos choix de courriels, les séances dont vous recevez le rappel, les abonnements "
               "publics de votre adresse et leurs thèmes, et le journal des courriels envoyés à vous ou à votre "
               "adresse (objet, dates, résultat ; pas leur texte, qui peut contenir des liens à usage unique) ; "
               "pour le secrétariat, les annonces rédigées."),
)
EXPORT_LEFT_OUT = ("Ne figurent pas dans ce fichier : vos mentions dans les votes (les bulletins sont secrets, et "
                   "supprimés à la clôture du vote), ni le registre public, qui ne vous désigne que par votre "
                   "identifiant public (« public_id », dans la partie « registry ») et votre collège.")


def _profile_values(member: MemberView) -> dict[str, str]:
    return {"full_name": member.full_name, "organisation": member.organisation}


async def _notice_choices(request: Request, member: MemberView) -> dict[str, bool] | None:
    """Which e-mails the member receives, by kind; None when the notifications service does not answer
    (the rest of the page is still shown)."""
    try:
        prefs = await rpc(request)(GetMemberPreferences(actor_id=member.member_id))
    except RpcError:
        return None
    return {k.value: prefs.enabled.get(k, True) for k in MemberNoticeKind}


async def space_page(request: Request, member: MemberView, *, status_code: int = 200, **ctx: object) -> Response:
    ctx.setdefault("values", _profile_values(member))
    return await render(request, "member_space.html", status_code=status_code,
                        notices=await _notice_choices(request, member), notice_labels=MEMBER_NOTICE_LABELS,
                        export_parts=EXPORT_PARTS, export_left_out=EXPORT_LEFT_OUT, **ctx)


@router.get("/espace")
async def member_space(request: Request) -> Response:
    member = await require_member(request)
    return await space_page(request, member)


@router.post("/espace/courriels")
async def notice_preferences(request: Request) -> Response:
    """« Courriels que je reçois »: one checkbox per kind of notice a member may stop."""
    member = await require_member(request)
    form = await request.form()
    checked = {v for v in form.getlist("notices") if isinstance(v, str)}
    if not checked <= {k.value for k in MemberNoticeKind}:
        return await space_page(request, member, status_code=400,
                                notice_error="Ce type de courriel n'existe pas : cochez parmi ceux proposés.")
    try:
        await rpc(request)(SetMemberPreferences(actor_id=member.member_id,
                                                enabled={k: k.value in checked for k in MemberNoticeKind}))
    except RpcError as exc:
        if exc.code != ErrorCode.INVALID:
            raise
        return await space_page(request, member, status_code=422, notice_error=sentence(exc.error.message))
    visitor(request).set_flash("success", "Vos choix de courriels sont enregistrés.")
    return RedirectResponse("/espace#courriels", status_code=303)


@router.post("/espace/profil")
async def update_profile(request: Request) -> Response:
    member = await require_member(request)
    form = await read_form(request)
    values = {k: form.get(k, "").strip() for k in ("full_name", "organisation")}
    data = {"actor_id": member.member_id, **{k: v for k, v in values.items() if v or k == "organisation"}}
    req, errors = validate(UpdateProfile, data, limits=PROFILE_LIMITS)
    if req is not None:
        try:
            updated = await rpc(request)(req)
        except RpcError as exc:
            if exc.code != ErrorCode.INVALID:
                raise
            errors = {exc.field or ROOT: exc.error.message}
        else:
            request.state.member = updated
            visitor(request).set_flash("success", "Votre profil a été mis à jour.")
            return RedirectResponse("/espace", status_code=303)
    return await space_page(request, member, status_code=422, errors=errors, values=values)


@router.get("/espace/donnees")
async def download_data(request: Request) -> Response:
    """Right of access (RGPD art. 15): one JSON file with everything each service holds about the member,
    each answering for its own tables. If one does not answer there is no file at all: a copy with a part
    missing would read as complete."""
    member = await require_member(request)
    client = rpc(request)
    replies = await asyncio.gather(*(client(part.request(actor_id=member.member_id)) for part in EXPORT_PARTS),
                                   return_exceptions=True)
    for part, reply in zip(EXPORT_PARTS, replies, strict=True):
        if isinstance(reply, RpcError):
            log.warning("data export failed", part=part.key, code=reply.code, message=reply.error.message)
            silent = reply.code == ErrorCode.UNAVAILABLE
            return await error_page(
                request, 503 if silent else 500,
                f"Vos données n'ont pas pu être rassemblées : {part.service} "
                f"{'ne répond pas' if silent else 'a rencontré une erreur'}. Aucun fichier n'a été produit, car il "
                "aurait été incomplet. Réessayez dans quelques minutes.",
                title="Téléchargement de vos données impossible pour l'instant",
                actions=[("/espace#donnees", "Retour à mon espace")], headers={"Retry-After": "60"} if silent else None)
        if isinstance(reply, BaseException):
            raise reply
    now = datetime.now(UTC)
    body = {
        "exported_at": now.isoformat(),
        "about": "Données personnelles détenues par le forum ouvert du Partenariat pour un gouvernement ouvert (CESE).",
        "contents": {part.key: part.contents for part in EXPORT_PARTS} | {"left_out": EXPORT_LEFT_OUT},
        **{part.key: reply.data for part, reply in zip(EXPORT_PARTS, replies, strict=True)},
    }
    filename = f"forum-ouvert-mes-donnees-{now:%Y-%m-%d}.json"
    return Response(json.dumps(body, ensure_ascii=False, indent=2), media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


@router.post("/espace/deconnexion-partout")
async def sign_out_everywhere(request: Request) -> Response:
    """« Se déconnecter partout »: every session of the member ends, this browser's and all others'."""
    member = await require_member(request)
    await rpc(request)(EndAllSessions(actor_id=member.member_id))
    signed_out(request)
    visitor(request).set_flash(
        "info", "Vous êtes déconnecté·e de tous les navigateurs et appareils où vous étiez connecté·e.")
    return RedirectResponse("/", status_code=303)


@router.get("/espace/suppression")
async def erase_confirm(request: Request) -> Response:
    await require_member(request)
    return await render(request, "erase_confirm.html")


@router.post("/espace/suppression")
async def erase(request: Request) -> Response:
    member = await require_member(request)
    await rpc(request)(EraseMember(actor_id=member.member_id))
    signed_out(request)
    return await render(request, "erase_done.html")
