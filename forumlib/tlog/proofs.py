"""Pure verification of RFC 9162 inclusion and consistency proofs.

These are the iterative algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2,
step for step, so an auditor can check them against the RFC text. Every
failure raises ``ProofError`` with the reason; nothing returns a boolean
that a caller could forget to check.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from forumlib.tlog.hashing import EMPTY_ROOT, HASH_SIZE, node_hash


class ProofError(ValueError):
    """A proof, or the hashes and sizes it is checked against, does not hold."""


def _check_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProofError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ProofError(f"{name} must be non-negative, got {value}")


def _check_hash(name: str, value: bytes) -> None:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ProofError(f"{name} must be bytes, not {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise ProofError(f"{name} must be {HASH_SIZE} bytes, got {len(value)}")


def _check_path(path: Sequence[bytes]) -> list[bytes]:
    if isinstance(path, (bytes, bytearray, str)):
        raise ProofError("a proof must be a sequence of hashes, not a single bytes/str value")
    out = []
    for i, h in enumerate(path):
        _check_hash(f"proof[{i}]", h)
        out.append(bytes(h))
    return out


def _same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(bytes(a), bytes(b))


def root_from_inclusion_proof(
    leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 §2.1.3.2 steps 1–4).

    Raises ``ProofError`` if the proof has the wrong length for
    ``(leaf_index, tree_size)``; the caller still has to compare the root.
    """
    _check_int("leaf_index", leaf_index)
    _check_int("tree_size", tree_size)
    _check_hash("leaf_hash", leaf_hash)
    path = _check_path(proof)
    # 1. leaf_index must be inside the tree.
    if leaf_index >= tree_size:
        raise ProofError(f"leaf index {leaf_index} is outside a tree of size {tree_size}")
    # 2. fn = leaf_index, sn = tree_size - 1.
    fn, sn = leaf_index, tree_size - 1
    # 3. r = hash.
    r = bytes(leaf_hash)
    # 4. For each p in inclusion_path:
    for p in path:
        # a. sn == 0 means the path is longer than the tree is tall.
        if sn == 0:
            raise ProofError(f"inclusion proof is too long for leaf {leaf_index} in a tree of size {tree_size}")
        # b. p is a left sibling when fn is a right child or on the right edge.
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # ii. If LSB(fn) is not set, shift until it is set or fn is 0
            #     (levels where the right-edge node has no sibling).
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        # c. up one level.
        fn >>= 1
        sn >>= 1
    # 5. (first half) sn must have reached 0: the path reached the root.
    if sn != 0:
        raise ProofError(f"inclusion proof is too short for leaf {leaf_index} in a tree of size {tree_size}")
    return r


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``leaf_index`` of the tree with ``root`` (RFC 9162 §2.1.3.2).

    Returns ``None`` on success; raises ``ProofError`` otherwise.
    """
    _check_hash("root", root)
    computed = root_from_inclusion_proof(leaf_index, tree_size, leaf_hash, proof)
    # 5. (second half) r must equal the root hash.
    if not _same(computed, root):
        raise ProofError(
            f"inclusion proof for leaf {leaf_index} in a tree of size {tree_size} "
            f"leads to root {computed.hex()}, not the expected {bytes(root).hex()}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree ``(old_size, old_root)`` is a prefix of ``(new_size, new_root)``.

    Runs RFC 9162 §2.1.4.2 for ``0 < old_size < new_size``. The cases the
    RFC leaves outside the algorithm are decided strictly: equal sizes need
    an empty proof and equal roots; ``old_size == 0`` needs an empty proof
    and ``old_root == MTH({})``; ``new_size == 0`` additionally needs
    ``new_root == MTH({})``. Raises ``ProofError`` on any failure.
    """
    _check_int("old_size", old_size)
    _check_int("new_size", new_size)
    _check_hash("old_root", old_root)
    _check_hash("new_root", new_root)
    path = _check_path(proof)

    if old_size > new_size:
        raise ProofError(f"old tree size {old_size} is larger than new tree size {new_size}")
    if old_size == new_size:
        if path:
            raise ProofError(f"a consistency proof between equal sizes ({old_size}) must be empty")
        if not _same(old_root, new_root):
            raise ProofError(f"two different roots for the same tree size {old_size}")
        if old_size == 0 and not _same(old_root, EMPTY_ROOT):
            raise ProofError("the root of an empty tree must be SHA-256 of the empty string")
        return
    if old_size == 0:
        if path:
            raise ProofError("a consistency proof from the empty tree must be empty")
        if not _same(old_root, EMPTY_ROOT):
            raise ProofError("the root of an empty tree must be SHA-256 of the empty string")
        return

    # 1. An empty path cannot prove anything for 0 < first < second.
    if not path:
        raise ProofError(f"consistency proof from size {old_size} to {new_size} is empty")
    # 2. If first is an exact power of 2, prepend first_hash.
    if old_size & (old_size - 1) == 0:
        path = [bytes(old_root), *path]
    # 3. fn = first - 1, sn = second - 1.
    fn, sn = old_size - 1, new_size - 1
    # 4. Shift out the levels where the old tree's last node is a right child.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr = sr = first value.
    fr = sr = path[0]
    # 6. For each subsequent value c:
    for c in path[1:]:
        # a. sn == 0 means the proof is too long.
        if sn == 0:
            raise ProofError(f"consistency proof from size {old_size} to {new_size} is too long")
        # b. c is a left sibling of both trees' nodes, or a right sibling in the new tree only.
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            # ii. If LSB(fn) is not set, shift until it is set or fn is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        # c. up one level.
        fn >>= 1
        sn >>= 1
    # 7. sn must be 0 and both reconstructed roots must match.
    if sn != 0:
        raise ProofError(f"consistency proof from size {old_size} to {new_size} is too short")
    if not _same(fr, old_root):
        raise ProofError(
            f"consistency proof does not reproduce the old root: got {fr.hex()}, expected {bytes(old_root).hex()}"
        )
    if not _same(sr, new_root):
        raise ProofError(
            f"consistency proof does not reproduce the new root: got {sr.hex()}, expected {bytes(new_root).hex()}"
        )
