"""Seed the forum's databases with years of activity, fast: bulk INSERTs straight into each service's own
tables (the services are not running yet), for `bench/pages.py`.

What a forum a few years old holds, by default: 20,000 members in the registry (and the forum's
projection of them), 2,000 sessions (a tenth upcoming, 3 % cancelled) with their agendas, RSVPs and
check-ins, 10,000 decisions (a tenth from online votes, 2 % corrected, half with a follow-up), the votes
they came from, published comptes rendus for most past sessions (a tenth corrected once) with the
minutes service's projections of sessions, decisions and votes, and the public record: one leaf per
public fact, appended with the minutes service's own `store.append` (so the tree, its nodes and head are
exactly what the consumers would have written; the checkpoint signer signs it when the service starts).

Rows are made from a fixed random seed: two runs seed the same forum (only the ids and the clock differ).
"""
from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, create_engine, text

from shared.db import sync_url

COLLEGES = ("public_actor", "civil_society", "citizen")
THEMES = ("health", "ecological_transition", "education", "democratic_renewal", "transparency", "open_data",
          "justice")
GRADES = ("excellent", "tres_bien", "bien", "assez_bien", "passable", "insuffisant", "a_rejeter")
WORDS = ("transparence participation engagement administration collectivité données ouvertes plan action "
         "national concertation évaluation redevabilité budget citoyen association société civile numérique "
         "santé éducation justice climat énergie logement mobilité accessibilité inclusion archives marché "
         "public algorithme publication registre indicateur rapport suivi calendrier").split()
AGENDA = ("Accueil et adoption de l'ordre du jour", "Point d'étape des engagements", "Présentation des travaux",
          "Débat et propositions", "Questions diverses")
FIRST = ("Camille", "Dominique", "Claude", "Sacha", "Alix", "Morgane", "Yanis", "Inès", "Hugo", "Léa")
LAST = ("Martin", "Bernard", "Durand", "Lefebvre", "Moreau", "Garnier", "Chevalier", "Roux", "Fournier", "Morel")


@dataclass
class Volumes:
    members: int = 20_000
    sessions: int = 2_000
    decisions: int = 10_000

    @property
    def votes(self) -> int:
        return self.decisions // 10


@dataclass
class Seeded:
    """What the load phase needs to know about the seeded forum."""

    decision_ids: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(WORDS, k=n))


def _ts(value: datetime) -> str:
    """The public record's one textual form of an instant."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _chunks(rows: list[dict[str, Any]], size: int = 5_000) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def _insert(url: str, tables: Iterable[tuple[Table, list[dict[str, Any]]]]) -> dict[str, int]:
    """Bulk INSERTs (executemany) in one transaction per service, then what autovacuum would have done
    since on a database that has lived: statistics, and (PostgreSQL) the visibility map that lets
    index-only scans skip the table."""
    engine = create_engine(sync_url(url))
    counts: dict[str, int] = {}
    try:
        with engine.begin() as conn:
            for table, rows in tables:
                for chunk in _chunks(rows):
                    conn.execute(table.insert(), chunk)
                counts[table.name] = len(rows)
        settle = "VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            for name in counts:  # this service's tables only: the server may hold other schemas
                conn.execute(text(f'{settle} "{name}"'))
    finally:
        engine.dispose()
    return counts


# ================================================================ the forum as it happened
@dataclass
class World:
    """Everything seeded, as plain rows per table, plus the public facts in order."""

    now: datetime
    registry: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    forum: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    minutes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    facts: list[tuple[datetime, str, str, dict[str, Any]]] = field(default_factory=list)  # at, type, event, data

    def add(self, service: str, table: str, row: dict[str, Any]) -> dict[str, Any]:
        getattr(self, service).setdefault(table, []).append(row)
        return row

    def fact(self, at: datetime, kind: str, data: dict[str, Any], rng: random.Random) -> str:
        event_id = _uuid(rng)
        self.facts.append((at, kind, event_id, data))
        return event_id


def _members(w: World, v: Volumes, rng: random.Random) -> list[tuple[str, str]]:
    """Registry members and the forum's projection; returns (member_id, college) of the approved ones."""
    start = w.now - timedelta(days=4 * 365)
    approved = []
    for i in range(v.members):
        mid, public_id = _uuid(rng), uuid.UUID(int=rng.getrandbits(128)).hex[:16]
        college = COLLEGES[i % 3]
        status = ("rejected" if i % 40 == 0 else "pending_verification" if i % 20 == 1
                  else "pending_approval" if i % 10 == 2 else "approved")
        at = start + timedelta(seconds=i * (4 * 365 * 86400) / max(1, v.members))
        name = f"{FIRST[i % 10]} {LAST[(i // 10) % 10]} {i}"
        org = f"Association {LAST[i % 10]} {i % 300}" if college != "citizen" else ""
        decided = at + timedelta(days=2) if status in ("approved", "rejected") else None
        w.add("registry", "member", dict(
            id=mid, public_id=public_id, full_name=name, email=f"membre-{i}@bench.example.org", organisation=org,
            college=college, role="member", status=status, charter_accepted_at=at,
            rejection_reason="Hors du périmètre du forum." if status == "rejected" else None,
            decided_by=None, registered_at=at, verified_at=at + timedelta(hours=1) if status != "pending_verification"
            else None, decided_at=decided, erased_at=None))
        w.add("forum", "forum_member", dict(
            member_id=mid, public_id=public_id, college=college, role="member",
            standing="approved" if status == "approved" else "registered", full_name=name, organisation=org,
            updated_at=decided or at))
        if status == "approved":
            approved.append((mid, college))
            w.fact(decided or at, "member.approved", {"public_id": public_id, "college": college}, rng)
    return approved


def _sessions(w: World, v: Volumes, rng: random.Random, members: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Sessions with agenda, RSVPs and check-ins: a tenth upcoming, the rest spread over four years."""
    upcoming = max(1, v.sessions // 10)
    past = v.sessions - upcoming
    out = []
    for i in range(v.sessions):
        if i < past:
            starts = w.now - timedelta(days=4 * 365) + timedelta(seconds=i * (4 * 365 - 2) * 86400 / max(1, past))
        else:
            starts = w.now + timedelta(days=1) + timedelta(seconds=(i - past) * 180 * 86400 / upcoming)
        starts = starts.replace(minute=0, second=0, microsecond=0)
        kind = "plenary" if i % 5 == 0 else "working_group"
        theme = None if kind == "plenary" else THEMES[i % len(THEMES)]
        cancelled = i % 33 == 7
        sid = _uuid(rng)
        agenda = list(AGENDA[:3 + i % 3])
        s = w.add("forum", "forum_session", dict(
            id=sid, revision=1 if cancelled else 0, status="cancelled" if cancelled else "scheduled",
            title=f"{'Plénière' if kind == 'plenary' else 'Groupe de travail'} n° {i + 1} — {_words(rng, 3)}",
            kind=kind, theme=theme, description=f"Séance du forum ouvert : {_words(rng, 40)}.",
            starts_at=starts, ends_at=starts + timedelta(hours=3), place="CESE, 9 place d'Iéna, Paris",
            online_url="https://visio.example.org/forum", capacity=60 + (i % 5) * 20,
            rsvp_opens_at=starts - timedelta(days=30), rsvp_closes_at=starts - timedelta(days=1), waitlist_seq=0,
            cancel_reason="Report demandé par les participants." if cancelled else None,
            cancelled_at=starts - timedelta(days=3) if cancelled else None, created_by="secretariat",
            created_at=starts - timedelta(days=40), updated_at=starts - timedelta(days=40)))
        s["_agenda"] = agenda
        if i >= past:
            s["waitlist_seq"] = 4  # the next ticket, past the four waitlisted below
        for pos, item in enumerate(agenda, start=1):
            w.add("forum", "forum_agenda_item", dict(session_id=sid, position=pos, text=item))
        seated = rng.sample(members, min(len(members), 24))
        for k, (mid, college) in enumerate(seated):
            state = "confirmed" if k < 20 else "waitlisted" if i >= past else "declined"
            w.add("forum", "forum_rsvp", dict(
                session_id=sid, member_id=mid, state=state, waitlist_seq=k - 19 if state == "waitlisted" else None,
                responded_at=starts - timedelta(days=10, minutes=k), confirmed_at=starts - timedelta(days=10)
                if state == "confirmed" else None, updated_at=starts - timedelta(days=10)))
            if i < past and not cancelled and k < 16:
                w.add("forum", "forum_attendance", dict(session_id=sid, member_id=mid, college=college, walk_in=False,
                                                        recorded_by="secretariat", recorded_at=starts))
        info = _session_info(s)
        w.fact(s["created_at"], "session.scheduled", {"session": info | {"status": "scheduled", "revision": 0,
                                                                         "cancel_reason": None}}, rng)
        if cancelled:
            w.fact(s["cancelled_at"], "session.cancelled", {"session": info, "reason": s["cancel_reason"]}, rng)
        w.add("minutes", "minutes_session", dict(
            session_id=sid, revision=s["revision"], status=s["status"], title=s["title"], kind=kind, theme=theme,
            starts_at=starts, ends_at=s["ends_at"], place=s["place"], online_url=s["online_url"],
            agenda=json.dumps(agenda, ensure_ascii=False)))
        out.append(s)
    return out


def _session_info(s: dict[str, Any]) -> dict[str, Any]:
    return {"session_id": s["id"], "revision": s["revision"], "status": s["status"], "title": s["title"],
            "kind": s["kind"], "theme": s["theme"], "description": s["description"], "starts_at": _ts(s["starts_at"]),
            "ends_at": _ts(s["ends_at"]), "place": s["place"], "online_url": s["online_url"],
            "capacity": s["capacity"], "rsvp_opens_at": _ts(s["rsvp_opens_at"]),
            "rsvp_closes_at": _ts(s["rsvp_closes_at"]), "agenda": s["_agenda"], "cancel_reason": s["cancel_reason"],
            "updated_at": _ts(s["updated_at"])}


RULE_CHECK = {"rule": {"kind": "plenary", "quorum": {}, "double_majority": False}, "quorum": [], "quorum_met": True,
              "majority": [{"side": None, "in_favour": 12, "against": 3, "abstain": 1, "met": True}],
              "majority_met": True, "met": True, "summary": "Pas de quorum requis ; majorité simple atteinte."}


def _vote(w: World, rng: random.Random, s: dict[str, Any], position: int, at: datetime,
          eligible: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A closed majority-judgment vote on an agenda item, and its public vote info."""
    vid = _uuid(rng)
    labels = ["Pour la proposition", "Pour une version amendée", "Contre"]
    ballots = 40 + rng.randrange(60)
    options = []
    for rank, (oid, label) in enumerate(zip((1, 2, 3), labels, strict=True), start=1):
        counts = [rng.randrange(ballots // 3 + 1) for _ in GRADES]
        options.append({"option_id": oid, "label": label, "rank": rank, "majority_grade": GRADES[rank],
                        "profile": [{"grade": g, "count": c} for g, c in zip(GRADES, counts, strict=True)]})
    result = {"ballots": ballots, "eligible": eligible, "participation": {c: ballots // 3 for c in COLLEGES},
              "options": options, "winner_option_id": 1, "tie": False}
    info = {"vote_id": vid, "session_id": s["id"], "agenda_position": position,
            "agenda_text": s["_agenda"][position - 1], "question": f"Quelle suite donner au point {position} ?",
            "options": [{"option_id": i, "label": t} for i, t in enumerate(labels, start=1)], "grades": list(GRADES),
            "eligibility": "approved_members", "opens_at": _ts(at - timedelta(days=7)), "closes_at": _ts(at)}
    row = w.add("forum", "forum_vote", dict(
        id=vid, session_id=s["id"], agenda_position=position, agenda_text=info["agenda_text"],
        question=info["question"], options=json.dumps(labels, ensure_ascii=False), eligibility="approved_members",
        opens_at=at - timedelta(days=7), closes_at=at, created_by="secretariat", created_at=at - timedelta(days=7),
        opened_event_id=w.fact(at - timedelta(days=7), "vote.opened", {"vote": info}, rng), closed_at=at,
        result=json.dumps(result, ensure_ascii=False), closed_event_id="", decision_id=None))
    for k in range(10):  # who voted (never what): participation per college
        w.add("forum", "forum_voter", dict(vote_id=vid, member_id=_uuid(rng), college=COLLEGES[k % 3],
                                           voted_at=at - timedelta(hours=k)))
    row["_info"], row["_result"] = info, result
    return row, info


def _decisions(w: World, v: Volumes, rng: random.Random, sessions: list[dict[str, Any]], eligible: int) -> None:
    """Decisions over the past sessions that took place: a tenth from online votes, 2 % corrected later
    in the same session, half with a follow-up; the counter of each year as the forum keeps it."""
    held = [s for s in sessions if s["starts_at"] < w.now - timedelta(days=1) and s["status"] == "scheduled"]
    counters: dict[int, int] = {}
    commitments = [(str(c), f"Engagement {c} du plan d'action : {_words(rng, 5)}") for c in range(1, 41)]
    for code, title in commitments:
        w.add("forum", "forum_commitment", dict(code=code, title=title, plan="2024-2026", updated_at=w.now))
    previous: dict[str, Any] | None = None
    for i in range(v.decisions):
        s = held[i * len(held) // v.decisions]
        at = s["starts_at"] + timedelta(hours=1, minutes=i % 100)
        counters[at.year] = counters.get(at.year, 0) + 1
        did, number = _uuid(rng), f"{at.year}-{counters[at.year]:03d}"
        position = 1 + i % len(s["_agenda"])
        vote = None
        if i % 10 == 3:
            vote, _ = _vote(w, rng, s, position, at, eligible)
        method = "online_vote" if vote else ("consensus" if i % 2 else "show_of_hands")
        hands = None if method != "show_of_hands" else {c: {"in_favour": 5, "against": 1, "abstain": 0}
                                                        for c in COLLEGES}
        code, ctitle = commitments[i % 40] if i % 3 else (None, None)
        supersedes = previous["id"] if previous and i % 50 == 0 and previous["session_id"] == s["id"] else None
        info = {"decision_id": did, "number": number, "session_id": s["id"], "session_title": s["title"],
                "session_kind": s["kind"], "agenda_position": position, "agenda_text": s["_agenda"][position - 1],
                "title": f"Décision sur {_words(rng, 4)}",
                "text": f"Le forum {_words(rng, 60)}.\n\n- {_words(rng, 12)}\n- {_words(rng, 12)}", "outcome": ("adopted", "rejected", "deferred")[i % 7 % 3], "method": method,
                "hands": hands, "vote_id": vote["id"] if vote else None,
                "commitment": {"code": code, "title": ctitle} if code else None, "supersedes": supersedes,
                "rule_check": RULE_CHECK, "recorded_at": _ts(at)}
        if vote:
            vote["decision_id"] = did
            vote["closed_event_id"] = w.fact(at, "vote.closed", {"vote": vote["_info"], "closed_at": _ts(at),
                                                                 "result": vote["_result"], "decision_id": did}, rng)
        d = w.add("forum", "forum_decision", dict(
            id=did, number=number, session_id=s["id"], session_title=s["title"], session_kind=s["kind"],
            agenda_position=position, agenda_text=info["agenda_text"], title=info["title"], text=info["text"],
            outcome=info["outcome"], method=method, hands=json.dumps(hands) if hands else None, vote_id=info["vote_id"],
            commitment_code=code, commitment_title=ctitle, supersedes=supersedes, superseded_by=None,
            superseded_at=None, superseded_event_id=None, rule_check=json.dumps(RULE_CHECK, ensure_ascii=False),
            follow_up="todo", recorded_by="secretariat", recorded_at=at,
            event_id=w.fact(at, "decision.recorded", {"decision": info}, rng)))
        if supersedes and previous is not None:
            previous["superseded_by"], previous["superseded_at"] = did, at
            previous["superseded_event_id"] = w.fact(at, "decision.superseded", {
                "decision_id": supersedes, "superseded_by": did, "superseded_at": _ts(at)}, rng)
        for seq, status in enumerate(("in_progress", "done")[:1 + (i % 10 == 0)] if i % 2 == 0 else (), start=1):
            when = at + timedelta(days=30 * seq)
            note = f"Avancement : {_words(rng, 10)}."
            w.add("forum", "forum_follow_up", dict(
                decision_id=did, seq=seq, status=status, note=note, updated_at=when, updated_by="secretariat",
                event_id=w.fact(when, "decision.follow_up_updated", {"decision_id": did, "status": status,
                                                                     "note": note, "updated_at": _ts(when)}, rng)))
            d["follow_up"] = status
        previous = d
    for year, last in counters.items():
        w.add("forum", "forum_decision_counter", dict(year=year, last=last))
    for d in w.forum["forum_decision"]:
        w.add("minutes", "minutes_decision", dict(
            decision_id=d["id"], number=d["number"], session_id=d["session_id"], agenda_position=d["agenda_position"],
            agenda_text=d["agenda_text"], title=d["title"], outcome=d["outcome"], method=d["method"],
            vote_id=d["vote_id"], commitment_code=d["commitment_code"], commitment_title=d["commitment_title"],
            recorded_at=d["recorded_at"], event_id=d["event_id"], superseded_by=d["superseded_by"],
            superseded_event_id=d["superseded_event_id"]))
    for vt in w.forum.get("forum_vote", []):
        r = vt["_result"]
        w.add("minutes", "minutes_vote", dict(
            vote_id=vt["id"], session_id=vt["session_id"], agenda_position=vt["agenda_position"],
            agenda_text=vt["agenda_text"], question=vt["question"], eligibility=vt["eligibility"],
            closed_at=vt["closed_at"], ballots=r["ballots"], eligible=r["eligible"],
            winner_label=r["options"][0]["label"], winner_grade=r["options"][0]["majority_grade"], tie=False,
            decision_id=vt["decision_id"], event_id=vt["closed_event_id"]))


def _blocks(rng: random.Random, s: dict[str, Any], decisions: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The blocks of a compte rendu as (kind, Markdown, HTML): headings, prose, and one line per decision
    linking its page, as the pre-filled draft has them. Written here rather than parsed and rendered by
    markdown-it (that took half a minute for 1,700 documents): the blocks are simple enough to write both."""
    from markupsafe import escape

    out = [("heading", f"# Compte rendu — {s['title']}", f"<h2>{escape('Compte rendu — ' + s['title'])}</h2>")]
    text = f"Présents : {_words(rng, 20)}."
    out.append(("paragraph", text, f"<p>{escape(text)}</p>"))
    for pos, item in enumerate(s["_agenda"], start=1):
        title, text = f"Point {pos} : {item}", f"{_words(rng, 80)}."
        out += [("heading", f"## {title}", f"<h3>{escape(title)}</h3>"), ("paragraph", text, f"<p>{escape(text)}</p>")]
    for d in decisions:
        label, rest = f"n° {d['number']}", f" : {d['title']}."
        out.append(("paragraph", f"Décision [{label}](/decisions/{d['id']}){rest}",
                    f'<p>Décision <a href="/decisions/{d["id"]}">{escape(label)}</a>{escape(rest)}</p>'))
    return out


def _open_votes(w: World, rng: random.Random, sessions: list[dict[str, Any]]) -> None:
    """A few votes under way (open, with ballots) and to come, on upcoming sessions, as any day has."""
    upcoming = [s for s in sessions if s["starts_at"] > w.now and s["status"] == "scheduled"][:5]
    for k, s in enumerate(upcoming):
        opens = w.now - timedelta(days=1) if k < 3 else w.now + timedelta(days=2)
        vid = _uuid(rng)
        labels = ["Option A", "Option B", "Option C"]
        info = {"vote_id": vid, "session_id": s["id"], "agenda_position": 1, "agenda_text": s["_agenda"][0],
                "question": f"Quelle priorité pour le groupe {k + 1} ?",
                "options": [{"option_id": i, "label": t} for i, t in enumerate(labels, start=1)],
                "grades": list(GRADES), "eligibility": "approved_members", "opens_at": _ts(opens),
                "closes_at": _ts(opens + timedelta(days=6))}
        w.add("forum", "forum_vote", dict(
            id=vid, session_id=s["id"], agenda_position=1, agenda_text=info["agenda_text"], question=info["question"],
            options=json.dumps(labels, ensure_ascii=False), eligibility="approved_members", opens_at=opens,
            closes_at=opens + timedelta(days=6), created_by="secretariat", created_at=opens, closed_at=None,
            opened_event_id=w.fact(opens, "vote.opened", {"vote": info}, rng), result=None, closed_event_id=None,
            decision_id=None))
        for j in range(30 if opens < w.now else 0):
            mid = _uuid(rng)
            w.add("forum", "forum_voter", dict(vote_id=vid, member_id=mid, college=COLLEGES[j % 3], voted_at=w.now))
            w.add("forum", "forum_ballot", dict(vote_id=vid, member_id=mid, cast_at=w.now,
                                                grades=json.dumps({"1": "bien", "2": "passable", "3": "excellent"})))


def _minutes(w: World, rng: random.Random, sessions: list[dict[str, Any]]) -> None:
    """Published comptes rendus of nine past sessions in ten (one in ten corrected once), each naming
    and linking the session's decisions as the pre-filled draft does."""
    from forumlib.minutes_doc import Paragraph, anchor_base, canonical_document, document_sha256
    from services.minutes.models import SessionFact
    from services.minutes.publication import document_meta
    from shared.contracts.minutes import Adoption, AdoptionKind

    by_session: dict[str, list[dict[str, Any]]] = {}
    for d in w.forum.get("forum_decision", []):
        by_session.setdefault(d["session_id"], []).append(d)
    adoption = Adoption(kind=AdoptionKind.NONE)
    held = (x for x in sessions if x["ends_at"] < w.now - timedelta(days=7) and x["status"] == "scheduled")
    for i, s in enumerate(held):
        if i % 10 == 9:
            continue  # not written up yet
        mid = _uuid(rng)
        fact = SessionFact(session_id=s["id"], revision=0, status="scheduled", title=s["title"], kind=s["kind"],
                           theme=s["theme"], starts_at=s["starts_at"], ends_at=s["ends_at"], place=s["place"])
        blocks = _blocks(rng, s, by_session.get(s["id"], []))
        versions = 2 if i % 10 == 4 else 1
        published = s["ends_at"] + timedelta(days=5)
        for version in range(1, versions + 1):
            if version > 1:
                text = f"Correction : {_words(rng, 10)}."
                blocks = [*blocks, ("paragraph", text, f"<p>{text}</p>")]
            paragraphs = [Paragraph(anchor=anchor_base(md), kind=kind, markdown=md) for kind, md, _ in blocks]
            at = published + timedelta(days=10 * (version - 1))
            reason = "Orthographe d'un nom corrigée." if version > 1 else None
            canonical = canonical_document(document_meta(mid, fact, version, at, adoption, reason), paragraphs)
            sha = document_sha256(canonical)
            event_id = w.fact(at, "minutes.published" if version == 1 else "minutes.corrected", {
                "minutes_id": mid, "session_id": s["id"], "version": version, "sha256": sha, "published_at": _ts(at),
                "adoption": adoption.model_dump(mode="json"), "reason": reason}, rng)
            w.add("minutes", "minutes_version", dict(
                minutes_id=mid, version=version, markdown="\n\n".join(md for _, md, _ in blocks),
                paragraphs=json.dumps([{"anchor": p.anchor, "kind": p.kind, "markdown": p.markdown}
                                       for p in paragraphs], ensure_ascii=False),
                canonical=canonical, sha256=sha,
                html="\n".join(f'<div class="cr-para" id="{p.anchor}">{h}</div>'
                               for p, (_, _, h) in zip(paragraphs, blocks, strict=True)),
                pdf=b"%PDF-1.7\n% placeholder: lists never read the PDF\n", published_at=at, published_by="secretariat",
                reason=reason, adoption=adoption.model_dump_json(), request_id=None, event_id=event_id))
        w.add("minutes", "minutes_doc", dict(
            id=mid, session_id=s["id"], status="published", markdown="\n\n".join(md for _, md, _ in blocks),
            revision=1, review_until=None, reviewed=False, latest_version=versions, adoption_kind="none",
            created_by="secretariat", created_at=s["ends_at"], updated_by="secretariat", updated_at=published))


def build(v: Volumes, now: datetime | None = None, seed: int = 7) -> World:
    rng = random.Random(seed)
    w = World(now=now or datetime.now(UTC))
    members = _members(w, v, rng)
    sessions = _sessions(w, v, rng, members)
    _decisions(w, v, rng, sessions, eligible=len(members))
    _open_votes(w, rng, sessions)
    _minutes(w, rng, sessions)
    return w


# ================================================================ writing it
def _tables(metadata_tables: dict[str, Table], rows: dict[str, list[dict[str, Any]]],
            order: list[str]) -> list[tuple[Table, list[dict[str, Any]]]]:
    out = []
    for name in order:
        table = metadata_tables[name]
        keep = [c.name for c in table.columns]
        out.append((table, [{k: r[k] for k in keep} for r in rows.get(name, [])]))
    return out


async def _append_record(url: str, w: World) -> int:
    """The public facts, in the order they happened, through the minutes service's own append."""
    from services.minutes import store
    from services.minutes.records import make_record
    from shared.db import Database

    facts = sorted(w.facts, key=lambda f: f[0])
    db = Database(url)
    try:
        for i in range(0, len(facts), 2_000):
            items = [store.Pending(e, kind, make_record(kind, e, at, data)) for at, kind, e, data in facts[i:i + 2_000]]
            async with db.transaction() as tx:
                await store.append(tx, items)
    finally:
        await db.dispose()
    return len(facts)


def seed(urls: dict[str, str], v: Volumes, now: datetime | None = None) -> Seeded:
    """Write the seeded forum into the (migrated, not yet served) databases `urls[service]`."""
    from services.forum import models as fm
    from services.minutes import models as mm
    from services.registry import models as rm
    from sqlmodel import SQLModel

    out = Seeded()
    t = time.perf_counter()
    w = build(v, now)
    out.seconds["build rows in Python"] = time.perf_counter() - t
    tables = SQLModel.metadata.tables
    plan = {
        "registry": ["member"],
        "forum": [fm.ForumMember.__tablename__, "forum_session", "forum_agenda_item", "forum_rsvp", "forum_attendance",
                  "forum_commitment", "forum_vote", "forum_voter", "forum_ballot", "forum_decision", "forum_follow_up",
                  "forum_decision_counter"],
        "minutes": [mm.SessionFact.__tablename__, "minutes_decision", "minutes_vote", "minutes_doc",
                    "minutes_version"],
    }
    assert rm.Member.__tablename__ == "member"
    for service, order in plan.items():
        t = time.perf_counter()
        out.counts.update(_insert(urls[service], _tables(dict(tables), getattr(w, service), order)))
        out.seconds[f"insert {service}"] = time.perf_counter() - t
    t = time.perf_counter()
    out.counts["ledger leaves"] = asyncio.run(_append_record(urls["minutes"], w))
    out.seconds["append the public record"] = time.perf_counter() - t
    out.decision_ids = [d["id"] for d in w.forum["forum_decision"]]
    return out
