"""`verify` against an in-memory log served through httpx.MockTransport — through the entries API and
through C2SP tlog-tiles entry bundles (fast; the integration tests in tests/minutes/test_verify_live.py
do the same against the real service over real HTTP)."""
import base64
import json
from pathlib import Path

import httpx
import pytest

from forumlib.tlog import (
    Checkpoint, MemoryNodeStore, consistency_proof, generate_key, leaf_hash, parse_signer_key, record_leaf_bytes,
    sign_checkpoint,
)
from forum_ouvert.verify import verify_async
from forumlib.tlog.tiles import TileError, encode_entry_bundle, parse_tile_path

ORIGIN = "forum.test/registre"
SKEY, VKEY = generate_key(ORIGIN)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class FakeLog:
    """A log as the server stores it: entries (leaf bytes + record) and a signed checkpoint."""

    def __init__(self, n: int, page: int = 1000, tiles: bool = False) -> None:
        self.leaves: list[bytes] = []
        self.records: list[dict] = []
        self.page = page
        self.tiles = tiles  # also serve entry bundles (/ledger/tile/entries/...)
        self.consistency_status = 200  # what the consistency proof endpoint answers
        self.refused_bundles: set[int] = set()  # entry bundles answered 404 (e.g. a leaf too large for them)
        self.requests: list[str] = []
        self.signer = parse_signer_key(SKEY)
        self.add(n)

    def add(self, n: int, tag: str = "") -> None:
        for _ in range(n):
            rec = {"schema": 1, "type": "member.approved", "data": {"public_id": f"{tag}{len(self.leaves):016x}"}}
            self.records.append(rec)
            self.leaves.append(record_leaf_bytes(rec))
        self.sign()

    def tree(self) -> MemoryNodeStore:
        store = MemoryNodeStore()
        store.append([leaf_hash(x) for x in self.leaves])
        return store

    def sign(self, signer=None) -> None:  # noqa: ANN001
        self.nodes = self.tree()  # like ledger_node: what proofs are computed from, untouched by entry tampering
        self.note = sign_checkpoint(Checkpoint(ORIGIN, len(self.leaves), self.nodes.root()), signer or self.signer)

    def handler(self, request: httpx.Request) -> httpx.Response:
        q = {k: int(v) for k, v in request.url.params.items()}
        path = request.url.path
        self.requests.append(path)
        if path.startswith("/ledger/tile/") and self.tiles:
            try:
                t = parse_tile_path(path.removeprefix("/ledger/"))
            except TileError:
                return httpx.Response(404, json={"detail": "not a tile"})
            start, end = t.leaf_range()
            if not t.entries or end > len(self.leaves) or t.index in self.refused_bundles:
                return httpx.Response(404, json={"detail": "no such tile"})
            return httpx.Response(200, content=encode_entry_bundle(self.leaves[start:end]))
        if path == "/ledger/proof/consistency" and self.consistency_status != 200:
            return httpx.Response(self.consistency_status, json={"detail": "refused"})
        if path == "/ledger/checkpoint":
            return httpx.Response(200, text=self.note)
        if path == "/ledger/entries":
            stop = min(q["end"], q["start"] + self.page, len(self.leaves))
            return httpx.Response(200, json={"entries": [
                {"index": i, "leaf": b64(self.leaves[i]), "record": self.records[i]} for i in range(q["start"], stop)]})
        if path == "/ledger/proof/consistency":
            hashes = consistency_proof(self.nodes, q["first"], q["second"])
            return httpx.Response(200, json={"first": q["first"], "second": q["second"], "hashes": [b64(h) for h in hashes]})
        return httpx.Response(404, json={"detail": "not found"})

    async def verify(self, state: Path, key: str = VKEY, page: int = 1000, **kw):  # noqa: ANN003, ANN201
        async with httpx.AsyncClient(transport=httpx.MockTransport(self.handler)) as client:
            return await verify_async("http://forum.test/", key, state, client=client, page=page, **kw)


async def test_clean_log_verifies_across_short_pages_and_state_advances(tmp_path: Path) -> None:
    log = FakeLog(57, page=7)  # the server gives fewer entries than asked for: the verifier continues
    state = tmp_path / "state.json"
    r = await log.verify(state, page=10)
    assert r.ok and r.exit_code == 0 and r.size == 57 and r.entries_checked == 57, r.message
    assert json.loads(state.read_text())["size"] == 57
    log.add(30)
    r = await log.verify(state, page=10)
    assert r.ok and r.previous_size == 57 and r.size == 87, r.message
    assert json.loads(state.read_text())["size"] == 87


async def test_empty_log_verifies(tmp_path: Path) -> None:
    r = await FakeLog(0).verify(tmp_path / "s.json")
    assert r.ok and r.size == 0


@pytest.mark.parametrize(("tamper", "problem"), [
    ("leaf_and_record", "root_mismatch"),
    ("record_only", "leaf_mismatch"),
    ("remove_last", "entries_missing"),
    ("remove_middle", "entries_missing"),
    ("other_key", "signature"),
    ("swap", "root_mismatch"),
])
async def test_tampering_is_detected_and_state_kept(tmp_path: Path, tamper: str, problem: str) -> None:
    log = FakeLog(20)
    state = tmp_path / "state.json"
    assert (await log.verify(state)).ok
    log.add(5)
    before = state.read_text()
    if tamper == "leaf_and_record":
        log.records[3] = {**log.records[3], "data": {"public_id": "forged"}}
        log.leaves[3] = record_leaf_bytes(log.records[3])
    elif tamper == "record_only":
        log.records[3] = {**log.records[3], "data": {"public_id": "forged"}}
    elif tamper == "remove_last":
        del log.leaves[-1], log.records[-1]
    elif tamper == "remove_middle":  # indices shift down: the server renumbers
        del log.leaves[10], log.records[10]
    elif tamper == "other_key":
        log.sign(parse_signer_key(generate_key(ORIGIN)[0]))
    elif tamper == "swap":
        log.leaves[1], log.leaves[2] = log.leaves[2], log.leaves[1]
        log.records[1], log.records[2] = log.records[2], log.records[1]
    r = await log.verify(state)
    assert not r.ok and r.problem == problem and r.exit_code == 1, r.message
    assert "ÉCHEC" in r.message and "FAILED" in r.message
    assert state.read_text() == before


async def test_fork_with_valid_signature_is_caught_only_by_the_state(tmp_path: Path) -> None:
    log = FakeLog(20)
    state = tmp_path / "state.json"
    assert (await log.verify(state)).ok
    log.records[5] = {**log.records[5], "data": {"public_id": "rewritten"}}
    log.leaves[5] = record_leaf_bytes(log.records[5])
    log.add(3)  # re-signed with the genuine key
    fresh = await log.verify(tmp_path / "fresh.json")
    assert fresh.ok  # a newcomer cannot tell...
    r = await log.verify(state)
    assert not r.ok and r.problem == "fork" and r.exit_code == 1, r.message  # ...but a returning auditor can
    assert json.loads(state.read_text())["size"] == 20


async def test_same_size_fork_and_rollback(tmp_path: Path) -> None:
    log = FakeLog(8)
    state = tmp_path / "state.json"
    assert (await log.verify(state)).ok
    log.records[0] = {**log.records[0], "data": {"public_id": "x"}}
    log.leaves[0] = record_leaf_bytes(log.records[0])
    log.sign()
    assert (await log.verify(state)).problem == "fork"
    shorter = FakeLog(5)
    assert (await shorter.verify(state)).problem == "rollback"


async def test_cannot_check_is_exit_2(tmp_path: Path) -> None:
    log = FakeLog(3)
    r = await log.verify(tmp_path / "s.json", key="not a key")
    assert r.problem == "bad_key" and r.exit_code == 2
    (tmp_path / "bad.json").write_text("{oops")
    r = await log.verify(tmp_path / "bad.json")
    assert r.problem == "state" and r.exit_code == 2
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda req: httpx.Response(503, json={"detail": "x"}))) as c:
        r = await verify_async("http://forum.test", VKEY, tmp_path / "s2.json", client=c)
    assert r.problem == "http" and r.exit_code == 2 and not (tmp_path / "s2.json").exists()
    r = await verify_async("http://127.0.0.1:9", VKEY, tmp_path / "s3.json")
    assert r.problem == "unreachable" and r.exit_code == 2


# ---------------------------------------------------------------- entry bundles (C2SP tlog-tiles)
async def test_leaves_come_from_entry_bundles_when_served(tmp_path: Path) -> None:
    log = FakeLog(600, tiles=True)  # two full bundles and 000.p/88
    state = tmp_path / "state.json"
    r = await log.verify(state)
    assert r.ok and r.entries_checked == 600 and r.details["leaves_from"] == {"tiles": 600, "api": 0}, r.message
    assert "/ledger/entries" not in log.requests and "/ledger/tile/entries/002.p/88" in log.requests
    log.add(300)  # the state's size falls inside a bundle: the old root is recomputed there
    r = await log.verify(state)
    assert r.ok and r.previous_size == 600 and r.size == 900, r.message
    assert (await log.verify(tmp_path / "api.json", via="api")).details["leaves_from"] == {"tiles": 0, "api": 900}


@pytest.mark.parametrize(("tamper", "problem"), [
    ("leaf_and_record", "root_mismatch"),
    ("remove_last", "entries_missing"),  # the last bundle is refused: its entries, read from the API, end early
    ("remove_middle", "entries_missing"),
    ("other_key", "signature"),
    ("swap", "root_mismatch"),
    ("record_only", None),  # the entries API's record, not a leaf: bundles carry leaves only
])
async def test_tampering_is_detected_through_entry_bundles(tmp_path: Path, tamper: str, problem: str | None) -> None:
    log = FakeLog(300, tiles=True)
    state = tmp_path / "state.json"
    assert (await log.verify(state)).ok
    log.add(5)
    if tamper == "leaf_and_record":
        log.records[260] = {**log.records[260], "data": {"public_id": "forged"}}
        log.leaves[260] = record_leaf_bytes(log.records[260])
    elif tamper == "record_only":
        log.records[3] = {**log.records[3], "data": {"public_id": "forged"}}
    elif tamper == "remove_last":
        del log.leaves[-1], log.records[-1]
    elif tamper == "remove_middle":
        del log.leaves[10], log.records[10]
    elif tamper == "other_key":
        log.sign(parse_signer_key(generate_key(ORIGIN)[0]))
    elif tamper == "swap":
        log.leaves[1], log.leaves[2] = log.leaves[2], log.leaves[1]
    r = await log.verify(state)
    assert r.problem == problem and r.ok == (problem is None), r.message
    if problem:
        assert r.exit_code == 1


async def test_records_option_checks_every_leaf_is_canonical_json(tmp_path: Path) -> None:
    log = FakeLog(10, tiles=True)
    log.leaves[4] = b'{"type": "member.approved", "schema": 1}'  # JSON, but not RFC 8785's
    log.sign()
    assert (await log.verify(tmp_path / "a.json")).ok  # the tree is sound...
    r = await log.verify(tmp_path / "b.json", records=True)
    assert r.problem == "leaf_mismatch" and r.exit_code == 1 and "4" in r.message, r.message  # ...a leaf is not


async def test_a_bundle_the_server_refuses_is_read_from_the_entries_api(tmp_path: Path) -> None:
    log = FakeLog(700, tiles=True)
    log.refused_bundles = {1}
    r = await log.verify(tmp_path / "s.json")
    assert r.ok and r.details["leaves_from"] == {"tiles": 444, "api": 256}, r.message
    r = await log.verify(tmp_path / "t.json", via="tiles")
    assert r.problem == "http" and r.exit_code == 2
    r = await FakeLog(5).verify(tmp_path / "u.json", via="tiles")  # a server without tiles
    assert r.problem == "http" and r.exit_code == 2


# ---------------------------------------------------------------- a server that refuses the consistency proof
@pytest.mark.parametrize("tiles", [False, True], ids=["api", "tiles"])
@pytest.mark.parametrize("status", [404, 500, 503])
async def test_refused_consistency_proof_still_catches_a_rewritten_history(tmp_path: Path, tiles: bool,
                                                                        status: int) -> None:
    log = FakeLog(300, tiles=tiles)
    state = tmp_path / "state.json"
    assert (await log.verify(state)).ok
    log.records[5] = {**log.records[5], "data": {"public_id": "rewritten"}}
    log.leaves[5] = record_leaf_bytes(log.records[5])
    log.add(3)  # re-signed with the genuine key
    log.consistency_status = status  # ...and no proof that it extends what was verified
    r = await log.verify(state)
    assert not r.ok and r.problem == "fork" and r.exit_code == 1, r.message  # not "could not verify"
    assert "réécrit" in r.message and "rewritten" in r.message and "refused the consistency proof" in r.message
    assert json.loads(state.read_text())["size"] == 300


@pytest.mark.parametrize("tiles", [False, True], ids=["api", "tiles"])
async def test_refused_consistency_proof_on_an_honest_log_is_verified_from_the_leaves(tmp_path: Path,
                                                                                     tiles: bool) -> None:
    log = FakeLog(40, tiles=tiles)
    state = tmp_path / "state.json"
    assert (await log.verify(state)).ok
    log.add(20)
    log.consistency_status = 503
    r = await log.verify(state)
    assert r.ok and r.exit_code == 0 and r.previous_size == 40, r.message
    assert "consistency_proof_refused" in r.details and "refusé la preuve de cohérence" in r.message
    assert json.loads(state.read_text())["size"] == 60


# ---------------------------------------------------------------- the canonical-leaf check
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
import rfc8785  # noqa: E402

from forum_ouvert.verify import is_canonical_leaf  # noqa: E402

_scalars = (st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8)
            | st.text(alphabet=st.characters(codec="ascii"), max_size=8)
            | st.floats(allow_nan=False, allow_infinity=False))
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                     max_leaves=12)
_records = st.dictionaries(st.text(max_size=5) | st.sampled_from(["a", "B", "\ue000", "\U0001f600", "é"]), _json, max_size=5)


@settings(max_examples=400, deadline=None)
@given(_records)
def test_canonical_leaf_check_agrees_with_rfc8785(record: dict) -> None:
    leaf = rfc8785.dumps(record)
    assert is_canonical_leaf(leaf, record)
    for other in (json.dumps(record, sort_keys=True).encode(), json.dumps(record, ensure_ascii=False).encode(),
                  json.dumps(record, sort_keys=True, separators=(",", ":")).encode()):
        assert is_canonical_leaf(other, record) == (other == leaf)


def test_canonical_leaf_check_refuses_what_jcs_cannot_represent() -> None:
    assert not is_canonical_leaf(b'{"n":9007199254740993}', {"n": 2**53 + 1})
    assert not is_canonical_leaf(b'{"n":1.0}', {"n": 1.0})
    assert is_canonical_leaf(b'{"n":1}', {"n": 1.0})
    assert not is_canonical_leaf(b"[]", [])
