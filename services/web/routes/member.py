"""The member space: status, profile, download of one's data, erasure of one's account."""
from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response
from starlette.requests import Request

from shared.contracts.common import ErrorCode
from shared.contracts.notifications import (
    MEMBER_NOTICE_LABELS, ExportNotifications, GetMemberPreferences, MemberNoticeKind, SetMemberPreferences,
)
from shared.contracts.registry import EraseMember, ExportData, MemberView, UpdateProfile
from shared.rpc import RpcError
from services.web.forms import ROOT, read_form, validate
from services.web.pages import render, require_member, rpc
from services.web.routes._common import sentence
from services.web.security import visitor

router = APIRouter(include_in_schema=False)
PROFILE_LIMITS = {"full_name": 120, "organisation": 160}


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
                        notices=await _notice_choices(request, member), notice_labels=MEMBER_NOTICE_LABELS, **ctx)


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
    """Right of access (RGPD art. 15): everything the registry and notifications hold about the member."""
    member = await require_member(request)
    client = rpc(request)
    registry, notifications = await asyncio.gather(client(ExportData(actor_id=member.member_id)),
                                                   client(ExportNotifications(actor_id=member.member_id)))
    body = {
        "exported_at": datetime.now(UTC).isoformat(),
        "about": "Données personnelles détenues par le forum ouvert du Partenariat pour un gouvernement ouvert (CESE).",
        "registry": registry.data,
        "notifications": notifications.model_dump(mode="json"),
    }
    return Response(json.dumps(body, ensure_ascii=False, indent=2), media_type="application/json",
                    headers={"Content-Disposition": 'attachment; filename="forum-ouvert-mes-donnees.json"'})


@router.get("/espace/suppression")
async def erase_confirm(request: Request) -> Response:
    await require_member(request)
    return await render(request, "erase_confirm.html")


@router.post("/espace/suppression")
async def erase(request: Request) -> Response:
    member = await require_member(request)
    await rpc(request)(EraseMember(actor_id=member.member_id))
    visitor(request).sign_out()
    request.state.member = None
    return await render(request, "erase_done.html")
