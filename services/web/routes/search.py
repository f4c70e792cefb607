"""Search: `/recherche?q=…&type=…&page=…` across the published minutes, the decisions and the sessions,
in French (accents and case ignored, words found by their stem), with an excerpt of each result where
the searched words are marked, a filter by type with the count of each, and pages.

Whatever is typed gets a page with results or a French sentence saying why there are none: the
minutes service reads the query and answers with a message when there is nothing to search; this
page never shows an error for a query. Excerpts come as plain pieces of text; the template escapes
every piece and wraps the matching ones in <mark>, so a document's text can never become markup.
"""
from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.requests import Request

from forumlib.french_search import MAX_QUERY_CHARS
from shared.contracts.minutes import MAX_SEARCH_INPUT, SEARCH_KIND_LABELS, Search, SearchKind
from services.web.forms import whole_number_or_none
from services.web.pages import render, rpc

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 10
MAX_PAGE = 1000
TYPES = {"comptes-rendus": SearchKind.MINUTES, "decisions": SearchKind.DECISION, "seances": SearchKind.SESSION}
"""The `type` filter's values in the address, and what they select."""
HIT_LABELS = {SearchKind.MINUTES: "Compte rendu", SearchKind.DECISION: "Décision", SearchKind.SESSION: "Séance"}
DATE_LABELS = {SearchKind.MINUTES: "Séance du", SearchKind.DECISION: "Décision du", SearchKind.SESSION: "Séance du"}


def page_number(raw: str) -> int:
    """The `page` of the address; anything but a page number reads as the first page."""
    return min(whole_number_or_none(raw, minimum=1, maximum=99_999) or 1, MAX_PAGE)


def address(q: str, kind: str = "", page: int | None = None) -> str:
    params = {"q": q, **({"type": kind} if kind else {}), **({"page": page} if page else {})}
    return "/recherche?" + urlencode(params)


@router.get("/recherche")
async def search_page(request: Request) -> Response:
    # Read by hand: a malformed or repeated parameter must not turn into an error page.
    params = request.query_params
    asked = "q" in params
    q = params.get("q", "")[:MAX_SEARCH_INPUT]
    kind = params.get("type", "")
    kind = kind if kind in TYPES else ""
    page = page_number(params.get("page", "1"))
    results = None
    if q.strip():
        results = await rpc(request)(Search(q=q, kinds=[TYPES[kind]] if kind else None, page=page,
                                            page_size=PAGE_SIZE))
    pages = max(1, -(-results.total // PAGE_SIZE)) if results else 1
    filters = []
    if results and results.total + sum(results.counts.values()) > 0:
        every = sum(results.counts.values())
        filters = [("", "Tout", every)] + [(slug, SEARCH_KIND_LABELS[k], results.counts[k])
                                           for slug, k in TYPES.items()]
    return await render(
        request, "search.html", q=q.strip(), asked=asked, kind=kind, kind_label=SEARCH_KIND_LABELS[TYPES[kind]]
        if kind else None, page=page, pages=min(pages, MAX_PAGE), results=results, filters=filters,
        first=(page - 1) * PAGE_SIZE + 1, address=address, hit_labels=HIT_LABELS, date_labels=DATE_LABELS,
        max_chars=MAX_QUERY_CHARS, pagination_base=address(q.strip(), kind) + "&page=")
