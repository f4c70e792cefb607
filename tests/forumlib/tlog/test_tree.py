"""Tree computation from stored complete subtrees, against RFC 9162 and published vectors."""

import hashlib

import pytest

from forumlib.tlog.hashing import EMPTY_ROOT, leaf_hash
from forumlib.tlog.proofs import verify_consistency, verify_inclusion
from forumlib.tlog.storage import MemoryNodeStore
from forumlib.tlog.tree import (
    Frontier,
    MissingNodeError,
    TreeError,
    append_leaves,
    consistency_proof,
    inclusion_proof,
    root_hash,
    subtree_ids,
)
from tests.forumlib.tlog import reference, vectors

MAX = 70
DATA = [hashlib.sha256(b"forum %d" % i).digest()[: i % 7] + bytes([i]) for i in range(MAX)]


@pytest.fixture(scope="module")
def store() -> MemoryNodeStore:
    s = MemoryNodeStore()
    for chunk in (DATA[:1], DATA[1:5], DATA[5:6], DATA[6:33], DATA[33:]):
        s.append([leaf_hash(d) for d in chunk])
    assert s.size == MAX
    return s


@pytest.fixture(scope="module")
def vector_store() -> MemoryNodeStore:
    s = MemoryNodeStore()
    s.append(leaf_hash(x) for x in vectors.LEAF_INPUTS)
    return s


# --- published vectors -------------------------------------------------------


def test_published_roots_for_every_size(vector_store: MemoryNodeStore) -> None:
    for n, expected in enumerate(vectors.ROOTS):
        assert vector_store.root(n) == expected, n


def test_every_stored_node_matches_published_node_hashes(vector_store: MemoryNodeStore) -> None:
    expected = {(lv, ix): h for lv, row in enumerate(vectors.NODE_HASHES) for ix, h in enumerate(row)}
    assert vector_store.get_nodes(list(expected)) == expected
    assert len(vector_store) == len(expected) == 15


def test_published_roots_while_growing() -> None:
    s = MemoryNodeStore()
    for n, data in enumerate(vectors.LEAF_INPUTS, start=1):
        assert s.append([leaf_hash(data)]) == vectors.ROOTS[n]


@pytest.mark.parametrize(("index", "size", "expected"), vectors.INCLUSION_PROOFS)
def test_published_inclusion_proofs(vector_store: MemoryNodeStore, index: int, size: int, expected: list) -> None:
    assert vector_store.inclusion_proof(index, size) == expected


@pytest.mark.parametrize(("old", "new", "expected"), vectors.CONSISTENCY_PROOFS)
def test_published_consistency_proofs(vector_store: MemoryNodeStore, old: int, new: int, expected: list) -> None:
    assert vector_store.consistency_proof(old, new) == expected


# --- property test against the recursive RFC definitions ---------------------


def test_roots_match_reference_for_all_sizes(store: MemoryNodeStore) -> None:
    assert root_hash(store, 0) == EMPTY_ROOT
    for n in range(1, MAX + 1):
        assert root_hash(store, n) == reference.mth(DATA[:n]), n


def test_inclusion_proofs_match_reference_for_all_sizes_and_indices(store: MemoryNodeStore) -> None:
    for n in range(1, MAX + 1):
        root = reference.mth(DATA[:n])
        for m in range(n):
            got = inclusion_proof(store, m, n)
            assert got == reference.path(m, DATA[:n]), (m, n)
            verify_inclusion(m, n, leaf_hash(DATA[m]), got, root)


def test_consistency_proofs_match_reference_for_all_pairs(store: MemoryNodeStore) -> None:
    roots = [reference.mth(DATA[:n]) for n in range(MAX + 1)]
    for n in range(1, MAX + 1):
        for m in range(0, n + 1):
            got = consistency_proof(store, m, n)
            expected = reference.proof(m, DATA[:n]) if 0 < m < n else []
            assert got == expected, (m, n)
            verify_consistency(m, n, roots[m], roots[n], got)


def test_every_complete_subtree_is_stored_once_with_the_right_hash(store: MemoryNodeStore) -> None:
    expected = {}
    level = 0
    while (1 << level) <= MAX:
        w = 1 << level
        for i in range(MAX // w):
            expected[(level, i)] = reference.mth(DATA[i * w : (i + 1) * w])
        level += 1
    assert len(store) == len(expected) == 2 * MAX - bin(MAX).count("1")
    assert store.get_nodes(list(expected)) == expected


def test_batched_and_one_by_one_appends_agree(store: MemoryNodeStore) -> None:
    one = MemoryNodeStore()
    for d in DATA:
        one.append([leaf_hash(d)])
    ids = list(store._nodes)  # same node set and hashes
    assert one.get_nodes(ids) == store.get_nodes(ids)
    assert len(one) == len(store)


# --- O(log n) storage access --------------------------------------------------


def _bound(n: int) -> int:
    return 2 * n.bit_length() + 1


@pytest.fixture(scope="module")
def big_store() -> MemoryNodeStore:
    s = MemoryNodeStore()
    s.append(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(5000))
    return s


@pytest.mark.parametrize("n", [1, 2, 3, 1000, 1023, 1024, 1025, 4097, 4999, 5000])
def test_reads_are_logarithmic_and_batched(big_store: MemoryNodeStore, n: int) -> None:
    s = big_store
    for op in (
        lambda: s.root(n),
        lambda: s.inclusion_proof(0, n),
        lambda: s.inclusion_proof(n - 1, n),
        lambda: s.inclusion_proof(n // 3, n),
        lambda: s.consistency_proof(max(1, n // 3), n),
        lambda: s.consistency_proof(max(1, n - 1), n),
    ):
        reads, calls = s.reads, s.read_calls
        op()
        assert s.read_calls - calls <= 1
        assert s.reads - reads <= _bound(n)


def test_append_reads_only_the_frontier(big_store: MemoryNodeStore) -> None:
    reads, calls = big_store.reads, big_store.read_calls
    new_nodes, root = append_leaves(big_store, 5000, [leaf_hash(b"x")] * 10)
    assert big_store.read_calls - calls == 1
    assert big_store.reads - reads == bin(5000).count("1")
    # Exactly the subtrees whose last leaf is one of the 10 new ones.
    expected = {(lv, ix) for lv in range(14) for ix in range(5010 >> lv) if 5000 < (ix + 1) << lv <= 5010}
    assert (4, 312) in expected and (3, 625) in expected and (5, 156) not in expected
    assert sorted(i for i, _ in new_nodes) == sorted(expected)
    assert len(root) == 32


# --- frontier, decomposition, errors ----------------------------------------


def test_subtree_ids() -> None:
    assert subtree_ids(0, 0) == []
    assert subtree_ids(0, 13) == [(3, 0), (2, 2), (0, 12)]
    assert subtree_ids(8, 5) == [(2, 2), (0, 12)]
    assert subtree_ids(16, 16) == [(4, 1)]
    assert subtree_ids(4, 5) == [(2, 1), (0, 8)]
    for begin, size in ((2, 5), (1, 2), (3, 4)):
        with pytest.raises(TreeError, match="not an RFC 9162 subtree"):
            subtree_ids(begin, size)


def test_frontier_round_trip(store: MemoryNodeStore) -> None:
    for n in (0, 1, 6, 37, MAX):
        f = Frontier.load(store, n)
        assert f.size == n
        assert f.root() == reference.mth(DATA[:n])
        assert [i for i, _ in f.nodes] == subtree_ids(0, n)
        again = Frontier(n, [h for _, h in f.nodes])
        assert again.root() == f.root()


def test_frontier_rejects_bad_input() -> None:
    with pytest.raises(TreeError, match="has 2 hashes"):
        Frontier(3, [b"\0" * 32])
    with pytest.raises(TreeError, match="32 bytes"):
        Frontier(0).append(b"short")
    with pytest.raises(TreeError, match="non-negative"):
        Frontier(-1)


def test_errors_are_specific(store: MemoryNodeStore) -> None:
    with pytest.raises(MissingNodeError, match="missing"):
        root_hash(store, MAX + 1)
    with pytest.raises(MissingNodeError):
        inclusion_proof(store, 0, MAX + 5)
    with pytest.raises(MissingNodeError):
        append_leaves(store, MAX + 1, [])
    with pytest.raises(TreeError, match="outside"):
        inclusion_proof(store, 5, 5)
    with pytest.raises(TreeError, match="larger"):
        consistency_proof(store, 6, 5)
    with pytest.raises(TypeError):
        root_hash(store, 2.0)  # type: ignore[arg-type]
    with pytest.raises(TreeError, match="beyond"):
        store.root(MAX + 1)


def test_storage_refuses_to_rewrite_a_node() -> None:
    s = MemoryNodeStore()
    s.append([leaf_hash(b"a")])
    s.put_nodes([((0, 0), leaf_hash(b"a"))])  # idempotent
    with pytest.raises(TreeError, match="different hash"):
        s.put_nodes([((0, 0), leaf_hash(b"b"))])


class _LyingReader:
    def get_nodes(self, ids):
        return {i: b"\0" * 31 for i in ids}


def test_wrong_length_hash_from_storage_is_an_error() -> None:
    with pytest.raises(TreeError, match="31-byte"):
        root_hash(_LyingReader(), 3)
