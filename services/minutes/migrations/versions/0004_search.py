"""search: the index of published minutes, decisions and sessions

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 09:00:00

Written by hand: the search column differs between the databases.

- PostgreSQL: the `unaccent` extension (in `public`, so that every schema of the database can use it
  and dropping a schema never drops it), a text search configuration `forum_fr` (french, with
  unaccent before the Snowball stemmer) in the service's own schema, a `tsvector` column and its GIN
  index. Several schemas of one database may run this at once (tests): an advisory lock makes them
  take turns at the extension, and every step checks what exists first.
- SQLite: an FTS5 table of stems (computed in Python), `remove_diacritics 2` so that what FTS5 folds
  itself agrees with what the stems already are.

What the projections already hold is indexed here (the sessions' descriptions and the decisions' texts
are not kept by the projections: those documents are indexed in full the next time they change).
"""
from collections.abc import Sequence

import json

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

from forumlib.french_search import index_terms, index_words, plain_text

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    if pg:
        _forum_fr(bind)
    op.create_table(
        'minutes_search',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('doc_id', sa.String(length=36), nullable=False),
        sa.Column('session_id', sa.String(length=36), nullable=True),
        sa.Column('happened_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('url', sa.String(length=300), nullable=False),
        sa.Column('title', sa.Text(), nullable=False),
        # Last: SQLite reads the columns before it without walking the long text's overflow pages.
        sa.Column('body', sa.Text(), nullable=False),
        *([sa.Column('terms', postgresql.TSVECTOR(), nullable=False)] if pg else []),
        sa.UniqueConstraint('kind', 'doc_id', name='uq_minutes_search_doc'),
    )
    op.create_index('ix_minutes_search_session_id', 'minutes_search', ['session_id'])
    if pg:
        # Without the pending list: a search never scans unmerged entries; writes (publications) are rare.
        op.create_index('ix_minutes_search_terms', 'minutes_search', ['terms'], postgresql_using='gin',
                        postgresql_with={'fastupdate': 'off'})
    else:
        op.execute("CREATE VIRTUAL TABLE minutes_search_fts USING fts5("
                   "title, body, tokenize = 'unicode61 remove_diacritics 2')")
    _index_what_is_there(bind, pg)


def _forum_fr(bind: sa.engine.Connection) -> None:
    op.execute("SELECT pg_advisory_xact_lock(hashtext('forum-ouvert: unaccent'))")
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public")
    home = bind.execute(sa.text("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                                "WHERE e.extname = 'unaccent'")).scalar_one()
    exists = bind.execute(sa.text("SELECT 1 FROM pg_ts_config WHERE cfgname = 'forum_fr' AND cfgnamespace = "
                                  "(SELECT oid FROM pg_namespace WHERE nspname = current_schema())")).first()
    if exists:
        return
    dictionary = bind.dialect.identifier_preparer.quote(home) + ".unaccent"
    op.execute("CREATE TEXT SEARCH CONFIGURATION forum_fr (COPY = pg_catalog.french)")
    op.execute("ALTER TEXT SEARCH CONFIGURATION forum_fr ALTER MAPPING FOR hword, hword_part, word, asciiword, "
               f"asciihword, hword_asciipart WITH {dictionary}, french_stem")
    op.execute(f"ALTER TEXT SEARCH CONFIGURATION forum_fr ALTER MAPPING FOR numword, numhword, hword_numpart "
               f"WITH {dictionary}, simple")


def _index_what_is_there(bind: sa.engine.Connection, pg: bool) -> None:
    docs = []
    sessions = {r.session_id: r for r in bind.execute(sa.text(
        "SELECT session_id, status, title, starts_at, place, agenda FROM minutes_session"))}
    for s in sessions.values():
        if s.status != "cancelled":
            body = "\n".join([*map(str, json.loads(s.agenda or "[]")), s.place or ""])
            docs.append(("session", s.session_id, s.session_id, s.title, body, f"/seances/{s.session_id}",
                         s.starts_at))
    for d in bind.execute(sa.text("SELECT decision_id, number, session_id, agenda_position, agenda_text, title, "
                                  "commitment_code, commitment_title, recorded_at FROM minutes_decision")):
        held = sessions.get(d.session_id)
        body = "\n".join(x for x in [
            f"Point {d.agenda_position} de l'ordre du jour : {d.agenda_text}",
            f"Engagement {d.commitment_code} : {d.commitment_title}" if d.commitment_code else "",
            f"Séance : {held.title}" if held else ""] if x)
        docs.append(("decision", d.decision_id, d.session_id, f"Décision n° {d.number} : {d.title}", body,
                     f"/decisions/{d.decision_id}", d.recorded_at))
    for m in bind.execute(sa.text(
            "SELECT d.id, d.session_id, v.markdown FROM minutes_doc d JOIN minutes_version v "
            "ON v.minutes_id = d.id AND v.version = d.latest_version WHERE d.status = 'published'")):
        if (held := sessions.get(m.session_id)) is not None:
            docs.append(("minutes", m.id, m.session_id, f"Compte rendu : {held.title}", plain_text(m.markdown),
                         f"/comptes-rendus/{m.id}", held.starts_at))
    insert = ("INSERT INTO minutes_search (kind, doc_id, session_id, title, body, url, happened_at"
              + (", terms" if pg else "") + ") VALUES (:kind, :doc_id, :session_id, :title, :body, :url, :at"
              + (", setweight(to_tsvector('forum_fr'::regconfig, CAST(:tw AS text)), 'A') || "
                 "setweight(to_tsvector('forum_fr'::regconfig, CAST(:bw AS text)), 'B')" if pg else "")
              + ") RETURNING id")
    for kind, doc_id, session_id, title, body, url, at in docs:
        row_id = bind.execute(sa.text(insert), {
            "kind": kind, "doc_id": doc_id, "session_id": session_id, "title": title, "body": body, "url": url,
            "at": at, "tw": index_words(title), "bw": index_words(body)}).scalar_one()
        if not pg:
            bind.execute(sa.text("INSERT INTO minutes_search_fts (rowid, title, body) VALUES (:id, :title, :body)"),
                         {"id": row_id, "title": index_terms(title), "body": index_terms(body)})


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE IF EXISTS minutes_search_fts")
    op.drop_index('ix_minutes_search_session_id', table_name='minutes_search')
    op.drop_table('minutes_search')
    if op.get_bind().dialect.name == "postgresql":
        # The extension stays: other schemas of the database may use it.
        op.execute("DROP TEXT SEARCH CONFIGURATION IF EXISTS forum_fr")
