"""`forum-ouvert verify URL --key KEY [--state FILE]`: audit the forum's public record.

Trusts nothing but the verifier key (obtain it from a source other than the server):

1. fetches `GET /ledger/checkpoint` and checks its Ed25519 signature with that key only, and that
   its origin is the key's name (C2SP signed-note + tlog-checkpoint);
2. fetches every entry `GET /ledger/entries` page by page, checks that each leaf's bytes are the
   RFC 8785 canonical JSON of its record, and recomputes the RFC 9162 root from the leaves: it
   must equal the signed root (so no leaf was added, altered, removed or reordered);
3. checks the log only grew since the last checkpoint this verifier accepted (kept in the state
   file: size and root): with `GET /ledger/proof/consistency` (RFC 9162 §2.1.4) *and* by
   recomputing the old root from the leaves just fetched. A rewritten history is caught here even
   when it carries a valid signature;
4. on success only, records the new size and root in the state file.

Exit status: 0 verified; 1 the log is not what it claims (tampering, fork, rollback, bad
signature); 2 could not verify (network or HTTP error, malformed key, unusable state file).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from forumlib.tlog import (
    EMPTY_ROOT,
    CheckpointError,
    Frontier,
    InvalidSignatureError,
    KeyFormatError,
    NoteError,
    ProofError,
    UnverifiedNoteError,
    Verifier,
    leaf_hash,
    open_checkpoint,
    parse_verifier_key,
    record_leaf_bytes,
    verify_consistency,
)

STATE_VERSION = 1
PAGE = 1000
PARALLEL_PAGES = 4

# Problem codes (VerifyResult.problem) that mean the log is not what it claims: exit status 1. The
# others ("unreachable", "http", "bad_key", "state") mean it could not be checked: exit status 2.
LOG_PROBLEMS = {"signature", "malformed", "leaf_mismatch", "entries_missing", "root_mismatch", "rollback", "fork"}


@dataclass
class VerifyResult:
    ok: bool
    message: str
    url: str
    origin: str = ""
    size: int | None = None
    root: str | None = None
    previous_size: int | None = None
    entries_checked: int = 0
    problem: str | None = None
    state_file: str | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if self.ok:
            return 0
        return 1 if self.problem in LOG_PROBLEMS else 2

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Fail(Exception):
    def __init__(self, problem: str, fr: str, en: str) -> None:
        super().__init__(en)
        self.problem = problem
        self.message = f"ÉCHEC : {fr}\nFAILED: {en}"


class _CannotCheck(_Fail):
    def __init__(self, problem: str, fr: str, en: str) -> None:
        super().__init__(problem, fr, en)
        self.message = f"Vérification impossible : {fr}\nCould not verify: {en}"


# ---------------------------------------------------------------- canonical JSON
_MAX_JCS_INT = 2**53 - 1


def _plain(value: Any) -> bool:
    """JSON made of ASCII-sortable objects, arrays, strings, booleans, null and exactly-representable
    integers — no floats — the values for which Python's sorted compact JSON *is* RFC 8785."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if value is None or isinstance(value, (str, bool)):
        return True
    return isinstance(value, int) and -_MAX_JCS_INT <= value <= _MAX_JCS_INT


def is_canonical_leaf(leaf: bytes, record: Any) -> bool:
    """Whether `leaf` is exactly the RFC 8785 (JCS) canonical JSON of `record`.

    Fast path: for an ASCII leaf and a record without floats or huge integers, JCS output equals
    `json.dumps(sort_keys=True, separators=(",", ":"))` (same key order for ASCII, same escapes);
    anything else — or any difference — is decided by the reference implementation (`rfc8785`, through
    `record_leaf_bytes`)."""
    if not isinstance(record, dict):
        return False
    if leaf.isascii() and _plain(record):
        fast = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        if fast.encode("utf-8") == leaf:
            return True
    try:
        return record_leaf_bytes(record) == leaf
    except Exception:  # noqa: BLE001 - any value JCS refuses cannot be the record of a leaf
        return False


# ---------------------------------------------------------------- state file
def default_state_file(verifier: Verifier) -> Path:
    """`$XDG_STATE_HOME/forum-ouvert/verify-<origin>-<key id>.json` (default ~/.local/state)."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", verifier.name)
    return base / "forum-ouvert" / f"verify-{safe}-{verifier.key_id:08x}.json"


def _read_state(path: Path, verifier: Verifier) -> tuple[int, bytes] | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        size, root = int(data["size"]), base64.b64decode(data["root"], validate=True)
        origin = data["origin"]
    except (OSError, ValueError, KeyError, TypeError, binascii.Error):
        raise _CannotCheck("state", f"le fichier d'état {path} est illisible.",
                           f"the state file {path} is unreadable.") from None
    if origin != verifier.name or size < 0 or len(root) != 32:
        raise _CannotCheck("state", f"le fichier d'état {path} concerne un autre registre ({origin}).",
                           f"the state file {path} is for another log ({origin}).")
    return size, root


def _write_state(path: Path, verifier: Verifier, url: str, size: int, root: bytes, note: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"version": STATE_VERSION, "origin": verifier.name, "key": verifier.encode(), "url": url,
            "size": size, "root": base64.b64encode(root).decode("ascii"), "checkpoint": note,
            "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    fd, tmp = tempfile.mkstemp(prefix=".verify-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# ---------------------------------------------------------------- HTTP
def _base(url: str) -> str:
    url = url.rstrip("/")
    return url[: -len("/ledger")] if url.endswith("/ledger") else url


async def _get(client: httpx.AsyncClient, url: str, params: dict[str, int] | None = None) -> httpx.Response:
    try:
        resp = await client.get(url, params=params)
    except httpx.HTTPError as exc:
        raise _CannotCheck("unreachable", f"{url} ne répond pas ({type(exc).__name__}).",
                           f"{url} did not answer ({type(exc).__name__}: {exc}).") from None
    if resp.status_code != 200:
        detail = resp.text[:300].strip()
        raise _CannotCheck("http", f"{resp.url} a répondu {resp.status_code} : {detail}",
                           f"{resp.url} answered {resp.status_code}: {detail}")
    return resp


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        raise _Fail("malformed", f"{resp.url} n'a pas renvoyé de JSON.", f"{resp.url} did not return JSON.") from None


def _b64(text: Any, what: str) -> bytes:
    try:
        if not isinstance(text, str):
            raise ValueError
        raw = base64.b64decode(text, validate=True)
        if base64.b64encode(raw).decode("ascii") != text:
            raise ValueError
        return raw
    except (ValueError, binascii.Error):
        raise _Fail("malformed", f"{what} n'est pas du base64 valide.", f"{what} is not valid base64.") from None


async def _entries(client: httpx.AsyncClient, base: str, size: int, page: int) -> AsyncIterator[tuple[int, Any, Any]]:
    """Every entry 0 <= index < size, in order; a few pages in flight at once."""

    async def window(a: int, b: int) -> list[Any]:
        got: list[Any] = []
        while a < b:
            body = _json(await _get(client, f"{base}/ledger/entries", {"start": a, "end": b}))
            items = body.get("entries") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise _Fail("malformed", "réponse d'entrées mal formée.", "malformed entries response.")
            if not items:
                raise _Fail("entries_missing",
                            f"le point de contrôle signé annonce {size} entrées, mais le serveur n'en donne "
                            f"aucune à partir de l'indice {a} : des entrées ont été supprimées.",
                            f"the signed checkpoint commits to {size} entries, but the server returns none "
                            f"from index {a}: entries were removed.")
            items = items[: b - a]  # a server may not push entries past the signed size on us
            got.extend(items)
            a += len(items)
        return got

    starts = list(range(0, size, page))
    tasks: dict[int, asyncio.Task[list[Any]]] = {}
    try:
        for n, s in enumerate(starts):
            for ahead in starts[n:n + PARALLEL_PAGES]:
                if ahead not in tasks:
                    tasks[ahead] = asyncio.create_task(window(ahead, min(ahead + page, size)))
            items = await tasks.pop(s)
            for item in items:
                if not isinstance(item, dict):
                    raise _Fail("malformed", "entrée mal formée.", "malformed entry.")
                yield item.get("index"), item.get("leaf"), item.get("record")
    finally:
        for t in tasks.values():
            t.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)


# ---------------------------------------------------------------- the check
async def verify_async(url: str, key: str, state_file: Path | None = None, *,
                       client: httpx.AsyncClient | None = None, page: int = PAGE) -> VerifyResult:
    """Verify the public record at `url` (the forum's address) with the verifier key `key`."""
    started = time.perf_counter()
    result = VerifyResult(ok=False, message="", url=url)
    own = client is None
    client = client or httpx.AsyncClient(timeout=30.0, follow_redirects=True,
                                         headers={"User-Agent": "forum-ouvert-verify/1"})
    try:
        try:
            verifier = parse_verifier_key(key.strip())
        except KeyFormatError as exc:
            raise _CannotCheck("bad_key", f"clé de vérification invalide ({exc}).",
                               f"invalid verifier key ({exc}).") from None
        result.origin = verifier.name
        state_path = Path(state_file) if state_file else default_state_file(verifier)
        result.state_file = str(state_path)
        previous = _read_state(state_path, verifier)
        base = _base(url)

        # 1. The signed checkpoint.
        note = (await _get(client, f"{base}/ledger/checkpoint")).text
        try:
            cp, _ = open_checkpoint(note, [verifier], verifier.name)
        except (UnverifiedNoteError, InvalidSignatureError) as exc:
            raise _Fail("signature", f"le point de contrôle n'est pas signé par la clé donnée ({exc}).",
                        f"the checkpoint is not signed by the given key ({exc}).") from None
        except (CheckpointError, NoteError) as exc:
            raise _Fail("signature" if "origin" in str(exc) else "malformed",
                        f"point de contrôle refusé ({exc}).", f"checkpoint rejected ({exc}).") from None
        result.size, result.root = cp.size, base64.b64encode(cp.root_hash).decode("ascii")

        # 2. It must extend what we accepted before.
        if previous is not None:
            prev_size, prev_root = previous
            result.previous_size = prev_size
            if cp.size < prev_size:
                raise _Fail("rollback",
                            f"le registre a rétréci : {prev_size} entrées vérifiées auparavant, {cp.size} "
                            f"maintenant.", f"the log shrank: {prev_size} entries verified before, "
                            f"{cp.size} now.")
            if cp.size == prev_size and cp.root_hash != prev_root:
                raise _Fail("fork", f"même taille ({cp.size}) mais autre racine : l'historique a été réécrit.",
                            f"same size ({cp.size}) but another root: the history was rewritten.")
            if 0 < prev_size < cp.size:
                body = _json(await _get(client, f"{base}/ledger/proof/consistency",
                                        {"first": prev_size, "second": cp.size}))
                hashes = body.get("hashes") if isinstance(body, dict) else None
                if not isinstance(hashes, list):
                    raise _Fail("malformed", "preuve de cohérence mal formée.", "malformed consistency proof.")
                proof = [_b64(h, "un hash de la preuve / a proof hash") for h in hashes]
                try:
                    verify_consistency(prev_size, cp.size, prev_root, cp.root_hash, proof)
                except ProofError as exc:
                    raise _Fail("fork",
                                f"le registre signé de {cp.size} entrées ne prolonge pas celui de {prev_size} "
                                f"entrées vérifié auparavant : l'historique a été réécrit (preuve de cohérence "
                                f"invalide : {exc}).",
                                f"the signed log of {cp.size} entries does not extend the {prev_size}-entry log "
                                f"verified before: the history was rewritten (consistency proof failed: {exc}).",
                                ) from None

        # 3. Every leaf, recomputed.
        frontier = Frontier()
        prefix_root = EMPTY_ROOT if previous is None or previous[0] == 0 else None
        async with aclosing(_entries(client, base, cp.size, page)) as entries:
            async for index, leaf_b64, record in entries:
                expected = frontier.size
                if index != expected:
                    raise _Fail("entries_missing", f"entrée {expected} attendue, le serveur a renvoyé {index}.",
                                f"expected entry {expected}, the server returned {index}.")
                leaf = _b64(leaf_b64, f"la feuille {index} / leaf {index}")
                if not is_canonical_leaf(leaf, record):
                    raise _Fail("leaf_mismatch",
                                f"l'entrée {index} est incohérente : ses octets ne sont pas le JSON canonique "
                                f"(RFC 8785) de son enregistrement.",
                                f"entry {index} is inconsistent: its leaf bytes are not the canonical JSON "
                                f"(RFC 8785) of its record.")
                frontier.append(leaf_hash(leaf))
                if previous is not None and frontier.size == previous[0]:
                    prefix_root = frontier.root()
        result.entries_checked = frontier.size
        if frontier.root() != cp.root_hash:
            raise _Fail("root_mismatch",
                        f"la racine recalculée à partir des {cp.size} entrées ne correspond pas à la racine "
                        f"signée : une entrée a été ajoutée, modifiée, supprimée ou déplacée.",
                        f"the root recomputed from the {cp.size} entries does not match the signed root: an "
                        f"entry was added, altered, removed or moved.")
        if previous is not None and prefix_root != previous[1]:
            raise _Fail("fork",
                        f"les {previous[0]} premières entrées ne redonnent pas la racine vérifiée auparavant : "
                        f"l'historique a été réécrit.",
                        f"the first {previous[0]} entries no longer give the root verified before: the "
                        f"history was rewritten.")

        # 4. Remember it.
        try:
            _write_state(state_path, verifier, base, cp.size, cp.root_hash, note)
        except OSError as exc:
            raise _CannotCheck("state", f"impossible d'écrire le fichier d'état {state_path} ({exc}).",
                               f"cannot write the state file {state_path} ({exc}).") from None
        result.ok = True
        fr_since = "" if previous is None else f" ; il prolonge les {previous[0]} entrées vérifiées auparavant"
        en_since = "" if previous is None else f"; it extends the {previous[0]} entries verified before"
        result.message = (f"OK : registre {verifier.name} vérifié : {cp.size} entrées, racine {result.root}{fr_since}.\n"
                          f"OK: log {verifier.name} verified: {cp.size} entries, root {result.root}{en_since}.")
    except _Fail as exc:
        result.problem, result.message = exc.problem, exc.message
    finally:
        if own:
            await client.aclose()
        result.seconds = time.perf_counter() - started
    return result


def verify(url: str, key: str, state_file: Path | None = None) -> VerifyResult:
    """Synchronous `verify_async` (for the CLI)."""
    return asyncio.run(verify_async(url, key, state_file))


def verify_command(
    url: Annotated[str, typer.Argument(help="Adresse du forum / the forum's address, e.g. https://forum.example.org")],
    key: Annotated[str, typer.Option("--key", help="Clé de vérification du registre (obtenue par un autre canal) / "
                                     "the log's note verifier key <name>+<id>+<base64>.")],
    state: Annotated[Path | None, typer.Option("--state", help="Fichier d'état (dernier point de contrôle vérifié) / "
                                               "state file; default ~/.local/state/forum-ouvert/verify-….json")] = None,
) -> None:
    """Vérifie le registre public du forum / verify the forum's public record (transparency log)."""
    result = verify(url, key, state)
    typer.echo(result.message, err=not result.ok)
    raise typer.Exit(result.exit_code)
