"""The public pages of decisions and of the public record, against a fake forum whose ledger is real
(an in-memory RFC 9162 tree with a signed checkpoint, built with the ledger code): Markdown
sanitising, the server-side inclusion proof check (and what makes it fail), the explorer, one record,
« Vérifier le registre », the decision register and its open data exports, a decision's page, and the
French 400/404 pages. No NATS: the web front's RPC client is replaced by `FakeForum`.

Long because each page is checked with its failure cases beside it."""
from __future__ import annotations

import base64
import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from forumlib.markdown import render_markdown
from forumlib.tlog import (
    Checkpoint, MemoryNodeStore, Signer, generate_key, leaf_hash, parse_signer_key, record_leaf_bytes,
    sign_checkpoint,
)
from services.minutes.records import make_record, public_json
from services.web.routes.record import Proof, check_inclusion, describe, record_label, subject_link
from shared.contracts.common import ErrorBody, ErrorCode, Request
from shared.contracts.decisions import (
    CommitmentList, CommitmentRef, CommitmentView, DecisionDetail, DecisionInfo, DecisionList, DecisionView,
    FollowUpEntry, FollowUpStatus, GradeCount, HandCount, Method, OptionResult, Outcome, QuorumLine, Rule, RuleCheck,
    VoteInfo, VoteOption, VoteResult, VoteStatus, VoteView, MajorityLine, Eligibility,
)
from services.forum import rules
from shared.contracts.forum import AttendanceCounts, SessionKind
from shared.contracts.minutes import (
    DecisionMinutes, EntryLocation, EntryLocations, EventRecords, InclusionProof, LedgerCheckpoint, LedgerEntries,
    LedgerEntry, LedgerKey,
)
from shared.contracts.registry import College
from forumlib.majority_judgment import GRADES, Grade
from shared.rpc import RpcError

ORIGIN = "forum.test/registre"
NOW = datetime(2026, 3, 5, 14, 3, 27, 123456, tzinfo=UTC)


# ================================================================ a small real ledger
class Ledger:
    def __init__(self, signer: Signer | None = None) -> None:
        skey, _ = generate_key(ORIGIN)
        self.signer = signer or parse_signer_key(skey)
        self.store = MemoryNodeStore()
        self.records: list[dict[str, Any]] = []
        self.leaves: list[bytes] = []
        self.signed_size = 0

    def append(self, record_type: str, event_id: str, data: dict[str, Any]) -> int:
        record = make_record(record_type, event_id, NOW, data)
        leaf = record_leaf_bytes(record)
        self.records.append(json.loads(leaf))
        self.leaves.append(leaf)
        self.store.append([leaf_hash(leaf)])
        return len(self.leaves) - 1

    def sign(self) -> None:
        self.signed_size = len(self.leaves)

    def checkpoint(self, size: int | None = None) -> LedgerCheckpoint:
        size = self.signed_size if size is None else size
        root = self.store.root(size)
        note = sign_checkpoint(Checkpoint(origin=ORIGIN, size=size, root_hash=root), self.signer)
        return LedgerCheckpoint(note=note, size=size, root=base64.b64encode(root).decode())

    @property
    def key(self) -> str:
        return self.signer.verifier.encode()

    def entry(self, i: int) -> LedgerEntry:
        return LedgerEntry(index=i, leaf=base64.b64encode(self.leaves[i]).decode(), record=self.records[i])

    def proof(self, i: int, size: int) -> InclusionProof:
        return InclusionProof(leaf_index=i, tree_size=size,
                              hashes=[base64.b64encode(h).decode() for h in self.store.inclusion_proof(i, size)])


# ================================================================ a decision as the forum answers it
def rule_check(met: bool = True) -> RuleCheck:
    return RuleCheck(rule=Rule(kind=SessionKind.PLENARY, quorum={College.PUBLIC_ACTOR: 2}, double_majority=True),
                     quorum=[QuorumLine(college=College.PUBLIC_ACTOR, required=2, present=3, met=True)],
                     quorum_met=True,
                     majority=[MajorityLine(side=None, in_favour=5, against=1, abstain=0, met=True)],
                     majority_met=True, met=met,
                     summary="Quorum atteint ; double majorité atteinte." if met else "Quorum non atteint.")


def decision(n: int = 1, *, text: str = "Le forum **adopte**.", method: Method = Method.SHOW_OF_HANDS,
             supersedes: str | None = None, outcome: Outcome = Outcome.ADOPTED) -> DecisionView:
    info = DecisionInfo(
        decision_id=str(uuid.uuid4()), number=f"2026-{n:03d}", session_id=str(uuid.uuid4()),
        session_title="Plénière de printemps", session_kind=SessionKind.PLENARY, agenda_position=2,
        agenda_text="Feuille de route", title=f"Feuille de route {n}", text=text, outcome=outcome, method=method,
        hands={College.PUBLIC_ACTOR: HandCount(in_favour=3, against=1)} if method == Method.SHOW_OF_HANDS else None,
        commitment=CommitmentRef(code="7", title="Ouvrir les données"), supersedes=supersedes,
        rule_check=rule_check(), recorded_at=NOW - timedelta(days=n))
    return DecisionView(decision=info, event_id=str(uuid.uuid4()), follow_up=FollowUpStatus.IN_PROGRESS,
                        follow_ups=[FollowUpEntry(status=FollowUpStatus.IN_PROGRESS, note="Lancé",
                                                  updated_at=NOW, event_id=str(uuid.uuid4()))])


def voted(n: int = 3) -> DecisionView:
    d = decision(n, method=Method.CONSENSUS)
    grades = list(GRADES)
    vinfo = VoteInfo(vote_id=str(uuid.uuid4()), session_id=d.decision.session_id, agenda_position=2,
                     agenda_text="Feuille de route", question="Quelle feuille de route ?",
                     options=[VoteOption(option_id=1, label="Option A"), VoteOption(option_id=2, label="Option B")],
                     grades=grades, eligibility=Eligibility.APPROVED_MEMBERS, opens_at=NOW - timedelta(days=1),
                     closes_at=NOW)

    def profile(counts: dict[Grade, int]) -> list[GradeCount]:
        return [GradeCount(grade=g, count=counts.get(g, 0)) for g in grades]

    result = VoteResult(ballots=3, eligible=5, participation={College.CITIZEN: 3}, winner_option_id=2, tie=False,
                        options=[OptionResult(option_id=2, label="Option B", rank=1, majority_grade=Grade.BIEN,
                                              profile=profile({Grade.BIEN: 2, Grade.EXCELLENT: 1})),
                                 OptionResult(option_id=1, label="Option A", rank=2, majority_grade=Grade.PASSABLE,
                                              profile=profile({Grade.PASSABLE: 3}))])
    vote = VoteView(vote=vinfo, status=VoteStatus.CLOSED, session_title="Plénière de printemps", ballots=3,
                    eligible=5, opened_event_id=str(uuid.uuid4()), closed_at=NOW, closed_event_id=str(uuid.uuid4()),
                    result=result, decision_id=d.decision.decision_id)
    info = d.decision.model_copy(update={"method": Method.ONLINE_VOTE, "vote_id": vinfo.vote_id})
    return d.model_copy(update={"decision": info, "vote": vote})


# ================================================================ the fake forum
class FakeForum:
    """Answers the RPCs the public pages send, from a list of decisions and a real ledger."""

    def __init__(self) -> None:
        self.ledger = Ledger()
        self.decisions: list[DecisionView] = []
        self.located: dict[str, int] = {}
        self.calls: list[tuple[str, Any]] = []
        self.present: list[College | None] = [College.PUBLIC_ACTOR] * 3  # checked in at every session
        approved = str(uuid.uuid4())  # every record is located by its event, as in the minutes service
        self.located[approved] = self.ledger.append("member.approved", approved, {"public_id": "0123456789abcdef",
                                                                                  "college": "citizen"})

    def add(self, d: DecisionView, *, in_log: bool = True) -> DecisionView:
        self.decisions.insert(0, d)
        if in_log:
            if d.vote:
                self.located[d.vote.opened_event_id] = self.ledger.append(
                    "vote.opened", d.vote.opened_event_id, {"vote": public_json(d.vote.vote)})
            self.located[d.event_id] = self.ledger.append("decision.recorded", d.event_id,
                                                          {"decision": public_json(d.decision)})
            for f in d.follow_ups:
                self.located[f.event_id] = self.ledger.append("decision.follow_up_updated", f.event_id, {
                    "decision_id": d.decision.decision_id, "status": f.status.value, "note": f.note,
                    "updated_at": public_json(f.updated_at)})
        return d

    def locations(self, event_ids: list[str]) -> list[EntryLocation]:
        found = sorted((self.located[e], e) for e in event_ids if e in self.located)
        return [EntryLocation(event_id=e, index=i, type=self.ledger.records[i]["type"]) for i, e in found]

    async def __call__(self, request: Request[Any], *, timeout: float | None = None) -> Any:
        op = request.OP.partition(".")[2]
        self.calls.append((op, request))
        lg = self.ledger
        if op == "ledger-key":
            return LedgerKey(key=lg.key, origin=ORIGIN)
        if op == "ledger-checkpoint":
            if lg.signed_size == 0:
                raise RpcError(ErrorBody(code=ErrorCode.UNAVAILABLE, message="no checkpoint"))
            return lg.checkpoint()
        if op == "ledger-entries":
            return LedgerEntries(entries=[lg.entry(i) for i in range(request.start, min(request.end, len(lg.leaves)))])
        if op == "ledger-inclusion":
            return lg.proof(request.index, request.size)
        if op == "ledger-locate":
            return EntryLocations(size=len(lg.leaves), locations=self.locations(request.event_ids))
        if op == "ledger-prove-events":
            cp = lg.checkpoint() if lg.signed_size else None
            index = self.located.get(request.prove)
            return EventRecords(locations=self.locations(request.event_ids), key=lg.key, checkpoint=cp,
                                entry=lg.entry(index) if index is not None else None,
                                proof=lg.proof(index, cp.size) if index is not None and cp and index < cp.size
                                else None)
        if op == "list-commitments":
            return CommitmentList(commitments=[CommitmentView(code="7", title="Ouvrir les données", plan="2024-2026",
                                                              decisions=1)])
        if op == "list-decisions":
            found = [d for d in self.decisions
                     if (request.session_id is None or d.decision.session_id == request.session_id)
                     and (request.outcome is None or d.decision.outcome == request.outcome)
                     and (request.include_superseded or not d.superseded_by)]
            return DecisionList(decisions=found[request.offset:request.offset + request.limit], total=len(found))
        if op == "get-decision":
            numbers = {d.decision.decision_id: d.decision.number for d in self.decisions}
            sheet = rules.attendance_by_college(self.present)  # the session's check-in sheet today
            for d in self.decisions:
                if d.decision.decision_id == request.decision_id:
                    return DecisionDetail(
                        **dict(d), supersedes_number=numbers.get(d.decision.supersedes or ""),
                        superseded_by_number=numbers.get(d.superseded_by or ""),
                        attendance_now=AttendanceCounts(session_id=d.decision.session_id, total=len(self.present),
                                                        final=True, by_college=sheet))
            raise RpcError(ErrorBody(code=ErrorCode.NOT_FOUND, message="Décision inconnue."))
        if op == "get-member":
            raise RpcError(ErrorBody(code=ErrorCode.NOT_FOUND, message="Membre inconnu."))
        if op == "minutes-of-decision":  # no minutes published for these sessions
            return DecisionMinutes(decision_id=request.decision_id)
        raise AssertionError(f"unexpected RPC {op}")


@pytest.fixture
def forum() -> FakeForum:
    return FakeForum()


@pytest.fixture
async def web(forum: FakeForum, tmp_path: Path):  # noqa: ANN201
    from services.web.app import create_app
    from shared.settings import Settings

    # The fake forum changes behind the web front's back, and the tests read the page again at once.
    app = create_app(Settings(secret_key="k" * 40, data_dir=tmp_path, public_url="https://forum.example.fr",
                              page_cache_seconds=0))
    app.state.web.rpc = forum
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://forum.test") as c:
        yield c


# ================================================================ Markdown
@pytest.mark.parametrize("source", [
    "<script>alert(1)</script>",
    "Bonjour <img src=x onerror=alert(1)>",
    "<div onclick=\"alert(1)\">clic</div>",
    "<iframe src=https://evil.example></iframe>",
    "[clic](javascript:alert(1))",
    "[clic](JaVaScRiPt:alert(1))",
    "[clic](data:text/html;base64,PHNjcmlwdD4=)",
    "<a href=\"javascript:alert(1)\">x</a>",
    "![x](javascript:alert(1))",
    "<style>body{display:none}</style>",
])
def test_markdown_lets_no_raw_html_or_script_through(source: str) -> None:
    html = str(render_markdown(source))
    tags = _tags(html)
    assert {t for t, _ in tags} <= {"p", "a"}, html  # every raw tag became text
    for _, attrs in tags:
        assert all(not k.startswith("on") for k in attrs), html
        assert not (attrs.get("href") or "").lower().startswith(("javascript", "data")), html


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    from html.parser import HTMLParser

    found: list[tuple[str, dict[str, str | None]]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, dict(attrs)))

    Collect().feed(html)
    return found


def test_markdown_renders_the_usual_things_safely() -> None:
    html = str(render_markdown("# Titre\n\nTexte **gras** et *italique*, [lien](https://exemple.fr).\n\n"
                               "- un\n- deux\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"))
    assert "<h3>Titre</h3>" in html  # headings shifted below the page's h2
    assert "<strong>gras</strong>" in html and "<em>italique</em>" in html
    assert '<a href="https://exemple.fr" rel="noopener noreferrer nofollow">lien</a>' in html
    assert "<li>un</li>" in html and "<table>" in html
    assert str(render_markdown(None)) == "" and str(render_markdown("")) == ""
    assert "&lt;script&gt;" in str(render_markdown("a <script>x</script>"))  # shown as text, not run


# ================================================================ the server-side proof check
def _logged(n: int = 5) -> tuple[Ledger, list[str]]:
    lg = Ledger()
    ids = [str(uuid.uuid4()) for _ in range(n)]
    for i, e in enumerate(ids):
        lg.append("decision.recorded", e, {"decision": {"decision_id": f"d{i}", "number": f"2026-00{i}"}})
    lg.sign()
    return lg, ids


def test_inclusion_proof_verifies_for_every_leaf() -> None:
    lg, ids = _logged(7)
    cp = lg.checkpoint()
    for i, e in enumerate(ids):
        p = check_inclusion(lg.key, cp.note, lg.entry(i), lg.proof(i, cp.size), event_id=e, must_contain=f"d{i}")
        assert p.status == "ok", p.message
        assert p.message.startswith("Preuve vérifiée") and p.size == 7 and p.root == cp.root
        assert p.leaf_hash == leaf_hash(lg.leaves[i]).hex()


def test_inclusion_proof_failures_are_explained() -> None:
    lg, ids = _logged(5)
    cp = lg.checkpoint()
    entry, proof = lg.entry(2), lg.proof(2, 5)

    other = Ledger()  # a checkpoint signed with another key
    p = check_inclusion(other.key, cp.note, entry, proof, event_id=ids[2])
    assert p.status == "failed" and "signé" in p.message

    p = check_inclusion(lg.key, cp.note, entry, proof, event_id=ids[3])  # not the record shown
    assert p.status == "failed" and "attendu" in p.message
    p = check_inclusion(lg.key, cp.note, entry, proof, event_id=ids[2], must_contain="d3")
    assert p.status == "failed" and "décision" in p.message

    tampered = json.loads(lg.leaves[2])
    tampered["data"]["decision"]["number"] = "2026-999"
    bad_leaf = LedgerEntry(index=2, leaf=base64.b64encode(record_leaf_bytes(tampered)).decode(), record=tampered)
    p = check_inclusion(lg.key, cp.note, bad_leaf, proof, event_id=ids[2])
    assert p.status == "failed" and "racine" in p.message

    shown = LedgerEntry(index=2, leaf=entry.leaf, record={**entry.record, "type": "autre"})
    assert check_inclusion(lg.key, cp.note, shown, proof).status == "failed"

    wrong_path = InclusionProof(leaf_index=2, tree_size=5, hashes=list(reversed(proof.hashes)))
    assert check_inclusion(lg.key, cp.note, entry, wrong_path).status == "failed"

    old = lg.checkpoint(2)  # the leaf is not under the signed checkpoint yet
    p = check_inclusion(lg.key, old.note, entry, InclusionProof(leaf_index=2, tree_size=2, hashes=[]))
    assert p.status == "pending" and "en cours" in p.message


def test_record_labels_and_descriptions() -> None:
    assert record_label("decision.recorded") == "Décision enregistrée"
    assert record_label("session.cancelled") == "Séance annulée"
    assert record_label("something.new") == "something.new"  # unknown types shown raw
    rec = make_record("decision.recorded", "e", NOW, {"decision": {"number": "2026-004", "title": "Budget"}})
    assert describe(rec) == "Décision n° 2026-004 : Budget"
    rec = make_record("session.cancelled", "e", NOW, {"session": {"title": "Plénière", "starts_at":
                                                                 "2026-07-14T08:00:00.000000Z"}, "reason": "Grève"})
    assert describe(rec) == "Séance « Plénière » du 14/07/2026 — motif : Grève"
    rec = make_record("vote.closed", "e", NOW, {"vote": {"question": "Q ?"}, "result": {
        "ballots": 3, "winner_option_id": 2, "options": [{"option_id": 2, "label": "B"}]}})
    assert describe(rec) == "Vote « Q ? » — 3 bulletin(s), option retenue : B"
    assert describe({"type": "x", "data": "not an object"}) == ""
    assert describe(make_record("member.approved", "e", NOW, {"public_id": "ab", "college": None})) == \
        "Membre ab (sans collège)"
    mid = "3f1c2b7d-0000-4000-8000-00000000000a"
    rec = make_record("minutes.corrected", "e", NOW, {"minutes_id": mid, "version": 2, "sha256": "ab" * 32,
                                                      "reason": "Heure corrigée"})
    assert describe(rec) == "Compte rendu, version 2 — SHA-256 abababababab… — motif : Heure corrigée"
    assert subject_link(rec) == f"/comptes-rendus/{mid}/v2"
    assert subject_link(make_record("minutes.published", "e", NOW, {"minutes_id": "../x", "version": 1})) is None


# ================================================================ the record pages
async def test_explorer_lists_newest_first_with_checkpoint_and_key(web: httpx.AsyncClient, forum: FakeForum) -> None:
    d = forum.add(decision(1))
    forum.ledger.sign()
    r = await web.get("/registre")
    assert r.status_code == 200
    assert "Registre public" in r.text and forum.ledger.key in r.text
    assert forum.ledger.checkpoint().root in r.text
    rows = r.text.split('id="enregistrement-')[1:]
    assert [int(x.split('"', 1)[0]) for x in rows] == list(range(len(forum.ledger.leaves) - 1, -1, -1))
    assert f"Décision n° {d.decision.number}" in r.text and "Membre validé" in r.text
    assert 'href="/registre/verifier"' in r.text


async def test_explorer_paginates(web: httpx.AsyncClient, forum: FakeForum) -> None:
    for _ in range(60):
        forum.ledger.append("member.approved", str(uuid.uuid4()), {"public_id": "x", "college": "citizen"})
    forum.ledger.sign()
    size = len(forum.ledger.leaves)
    r1, r2 = await web.get("/registre"), await web.get("/registre?page=2")
    assert f'id="enregistrement-{size - 1}"' in r1.text and f'id="enregistrement-{size - 50}"' in r1.text
    assert f'id="enregistrement-{size - 51}"' not in r1.text and 'id="enregistrement-0"' in r2.text
    assert (await web.get("/registre?page=3")).status_code == 404
    bad = await web.get("/registre?page=abc")
    assert bad.status_code == 400 and "Requête incorrecte" in bad.text and "Traceback" not in bad.text


async def test_empty_log(web: httpx.AsyncClient, forum: FakeForum) -> None:
    r = await web.get("/registre")
    assert r.status_code == 200 and "Aucun point de contrôle" in r.text


async def test_one_record_shows_json_leaf_and_verified_proof(web: httpx.AsyncClient, forum: FakeForum) -> None:
    d = forum.add(decision(1))
    forum.ledger.sign()
    i = forum.located[d.event_id]
    r = await web.get(f"/registre/{i}")
    assert r.status_code == 200
    assert f"Enregistrement n° {i}" in r.text and "Décision enregistrée" in r.text
    assert forum.ledger.entry(i).leaf in r.text and leaf_hash(forum.ledger.leaves[i]).hex() in r.text
    assert 'id="preuve-inclusion"' in r.text and 'data-server-verification="ok"' in r.text
    assert 'data-verification="pending"' in r.text  # the browser sets "ok" itself
    assert f'data-event-id="{d.event_id}"' in r.text and "/static/js/preuve.js" in r.text
    assert "&#34;number&#34;: &#34;2026-001&#34;" in r.text or "&quot;number&quot;" in r.text
    # One request to the public record for the proof (its key and checkpoint come with it).
    asked = [op for op, _ in forum.calls]
    assert asked.count("ledger-prove-events") == 1 and "ledger-key" not in asked and "ledger-inclusion" not in asked


async def test_a_record_whose_event_is_logged_under_another_index_fails(web: httpx.AsyncClient,
                                                                        forum: FakeForum) -> None:
    # A log that broke its own rule (one leaf per event): the event's leaf is not the one shown.
    event_id = str(uuid.uuid4())
    first = forum.ledger.append("decision.recorded", event_id, {"decision": {"decision_id": "d1"}})
    forum.located[event_id] = forum.ledger.append("decision.recorded", event_id, {"decision": {"decision_id": "d1"}})
    forum.ledger.sign()
    r = await web.get(f"/registre/{first}")
    assert r.status_code == 200 and 'data-server-verification="failed"' in r.text
    assert f"inscrit sous le n° {first + 1}, pas sous le n° {first}" in r.text


@pytest.mark.parametrize("path", ["/registre/99", "/registre/abc", "/registre/-1", f"/registre/{2**64}",
                                  "/registre/%C2%B2"])
async def test_unknown_records_are_french_404(web: httpx.AsyncClient, forum: FakeForum, path: str) -> None:
    forum.ledger.sign()
    r = await web.get(path)
    assert r.status_code == 404 and "Enregistrement introuvable" in r.text


async def test_verify_page(web: httpx.AsyncClient, forum: FakeForum) -> None:
    forum.ledger.sign()
    r = await web.get("/registre/verifier")
    assert r.status_code == 200 and "<h1>Vérifier le registre</h1>" in r.text
    assert f"forum-ouvert verify https://forum.example.fr --key {forum.ledger.key}" in r.text
    for word in ("Point de contrôle", "Clé de vérification", "Preuve d'inclusion", "Preuve de cohérence",
                 "/openapi.json", "/ledger/proof/consistency"):
        assert word in r.text


# ================================================================ the decision pages
async def test_register_lists_decisions_and_filters(web: httpx.AsyncClient, forum: FakeForum) -> None:
    a = forum.add(decision(1))
    b = forum.add(decision(2, outcome=Outcome.REJECTED))
    forum.ledger.sign()
    r = await web.get("/decisions")
    assert r.status_code == 200 and "Registre des décisions" in r.text
    assert r.text.index(b.decision.title) < r.text.index(a.decision.title)  # newest first
    assert "Adoptée" in r.text and "Rejetée" in r.text and "Règle respectée" in r.text
    assert "Suivi : En cours" in r.text and "Licence Ouverte / Etalab 2.0" in r.text
    r = await web.get("/decisions?issue=rejected")
    assert b.decision.title in r.text and a.decision.title not in r.text
    assert 'href="/decisions.csv?issue=rejected"' in r.text
    for bad in ("/decisions?issue=maybe", "/decisions?suivi=x", "/decisions?engagement=%3Cscript%3E",
                "/decisions?page=0", "/decisions?page=x", "/decisions?masquer_corrigees=oui",
                "/decisions.csv?issue=maybe", "/decisions.json?suivi=never"):
        r = await web.get(bad)
        assert r.status_code == 400 and "<h1>" in r.text and "Traceback" not in r.text, bad


async def test_open_data_exports(web: httpx.AsyncClient, forum: FakeForum) -> None:
    forum.add(decision(1, text="=HYPERLINK(\"http://evil\")"))
    d = forum.add(decision(2))
    r = await web.get("/decisions.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")), delimiter=";"))
    assert [x["numero"] for x in rows] == ["2026-002", "2026-001"]
    assert rows[0]["identifiant"] == d.decision.decision_id and rows[0]["regle_respectee"] == "oui"
    assert rows[1]["texte"].startswith("'=")  # formula-safe
    assert rows[0]["url"] == f"https://forum.example.fr/decisions/{d.decision.decision_id}"
    r = await web.get("/decisions.json")
    body = r.json()
    assert body["licence"] == "Licence Ouverte / Etalab 2.0" and body["total"] == 2
    assert body["decisions"][0]["identifiant"] == d.decision.decision_id
    assert body["decisions"][0]["regle_respectee"] is True and body["decisions"][1]["texte"].startswith("=")


async def test_decision_page(web: httpx.AsyncClient, forum: FakeForum) -> None:
    d = forum.add(decision(1, text="Texte **gras** <script>alert(1)</script> [x](javascript:alert(1))"))
    forum.ledger.sign()
    r = await web.get(f"/decisions/{d.decision.decision_id}")
    assert r.status_code == 200
    t = r.text
    assert f"Décision n° {d.decision.number} : {d.decision.title}" in t
    assert "<strong>gras</strong>" in t and "<script>alert" not in t and 'href="javascript' not in t
    assert "Règle du forum respectée" in t and "Quorum atteint ; double majorité atteinte." in t
    assert 'id="table-quorum"' in t and 'id="table-majorite"' in t and 'id="table-main-levee"' in t
    assert f'href="/seances/{d.decision.session_id}"' in t and "2. Feuille de route" in t
    assert "7 — Ouvrir les données" in t and 'id="historique-suivi"' in t and "Lancé" in t
    i = forum.located[d.event_id]
    assert f'href="/registre/{i}"' in t and 'data-server-verification="ok"' in t
    assert f'data-expect="{d.decision.decision_id}"' in t and f'data-index="{i}"' in t
    assert 'id="profils-de-merite"' not in t


async def test_decision_from_an_online_vote(web: httpx.AsyncClient, forum: FakeForum) -> None:
    d = forum.add(voted())
    forum.ledger.sign()
    r = await web.get(f"/decisions/{d.decision.decision_id}")
    t = r.text
    assert r.status_code == 200 and 'id="profils-de-merite"' in t and 'id="option-retenue"' in t
    winner = t.split('id="option-retenue"', 1)[1].split("</div>", 1)[0]
    assert "Option B" in winner and "Bien" in winner
    table = t.split('id="profils-de-merite"', 1)[1].split("</table>", 1)[0]
    for label in ("Excellent", "Très bien", "Bien", "Assez bien", "Passable", "Insuffisant", "À rejeter"):
        assert f'<th scope="col">{label}</th>' in table
    assert table.index("Option B") < table.index("Option A")
    assert "<strong>3</strong> bulletins sur <strong>5</strong>" in t
    assert "Ouverture du vote" in t


async def test_superseded_decision_banner_and_links(web: httpx.AsyncClient, forum: FakeForum) -> None:
    old = forum.add(decision(1))
    new = forum.add(decision(2, supersedes=old.decision.decision_id))
    forum.decisions[1] = old.model_copy(update={"superseded_by": new.decision.decision_id})
    forum.ledger.sign()
    t = (await web.get(f"/decisions/{old.decision.decision_id}")).text
    assert 'id="decision-corrigee"' in t and f"Corrigée par la décision n° {new.decision.number}" in t
    assert f'href="/decisions/{new.decision.decision_id}"' in t
    t = (await web.get(f"/decisions/{new.decision.decision_id}")).text
    assert f"décision n° {old.decision.number}" in t and f'href="/decisions/{old.decision.decision_id}"' in t
    t = (await web.get("/decisions")).text
    assert "Corrigée" in t


async def test_decision_not_yet_in_the_log(web: httpx.AsyncClient, forum: FakeForum) -> None:
    d = forum.add(decision(1), in_log=False)
    forum.ledger.sign()
    t = (await web.get(f"/decisions/{d.decision.decision_id}")).text
    assert "inscription au registre public en cours" in t.lower()
    assert 'data-server-verification="pending"' in t and "data-index" not in t


@pytest.mark.parametrize("path", [f"/decisions/{uuid.uuid4()}", "/decisions/pas%20un%20id", "/decisions/" + "a" * 40])
async def test_unknown_decision_is_french_404(web: httpx.AsyncClient, path: str) -> None:
    r = await web.get(path)
    assert r.status_code == 404 and "Décision introuvable" in r.text


def test_proof_dataclass_default() -> None:
    assert Proof(status="pending", message="x").hashes == []


def test_subject_links() -> None:
    from services.web.routes.record import subject_link

    assert subject_link(make_record("decision.recorded", "e", NOW, {"decision": {"decision_id": "abc-1"}})) == \
        "/decisions/abc-1"
    assert subject_link(make_record("decision.superseded", "e", NOW, {"decision_id": "abc-2"})) == "/decisions/abc-2"
    assert subject_link(make_record("session.cancelled", "e", NOW, {"session": {"session_id": "s-1"}})) == \
        "/seances/s-1"
    assert subject_link(make_record("vote.closed", "e", NOW, {"vote": {"vote_id": "v-1"}})) == "/votes/v-1"
    assert subject_link(make_record("decision.recorded", "e", NOW, {"decision": {"decision_id": "../x"}})) is None
    assert subject_link(make_record("member.approved", "e", NOW, {"public_id": "p"})) is None
