"""The Atom and RSS feeds: `/flux/{topic}.atom|.rss` and, per working group,
`/flux/groupes/{theme}/{topic}.atom|.rss`, each with its RFC 5005 archive pages
`…/{topic}/archives/{n}.atom|.rss` (1 = oldest). Topics: `tout`, `seances`, `decisions`,
`comptes-rendus`, `annonces`. These addresses are a contract: other sites and feed readers link to them.

Answers carry an `ETag` (of the bytes) and a `Last-Modified` (the newest entry's `updated`), and a
conditional request (`If-None-Match`, else `If-Modified-Since`) that matches is answered 304, no body.
"""
from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, TypeVar

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.requests import Request

from shared.contracts.decisions import DecisionView, ListDecisions
from shared.contracts.forum import ListSessions, SessionPeriod, SessionView, Theme
from shared.contracts.minutes import ListMinutes, MinutesSummary
from shared.contracts.notifications import AnnouncementView, ListAnnouncements, theme_topic
from shared.logging import get_logger
from shared.rpc import RpcClient, RpcError
from services.web.feeds import (
    FORMATS, Entry, FeedSpec, Kind, announcement_entry, decision_entries, feed_spec, minutes_entry, paginate,
    render_feed, session_entry,
)
from services.web.forms import whole_number_or_none
from services.web.pages import error_page, rpc, web

log = get_logger(__name__)
router = APIRouter(include_in_schema=False)
T = TypeVar("T")

FETCH_PAGE = 500
FETCH_MAX = 20_000  # items of one kind a feed reads at most
CACHE_CONTROL = "public, max-age=300"
BACK = [("/abonnements", "Voir la liste des flux"), ("/", "Retour à l'accueil")]


# ---------------------------------------------------------------- reading the services
async def read_all(page: Callable[[int, int], Awaitable[tuple[Sequence[T], int]]]) -> list[T]:
    """Every item of a paged list (`page(offset, limit)` -> (items, total)), up to FETCH_MAX."""
    out: list[T] = []
    while len(out) < FETCH_MAX:
        items, total = await page(len(out), FETCH_PAGE)
        out.extend(items)
        if len(items) < FETCH_PAGE or len(out) >= total:
            break
    return out


async def all_sessions(client: RpcClient, theme: Theme | None) -> list[SessionView]:
    async def page(offset: int, limit: int) -> tuple[list[SessionView], int]:
        r = await client(ListSessions(when=SessionPeriod.ALL, theme=theme, include_cancelled=True, limit=limit,
                                      offset=offset))
        return r.sessions, r.total
    return await read_all(page)


async def all_decisions(client: RpcClient) -> list[DecisionView]:
    async def page(offset: int, limit: int) -> tuple[list[DecisionView], int]:
        r = await client(ListDecisions(include_superseded=True, limit=limit, offset=offset))
        return r.decisions, r.total
    return await read_all(page)


async def all_minutes(client: RpcClient, theme: Theme | None) -> list[MinutesSummary]:
    async def page(offset: int, limit: int) -> tuple[list[MinutesSummary], int]:
        r = await client(ListMinutes(theme=theme, limit=limit, offset=offset))
        return r.minutes, r.total
    return await read_all(page)


async def sent_announcements(client: RpcClient, theme: Theme | None = None) -> list[AnnouncementView]:
    """Sent announcements (of the theme's topic for a working group), newest first."""
    topic = theme_topic(theme) if theme else None

    async def page(offset: int, limit: int) -> tuple[list[AnnouncementView], int]:
        r = await client(ListAnnouncements(sent_only=True, topic=topic, limit=limit, offset=offset))
        return r.items, r.total
    return await read_all(page)


async def feed_entries(client: RpcClient, spec: FeedSpec, *, complete: bool) -> list[Entry]:
    """Every entry of the feed. A working group's decisions are those of its sessions.

    When the notifications service does not answer, a current feed that has other content is served
    without the announcements (logged); an archive page (`complete`), which must never change once
    read, or the announcements' own feed, fails instead."""
    kinds, theme = spec.topic.kinds, spec.theme
    reads: dict[str, Awaitable[Any]] = {}
    if Kind.SESSION in kinds or (Kind.DECISION in kinds and theme):
        reads["sessions"] = all_sessions(client, theme)
    if Kind.DECISION in kinds:
        reads["decisions"] = all_decisions(client)
    if Kind.MINUTES in kinds:
        reads["minutes"] = all_minutes(client, theme)
    if Kind.ANNOUNCEMENT in kinds:
        reads["announcements"] = sent_announcements(client, theme)
    found = dict(zip(reads, await asyncio.gather(*reads.values(), return_exceptions=True), strict=True))
    for name, result in found.items():
        if isinstance(result, BaseException):
            if name == "announcements" and isinstance(result, RpcError) and not complete and len(kinds) > 1:
                log.warning("feed without announcements", code=str(result.code), feed=spec.base_path)
                found[name] = []
            else:
                raise result
    entries: list[Entry] = []
    if Kind.SESSION in kinds:
        entries += [session_entry(s) for s in found["sessions"]]
    if Kind.DECISION in kinds:
        # Built from every decision, so that a correction is found even if recorded at another session.
        decisions = found["decisions"]
        ids = {s.session_id for s in found["sessions"]} if theme else None
        entries += [e for d, e in zip(decisions, decision_entries(decisions), strict=True)
                    if ids is None or d.decision.session_id in ids]
    if Kind.MINUTES in kinds:
        entries += [e for m in found["minutes"] if (e := minutes_entry(m))]
    if Kind.ANNOUNCEMENT in kinds:
        entries += [e for a in found["announcements"] if (e := announcement_entry(a))]
    return entries


# ---------------------------------------------------------------- conditional requests
def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def http_date(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC), usegmt=True)


def not_modified(request: Request, etag: str, last_modified: datetime) -> bool:
    """RFC 9110: If-None-Match (weak comparison) wins over If-Modified-Since."""
    if (tags := request.headers.get("if-none-match")) is not None:
        given = {t.strip().removeprefix("W/") for t in tags.split(",")}
        return "*" in given or etag in given
    if since := request.headers.get("if-modified-since"):
        try:
            when = parsedate_to_datetime(since)
        except (TypeError, ValueError, IndexError):
            return False
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return last_modified.replace(microsecond=0) <= when
    return False


# ---------------------------------------------------------------- the feeds
async def unknown_feed(request: Request) -> Response:
    return await error_page(request, 404, "Ce flux n'existe pas. Les flux disponibles sont listés sur la page "
                            "« S'abonner ».", title="Flux introuvable", actions=BACK)


def page_number(raw: str) -> int | None:
    return whole_number_or_none(raw, minimum=1, maximum=999_999)


async def serve(request: Request, topic: str, fmt: str, theme: str | None = None, page: str | None = None
                ) -> Response:
    spec = feed_spec(topic, theme)
    number = page_number(page) if page is not None else None
    if spec is None or fmt not in FORMATS or (page is not None and number is None):
        return await unknown_feed(request)
    entries = await feed_entries(rpc(request), spec, complete=number is not None)
    doc = paginate(entries, number)
    if doc is None:
        return await unknown_feed(request)
    body = render_feed(spec, doc, fmt, web(request).settings.public_url)
    etag = etag_of(body)
    headers = {"ETag": etag, "Last-Modified": http_date(doc.updated), "Cache-Control": CACHE_CONTROL}
    if not_modified(request, etag, doc.updated):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=FORMATS[fmt], headers=headers)


@router.api_route("/flux/{topic}.{fmt}", methods=["GET", "HEAD"])
async def current(request: Request, topic: str, fmt: str) -> Response:
    return await serve(request, topic, fmt)


@router.api_route("/flux/{topic}/archives/{page}.{fmt}", methods=["GET", "HEAD"])
async def archive(request: Request, topic: str, page: str, fmt: str) -> Response:
    return await serve(request, topic, fmt, page=page)


@router.api_route("/flux/groupes/{theme}/{topic}.{fmt}", methods=["GET", "HEAD"])
async def group_current(request: Request, theme: str, topic: str, fmt: str) -> Response:
    return await serve(request, topic, fmt, theme=theme)


@router.api_route("/flux/groupes/{theme}/{topic}/archives/{page}.{fmt}", methods=["GET", "HEAD"])
async def group_archive(request: Request, theme: str, topic: str, page: str, fmt: str) -> Response:
    return await serve(request, topic, fmt, theme=theme, page=page)
