"""Being found by search engines: `/robots.txt` (the public site open, the member space, the back-office,
the sign-in and the forms' action addresses closed) and `/sitemap.xml` (sitemaps.org 0.9: every public
page, as absolute addresses from the configured public URL, with the date of its last change where the
forum knows it).

The sitemap asks each service for its items a whole page (500) at a time, the kinds at once: a few
requests for thousands of sessions, decisions, minutes and votes, never one per item.
"""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from starlette.requests import Request

from shared.contracts.decisions import DecisionView, ListDecisions, ListVotes
from shared.contracts.forum import ListSessions, SessionPeriod
from shared.contracts.minutes import ListMinutes
from shared.rpc import RpcClient
from services.web.pages import rpc, web
from services.web.routes.legal import CONTACT_PATH
from services.web.routes.open_data import paged
from services.web.routes.subscriptions import UNSUBSCRIBE_PATH

router = APIRouter(include_in_schema=False)

PAGE = 500  # the largest page the list operations give
Url = tuple[str, datetime | None]  # (path, last change)

# Pages that exist whatever the forum holds.
STATIC_PAGES = ("/", "/seances", "/seances/passees", "/decisions", "/comptes-rendus", "/votes", "/registre",
                "/charte", "/donnees", "/abonnements", "/annonces", "/inscription", "/mentions-legales",
                "/donnees-personnelles", "/accessibilite", CONTACT_PATH)
# Nothing a search engine should index: personal pages, the back-office, single-use links, and the
# addresses forms post to (their own page, when they have one, stays open: /inscription, /abonnements…).
DISALLOWED = ("/espace", "/secretariat", "/connexion", "/deconnexion", "/dev", "/sante", "/recherche",
              "/inscription/verifier", "/abonnements/confirmer", "/abonnements/gerer", "/abonnements/lien",
              UNSUBSCRIBE_PATH, f"{CONTACT_PATH}/envoye", "/seances/*/reponse", "/seances/*/retrait",
              "/votes/*/bulletin", "/comptes-rendus/*/relecture")


def base_url(request: Request) -> str:
    return web(request).settings.public_url.rstrip("/")


@router.get("/robots.txt")
async def robots(request: Request) -> Response:
    lines = ["User-agent: *", "Allow: /", *(f"Disallow: {path}" for path in DISALLOWED), "",
             f"Sitemap: {base_url(request)}/sitemap.xml", ""]
    return PlainTextResponse("\n".join(lines), headers={"Cache-Control": "public, max-age=3600"})


# ---------------------------------------------------------------- the sitemap
async def _sessions(client: RpcClient) -> list[Url]:
    return [(f"/seances/{s.session_id}", s.updated_at) async for s in paged(
        client, lambda o: ListSessions(when=SessionPeriod.ALL, limit=PAGE, offset=o), lambda r: (r.sessions, r.total),
        PAGE)]


def _decision_changed(d: DecisionView) -> datetime:
    return max([d.decision.recorded_at, *(f.updated_at for f in d.follow_ups)])


async def _decisions(client: RpcClient) -> list[Url]:
    return [(f"/decisions/{d.decision.decision_id}", _decision_changed(d)) async for d in paged(
        client, lambda o: ListDecisions(limit=PAGE, offset=o), lambda r: (r.decisions, r.total), PAGE)]


async def _minutes(client: RpcClient) -> list[Url]:
    # Published minutes only (the list gives no others without the secretariat's id).
    return [(f"/comptes-rendus/{m.minutes_id}", m.latest_published_at) async for m in paged(
        client, lambda o: ListMinutes(limit=PAGE, offset=o), lambda r: (r.minutes, r.total), PAGE)]


async def _votes(client: RpcClient) -> list[Url]:
    return [(f"/votes/{v.vote.vote_id}", v.closed_at or v.vote.opens_at) async for v in paged(
        client, lambda o: ListVotes(limit=PAGE, offset=o), lambda r: (r.votes, r.total), PAGE)]


def w3c_date(value: datetime) -> str:
    """« 2030-07-14T12:05:00+00:00 »: the W3C Datetime format the sitemap protocol asks for."""
    return value.astimezone(UTC).isoformat(timespec="seconds")


def sitemap_xml(base: str, urls: list[Url]) -> str:
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">']
    for path, changed in urls:
        lastmod = f"<lastmod>{w3c_date(changed)}</lastmod>" if changed else ""
        out.append(f"<url><loc>{escape(base + path)}</loc>{lastmod}</url>")
    out.append("</urlset>\n")
    return "\n".join(out)


@router.get("/sitemap.xml")
async def sitemap(request: Request) -> Response:
    client = rpc(request)
    kinds = await asyncio.gather(_sessions(client), _decisions(client), _minutes(client), _votes(client))
    urls: list[Url] = [(path, None) for path in STATIC_PAGES]
    for found in kinds:
        urls.extend(found)
    return Response(sitemap_xml(base_url(request), urls), media_type="application/xml; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=300"})
