"""The secretariat's announcements as the public reads them: `/annonces` (sent announcements, newest
first) and `/annonces/{id}` (title, date, topic, text). A draft is never shown: it does not exist for
the public (« introuvable »), like an unknown id."""
from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import Response
from starlette.requests import Request

from forumlib.markdown import render_markdown
from shared.contracts.common import ErrorCode
from shared.contracts.notifications import AnnouncementView, GetPublicAnnouncement, ListAnnouncements
from shared.rpc import RpcClient, RpcError
from services.web.pages import render, rpc
from services.web.routes._common import not_found, valid_id

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
BACK = [("/annonces", "Voir les annonces"), ("/", "Retour à l'accueil")]


async def unknown_announcement(request: Request) -> Response:
    return await not_found(request, "Cette annonce", "Annonce introuvable", BACK)


async def find_sent(client: RpcClient, announcement_id: str) -> AnnouncementView | None:
    """A sent announcement by id, or None (unknown, or still a draft)."""
    try:
        return await client(GetPublicAnnouncement(announcement_id=announcement_id))
    except RpcError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            return None
        raise


@router.get("/annonces")
async def announcements(request: Request, page: int = Query(1, ge=1, le=10_000)) -> Response:
    listed = await rpc(request)(ListAnnouncements(sent_only=True, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE))
    pages = max(1, -(-listed.total // PAGE_SIZE))
    return await render(request, "announcements.html", announcements=[a for a in listed.items if a.sent_at],
                        total=listed.total, page=page, pages=pages)


@router.get("/annonces/{announcement_id}")
async def announcement(request: Request, announcement_id: str) -> Response:
    if not valid_id(announcement_id):
        return await unknown_announcement(request)
    found = await find_sent(rpc(request), announcement_id)
    if found is None:
        return await unknown_announcement(request)
    return await render(request, "announcement.html", a=found, body_html=render_markdown(found.body, heading_shift=1))
