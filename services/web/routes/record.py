"""The public record (transparency log) for people: the explorer `/registre` (records newest first),
one record `/registre/{index}` with its leaf and its inclusion proof, and « Vérifier le registre »
`/registre/verifier` (what the log is and how to check it with `forum-ouvert verify`).

Every inclusion proof shown is verified twice: here, in Python, with the ledger code the minutes
service and `forum-ouvert verify` use (the text a reader without JavaScript sees), and in the
reader's browser by `/static/js/preuve.js` (WebCrypto SHA-256 and Ed25519 against the key of
`/ledger/key`), which sets `data-verification="ok"` on the section `#preuve-inclusion`.
"""
from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from starlette.requests import Request

from forumlib.tlog import (
    Checkpoint, CheckpointError, NoteError, ProofError, leaf_hash, open_checkpoint, parse_verifier_key,
    verify_inclusion,
)
from shared.contracts.common import ErrorCode
from shared.contracts.forum import KIND_LABELS
from shared.clock import paris_date
from shared.contracts.minutes import (
    MAX_INDEX, EntryLocation, GetCheckpoint, GetInclusionProof, GetVerifierKey, InclusionProof, LedgerCheckpoint,
    LedgerEntry, LedgerKey, ListEntries, ProveEvents,
)
from shared.logging import get_logger
from shared.rpc import RpcClient, RpcError
from services.web.forms import whole_number_or_none
from services.web.pages import error_page, render, rpc, web

log = get_logger(__name__)
router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
BACK = [("/registre", "Voir le registre public"), ("/", "Retour à l'accueil")]
RECORD_LABELS = {
    "member.approved": "Membre validé",
    "session.scheduled": "Séance programmée",
    "session.updated": "Séance modifiée",
    "session.cancelled": "Séance annulée",
    "decision.recorded": "Décision enregistrée",
    "decision.superseded": "Décision corrigée",
    "decision.follow_up_updated": "Suivi de décision mis à jour",
    "vote.opened": "Vote ouvert",
    "vote.closed": "Vote clos",
    "vote.cancelled": "Vote annulé",
    "rule.updated": "Règle d'adoption modifiée",
    "minutes.published": "Compte rendu publié",
    "minutes.corrected": "Compte rendu corrigé",
}
COLLEGE_NAMES = {"public_actor": "acteurs publics", "civil_society": "société civile", "citizen": "citoyens"}
FOLLOW_UP_NAMES = {"todo": "à faire", "in_progress": "en cours", "done": "réalisée", "abandoned": "abandonnée"}


# ---------------------------------------------------------------- records for people
def record_label(record_type: Any) -> str:
    """The French label of a record type; an unknown type is shown as is."""
    return RECORD_LABELS.get(str(record_type), str(record_type))


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _short(value: Any) -> str:
    return str(value)[:8] if value else "?"


def describe(record: dict[str, Any]) -> str:
    """One short line about a record, from what its data holds (the schemas of services/minutes/records.py;
    a field missing or a type unknown gives a shorter line, never an error)."""
    data = _obj(record.get("data"))
    kind = str(record.get("type", ""))
    if kind == "member.approved":
        college = COLLEGE_NAMES.get(str(data.get("college")), "sans collège")
        return f"Membre {data.get('public_id', '?')} ({college})"
    if kind.startswith("session."):
        session = _obj(data.get("session"))
        start = record_time({"occurred_at": session.get("starts_at")})
        text = f"Séance « {session.get('title', '?')} »" + (f" du {paris_date(start)}" if start else "")
        if kind == "session.cancelled" and data.get("reason"):
            text += f" — motif : {data['reason']}"
        return text
    if kind == "decision.recorded":
        decision = _obj(data.get("decision"))
        return f"Décision n° {decision.get('number', '?')} : {decision.get('title', '')}".rstrip(" :")
    if kind == "decision.superseded":
        return (f"Décision {_short(data.get('decision_id'))}… corrigée par la décision "
                f"{_short(data.get('superseded_by'))}…")
    if kind == "decision.follow_up_updated":
        status = FOLLOW_UP_NAMES.get(str(data.get("status")), str(data.get("status", "?")))
        return f"Décision {_short(data.get('decision_id'))}… : suivi « {status} »"
    if kind.startswith("vote."):
        vote = _obj(data.get("vote"))
        text = f"Vote « {vote.get('question', '?')} »"
        if kind == "vote.closed":
            result = _obj(data.get("result"))
            won = result.get("winner_option_id")
            winner = next((o.get("label") for o in result.get("options") or [] if isinstance(o, dict)
                           and won is not None and o.get("option_id") == won), None)
            text += f" — {result.get('ballots', 0)} bulletin(s)" + (f", option retenue : {winner}" if winner else "")
        elif kind == "vote.cancelled":
            text += f" — annulé avec sa séance : {data.get('reason', '')}".rstrip(" :")
        return text
    if kind.startswith("minutes."):
        text = f"Compte rendu, version {data.get('version', '?')} — SHA-256 {str(data.get('sha256', '?'))[:12]}…"
        return text + (f" — motif : {data['reason']}" if kind == "minutes.corrected" and data.get("reason") else "")
    if kind == "rule.updated":
        rule = _obj(data.get("rule"))
        label = KIND_LABELS.get(rule.get("kind"), rule.get("kind"))  # type: ignore[call-overload]
        return f"Règle d'adoption : {label}" if label else "Règle d'adoption"
    return ""


def subject_link(record: dict[str, Any]) -> str | None:
    """The page of what a record is about (a decision, a session, a vote, a version of minutes), when there is
    one."""
    data = _obj(record.get("data"))
    kind = str(record.get("type", ""))
    ident = None
    if kind == "decision.recorded":
        ident, base = _obj(data.get("decision")).get("decision_id"), "/decisions/"
    elif kind.startswith("decision."):
        ident, base = data.get("decision_id"), "/decisions/"
    elif kind.startswith("session."):
        ident, base = _obj(data.get("session")).get("session_id"), "/seances/"
    elif kind.startswith("vote."):
        ident, base = _obj(data.get("vote")).get("vote_id"), "/votes/"
    elif kind.startswith("minutes."):
        ident, base = data.get("minutes_id"), "/comptes-rendus/"
        version = data.get("version")
        if isinstance(ident, str) and isinstance(version, int) and ident.replace("-", "").isalnum() and len(ident) <= 36:
            return f"{base}{ident}/v{version}"
    if isinstance(ident, str) and ident.replace("-", "").isalnum() and len(ident) <= 36:
        return base + ident
    return None


def record_time(record: dict[str, Any]) -> datetime | None:
    raw = record.get("occurred_at")
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00")) if raw else None
    except ValueError:
        return None


def pretty_json(record: Any) -> str:
    return json.dumps(record, indent=2, ensure_ascii=False, sort_keys=True)


def contains_value(value: Any, wanted: str) -> bool:
    """Whether `wanted` is one of the string values anywhere in `value`."""
    if isinstance(value, str):
        return value == wanted
    if isinstance(value, dict):
        return any(contains_value(v, wanted) for v in value.values())
    if isinstance(value, list):
        return any(contains_value(v, wanted) for v in value)
    return False


# ---------------------------------------------------------------- the proof, checked here
@dataclass
class Proof:
    """An inclusion proof of one leaf against the latest signed checkpoint, checked server-side.

    `status`: "ok" (verified), "pending" (the leaf is not in the log or not yet covered by a signed
    checkpoint), "failed" (the proof, the signature or the leaf does not match: `message` says why),
    "unavailable" (the public record did not answer)."""

    status: str
    message: str
    index: int | None = None
    size: int | None = None
    root: str | None = None
    leaf: str | None = None
    leaf_hash: str | None = None
    hashes: list[str] = field(default_factory=list)
    record: dict[str, Any] | None = None


@lru_cache(maxsize=16)
def signed_checkpoint(key: str, note: str) -> Checkpoint:
    """The checkpoint of `note`, its signature checked against verifier `key`. Kept: every page that shows
    a proof brings the same note until the next one is signed, and the Ed25519 check is a proof's costliest
    step (a failure is not kept)."""
    verifier = parse_verifier_key(key.strip())
    return open_checkpoint(note, [verifier], verifier.name)[0]


def check_inclusion(key: str, note: str, entry: LedgerEntry, proof: InclusionProof, *,
                    event_id: str | None = None, must_contain: str | None = None) -> Proof:
    """Verify `entry` is in the tree the signed checkpoint `note` commits to, with the ledger's own code:
    the note's Ed25519 signature against the verifier `key`, its origin, the leaf (the record expected:
    `event_id`, and a value `must_contain`, e.g. the decision id), and the RFC 9162 inclusion proof."""
    out = Proof(status="failed", message="", index=entry.index, leaf=entry.leaf, record=entry.record,
                hashes=list(proof.hashes))
    try:
        checkpoint = signed_checkpoint(key, note)
    except (NoteError, CheckpointError) as exc:
        out.message = (f"Le point de contrôle n'est pas valablement signé par la clé de vérification du registre "
                       f"({exc}).")
        return out
    out.size, out.root = checkpoint.size, base64.b64encode(checkpoint.root_hash).decode("ascii")
    try:
        raw = base64.b64decode(entry.leaf, validate=True)
    except ValueError:
        out.message = "La feuille n'est pas du base64 valide."
        return out
    out.leaf_hash = leaf_hash(raw).hex()
    try:
        leaf_record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        out.message = "La feuille n'est pas un enregistrement JSON."
        return out
    if leaf_record != entry.record:
        out.message = "La feuille ne correspond pas à l'enregistrement affiché."
        return out
    if event_id is not None and leaf_record.get("event_id") != event_id:
        out.message = f"La feuille n° {entry.index} n'est pas l'enregistrement attendu."
        return out
    if must_contain is not None and not contains_value(leaf_record.get("data"), must_contain):
        out.message = f"La feuille n° {entry.index} ne concerne pas cette décision."
        return out
    if entry.index >= checkpoint.size:
        out.status = "pending"
        out.message = ("Cet enregistrement n'est pas encore couvert par un point de contrôle signé : "
                       "inscription au registre public en cours.")
        return out
    if proof.leaf_index != entry.index or proof.tree_size != checkpoint.size:
        out.message = "La preuve d'inclusion reçue ne concerne pas cette feuille ou ce point de contrôle."
        return out
    try:
        path = [base64.b64decode(h, validate=True) for h in proof.hashes]
        verify_inclusion(entry.index, checkpoint.size, leaf_hash(raw), path, checkpoint.root_hash)
    except (ValueError, ProofError) as exc:
        out.message = f"La preuve d'inclusion ne redonne pas la racine signée ({exc})."
        return out
    out.status = "ok"
    out.message = (f"Preuve vérifiée : l'enregistrement n° {entry.index} est inclus dans le registre de "
                   f"{checkpoint.size} enregistrements dont la racine est signée.")
    return out


PENDING = "Inscription au registre public en cours."
NO_CHECKPOINT = "Aucun point de contrôle n'est encore signé : inscription au registre public en cours."
UNAVAILABLE = "Le registre public ne répond pas pour l'instant ; la preuve n'a pas pu être vérifiée."


async def prove(client: RpcClient, index: int, *, event_id: str | None = None) -> Proof:
    """Fetch the key, the latest checkpoint and leaf `index`, then its inclusion proof; check them (for a
    record that names no event: `prove_events` does it in one request)."""
    try:
        key, cp, page = await asyncio.gather(client(GetVerifierKey()), client(GetCheckpoint()),
                                             client(ListEntries(start=index, end=index + 1)))
        if not page.entries:
            return Proof(status="pending", index=index, message=PENDING)
        proof = (await client(GetInclusionProof(index=index, size=cp.size)) if index < cp.size
                 else InclusionProof(leaf_index=index, tree_size=cp.size, hashes=[]))
    except RpcError as exc:
        return _not_proven(exc, index)
    return check_inclusion(key.key, cp.note, page.entries[0], proof, event_id=event_id)


async def prove_events(client: RpcClient, event_ids: list[str], prove_event: str, *,
                       must_contain: str | None = None) -> tuple[dict[str, EntryLocation], Proof]:
    """Where these events' records are in the log, and the record of `prove_event` checked against the
    latest signed checkpoint (and holding `must_contain`, e.g. the decision id): one request."""
    ids = [e for e in dict.fromkeys([prove_event, *event_ids]) if e][:100]
    try:
        found = await client(ProveEvents(event_ids=ids, prove=prove_event))
    except RpcError as exc:  # "no checkpoint yet" comes in the answer: an error here is the service's
        log.warning("ledger-prove-events failed", code=str(exc.code), message=exc.error.message)
        return {}, Proof(status="unavailable", message=UNAVAILABLE)
    where = {loc.event_id: loc for loc in found.locations}
    entry = found.entry
    if entry is None:
        return where, Proof(status="pending", message=PENDING)
    if found.checkpoint is None:
        return where, Proof(status="pending", index=entry.index, message=NO_CHECKPOINT)
    proof = found.proof or InclusionProof(leaf_index=entry.index, tree_size=found.checkpoint.size, hashes=[])
    return where, check_inclusion(found.key, found.checkpoint.note, entry, proof, event_id=prove_event,
                                  must_contain=must_contain)


def _not_proven(exc: RpcError, index: int) -> Proof:
    if exc.code == ErrorCode.UNAVAILABLE:  # no checkpoint signed yet (or no answer: told apart nowhere here)
        return Proof(status="pending", index=index, message=NO_CHECKPOINT)
    log.warning("inclusion proof unavailable", code=str(exc.code), message=exc.error.message)
    return Proof(status="unavailable", index=index, message=UNAVAILABLE)


async def key_and_checkpoint(client: RpcClient) -> tuple[LedgerKey | None, LedgerCheckpoint | None]:
    key = cp = None
    try:
        key, cp = await asyncio.gather(client(GetVerifierKey()), client(GetCheckpoint()))
    except RpcError as exc:
        if exc.code != ErrorCode.UNAVAILABLE:
            raise
    return key, cp


# ---------------------------------------------------------------- pages
@router.get("/registre")
async def explorer(request: Request, page: int = Query(1, ge=1, le=1_000_000)) -> Response:
    client = rpc(request)
    key, cp = await key_and_checkpoint(client)
    size = cp.size if cp else 0
    pages = max(1, -(-size // PAGE_SIZE))
    if page > pages:
        return await error_page(request, 404, "Cette page du registre n'existe pas.", title="Page introuvable",
                                actions=BACK)
    end = size - (page - 1) * PAGE_SIZE
    start = max(0, end - PAGE_SIZE)
    entries: list[LedgerEntry] = []
    while start < end:
        got = await client(ListEntries(start=start, end=end))
        if not got.entries:
            break
        entries.extend(got.entries)
        start = got.entries[-1].index + 1
    rows = [{"index": e.index, "type": e.record.get("type"), "label": record_label(e.record.get("type")),
             "at": record_time(e.record), "text": describe(e.record), "link": subject_link(e.record)}
            for e in reversed(entries)]
    return await render(request, "record.html", rows=rows, key=key, checkpoint=cp, page=page, pages=pages,
                        size=size)


@router.get("/registre/verifier")
async def how_to_verify(request: Request) -> Response:
    key, cp = await key_and_checkpoint(rpc(request))
    return await render(request, "verify_record.html", key=key, checkpoint=cp,
                        public_url=web(request).settings.public_url.rstrip("/"))


@router.get("/registre/{index}")
async def one_record(request: Request, index: str) -> Response:
    # The last index a log of MAX_INDEX leaves can hold is MAX_INDEX - 1 (its entries end at MAX_INDEX).
    i = whole_number_or_none(index, maximum=MAX_INDEX - 1)
    if i is None:
        return await error_page(request, 404, "Cet enregistrement n'existe pas dans le registre public.",
                                title="Enregistrement introuvable", actions=BACK)
    client = rpc(request)
    page = await client(ListEntries(start=i, end=i + 2))  # and the next one, if any: « suivant » only then
    if not page.entries or page.entries[0].index != i:
        return await error_page(request, 404, "Cet enregistrement n'existe pas (encore) dans le registre public.",
                                title="Enregistrement introuvable", actions=BACK)
    entry = page.entries[0]
    event_id = str(entry.record.get("event_id", ""))
    if event_id:  # the usual record: its proof, key and checkpoint in one request
        _, proof = await prove_events(client, [], event_id)
        if proof.index is not None and proof.index != i:
            proof = Proof(status="failed", index=i, message=f"L'événement de cet enregistrement est inscrit sous le "
                                                            f"n° {proof.index}, pas sous le n° {i}.")
    else:
        proof = await prove(client, i)
    return await render(request, "record_entry.html", entry=entry, record=entry.record,
                        label=record_label(entry.record.get("type")), text=describe(entry.record),
                        link=subject_link(entry.record), has_next=any(e.index == i + 1 for e in page.entries),
                        at=record_time(entry.record), json_text=pretty_json(entry.record), proof=proof)
