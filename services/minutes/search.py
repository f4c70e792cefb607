"""Search across the published minutes, the decisions and the sessions, in French.

The index (`minutes_search`, created by migration 0004) holds one row per searchable document: its
title, its text as people read it, its page and date. It is written in the transaction that changes
the document: a minutes version published or corrected (the latest version's text replaces the
earlier one), a decision recorded, a session scheduled or changed (a cancelled session leaves the
index). Drafts never enter it.

PostgreSQL: a `tsvector` column (title weight A, text weight B) over the `forum_fr` configuration
(french with unaccent), a GIN index, `to_tsquery` and `ts_rank`. SQLite: an FTS5 table,
`minutes_search_fts`, whose rowid is the row's id, holding the stems computed in Python, ranked by
bm25. Words, stems and queries are read by `forumlib.french_search` for both, so that the same
search finds the same documents on either. Excerpts are cut and marked here from the stored text, as
plain pieces: the web front escapes them.

Cost: counting the matches reads the index only (PostgreSQL: except for phrases, which read every
candidate's positions); ranking reads every match's terms, so beyond `RANKED_AT_MOST` matches the page
lists the newest first. See `bench/search.py` for the figures.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger, Column, Integer, MetaData, String, Table, Text, TextClause, bindparam, delete, insert, select, text,
    update,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.sqltypes import UTCDateTime

from forumlib import french_search
from forumlib.french_search import Query, index_terms, index_words, plain_text, read_query
from services.minutes.models import MinutesRow, SessionFact
from services.minutes.prefill import decision_page, session_page
from shared.contracts.decisions import DecisionInfo
from shared.contracts.forum import KIND_LABELS, THEME_LABELS, SessionInfo, SessionStatus
from shared.contracts.minutes import ExcerptSegment, Search, SearchHit, SearchKind, SearchResults
from shared.service import HandlerContext

# The plain columns, for typed reads and writes (the table is created by its migration: its search
# column differs between the databases, so it is not one of the service's models).
INDEX = Table(
    "minutes_search", MetaData(),
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("kind", String(20), nullable=False),
    Column("doc_id", String(36), nullable=False),
    Column("session_id", String(36), nullable=True),
    Column("happened_at", UTCDateTime, nullable=False),
    Column("url", String(300), nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),  # last (see the migration)
    Column("terms", TSVECTOR, nullable=True),  # PostgreSQL only
)
TITLE_WEIGHT, BODY_WEIGHT = 10.0, 3.0  # bm25 column weights (SQLite); PostgreSQL: A = 1.0, B = 0.4
RANKED_AT_MOST = 1000
"""Beyond this many matches the page lists the newest first: ranking reads every match's terms (the
cost grows with the matches), and a word found in thousands of minutes ranks them by noise anyway."""


def minutes_page(minutes_id: str) -> str:
    return f"/comptes-rendus/{minutes_id}"


# ---------------------------------------------------------------- documents
@dataclass(frozen=True)
class SearchDocument:
    kind: SearchKind
    doc_id: str
    title: str
    body: str  # plain text
    url: str
    happened_at: datetime
    session_id: str | None = None


def _sentences(*parts: str) -> str:
    """Lines of a document's text, each ending as a sentence (an excerpt runs them together)."""
    lines = (" ".join(p.split()) for p in parts)
    return "\n".join(x if x.endswith((".", "!", "?", "…", "»", ":", ";")) else f"{x}." for x in lines if x)


def session_document(s: SessionInfo) -> SearchDocument:
    labels = " — ".join(x for x in (KIND_LABELS[s.kind], THEME_LABELS[s.theme] if s.theme else "", s.place) if x)
    body = _sentences(s.description, "Ordre du jour : " + " ; ".join(s.agenda) if s.agenda else "", labels)
    return SearchDocument(SearchKind.SESSION, s.session_id, s.title, body, session_page(s.session_id), s.starts_at,
                          s.session_id)


def decision_document(d: DecisionInfo) -> SearchDocument:
    body = _sentences(plain_text(d.text), f"Point {d.agenda_position} de l'ordre du jour : {d.agenda_text}",
                      f"Engagement {d.commitment.code} : {d.commitment.title}" if d.commitment else "",
                      f"Séance : {d.session_title}")
    return SearchDocument(SearchKind.DECISION, d.decision_id, f"Décision n° {d.number} : {d.title}", body,
                          decision_page(d.decision_id), d.recorded_at, d.session_id)


def minutes_document(minutes_id: str, s: SessionFact, markdown: str) -> SearchDocument:
    return SearchDocument(SearchKind.MINUTES, minutes_id, f"Compte rendu : {s.title}", plain_text(markdown),
                          minutes_page(minutes_id), s.starts_at, s.session_id)


# ---------------------------------------------------------------- writing the index
def _postgresql(tx: AsyncSession) -> bool:
    return tx.get_bind().dialect.name == "postgresql"


_PG_TERMS = ("setweight(to_tsvector('forum_fr'::regconfig, CAST(:title_words AS text)), 'A') || "
             "setweight(to_tsvector('forum_fr'::regconfig, CAST(:body_words AS text)), 'B')")
_PG_PUT = text(
    "INSERT INTO minutes_search (kind, doc_id, session_id, title, body, url, happened_at, terms) "
    f"VALUES (:kind, :doc_id, :session_id, :title, :body, :url, :happened_at, {_PG_TERMS}) "
    "ON CONFLICT (kind, doc_id) DO UPDATE SET session_id = excluded.session_id, title = excluded.title, "
    "body = excluded.body, url = excluded.url, happened_at = excluded.happened_at, terms = excluded.terms")
_FTS_INSERT = text("INSERT INTO minutes_search_fts (rowid, title, body) VALUES (:id, :title, :body)")
_FTS_DELETE = text("DELETE FROM minutes_search_fts WHERE rowid = :id")


async def put(tx: AsyncSession, doc: SearchDocument) -> None:
    """Add a document to the index, or replace what it held for it."""
    row = {"kind": doc.kind.value, "doc_id": doc.doc_id, "session_id": doc.session_id, "title": doc.title,
           "body": doc.body, "url": doc.url, "happened_at": doc.happened_at}
    if _postgresql(tx):
        await tx.exec(_PG_PUT, params={**row, "title_words": index_words(doc.title),
                                       "body_words": index_words(doc.body)})
        return
    found = (await tx.exec(select(INDEX.c.id).where(INDEX.c.kind == row["kind"],
                                                       INDEX.c.doc_id == doc.doc_id))).scalar()
    if found is None:
        found = (await tx.exec(insert(INDEX).values(**row).returning(INDEX.c.id))).scalar_one()
    else:
        await tx.exec(update(INDEX).where(INDEX.c.id == found).values(**row))
        await tx.exec(_FTS_DELETE, params={"id": found})
    await tx.exec(_FTS_INSERT, params={"id": found, "title": index_terms(doc.title), "body": index_terms(doc.body)})


async def remove(tx: AsyncSession, kind: SearchKind, doc_id: str) -> None:
    where = (INDEX.c.kind == kind.value, INDEX.c.doc_id == doc_id)
    if not _postgresql(tx):
        ids = [i for (i,) in (await tx.exec(select(INDEX.c.id).where(*where))).all()]
        for i in ids:
            await tx.exec(_FTS_DELETE, params={"id": i})
    await tx.exec(delete(INDEX).where(*where))


# ---------------------------------------------------------------- where documents change
async def index_session(tx: AsyncSession, s: SessionInfo) -> None:
    """A session as its latest event tells it (a cancelled one leaves the index). Published minutes of
    the session take its new title."""
    if s.status == SessionStatus.CANCELLED:
        await remove(tx, SearchKind.SESSION, s.session_id)
    else:
        await put(tx, session_document(s))
    stale = (await tx.exec(select(INDEX.c.doc_id, INDEX.c.title, INDEX.c.body, INDEX.c.url).where(
        INDEX.c.kind == SearchKind.MINUTES.value, INDEX.c.session_id == s.session_id))).first()
    if stale is not None and stale.title != (title := f"Compte rendu : {s.title}"):
        await put(tx, SearchDocument(SearchKind.MINUTES, stale.doc_id, title, stale.body, stale.url, s.starts_at,
                                     s.session_id))


async def index_decision(tx: AsyncSession, d: DecisionInfo) -> None:
    await put(tx, decision_document(d))


async def index_minutes(tx: AsyncSession, doc: MinutesRow, s: SessionFact, markdown: str) -> None:
    """Published minutes: the text of the version just published (or corrected) replaces the earlier one."""
    await put(tx, minutes_document(doc.id, s, markdown))


# ---------------------------------------------------------------- searching
def _kinds(req: Search) -> list[str]:
    return [k.value for k in (req.kinds or list(SearchKind))]


# One row, one count per kind: a GROUP BY would let PostgreSQL walk the (kind, doc_id) index instead of GIN.
_PER_KIND = ", ".join(f"count(*) FILTER (WHERE kind = '{k.value}')" for k in SearchKind)


def statements(dialect: str, query: Query, kinds: list[str], limit: int, offset: int, *, by_date: bool = False
               ) -> tuple[TextClause, TextClause, dict[str, Any]]:
    """The two queries of a search: matches per kind, and one page of (id, kind, score), the most
    relevant first (`by_date`: the newest first, score 0)."""
    if dialect == "postgresql":
        tsq = "to_tsquery('forum_fr'::regconfig, CAST(:q AS text))"
        counts = text(f"SELECT {_PER_KIND} FROM minutes_search WHERE terms @@ {tsq}")
        score = "0.0" if by_date else f"ts_rank(terms, {tsq})"
        page = text(f"SELECT id, kind, {score} AS score FROM minutes_search WHERE terms @@ {tsq} AND kind IN :kinds "
                    "ORDER BY score DESC, happened_at DESC, id LIMIT :limit OFFSET :offset")
        q = query.tsquery()
    else:
        joined = "minutes_search_fts JOIN minutes_search AS s ON s.id = minutes_search_fts.rowid"
        counts = text(f"SELECT {_PER_KIND} FROM {joined} WHERE minutes_search_fts MATCH :q")
        score = "0.0" if by_date else f"-bm25(minutes_search_fts, {TITLE_WEIGHT}, {BODY_WEIGHT})"
        page = text(f"SELECT s.id, s.kind, {score} AS score FROM {joined} "
                    "WHERE minutes_search_fts MATCH :q AND s.kind IN :kinds "
                    "ORDER BY score DESC, s.happened_at DESC, s.id LIMIT :limit OFFSET :offset")
        q = query.fts5()
    typed = (bindparam("q", type_=Text), bindparam("kinds", expanding=True, type_=String),
             bindparam("limit", type_=Integer), bindparam("offset", type_=Integer))
    return counts.bindparams(typed[0]), page.bindparams(*typed), {
        "q": q, "kinds": kinds, "limit": limit, "offset": offset}


PG_INDEX_ONLY = text("SET LOCAL enable_seqscan = off")
"""PostgreSQL reads the small table row and not the large text search values it keeps apart (TOAST), so it
underestimates a full scan and prefers it to the GIN index, then reads every value: told otherwise, for
this read transaction only."""


def _results(req: Search, query: Query, **kw: Any) -> SearchResults:
    return SearchResults(query=query.text, terms=list(query.typed), page=req.page, page_size=req.page_size,
                         truncated=query.truncated, **{"total": 0, "counts": {k: 0 for k in SearchKind}, "hits": [],
                                                       **kw})


def _segments(pieces: list[tuple[str, bool]]) -> list[ExcerptSegment]:
    return [ExcerptSegment(text=t, match=m) for t, m in pieces]


async def search(req: Search, ctx: HandlerContext) -> SearchResults:
    """One page of the documents that match, most relevant first, each with an excerpt; and how many
    of each kind match. A query with nothing to search answers with its reason, without a query run."""
    query = read_query(req.q)
    if query.problem:
        return _results(req, query, message=query.problem)
    kinds, offset = _kinds(req), (req.page - 1) * req.page_size
    async with ctx.db.read() as tx:
        dialect = tx.get_bind().dialect.name
        if dialect == "postgresql":
            await tx.exec(PG_INDEX_ONLY)
        counts_sql, _, params = statements(dialect, query, kinds, req.page_size, offset)
        counts = dict(zip(SearchKind, (await tx.exec(counts_sql, params={"q": params["q"]})).one(), strict=True))
        total = sum(counts[SearchKind(k)] for k in kinds)
        by_date = total > RANKED_AT_MOST
        _, page_sql, params = statements(dialect, query, kinds, req.page_size, offset, by_date=by_date)
        ranked = (await tx.exec(page_sql, params=params)).all() if offset < total else []
        rows = {r.id: r for r in (await tx.exec(select(INDEX.c.id, INDEX.c.kind, INDEX.c.doc_id, INDEX.c.title,
                                                          INDEX.c.body, INDEX.c.url, INDEX.c.happened_at).where(
            INDEX.c.id.in_([r.id for r in ranked])))).all()} if ranked else {}
    stems = query.stems
    hits = [SearchHit(kind=SearchKind(row.kind), id=row.doc_id, title=row.title, url=row.url, date=row.happened_at,
                      title_marked=_segments(french_search.mark(row.title, stems)),
                      excerpt=_segments(french_search.excerpt(row.body, stems)), score=float(score))
            for i, _, score in ranked if (row := rows.get(i)) is not None]
    return _results(req, query, total=total, counts=counts, hits=hits, by_date=by_date)

