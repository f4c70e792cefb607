"""Benchmark of search: `python -m bench.search [--quick] [--database-url postgresql://…]`.

What it measures, in one run, on one machine, for SQLite and (with `--database-url`) PostgreSQL:

1. indexing: 10,000 published minutes of realistic length (about 1,400 words, 9,000 characters of
   French Markdown each: headings, paragraphs, lists), generated here from a word list with a fixed
   seed (nothing downloaded), written with the service's own `search.put` in 250-document
   transactions — documents per second;
2. for a set of queries (a place named in 0.1 % of the documents, a topic in 4 %, two topics, words typed
   without their accents, a phrase in 20 %, OR, an excluded word, a word in every document, a word found
   nowhere), the latency of one page of 10 results:
   - raw: the same SQL the operation runs (matches per kind, the page, the page's rows), straight on
     the database through its plain driver (`sqlite3`, `psycopg`), parameters inlined;
   - operation: the `minutes.search` handler in process (query reading, SQLAlchemy, excerpts, the reply);
   - NATS: the same request over NATS request/reply to the running service (what the web front pays).

The minutes service runs in process on its own nats-server (as `bench.ledger` starts it); PostgreSQL
runs in a scratch schema, dropped at the end. `--quick`: fewer samples (`--docs` for fewer documents). Figures,
never assertions (shared machines).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.ledger import database, nats_server, running_minutes
from bench.stats import fmt, latency_summary, table

QUICK = {"docs": 10_000, "samples": 30, "warmup": 3}
FULL = {"docs": 10_000, "samples": 200, "warmup": 10}
PAGE_SIZE = 10
BATCH = 250

# ---------------------------------------------------------------- French text, made here
COMMON = """forum séance assemblée collège membre membres citoyen citoyens citoyenne société civile acteur acteurs
public publics engagement engagements plan action national gouvernement ouvert transparence participation
collaboration administration ministère collectivité collectivités territoriale élu élus élue élues conseil
vote votes décision décisions proposition propositions avis rapport rapports compte rendu comptes rendus ordre jour
point points débat débats échange échanges question questions réponse réponses présidente président secrétariat
secrétaire plénière groupe travail atelier ateliers thème thèmes association associations étude études étape
étapes suivi objectif objectifs résultat résultats bilan méthode règle règles quorum majorité texte textes
article articles version publication registre calendrier annexe amendement adoption adopté adoptée""".split()
TOPICS = """santé éducation environnement numérique justice logement transport emploi culture jeunesse accessibilité
inclusion égalité laïcité sécurité énergie climat biodiversité agriculture alimentation eau déchets mobilité
budget quartier subvention marché contrat fondation syndicat entreprise université laboratoire enquête
consultation concertation indicateur évaluation redevabilité algorithme archives cartographie statistiques
recensement patrimoine tourisme sport handicap vieillissement pauvreté fiscalité douane police prison hôpital
école lycée crèche retraite chômage formation apprentissage innovation recherche""".split()
VERBS = """présente présentent rappelle rappellent souligne soulignent propose proposent demande demandent adopte
adoptent rejette rejettent examine examinent discute discutent recommande recommandent décide décident
observe observent constate constatent précise précisent annonce annoncent engage engagent publie publient
prépare préparent organise organisent consulte consultent invite invitent remercie remercient""".split()
GLUE = """le la les un une des du de d' l' à au aux et ou mais donc car pour par avec sans sur sous dans entre
vers chez depuis pendant selon ce cette ces son sa ses leur leurs notre nos qui que dont où afin""".split()
SYLLABLES = "ba be bi bo bu ca ce ci co da de di do fa fe fi la le li lo ma me mi mo na ne ni no pa pe pi po ra re " \
            "ri ro sa se si so ta te ti to va ve vi vo za zé lé ré mé".split()


class Writer:
    """Minutes-like Markdown. Every document has the forum's everyday words; three of the 80 topics
    (each in about 4 % of the documents, a few times); two of 1,500 places (each in about 0.1 %); and,
    in one document out of five, « conseil de quartier »."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.common = COMMON + VERBS
        self.places = sorted({"".join(self.rng.choices(SYLLABLES, k=self.rng.randint(3, 4))).capitalize()
                              for _ in range(1600)})[:1500]

    def _sentence(self, extra: list[str]) -> str:
        rng = self.rng
        words = [rng.choice(GLUE) if rng.random() < 0.4 else rng.choice(self.common)
                 for _ in range(rng.randint(9, 24))]
        for w in extra:
            words.insert(rng.randrange(len(words)), w)
        text = " ".join(words).replace("' ", "'")
        return text[0].upper() + text[1:] + rng.choice([".", ".", ".", " ;", " :"])

    def minutes(self, number: int) -> tuple[str, str]:
        """(session title, Markdown) of about 1,400 words."""
        rng = self.rng
        topics, places = rng.sample(TOPICS, 3), rng.sample(self.places, 2)
        title = f"Séance plénière n° {number} — {places[0]}"
        special = [*(topics * 4), *places, *(["conseil de quartier"] if rng.random() < 0.2 else [])]
        rng.shuffle(special)
        out = [f"# Compte rendu de la séance du forum à {places[0]}", ""]
        words, point = 0, 0
        while words < 1400:
            if point == 0 or rng.random() < 0.15:
                point += 1
                out += [f"## Point {point} : {rng.choice(topics)} et {rng.choice(COMMON)}", ""]
            sentences = [self._sentence([special.pop()] if special and rng.random() < 0.3 else [])
                         for _ in range(rng.randint(3, 6))]
            block = "\n".join(f"- {x}" for x in sentences) if rng.random() < 0.12 else " ".join(sentences)
            out += [block, ""]
            words += len(block.split())
        return title, "\n".join(out)


QUERIES = [  # (label, query); the place is filled in
    ("a place (0.1 %)", "{place}"),
    ("a topic (4 %)", "biodiversité"),
    ("two topics", "logement transport"),
    ("without accents", "securite energie"),
    ("phrase (20 %)", '"conseil de quartier"'),
    ("OR", "laïcité OR fiscalité"),
    ("excluded word", "santé -éducation"),
    ("everywhere", "forum"),
    ("found nowhere", "zqxwvutsr"),
]


# ---------------------------------------------------------------- phases
async def index(svc: Any, n: int) -> dict[str, Any]:
    from services.minutes import search
    from services.minutes.models import SessionFact
    from shared.contracts.forum import SessionKind, SessionStatus

    writer = Writer()
    start = datetime(2020, 1, 6, 14, tzinfo=UTC)
    chars, seconds, place = 0, 0.0, writer.places[len(writer.places) // 3]
    for first in range(0, n, BATCH):
        docs = []
        for i in range(first, min(n, first + BATCH)):
            title, markdown = writer.minutes(i + 1)
            at = start + timedelta(days=i // 3)
            s = SessionFact(session_id=str(uuid.uuid4()), revision=0, status=SessionStatus.SCHEDULED, title=title,
                            kind=SessionKind.PLENARY, starts_at=at, ends_at=at + timedelta(hours=2))
            docs.append((s, markdown))
            chars += len(markdown)
        t0 = time.perf_counter()
        async with svc.unit_of_work() as uow:
            for s, markdown in docs:
                await search.put(uow.tx, search.minutes_document(str(uuid.uuid4()), s, markdown))
                await asyncio.sleep(0)  # the service's other tasks (NATS heartbeats) run between documents
        seconds += time.perf_counter() - t0
        print(f"  indexed {min(n, first + BATCH):,}/{n:,}", end="\r", flush=True)
    print()
    return {"docs": n, "seconds": seconds, "docs_per_s": n / seconds, "avg_chars": chars / n, "place": place}


class Raw:
    """The operation's SQL on a plain driver connection, parameters inlined, run as the operation runs it:
    the counts, then a page ranked (or the newest first beyond `RANKED_AT_MOST`), then the page's rows."""

    def __init__(self, db_url: str) -> None:
        self.pg = db_url.startswith("postgresql")
        if self.pg:
            import psycopg

            self.conn: Any = psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://", 1),
                                             autocommit=True)
            self.conn.execute("SET enable_seqscan = off")  # as the operation's PG_INDEX_ONLY
        else:
            self.conn = sqlite3.connect(db_url.split("///", 1)[1])

    def sql(self, q: str) -> tuple[str, str, str, str]:
        from sqlalchemy import select
        from sqlalchemy.dialects import postgresql, sqlite

        from forumlib.french_search import read_query
        from services.minutes import search

        dialect = postgresql.psycopg.dialect() if self.pg else sqlite.dialect()
        name, query, kinds = ("postgresql" if self.pg else "sqlite"), read_query(q), ["minutes", "decision", "session"]
        counts, ranked, params = search.statements(name, query, kinds, PAGE_SIZE, 0)
        _, by_date, _ = search.statements(name, query, kinds, PAGE_SIZE, 0, by_date=True)

        def literal(stmt: Any, **values: Any) -> str:
            return str(stmt.bindparams(**values).compile(dialect=dialect, compile_kwargs={"literal_binds": True}))

        rows = select(search.INDEX.c.id, search.INDEX.c.kind, search.INDEX.c.doc_id, search.INDEX.c.title,
                      search.INDEX.c.body, search.INDEX.c.url, search.INDEX.c.happened_at)
        return (literal(counts, q=params["q"]), literal(ranked, **params), literal(by_date, **params),
                str(rows.compile(dialect=dialect)) + " WHERE minutes_search.id IN ({ids})")

    def run(self, statements: tuple[str, str, str, str]) -> int:
        from services.minutes.search import RANKED_AT_MOST

        cur = self.conn.cursor()
        cur.execute(statements[0])
        total = sum(cur.fetchone())
        if total:
            cur.execute(statements[2] if total > RANKED_AT_MOST else statements[1])
            ids = [r[0] for r in cur.fetchall()]
            cur.execute(statements[3].format(ids=", ".join(str(i) for i in ids)))
            cur.fetchall()
        return total

    def close(self) -> None:
        self.conn.close()


async def timed(samples: int, warmup: int, op: Any) -> dict[str, float | None]:
    for _ in range(warmup):
        await op()
    lat = []
    for _ in range(samples):
        t0 = time.perf_counter()
        await op()
        lat.append(time.perf_counter() - t0)
    return latency_summary(lat)


async def latencies(h: Any, db_url: str, place: str, cfg: dict[str, Any]) -> list[dict[str, Any]]:
    from services.minutes.search import search
    from shared.contracts.minutes import Search

    raw = Raw(db_url)
    out = []
    try:
        for label, template in QUERIES:
            q = template.format(place=place)
            req = Search(q=q, page_size=PAGE_SIZE)
            statements = raw.sql(q)
            reply = await search(req, h.svc.context())
            assert raw.run(statements) == reply.total  # the raw SQL finds what the operation finds

            async def raw_op() -> None:
                raw.run(statements)

            async def operation() -> None:
                await search(req, h.svc.context())

            async def over_nats() -> None:
                await h.rpc(req)

            out.append({"label": label, "q": q, "matches": reply.total, "by_date": reply.by_date,
                        "raw": await timed(cfg["samples"], cfg["warmup"], raw_op),
                        "operation": await timed(cfg["samples"], cfg["warmup"], operation),
                        "nats": await timed(cfg["samples"], cfg["warmup"], over_nats)})
            print(f"  {label}: {reply.total:,} matches", flush=True)
    finally:
        raw.close()
    return out


async def run_one(quick: bool, database_url: str | None) -> dict[str, Any]:
    from shared.migrations import upgrade

    cfg = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp, nats_server() as nats_url, \
            database(database_url, Path(tmp)) as db_url:
        kind = "postgresql" if db_url.startswith("postgresql") else "sqlite"
        print(f"{kind}: migrate, index {cfg['docs']:,} minutes…", flush=True)
        await asyncio.to_thread(upgrade, "minutes", db_url)
        async with running_minutes(Path(tmp), nats_url, db_url) as h:
            for name in list(logging.root.manager.loggerDict):  # FastStream's per-task lines
                if name.startswith("faststream"):
                    logging.getLogger(name).setLevel(logging.WARNING)
            indexed = await index(h.svc, cfg["docs"])
            if kind == "postgresql":
                import psycopg

                with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://", 1),
                                     autocommit=True) as conn:
                    conn.execute("ANALYZE minutes_search")
            print(f"{kind}: search latency ({cfg['samples']} samples per query)…", flush=True)
            queries = await latencies(h, db_url, indexed["place"], cfg)
    return {"database": kind, "index": indexed, "queries": queries}


def report(runs: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    def lat(d: dict[str, Any]) -> str:
        return f"{fmt(d['p50_ms'], digits=1)} / {fmt(d['p95_ms'], digits=1)}"

    rows: list[tuple[str, str | None]] = [
        (f"machine: {machine['cpus']} CPUs, Python {machine['python']}, load average "
         f"{machine['loadavg_start']:.1f} -> {machine['loadavg_end']:.1f}; one page of {PAGE_SIZE} results", None)]
    for r in runs:
        ix = r["index"]
        rows += [(f"{r['database']}: {ix['docs']:,} published minutes, {ix['avg_chars']:,.0f} characters on average",
                  None),
                 ("  indexing (search.put, 250 per transaction)", fmt(ix["docs_per_s"], "docs/s", 0)),
                 ("  query [matches]: p50 / p95 ms", "raw SQL | operation | over NATS")]
        for q in r["queries"]:
            rows.append((f"  {q['label']} « {q['q']} » [{q['matches']:,}{', by date' if q['by_date'] else ''}]",
                         f"{lat(q['raw'])} | {lat(q['operation'])} | {lat(q['nats'])}"))
    return table(rows, title="Forum ouvert — search benchmark (raw SQL vs the minutes.search operation)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK['samples']} samples per query (else {FULL['samples']})")
    p.add_argument("--docs", type=int, help="how many minutes to index (default: 10,000)")
    p.add_argument("--database-url", default=os.environ.get("FORUM_BENCH_DATABASE_URL"),
                   help="PostgreSQL URL (a scratch schema is used), measured after SQLite")
    p.add_argument("--json", type=Path, help="also write the raw figures to this file")
    args = p.parse_args(argv)
    os.environ.setdefault("FORUM_LOG_LEVEL", "WARNING")
    if args.docs:
        (QUICK if args.quick else FULL)["docs"] = args.docs
    machine: dict[str, Any] = {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                               "loadavg_start": os.getloadavg()[0]}
    t0 = time.perf_counter()
    runs = [asyncio.run(run_one(args.quick, None))]
    if args.database_url:
        runs.append(asyncio.run(run_one(args.quick, args.database_url)))
    machine["loadavg_end"] = os.getloadavg()[0]
    print(report(runs, machine))
    print(f"total {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "runs": runs}, indent=2, default=str))


if __name__ == "__main__":
    main()
