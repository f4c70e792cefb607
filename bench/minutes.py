"""Benchmark of publishing minutes: `python -m bench.minutes [--quick] [--database-url postgresql://…]`.

Publish-to-public time: from the secretariat's command to the moment the public can read the new
version, i.e. t0 → `PublishMinutes` (first) or `CorrectMinutes` (then, each with a small change and
its reason) answered (= command accepted) → `GetMinutesVersion` of that version and `GetMinutesPdf`
answered (what the web front asks for to serve the page and the PDF) → t1.

Beside it, in the same run, the floor: the work a publication cannot avoid, timed in-process on the
same text — split into paragraphs + canonical JSON + SHA-256, the HTML of the paragraphs, the PDF
(`services.minutes.pdf.render_pdf`) — and one RPC round trip to the same service (`health`: NATS
request/reply plus a trivial database read). Served ÷ floor says how much the rest (database
writes, the outbox, three requests instead of one, reading the version back) costs.

The minutes service runs in this process (`bench.ledger.running_minutes`) on a throwaway
nats-server and a SQLite file or a scratch PostgreSQL schema. It learns of one session that ended an
hour ago and of one secretariat account from their events on JetStream, as in production. Figures,
never assertions (shared machines). About a minute with `--quick`.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.ledger import Minutes, database, nats_server, publish, running_minutes, timed
from bench.stats import fmt, latency_summary, table

QUICK = {"samples": 5, "floor": 5, "rpc": 50}
FULL = {"samples": 20, "floor": 20, "rpc": 200}

SECTIONS = ["Ouverture de la séance", "Point d'étape du plan d'action", "Engagement 5 : données ouvertes",
            "Échanges avec la salle", "Décisions et suites à donner", "Clôture"]
SENTENCES = [
    "La présidente de séance rappelle l'ordre du jour et les règles de prise de parole adoptées par le forum.",
    "Le secrétariat présente l'état d'avancement des engagements, collège par collège, avec les échéances prévues.",
    "Plusieurs membres de la société civile demandent que les jeux de données soient publiés sous licence ouverte.",
    "La représentante de la Ville de Lyon précise que les données de mobilité seront disponibles avant l'été.",
    "Un citoyen s'interroge sur la manière dont les contributions en ligne sont prises en compte dans la synthèse.",
    "Le secrétariat répond que chaque contribution reçoit une réponse motivée, publiée avec le compte rendu.",
    "Les participants conviennent de réunir un groupe de travail restreint avant la prochaine séance plénière.",
    "Il est noté que le calendrier initial n'a pas pu être tenu, faute de moyens humains suffisants.",
]


def draft_text(target: int = 10_000) -> str:
    """A plausible French draft: six headings, about thirty paragraphs, about `target` characters."""
    out = ["# Compte rendu de la séance plénière", ""]
    n = 0
    while sum(len(x) + 1 for x in out) < target:
        if n % 5 == 0 and n // 5 < len(SECTIONS):
            out += [f"## {SECTIONS[n // 5]}", ""]
        para = " ".join(SENTENCES[(n + k) % len(SENTENCES)] for k in range(3))
        out += [f"{para} (paragraphe {n + 1})", ""]
        n += 1
    return "\n".join(out).strip() + "\n"


# ---------------------------------------------------------------- the session's facts
async def held_session(h: Minutes) -> tuple[str, str]:
    """Publish a session that ended an hour ago and a secretariat grant; return (session, actor)."""
    from shared.clock import utcnow
    from shared.contracts.envelope import make_event
    from shared.contracts.forum import SessionInfo, SessionKind, SessionScheduled, SessionStatus, Theme
    from shared.contracts.registry import Role, RoleGranted

    sid, actor = f"s-{uuid.uuid4().hex[:12]}", f"sec-{uuid.uuid4().hex[:8]}"
    end = utcnow() - timedelta(hours=1)
    start = end - timedelta(hours=2)
    info = SessionInfo(
        session_id=sid, revision=0, status=SessionStatus.SCHEDULED, title="Plénière de printemps",
        kind=SessionKind.PLENARY, theme=Theme.OPEN_DATA, description="Point d'étape du plan d'action.",
        starts_at=start, ends_at=end, place="CESE, Paris", online_url=None, capacity=80,
        rsvp_opens_at=start - timedelta(days=10), rsvp_closes_at=start - timedelta(days=1),
        agenda=["Ouverture", "Engagement 5"], updated_at=start - timedelta(days=20))
    await publish(h.js, [make_event(SessionScheduled(session=info), producer="forum"),
                         make_event(RoleGranted(member_id=actor, role=Role.SECRETARIAT), producer="registry")])
    return sid, actor


async def open_draft(h: Minutes, sid: str, actor: str, timeout: float = 30.0) -> Any:
    """Until the service knows the session and the secretariat (its consumers run independently)."""
    from shared.contracts.minutes import OpenMinutesDraft
    from shared.rpc import RpcError

    deadline = time.perf_counter() + timeout
    while True:
        try:
            return await h.rpc(OpenMinutesDraft(actor_id=actor, session_id=sid))
        except RpcError:
            if time.perf_counter() > deadline:
                raise
            await asyncio.sleep(0.05)


# ---------------------------------------------------------------- measured path
async def publish_to_public(h: Minutes, sid: str, actor: str, samples: int, text: str) -> dict[str, Any]:
    from shared.contracts.minutes import (
        AdoptionKind, CorrectMinutes, GetMinutesPdf, GetMinutesVersion, PublishMinutes, SaveMinutesDraft,
    )

    view = await open_draft(h, sid, actor)
    view = await h.rpc(SaveMinutesDraft(actor_id=actor, minutes_id=view.minutes_id, markdown=text,
                                        base_revision=view.revision))
    mid = view.minutes_id
    accepted, served, pdf_bytes = [], [], 0
    for i in range(samples):
        t0 = time.perf_counter()
        if i == 0:
            v = await h.rpc(PublishMinutes(actor_id=actor, minutes_id=mid, adoption=AdoptionKind.NONE,
                                           base_revision=view.revision, request_id=uuid.uuid4().hex))
        else:
            text = text.replace("(paragraphe 7)", f"(paragraphe 7, rectifié {i})", 1) if i == 1 else \
                text.replace(f"rectifié {i - 1})", f"rectifié {i})", 1)
            v = await h.rpc(CorrectMinutes(actor_id=actor, minutes_id=mid, markdown=text,
                                           reason=f"Correction n° {i} demandée en séance suivante.",
                                           request_id=uuid.uuid4().hex))
        t_acc = time.perf_counter()
        version = v.versions[-1].version
        page = await h.rpc(GetMinutesVersion(minutes_id=mid, version=version))
        pdf = await h.rpc(GetMinutesPdf(minutes_id=mid, version=version))
        pdf_bytes = len(base64.b64decode(pdf.pdf))  # the web front decodes it before sending it
        t1 = time.perf_counter()
        if page.version != version or pdf.sha256 != page.sha256:
            raise RuntimeError(f"version {version}: page and PDF disagree")
        accepted.append(t_acc - t0)
        served.append(t1 - t0)
    return {"versions": samples, "paragraphs": len(page.paragraphs), "pdf_bytes": pdf_bytes,
            "accepted": latency_summary(accepted), "served": latency_summary(served)}


# ---------------------------------------------------------------- floor
def floor_work(samples: int, text: str) -> dict[str, Any]:
    """The unavoidable work of one publication, in this process, on the same text."""
    from datetime import UTC, datetime

    from forumlib.markdown import render_paragraphs
    from forumlib.minutes_doc import canonical_document, document_sha256, split_paragraphs
    from services.minutes.pdf import render_pdf

    meta = {"schema": 1, "minutes_id": "m-bench", "version": 1, "published_at": "2030-01-01T00:00:00Z",
            "adoption": {"kind": "none"}, "reason": None}
    doc, html_t, pdf_t = [], [], []
    for _ in range(samples):
        t0 = time.perf_counter()
        paragraphs = split_paragraphs(text)
        sha = document_sha256(canonical_document(meta, paragraphs))
        t1 = time.perf_counter()
        html = str(render_paragraphs(paragraphs))
        t2 = time.perf_counter()
        render_pdf(title="Compte rendu — Plénière de printemps", session_label="Séance plénière", version=1,
                   published_at=datetime.now(UTC), sha256=sha, body_html=html, status_label="publié")
        t3 = time.perf_counter()
        doc.append(t1 - t0)
        html_t.append(t2 - t1)
        pdf_t.append(t3 - t2)
    return {"doc": latency_summary(doc), "html": latency_summary(html_t), "pdf": latency_summary(pdf_t)}


# ---------------------------------------------------------------- run
async def run(quick: bool, database_url: str | None) -> dict[str, Any]:
    from shared.migrations import upgrade

    cfg = QUICK if quick else FULL
    text = draft_text()
    r: dict[str, Any] = {"quick": quick, "chars": len(text), "cpus": os.cpu_count(),
                         "python": sys.version.split()[0], "load_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="bench-minutes-") as tmp, nats_server() as nats_url, \
            database(database_url, Path(tmp)) as db_url:
        r["database"] = "postgresql" if db_url.startswith("postgresql") else "sqlite"
        await asyncio.to_thread(upgrade, "minutes", db_url)
        async with running_minutes(Path(tmp), nats_url, db_url) as h:
            sid, actor = await held_session(h)
            print(f"floor: in-process document + PDF ({cfg['floor']} times)…", flush=True)
            floor_work(1, text)  # warm-up: WeasyPrint loads its fonts on first use
            r["floor"] = floor_work(cfg["floor"], text)
            await h.rpc.health("minutes")
            r["rpc"] = await timed(cfg["rpc"], lambda: h.rpc.health("minutes"))
            print(f"publish + {cfg['samples'] - 1} corrections, each read back as page and PDF…", flush=True)
            r["publish"] = await publish_to_public(h, sid, actor, cfg["samples"], text)
    r["load_end"] = os.getloadavg()[0]
    return r


def report(r: dict[str, Any]) -> str:
    def lat(d: dict[str, Any]) -> str:
        return f"p50 {fmt(d['p50_ms'], digits=1)} / p95 {fmt(d['p95_ms'], digits=1)} ms"

    f, p = r["floor"], r["publish"]
    floor50 = f["doc"]["p50_ms"] + f["html"]["p50_ms"] + f["pdf"]["p50_ms"] + r["rpc"]["p50_ms"]
    floor95 = f["doc"]["p95_ms"] + f["html"]["p95_ms"] + f["pdf"]["p95_ms"] + r["rpc"]["p95_ms"]
    rows: list[tuple[str, str | None]] = [
        (f"machine: {r['cpus']} CPUs, Python {r['python']}, database {r['database']}, "
         f"load average {r['load_start']:.1f} -> {r['load_end']:.1f}", None),
        (f"draft: {r['chars']:,} characters, {p['paragraphs']} blocks, PDF {p['pdf_bytes']:,} bytes", None),
        (f"publish-to-public, {p['versions']} versions (1 publication, then corrections)", None),
        ("  command accepted (PublishMinutes / CorrectMinutes answered)", lat(p["accepted"])),
        ("  served (+ GetMinutesVersion + GetMinutesPdf answered)", lat(p["served"])),
        ("floor, same run", None),
        ("  split + canonical JSON + SHA-256 (in-process)", lat(f["doc"])),
        ("  HTML of the paragraphs (in-process)", lat(f["html"])),
        ("  render_pdf (in-process)", lat(f["pdf"])),
        ("  one RPC round trip (rpc.health: NATS + trivial DB read)", lat(r["rpc"])),
        ("  floor = sum of the above", f"p50 {floor50:,.1f} / p95 {floor95:,.1f} ms"),
        ("ratio served / floor (p50)", f"{p['served']['p50_ms'] / floor50:.2f} x"),
    ]
    return table(rows, title="Forum ouvert — minutes: publish-to-public benchmark")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.minutes", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 versions instead of 20")
    ap.add_argument("--database-url", default=os.environ.get("FORUM_BENCH_DATABASE_URL"),
                    help="PostgreSQL URL (a scratch schema is used); default: a SQLite file")
    args = ap.parse_args(argv)
    os.environ.setdefault("FORUM_LOG_LEVEL", "WARNING")
    t0 = time.perf_counter()
    results = asyncio.run(run(args.quick, args.database_url))
    print(report(results))
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
