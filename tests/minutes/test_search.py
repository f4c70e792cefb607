"""Search in French across published minutes, decisions and sessions, against a real nats-server and a
real database (SQLite, or PostgreSQL with FORUM_TEST_DATABASE_URL: the same tests on both): accents and
case ignored, words found by their stem, phrases, OR and excluded words; drafts never found, a
correction replaces the text found, a cancelled session leaves; filters by kind, counts and pages; and
any text a person may type answered with results or a message, never an error.

Each test searches for words of its own (made up, so that the documents of the other tests never match).
"""
from __future__ import annotations

import random
import string
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from services.minutes import search as search_module
from shared.clock import utcnow
from shared.contracts.envelope import make_event
from shared.contracts.forum import SessionCancelled, SessionScheduled, SessionStatus, SessionUpdated
from shared.contracts.minutes import (
    AdoptionKind, CorrectMinutes, MinutesView, OpenMinutesDraft, PublishMinutes, SaveMinutesDraft, Search, SearchKind,
    SearchResults,
)
from tests.minutes.harness import (
    HeldSession, MinutesHarness, decision_event, held_session, session_info, until,
)
from tests.support import database_urls, drop_schemas, postgres_base_url

pytestmark = pytest.mark.integration


def made_up() -> str:
    """A word no other document holds (letters only: digits would make it a number)."""
    return "zq" + "".join(random.choices(string.ascii_lowercase, k=9))


async def find(h: MinutesHarness, q: str, **kw: Any) -> SearchResults:
    return await h.rpc(Search(q=q, **kw))


def ids(r: SearchResults) -> list[str]:
    return [hit.id for hit in r.hits]


def marked(r: SearchResults, doc_id: str) -> list[str]:
    [hit] = [x for x in r.hits if x.id == doc_id]
    return [s.text for s in hit.excerpt if s.match]


async def published(h: MinutesHarness, markdown: str, **kw: Any) -> tuple[HeldSession, MinutesView]:
    """A held session whose minutes are published with this text."""
    held = await held_session(h, **kw)
    draft = await h.rpc(OpenMinutesDraft(actor_id=held.secretariat, session_id=held.session_id))
    draft = await h.rpc(SaveMinutesDraft(actor_id=held.secretariat, minutes_id=draft.minutes_id, markdown=markdown,
                                         base_revision=draft.revision))
    view = await h.rpc(PublishMinutes(actor_id=held.secretariat, minutes_id=draft.minutes_id,
                                      adoption=AdoptionKind.NONE))
    return held, view


async def found_eventually(h: MinutesHarness, q: str, doc_id: str, present: bool = True, **kw: Any) -> SearchResults:
    """Sessions and decisions are indexed by the event consumers: wait for them."""
    out: list[SearchResults] = []

    async def done() -> bool:
        out.append(await find(h, q, **kw))
        return (doc_id in ids(out[-1])) == present

    await until(done, 30, f"{doc_id} {'found' if present else 'gone'} for {q!r}")
    return out[-1]


# ================================================================ French
async def test_accents_case_and_stems(h: MinutesHarness) -> None:
    tag = made_up()
    _, view = await published(h, f"# Séance {tag}\n\nL'Assemblée des élus a entendu les élues du collège "
                                 "citoyen. Le compte rendu des débats est adopté.\n\n"
                                 "[Décision](/decisions/ignored-address) sur les données ouvertes.")
    mid = view.minutes_id
    for q in (f"assemblee {tag}", f"ASSEMBLÉE {tag}", f"Assemblées {tag}", f"élu {tag}", f"elu {tag}",
              f"élue {tag}", f"ÉLUS {tag}", f"l'assemblée {tag}", f"compte-rendu {tag}", f"comptes rendus {tag}",
              f"\"compte rendu des débats\" {tag}", f"donnée ouverte {tag}", f"{tag.upper()}"):
        r = await find(h, q)
        assert ids(r) == [mid], (q, r)
        hit = r.hits[0]
        assert hit.kind == SearchKind.MINUTES and hit.url == f"/comptes-rendus/{mid}"
        assert hit.title == "Compte rendu : Plénière de printemps" and r.total == 1
    # The marked words are those of the text, as written.
    r = await find(h, f"assemblee elu {tag}")
    assert set(marked(r, mid)) == {"Assemblée", "élus", "élues", tag}
    # The excerpt is plain text: the Markdown and the link's address are gone.
    words = "".join(s.text for s in r.hits[0].excerpt)
    assert "L'Assemblée des élus" in words and "#" not in words and "ignored-address" not in words
    assert (await find(h, f"ignored address {tag}")).total == 0
    # Phrases keep their order; a stop word inside a phrase stands for any one word.
    assert ids(await find(h, f"\"débats compte rendu\" {tag}")) == []
    assert ids(await find(h, f"\"compte rendu du débat\" {tag}")) == [mid]
    # Excluded words, OR.
    assert ids(await find(h, f"{tag} -assemblée")) == []
    assert ids(await find(h, f"{tag} NOT élus")) == []
    assert ids(await find(h, f"{tag} -{made_up()}")) == [mid]
    assert ids(await find(h, f"{made_up()} OR {tag}")) == [mid]
    assert ids(await find(h, f"{made_up()} {tag}")) == []


async def test_title_ranks_above_text(h: MinutesHarness) -> None:
    tag = made_up()
    _, in_text = await published(h, f"Nous avons parlé de {tag} une fois.")
    _, in_title = await published(h, "Sans le mot.\n\nRien de plus.", title=f"Atelier {tag}")
    r = await find(h, tag, kinds=[SearchKind.MINUTES])
    assert ids(r) == [in_title.minutes_id, in_text.minutes_id]
    assert r.hits[0].score > r.hits[1].score


# ================================================================ what is searchable
async def test_drafts_never_then_published_and_corrected(h: MinutesHarness) -> None:
    tag, later = made_up(), made_up()
    held = await held_session(h)
    draft = await h.rpc(OpenMinutesDraft(actor_id=held.secretariat, session_id=held.session_id))
    draft = await h.rpc(SaveMinutesDraft(actor_id=held.secretariat, minutes_id=draft.minutes_id,
                                         markdown=f"Brouillon : {tag}.", base_revision=draft.revision))
    r = await find(h, tag)
    assert r.total == 0 and r.hits == [] and r.message is None
    view = await h.rpc(PublishMinutes(actor_id=held.secretariat, minutes_id=draft.minutes_id,
                                      adoption=AdoptionKind.NONE))
    assert ids(await find(h, tag)) == [view.minutes_id]
    # A correction: the latest version's text is what is found.
    await h.rpc(CorrectMinutes(actor_id=held.secretariat, minutes_id=view.minutes_id, markdown=f"Corrigé : {later}.",
                               reason="Coquille dans le texte"))
    assert ids(await find(h, later)) == [view.minutes_id]
    assert (await find(h, tag)).total == 0
    async with h.svc.db.read() as tx:
        one_row = text("SELECT count(*) FROM minutes_search WHERE doc_id = :id")
        rows = (await tx.exec(one_row, params={"id": view.minutes_id})).one()  # type: ignore[call-overload]
    assert rows[0] == 1


async def test_sessions_and_decisions_from_events(h: MinutesHarness) -> None:
    tag = made_up()
    sid = str(uuid.uuid4())
    start = utcnow() + timedelta(days=30)
    info = session_info(session_id=sid, title=f"Atelier {tag}", description="Les collectivités territoriales.",
                        agenda=["Ouverture", "Budget participatif"], starts_at=start,
                        ends_at=start + timedelta(hours=2),
                        rsvp_opens_at=start - timedelta(days=10), rsvp_closes_at=start - timedelta(days=1))
    await h.publish(make_event(SessionScheduled(session=info), producer="forum"))
    r = await found_eventually(h, f"collectivite {tag}", sid)
    assert r.hits[0].kind == SearchKind.SESSION and r.hits[0].url == f"/seances/{sid}"
    assert r.hits[0].title == f"Atelier {tag}" and r.hits[0].date == start
    assert ids(await find(h, f"budget participatif {tag}")) == [sid]

    changed = info.model_copy(update={"revision": 1, "title": f"Atelier renommé {tag}"})
    await h.publish(make_event(SessionUpdated(session=changed, changes=["title"], time_or_place_changed=False,
                                              notify_member_ids=[]), producer="forum"))
    r = await found_eventually(h, f"renommé {tag}", sid)
    assert r.hits[0].title == f"Atelier renommé {tag}"

    d = decision_event(str(uuid.uuid4()), number="2031-042", session_id=sid, title=f"Budget {tag} adopté",
                       text="Le forum **adopte** le budget des quartiers.")
    await h.publish(d)
    did = d.data.decision.decision_id
    r = await found_eventually(h, f"quartier {tag}", did)
    assert r.hits[0].kind == SearchKind.DECISION and r.hits[0].url == f"/decisions/{did}"
    assert r.hits[0].title == f"Décision n° 2031-042 : Budget {tag} adopté"
    assert ids(await find(h, "2031-042")) == [did]
    assert ids(await find(h, f"{tag}", kinds=[SearchKind.DECISION])) == [did]

    cancelled = changed.model_copy(update={"revision": 2, "status": SessionStatus.CANCELLED})
    await h.publish(make_event(SessionCancelled(session=cancelled, reason="Salle indisponible", notify_member_ids=[]),
                               producer="forum"))
    await found_eventually(h, f"renommé {tag}", sid, present=False)
    assert ids(await find(h, tag)) == [did]  # the decision stays


async def test_session_title_follows_into_its_minutes(h: MinutesHarness) -> None:
    tag = made_up()
    held, view = await published(h, "Texte du compte rendu.", title=f"Plénière {tag}")
    r = await find(h, tag, kinds=[SearchKind.MINUTES])
    assert r.hits[0].title == f"Compte rendu : Plénière {tag}"
    info = held.session.data.session.model_copy(update={"revision": 5, "title": f"Plénière d'automne {tag}"})
    await h.publish(make_event(SessionUpdated(session=info, changes=["title"], time_or_place_changed=False,
                                              notify_member_ids=[]), producer="forum"))

    async def renamed() -> bool:
        r = await find(h, f"automne {tag}", kinds=[SearchKind.MINUTES])
        return ids(r) == [view.minutes_id] and r.hits[0].title == f"Compte rendu : Plénière d'automne {tag}"

    await until(renamed, 30, "the minutes' new title")


# ================================================================ filters, counts, pages
async def test_kinds_counts_and_pages(h: MinutesHarness) -> None:
    tag = made_up()
    start = utcnow() + timedelta(days=60)
    sids = []
    for i in range(12):
        sid = str(uuid.uuid4())
        sids.append(sid)
        at = start + timedelta(days=i)
        await h.publish(make_event(SessionScheduled(session=session_info(
            session_id=sid, title=f"Séance {i} {tag}", starts_at=at, ends_at=at + timedelta(hours=1),
            rsvp_opens_at=at - timedelta(days=5), rsvp_closes_at=at - timedelta(days=1))), producer="forum"))
    d = decision_event(str(uuid.uuid4()), number="2031-777", session_id=sids[0], title=f"Décision {tag}")
    await h.publish(d)
    await found_eventually(h, tag, d.data.decision.decision_id, kinds=[SearchKind.DECISION])

    async def all_there() -> bool:
        return (await find(h, tag)).counts[SearchKind.SESSION] == 12

    await until(all_there, 30, "12 sessions indexed")
    r = await find(h, tag, page_size=5)
    assert r.total == 13 and r.counts == {SearchKind.SESSION: 12, SearchKind.DECISION: 1, SearchKind.MINUTES: 0}
    seen = []
    for page in (1, 2, 3):
        p = await find(h, tag, page=page, page_size=5)
        assert p.page == page and p.total == 13 and len(p.hits) == (5 if page < 3 else 3)
        seen += ids(p)
    assert len(set(seen)) == 13 and set(sids) < set(seen)
    # Equal relevance: the latest first.
    only = await find(h, f"séance {tag}", kinds=[SearchKind.SESSION], page_size=50)
    assert ids(only) == list(reversed(sids)) and only.total == 12
    assert only.counts[SearchKind.DECISION] == 1  # counts ignore the filter
    beyond = await find(h, tag, page=40, page_size=5)
    assert beyond.hits == [] and beyond.total == 13
    both = await find(h, tag, kinds=[SearchKind.DECISION, SearchKind.MINUTES])
    assert ids(both) == [d.data.decision.decision_id] and both.total == 1 and not both.by_date


async def test_too_many_to_rank_come_newest_first(h: MinutesHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    tag = made_up()
    start = utcnow() + timedelta(days=90)
    sids = [str(uuid.uuid4()) for _ in range(4)]
    for i, sid in enumerate(sids):
        at = start + timedelta(days=i)
        # The oldest is the most relevant (the word three times): ranked, it would come first.
        await h.publish(make_event(SessionScheduled(session=session_info(
            session_id=sid, title=f"Séance {tag}", description=f"{tag} {tag} {tag}" if i == 0 else "Rien.",
            starts_at=at, ends_at=at + timedelta(hours=1), rsvp_opens_at=at - timedelta(days=5),
            rsvp_closes_at=at - timedelta(days=1))), producer="forum"))

    async def all_there() -> bool:
        return (await find(h, tag)).total == 4

    await until(all_there, 30, "4 sessions indexed")
    ranked = await find(h, tag)
    assert ids(ranked)[0] == sids[0] and not ranked.by_date
    monkeypatch.setattr(search_module, "RANKED_AT_MOST", 3)
    by_date = await find(h, tag)
    assert by_date.by_date and ids(by_date) == list(reversed(sids)) and by_date.total == 4


# ================================================================ anything a person types
HOSTILE = [
    '"', '""', '"""', "'", "''", "l'", "l'assemblée", "aujourd'hui", "compte-rendu", "-", "--", "- -", "*", "**",
    "élu*", "*élu", "AND", "OR", "NOT", "AND OR NOT", "a AND", "OR élu", "élu OR", "élu OR OR élus", "élu AND élus",
    "-élu", "NOT élu", "élu -", "(", ")", "()", "(élu", "élu)", "((élu OR élus) AND -(vote))", "élu NEAR vote",
    "NEAR(élu vote)", "title:élu", "body:élu", "{élu}", "^élu", "élu:*", "élu:", "élu & !vote", "élu | vote",
    "élu <-> vote", "élu <2> vote", "!élu", "!!", "&", "|", ":", ";", "\\", "\\'", "%", "_", "%_%", "' OR 1=1 --",
    "'; DROP TABLE minutes_search; --", "\"; SELECT 1; --", "\x00", "\ue000", "élu\ue000", "\u200b", "\t\n\r",
    "😀", "élu 😀 vote", "ǅ", "ﬁnance", "Œuvre cœur", "日本語", "مرحبا", "ÉLUS ÉLUES", "2026-007", "n°", "n° 2026",
    "1e10", "0x1F", "-1", "+élu", "~élu", "élu~2", "[élu]", "<script>alert(1)</script>", "&lt;b&gt;", "le", "la le de",
    "de la l' d' qu'", "et ou", "a" * 300, "é" * 5000, "élu " * 1250, "\"élu " * 200, "x" * 5000, " " * 5000,
]


async def test_anything_typed_gets_an_answer(h: MinutesHarness) -> None:
    tag = made_up()
    _, view = await published(h, f"Les élus de {tag} ont voté.")
    for q in HOSTILE + [f"{q} {tag}" for q in HOSTILE[:60]]:
        r = await find(h, q)  # never an error
        assert r.total >= len(r.hits), q
        if r.message:
            assert r.hits == [] and r.total == 0, q
        assert len(r.query) <= 256, q
        for hit in r.hits:
            assert hit.excerpt, q
    assert (await find(h, "")).message == "Saisissez un ou plusieurs mots à rechercher."
    assert (await find(h, "   ")).message == "Saisissez un ou plusieurs mots à rechercher."
    assert "ni lettre ni chiffre" in (await find(h, "* - ()")).message
    assert "trop courant" in (await find(h, "le")).message
    assert "trop courants" in (await find(h, "de la l'")).message
    assert "exclure" in (await find(h, "-élu")).message
    long = await find(h, "é" * 5000)
    assert long.truncated and long.message is None and long.total == 0
    assert (await find(h, f"{tag} " + "x" * 5000)).truncated
    # The words around a hostile query still find what they name.
    for q in (f"'{tag}'", f"\"{tag}", f"({tag})", f"{tag}*", f"-x {tag}", f"{tag} AND élus", f"{tag} OR",
              f"' OR -- {tag}", f"{tag};", f"{tag}'--", f"{tag}\\", f"*{tag}*", f"{tag} élu NOT"):
        assert ids(await find(h, q)) == [view.minutes_id], q
    # The index is still there.
    assert ids(await find(h, tag)) == [view.minutes_id]


async def test_nothing_found_is_no_error(h: MinutesHarness) -> None:
    r = await find(h, made_up())
    assert r.total == 0 and r.hits == [] and r.message is None
    assert r.counts == {k: 0 for k in SearchKind} and r.terms


def test_search_statements_take_no_user_text() -> None:
    """The SQL never holds the query: it is one parameter, written from normalised words and operators."""
    import re

    from forumlib.french_search import read_query

    q = read_query("'; DROP TABLE x; -- \"l'assemblée\" OR élus -vote (a|b) & c:* <-> \\")
    assert re.fullmatch(r'[ \w"()\ue000]+', q.fts5()) and re.fullmatch(r"[ \w'()&|!<>]+", q.tsquery())
    for dialect in ("sqlite", "postgresql"):
        counts, page, params = search_module.statements(dialect, q, ["minutes"], 10, 0)
        sql = str(counts) + str(page)
        assert "DROP" not in sql and "assembl" not in sql and params["q"] in (q.fts5(), q.tsquery())


# ================================================================ the migration
def test_migration_indexes_what_the_projections_hold(tmp_path) -> None:  # noqa: ANN001 - pytest's tmp_path
    """Upgrading a database that already holds sessions, decisions and published minutes makes them
    searchable (cancelled sessions and drafts excepted)."""
    import asyncio
    import json

    from shared.migrations import upgrade

    urls = database_urls(tmp_path)
    url = urls["minutes"]
    try:
        upgrade("minutes", url, "0003")
        engine = create_engine(url.replace("sqlite+aiosqlite://", "sqlite://"))
        at = utcnow()
        with engine.begin() as conn:
            for sid, status, title in (("s-a", "scheduled", "Assemblée plénière"), ("s-b", "cancelled", "Annulée")):
                conn.execute(text(
                    "INSERT INTO minutes_session (session_id, revision, status, title, kind, starts_at, ends_at, "
                    "agenda) "
                    "VALUES (:sid, 0, :status, :title, 'plenary', :at, :at, :agenda)"),
                    {"sid": sid, "status": status, "title": title, "at": at, "agenda": json.dumps(["Budget des élus"])})
            conn.execute(text(
                "INSERT INTO minutes_decision (decision_id, number, session_id, agenda_position, agenda_text, title, "
                "outcome, method, recorded_at, event_id) VALUES ('d-a', '2030-001', 's-a', 1, 'Budget', "
                "'Publication des données', 'adopted', 'consensus', :at, 'e-1')"), {"at": at})
            for mid, sid, status in (("m-a", "s-a", "published"), ("m-b", "s-b", "draft")):
                conn.execute(text(
                    "INSERT INTO minutes_doc (id, session_id, status, markdown, revision, reviewed, latest_version, "
                    "created_by, created_at, updated_by, updated_at) VALUES (:mid, :sid, :status, 'Brouillon élus', "
                    "1, false, :v, 'x', :at, 'x', :at)"), {"mid": mid, "sid": sid, "status": status, "at": at,
                                                           "v": 1 if status == "published" else 0})
            conn.execute(text(
                "INSERT INTO minutes_version (minutes_id, version, markdown, paragraphs, canonical, sha256, html, pdf, "
                "published_at, published_by, adoption, event_id) VALUES ('m-a', 1, 'Les **élues** ont voté.', '[]', "
                ":b, 'h', '', :b, :at, 'x', '{}', 'e-2')"), {"b": b"x", "at": at})
        engine.dispose()
        upgrade("minutes", url)

        async def check() -> None:
            from types import SimpleNamespace

            from shared.db import Database

            db = Database(url)
            ctx: Any = SimpleNamespace(db=db)  # all the operation uses of its context

            async def ask(q: str) -> list[tuple[str, str]]:
                return sorted((hit.kind.value, hit.id) for hit in (await search_module.search(Search(q=q), ctx)).hits)

            try:
                assert await ask("assemblee") == [("decision", "d-a"), ("minutes", "m-a"), ("session", "s-a")]
                assert await ask("élu") == [("minutes", "m-a"), ("session", "s-a")]
                assert await ask("annulée") == [] and await ask("brouillon") == []
                assert await ask("2030-001") == [("decision", "d-a")]
            finally:
                await db.dispose()

        asyncio.run(check())
    finally:
        drop_schemas(urls)


@pytest.mark.skipif(postgres_base_url() is None, reason="PostgreSQL only (FORUM_TEST_DATABASE_URL)")
def test_migration_in_several_schemas_of_one_database_at_once(tmp_path) -> None:  # noqa: ANN001
    """Schemas sharing one PostgreSQL database migrate side by side: one extension for all, a
    configuration each, and dropping one schema leaves the others searching."""
    import subprocess
    import sys

    every = [database_urls(tmp_path / str(i)) for i in range(3)]
    urls = [u["minutes"] for u in every]
    try:
        # Alembic keeps its state in module globals: one process per migration, as deployments run them.
        runs = [subprocess.Popen([sys.executable, "-c", "import sys; from shared.migrations import upgrade; "
                                  "upgrade('minutes', sys.argv[1])", url], cwd=Path(__file__).parents[2])
                for url in urls]
        assert [p.wait(timeout=120) for p in runs] == [0, 0, 0]
        drop_schemas(every[0])
        for url in urls[1:]:
            engine = create_engine(url)
            with engine.connect() as conn:
                assert conn.execute(text("SELECT to_tsvector('forum_fr', 'Élues Assemblée')::text")).scalar() == \
                    "'assemble':2 'elu':1"
            engine.dispose()
    finally:
        for urls_of_run in every:
            drop_schemas(urls_of_run)
