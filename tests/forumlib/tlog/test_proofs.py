"""RFC 9162 §2.1.3.2 / §2.1.4.2 verification: vectors, corruptions, edge cases.

The corruption probes follow transparency-dev/merkle proof/verify_test.go
(corruptInclusionProof / corruptConsistencyProof).
"""

import hashlib

import pytest

from forumlib.tlog.hashing import EMPTY_ROOT, leaf_hash
from forumlib.tlog.proofs import (
    ProofError,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from tests.forumlib.tlog import reference, vectors

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _flip(proof: list[bytes], i: int, bit: int) -> list[bytes]:
    out = list(proof)
    out[i] = bytes([out[i][0] ^ bit]) + out[i][1:]
    return out


def inclusion_probes(index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes):
    yield "index - 1", (index - 1, size, leaf, proof, root)
    yield "index + 1", (index + 1, size, leaf, proof, root)
    yield "index ^ 2", (index ^ 2, size, leaf, proof, root)
    yield "size * 2", (index, size * 2, leaf, proof, root)
    yield "size // 2", (index, size // 2, leaf, proof, root)
    yield "wrong leaf", (index, size, leaf_hash(b"WrongLeaf"), proof, root)
    yield "empty root", (index, size, leaf, proof, EMPTY_ROOT)
    yield "random root", (index, size, leaf, proof, SOME_HASH)
    yield "trailing root", (index, size, leaf, [*proof, root], root)
    yield "preceding root", (index, size, leaf, [root, *proof], root)
    for i in range(len(proof)):
        yield f"proof[{i}] bit 3", (index, size, leaf, _flip(proof, i, 8), root)
    if proof:
        yield "removed component", (index, size, leaf, proof[:-1], root)
    if len(proof) > 1:
        yield "inserted component", (index, size, leaf, [proof[0], SOME_HASH, *proof[1:]], root)


def consistency_probes(m: int, n: int, r1: bytes, r2: bytes, proof: list[bytes]):
    yield "m - 1", (m - 1, n, r1, r2, proof)
    yield "m + 1", (m + 1, n, r1, r2, proof)
    yield "m ^ 2", (m ^ 2, n, r1, r2, proof)
    yield "n * 2", (m, n * 2, r1, r2, proof)
    yield "n // 2", (m, n // 2, r1, r2, proof)
    yield "wrong root1", (m, n, SOME_HASH, r2, proof)
    yield "wrong root2", (m, n, r1, SOME_HASH, proof)
    yield "swapped roots", (m, n, r2, r1, proof)
    yield "empty proof", (m, n, r1, r2, [])
    yield "trailing root1", (m, n, r1, r2, [*proof, r1])
    yield "trailing root2", (m, n, r1, r2, [*proof, r2])
    yield "preceding root1", (m, n, r1, r2, [r1, *proof])
    yield "preceding root2", (m, n, r1, r2, [r2, *proof])
    yield "preceding proof[0]", (m, n, r1, r2, [proof[0], *proof])
    yield "truncated proof", (m, n, r1, r2, proof[:-1])
    for i in range(len(proof)):
        yield f"proof[{i}] bit 4", (m, n, r1, r2, _flip(proof, i, 16))


def _assert_all_rejected(fn, probes) -> None:
    accepted = []
    for desc, args in probes:
        if args[0] < 0 or args[1] < 0:
            continue
        try:
            fn(*args)
        except ProofError:
            continue
        accepted.append(desc)
    assert not accepted, f"incorrectly verified: {accepted}"


@pytest.mark.parametrize(("index", "size", "proof"), vectors.INCLUSION_PROOFS)
def test_published_inclusion_proofs_verify_and_resist_corruption(index: int, size: int, proof: list) -> None:
    leaf = leaf_hash(vectors.LEAF_INPUTS[index])
    root = vectors.ROOTS[size]
    assert root_from_inclusion_proof(index, size, leaf, proof) == root
    verify_inclusion(index, size, leaf, proof, root)
    _assert_all_rejected(verify_inclusion, inclusion_probes(index, size, proof, root, leaf))


@pytest.mark.parametrize(("old", "new", "proof"), vectors.CONSISTENCY_PROOFS)
def test_published_consistency_proofs_verify_and_resist_corruption(old: int, new: int, proof: list) -> None:
    r1, r2 = vectors.ROOTS[old], vectors.ROOTS[new]
    verify_consistency(old, new, r1, r2, proof)
    if proof:
        _assert_all_rejected(verify_consistency, consistency_probes(old, new, r1, r2, proof))


def test_all_reference_proofs_up_to_40_resist_corruption() -> None:
    data = [b"leaf %d" % i for i in range(40)]
    roots = [reference.mth(data[:n]) for n in range(41)]
    for n in range(1, 41):
        for m in range(n):
            proof = reference.path(m, data[:n])
            leaf = leaf_hash(data[m])
            verify_inclusion(m, n, leaf, proof, roots[n])
            _assert_all_rejected(verify_inclusion, inclusion_probes(m, n, proof, roots[n], leaf))
        for m in range(1, n):
            proof = reference.proof(m, data[:n])
            verify_consistency(m, n, roots[m], roots[n], proof)
            _assert_all_rejected(verify_consistency, consistency_probes(m, n, roots[m], roots[n], proof))


def test_inclusion_single_entry_and_degenerate_sizes() -> None:
    h = leaf_hash(b"data")
    verify_inclusion(0, 1, h, [], h)
    with pytest.raises(ProofError, match="leads to root"):
        verify_inclusion(0, 1, h, [], SOME_HASH)
    for index, size in ((0, 0), (1, 0), (2, 1)):
        with pytest.raises(ProofError, match="outside"):
            verify_inclusion(index, size, h, [], h)


def test_inclusion_messages_say_why() -> None:
    leaf = leaf_hash(vectors.LEAF_INPUTS[0])
    _, size, proof = vectors.INCLUSION_PROOFS[1]
    with pytest.raises(ProofError, match="too long"):
        verify_inclusion(0, size, leaf, [*proof, SOME_HASH], vectors.ROOTS[size])
    with pytest.raises(ProofError, match="too short"):
        verify_inclusion(0, size, leaf, proof[:-1], vectors.ROOTS[size])
    with pytest.raises(ProofError, match=r"proof\[1\] must be 32 bytes"):
        verify_inclusion(0, size, leaf, [proof[0], b""], vectors.ROOTS[size])
    with pytest.raises(ProofError, match="leaf_hash must be 32 bytes"):
        verify_inclusion(0, size, b"", proof, vectors.ROOTS[size])
    with pytest.raises(ProofError, match="root must be 32 bytes"):
        verify_inclusion(0, size, leaf, proof, b"")
    with pytest.raises(ProofError, match="non-negative"):
        verify_inclusion(-1, size, leaf, proof, vectors.ROOTS[size])
    with pytest.raises(ProofError, match="sequence of hashes"):
        verify_inclusion(0, size, leaf, proof[0], vectors.ROOTS[size])  # type: ignore[arg-type]


def test_consistency_trivial_cases() -> None:
    a, b = hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 5, EMPTY_ROOT, a, [])
    verify_consistency(3, 3, a, a, [])
    cases = [
        ((0, 0, a, a, []), "empty tree"),
        ((0, 5, a, b, []), "empty tree"),
        ((0, 5, EMPTY_ROOT, a, [EMPTY_ROOT]), "must be empty"),
        ((3, 3, a, b, []), "different roots"),
        ((3, 3, a, a, [a]), "must be empty"),
        ((1, 0, a, b, []), "larger"),
        ((2, 1, a, b, []), "larger"),
        ((1, 2, a, b, []), "is empty"),
    ]
    for args, message in cases:
        with pytest.raises(ProofError, match=message):
            verify_consistency(*args)


def test_consistency_messages_say_which_root() -> None:
    old, new, proof = vectors.CONSISTENCY_PROOFS[2]
    r1, r2 = vectors.ROOTS[old], vectors.ROOTS[new]
    with pytest.raises(ProofError, match="old root"):
        verify_consistency(old, new, SOME_HASH, r2, proof)
    with pytest.raises(ProofError, match="new root"):
        verify_consistency(old, new, r1, SOME_HASH, proof)
    with pytest.raises(ProofError, match="too long"):
        verify_consistency(old, new, r1, r2, [*proof, SOME_HASH, SOME_HASH])
    with pytest.raises(ProofError, match="too short"):
        verify_consistency(old, new, r1, r2, proof[:-1])
