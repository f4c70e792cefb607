"""`forum-ouvert verify URL --key KEY [--state FILE]`: audit the forum's public record.

Trusts nothing but the verifier key (obtain it from a source other than the server):

1. fetches the checkpoint (`GET /ledger/checkpoint`) and checks its Ed25519 signature with that key
   only, and that its origin is the key's name (C2SP signed-note + tlog-checkpoint);
2. fetches every leaf and recomputes the RFC 9162 root from them: it must equal the signed root (so no
   leaf was added, altered, removed or reordered). The leaves come as C2SP tlog-tiles entry bundles
   (`GET /ledger/tile/entries/…`: static, cacheable, 256 leaves each) when the server has them,
   otherwise — or with `--via api` — page by page from `GET /ledger/entries`, where each leaf's bytes
   must also be the RFC 8785 canonical JSON of the record served beside it (`--records` checks, in
   either case, that every leaf is canonical JSON of a record);
3. checks the log only grew since the last checkpoint this verifier accepted (kept in the state
   file: size and root): by recomputing the old root from the leaves just fetched *and* with
   `GET /ledger/proof/consistency` (RFC 9162 §2.1.4). A rewritten history is caught here even when it
   carries a valid signature — and still when the server refuses the consistency proof;
4. on success only, records the new size and root in the state file.

Exit status: 0 verified; 1 the log is not what it claims (tampering, fork, rollback, bad
signature); 2 could not verify (network or HTTP error, malformed key, unusable state file).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import http.client
import json
import os
import re
import ssl
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
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
from forumlib.tlog.tiles import (
    MAX_ENTRY_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    TileError,
    decode_entry_bundle,
    entry_bundles,
    leaf_hashes,
    subtree_root,
)

STATE_VERSION = 1
PAGE = 1000
PARALLEL_PAGES = 4
PARALLEL_TILES = 8
MAX_BUNDLE_BYTES = TILE_WIDTH * (2 + MAX_ENTRY_SIZE)
VIA = ("auto", "tiles", "api")

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
def is_canonical_leaf(leaf: bytes, record: Any) -> bool:
    """Whether `leaf` is exactly the RFC 8785 (JCS) canonical JSON of the object `record`
    (`record_leaf_bytes`: the standard library's encoder where it writes JCS, the reference
    implementation `rfc8785` otherwise)."""
    if not isinstance(record, dict):
        return False
    try:
        return record_leaf_bytes(record) == leaf
    except Exception:  # noqa: BLE001 - any value JCS refuses cannot be the record of a leaf
        return False


def _leaf_is_a_record(leaf: bytes) -> bool:
    try:
        return is_canonical_leaf(leaf, json.loads(leaf))
    except ValueError:
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


async def _ahead(jobs: list[Any], fetch: Any, parallel: int) -> AsyncIterator[Any]:
    """`fetch(job)` for each job, results in order, with up to `parallel` fetches in flight."""
    tasks: dict[int, asyncio.Task[Any]] = {}
    try:
        for n in range(len(jobs)):
            for ahead in range(n, min(n + parallel, len(jobs))):
                if ahead not in tasks:
                    tasks[ahead] = asyncio.create_task(fetch(jobs[ahead]))
            yield await tasks.pop(n)
    finally:
        for t in tasks.values():
            t.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)


_MISSING = ("le point de contrôle signé annonce {size} entrées, mais le serveur n'en donne aucune à partir de "
            "l'indice {a} : des entrées ont été supprimées.",
            "the signed checkpoint commits to {size} entries, but the server returns none from index {a}: "
            "entries were removed.")


async def _api_leaves(client: httpx.AsyncClient, base: str, start: int, end: int, size: int) -> list[bytes]:
    """Leaves start <= index < end from `GET /ledger/entries` (as many calls as the server's pages need),
    each checked to be the canonical JSON of the record served beside it."""
    leaves: list[bytes] = []
    a = start
    while a < end:
        body = _json(await _get(client, f"{base}/ledger/entries", {"start": a, "end": end}))
        items = body.get("entries") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise _Fail("malformed", "réponse d'entrées mal formée.", "malformed entries response.")
        if not items:
            raise _Fail("entries_missing", _MISSING[0].format(size=size, a=a), _MISSING[1].format(size=size, a=a))
        for item in items[: end - a]:  # a server may not push entries past the signed size on us
            if not isinstance(item, dict):
                raise _Fail("malformed", "entrée mal formée.", "malformed entry.")
            index = item.get("index")
            if index != a:
                raise _Fail("entries_missing", f"entrée {a} attendue, le serveur a renvoyé {index}.",
                            f"expected entry {a}, the server returned {index}.")
            leaf = _b64(item.get("leaf"), f"la feuille {index} / leaf {index}")
            if not is_canonical_leaf(leaf, item.get("record")):
                raise _Fail("leaf_mismatch",
                            f"l'entrée {index} est incohérente : ses octets ne sont pas le JSON canonique "
                            f"(RFC 8785) de son enregistrement.",
                            f"entry {index} is inconsistent: its leaf bytes are not the canonical JSON "
                            f"(RFC 8785) of its record.")
            leaves.append(leaf)
            a += 1
    return leaves


class _PlainHTTP:
    """GETs over plain keep-alive HTTP/1.1 connections (the standard library's http.client), one per worker
    thread. A tile is one small GET: httpx's per-request machinery would cost more than hashing its 256
    leaves. Only a 200 or a 404 is answered here; anything else (a redirect, an error, a dropped
    connection) is `None`, and the caller asks again through httpx, which follows, retries and reports."""

    def __init__(self, base: str, workers: int) -> None:
        url = urllib.parse.urlsplit(base)
        self.https = url.scheme == "https"
        self.host, self.port = url.hostname or "", url.port
        self.prefix = url.path.rstrip("/")
        self.context = ssl.create_default_context() if self.https else None
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="verify-http")
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    @staticmethod
    def usable(base: str) -> bool:
        """Plain connections reach `base`: http(s), and no proxy configured for it."""
        url = urllib.parse.urlsplit(base)
        if url.scheme not in ("http", "https") or not url.hostname:
            return False
        proxies = urllib.request.getproxies()
        return url.scheme not in proxies and "all" not in proxies or bool(urllib.request.proxy_bypass(url.hostname))

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = (http.client.HTTPSConnection(self.host, self.port, timeout=30, context=self.context) if self.https
                    else http.client.HTTPConnection(self.host, self.port, timeout=30))
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def _get(self, path: str) -> tuple[int, bytes | None] | None:
        for _ in range(2):  # a keep-alive connection the server closed meanwhile: once more on a new one
            conn = self._connection()
            try:
                conn.request("GET", self.prefix + path, headers={"Accept-Encoding": "gzip, identity",
                                                                 "User-Agent": "forum-ouvert-verify/1"})
                resp = conn.getresponse()
                body = resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                continue
            coding = (resp.getheader("Content-Encoding") or "identity").lower()
            if resp.status not in (200, 404) or coding not in ("gzip", "identity"):
                return None
            if coding == "identity":
                return resp.status, body
            inflate = zlib.decompressobj(31)
            try:  # no larger than a bundle can be: a small answer must not inflate without bound
                data = inflate.decompress(body, MAX_BUNDLE_BYTES + 1)
            except zlib.error:
                return None
            if len(data) > MAX_BUNDLE_BYTES or inflate.unconsumed_tail:
                return resp.status, None
            return (resp.status, data) if inflate.eof and not inflate.unused_data else None
        return None

    async def get(self, path: str) -> tuple[int, bytes | None] | None:
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._get, path)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for conn in self._opened:
            conn.close()


async def _bundle_leaves(client: httpx.AsyncClient, base: str, bundle: Any, size: int,
                         plain: _PlainHTTP | None = None) -> list[bytes] | None:
    """The leaves of one entry bundle (`GET /ledger/tile/entries/…`), or None when the server has no
    such resource (404: no tiles served, or a leaf too large for the format)."""
    url = f"{base}/ledger/{bundle.path}"
    got = await plain.get(f"/ledger/{bundle.path}") if plain is not None else None
    if got is not None:
        status, content = got
    else:
        try:
            resp = await client.get(url)
        except httpx.HTTPError as exc:
            raise _CannotCheck("unreachable", f"{url} ne répond pas ({type(exc).__name__}).",
                               f"{url} did not answer ({type(exc).__name__}: {exc}).") from None
        status, content = resp.status_code, resp.content
        if status not in (200, 404):
            detail = resp.text[:300].strip()
            raise _CannotCheck("http", f"{url} a répondu {status} : {detail}", f"{url} answered {status}: {detail}")
    if status == 404:
        return None
    if content is None:
        raise _Fail("malformed", f"{url} est plus grand qu'un paquet d'entrées ne peut l'être.",
                    f"{url} is larger than an entry bundle can be.")
    try:
        leaves = decode_entry_bundle(content)
    except TileError:
        raise _Fail("malformed", f"{url} n'est pas un paquet d'entrées valide.",
                    f"{url} is not a valid entry bundle.") from None
    if len(leaves) != bundle.width:
        start = bundle.index * TILE_WIDTH
        if len(leaves) < bundle.width:
            at = start + len(leaves)
            raise _Fail("entries_missing", _MISSING[0].format(size=size, a=at), _MISSING[1].format(size=size, a=at))
        raise _Fail("malformed", f"{url} contient {len(leaves)} entrées au lieu de {bundle.width}.",
                    f"{url} holds {len(leaves)} entries instead of {bundle.width}.")
    return leaves


async def _leaves(client: httpx.AsyncClient, base: str, size: int, via: str, page: int,
                  used: dict[str, int], plain: _PlainHTTP | None) -> AsyncIterator[tuple[int, list[bytes]]]:
    """`(start, leaves)` chunks covering 0 <= index < size, in order: entry bundles where the server
    serves them (a bundle it refuses is read from the entries API instead), or API pages. `used` counts
    the leaves read each way."""
    if via != "api" and size:
        bundles = entry_bundles(size)
        first = await _bundle_leaves(client, base, bundles[0], size, plain)
        if first is not None or via == "tiles":
            async def fetch(bundle: Any) -> tuple[int, list[bytes]]:
                start = bundle.index * TILE_WIDTH
                got = first if bundle is bundles[0] else await _bundle_leaves(client, base, bundle, size, plain)
                if got is None:
                    if via == "tiles":
                        raise _CannotCheck("http", f"le serveur ne sert pas {bundle.path}.",
                                           f"the server does not serve {bundle.path}.")
                    got = await _api_leaves(client, base, start, start + bundle.width, size)
                    used["api"] += len(got)
                else:
                    used["tiles"] += len(got)
                return start, got

            async with aclosing(_ahead(bundles, fetch, PARALLEL_TILES)) as chunks:
                async for chunk in chunks:
                    yield chunk
            return

    async def page_of(start: int) -> tuple[int, list[bytes]]:
        got = await _api_leaves(client, base, start, min(start + page, size), size)
        used["api"] += len(got)
        return start, got

    async with aclosing(_ahead(list(range(0, size, page)), page_of, PARALLEL_PAGES)) as chunks:
        async for chunk in chunks:
            yield chunk


def _absorb(frontier: Frontier, leaves: list[bytes], mark: int | None) -> bytes | None:
    """Append `leaves` to `frontier`; returns the root of the first `mark` leaves if the frontier passes
    that size here. A whole aligned bundle goes in as one subtree (its 255 inner hashes computed in bulk)."""
    hashes = leaf_hashes(leaves)
    end = frontier.size + len(hashes)
    if (len(hashes) == TILE_WIDTH and frontier.size % TILE_WIDTH == 0
            and (mark is None or not frontier.size < mark < end)):
        frontier.append_subtree(TILE_HEIGHT, subtree_root(hashes))
        return frontier.root() if mark == end else None
    seen = None
    for h in hashes:
        frontier.append(h)
        if frontier.size == mark:
            seen = frontier.root()
    return seen


# ---------------------------------------------------------------- the check
async def verify_async(url: str, key: str, state_file: Path | None = None, *,
                       client: httpx.AsyncClient | None = None, page: int = PAGE, via: str = "auto",
                       records: bool = False) -> VerifyResult:
    """Verify the public record at `url` (the forum's address) with the verifier key `key`. `via`: where
    the leaves come from (`auto`: tiles if served, else the entries API); `records`: also check that
    every leaf is canonical JSON of a record (always done for leaves read from the entries API)."""
    if via not in VIA:
        raise ValueError(f"via must be one of {VIA}")
    started = time.perf_counter()
    result = VerifyResult(ok=False, message="", url=url)
    own = client is None
    client = client or httpx.AsyncClient(timeout=30.0, follow_redirects=True,
                                         headers={"User-Agent": "forum-ouvert-verify/1"})
    plain: _PlainHTTP | None = None
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
        refused: str | None = None
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
                refused = await _check_consistency(client, base, prev_size, prev_root, cp.size, cp.root_hash)

        # 3. Every leaf, recomputed (and, whatever the proof said, the old root from the same leaves).
        frontier = Frontier()
        mark = None if previous is None else previous[0]
        prefix_root = EMPTY_ROOT if mark == 0 else None
        used = {"tiles": 0, "api": 0}
        if own and via != "api" and _PlainHTTP.usable(base):
            plain = _PlainHTTP(base, PARALLEL_TILES)
        async with aclosing(_leaves(client, base, cp.size, via, page, used, plain)) as chunks:
            async for start, leaves in chunks:
                if records:
                    for i, leaf in enumerate(leaves):
                        if not _leaf_is_a_record(leaf):
                            raise _Fail("leaf_mismatch",
                                        f"l'entrée {start + i} n'est pas le JSON canonique (RFC 8785) d'un "
                                        f"enregistrement.", f"entry {start + i} is not the canonical JSON "
                                        f"(RFC 8785) of a record.")
                seen = _absorb(frontier, leaves, mark)
                if seen is not None:
                    prefix_root = seen
        result.entries_checked = frontier.size
        result.details["leaves_from"] = used
        if frontier.root() != cp.root_hash:
            raise _Fail("root_mismatch",
                        f"la racine recalculée à partir des {cp.size} entrées ne correspond pas à la racine "
                        f"signée : une entrée a été ajoutée, modifiée, supprimée ou déplacée.",
                        f"the root recomputed from the {cp.size} entries does not match the signed root: an "
                        f"entry was added, altered, removed or moved.")
        if previous is not None and prefix_root != previous[1]:
            refusal = ("" if refused is None else
                       (f" (le serveur a refusé la preuve de cohérence : {refused})",
                        f" (the server refused the consistency proof: {refused})"))
            raise _Fail("fork",
                        f"les {previous[0]} premières entrées ne redonnent pas la racine vérifiée auparavant : "
                        f"l'historique a été réécrit{refusal[0] if refusal else ''}.",
                        f"the first {previous[0]} entries no longer give the root verified before: the "
                        f"history was rewritten{refusal[1] if refusal else ''}.")

        # 4. Remember it.
        try:
            _write_state(state_path, verifier, base, cp.size, cp.root_hash, note)
        except OSError as exc:
            raise _CannotCheck("state", f"impossible d'écrire le fichier d'état {state_path} ({exc}).",
                               f"cannot write the state file {state_path} ({exc}).") from None
        result.ok = True
        fr_since = "" if previous is None else f" ; il prolonge les {previous[0]} entrées vérifiées auparavant"
        en_since = "" if previous is None else f"; it extends the {previous[0]} entries verified before"
        if refused is not None:
            result.details["consistency_proof_refused"] = refused
            fr_since += " (vérifié en recalculant l'ancienne racine : le serveur a refusé la preuve de cohérence)"
            en_since += " (checked by recomputing the old root: the server refused the consistency proof)"
        result.message = (f"OK : registre {verifier.name} vérifié : {cp.size} entrées, racine {result.root}{fr_since}.\n"
                          f"OK: log {verifier.name} verified: {cp.size} entries, root {result.root}{en_since}.")
    except _Fail as exc:
        result.problem, result.message = exc.problem, exc.message
    finally:
        if plain is not None:
            await asyncio.to_thread(plain.close)
        if own:
            await client.aclose()
        result.seconds = time.perf_counter() - started
    return result


async def _check_consistency(client: httpx.AsyncClient, base: str, prev_size: int, prev_root: bytes, size: int,
                             root: bytes) -> str | None:
    """Check the server's RFC 9162 consistency proof from the tree we accepted to the signed one (a bad
    proof is a fork). A server that will not give one is no reason to stop: the leaves decide (the old
    root is recomputed from them). Returns why the proof could not be had, or None."""
    try:
        resp = await _get(client, f"{base}/ledger/proof/consistency", {"first": prev_size, "second": size})
    except _CannotCheck as exc:
        return str(exc)
    body = _json(resp)
    hashes = body.get("hashes") if isinstance(body, dict) else None
    if not isinstance(hashes, list):
        raise _Fail("malformed", "preuve de cohérence mal formée.", "malformed consistency proof.")
    proof = [_b64(h, "un hash de la preuve / a proof hash") for h in hashes]
    try:
        verify_consistency(prev_size, size, prev_root, root, proof)
    except ProofError as exc:
        raise _Fail("fork",
                    f"le registre signé de {size} entrées ne prolonge pas celui de {prev_size} entrées vérifié "
                    f"auparavant : l'historique a été réécrit (preuve de cohérence invalide : {exc}).",
                    f"the signed log of {size} entries does not extend the {prev_size}-entry log verified "
                    f"before: the history was rewritten (consistency proof failed: {exc}).") from None
    return None


def verify(url: str, key: str, state_file: Path | None = None, *, via: str = "auto",
           records: bool = False) -> VerifyResult:
    """Synchronous `verify_async` (for the CLI)."""
    return asyncio.run(verify_async(url, key, state_file, via=via, records=records))


def verify_command(
    url: Annotated[str, typer.Argument(help="Adresse du forum / the forum's address, e.g. https://forum.example.org")],
    key: Annotated[str, typer.Option("--key", help="Clé de vérification du registre (obtenue par un autre canal) / "
                                     "the log's note verifier key <name>+<id>+<base64>.")],
    state: Annotated[Path | None, typer.Option("--state", help="Fichier d'état (dernier point de contrôle vérifié) / "
                                               "state file; default ~/.local/state/forum-ouvert/verify-….json")] = None,
    via: Annotated[str, typer.Option("--via", help="Source des feuilles : auto (tuiles tlog-tiles si le serveur "
                                     "les sert), tiles, api (/ledger/entries) / where leaves come from.")] = "auto",
    records: Annotated[bool, typer.Option("--records", help="Vérifier aussi que chaque feuille est le JSON canonique "
                                          "d'un enregistrement (plus lent) / also check every leaf is canonical "
                                          "JSON.")] = False,
) -> None:
    """Vérifie le registre public du forum / verify the forum's public record (transparency log)."""
    if via not in VIA:
        typer.echo(f"--via : {' | '.join(VIA)}", err=True)
        raise typer.Exit(2)
    result = verify(url, key, state, via=via, records=records)
    typer.echo(result.message, err=not result.ok)
    raise typer.Exit(result.exit_code)
