"""The Merkle tree of RFC 9162 §2.1, computed from stored complete subtrees.

Storage layout. A node id ``(level, index)`` names the *complete* (perfect)
subtree of ``2**level`` leaves covering leaves ``[index * 2**level,
(index + 1) * 2**level)``; level 0 holds the leaf hashes. Once a complete
subtree exists its hash never changes, so a database stores each one exactly
once (about ``2n`` rows for ``n`` leaves) and never updates a row.

Any RFC 9162 subtree ``D[a:b]`` that the MTH/PATH/PROOF definitions reach —
including the incomplete right edge of a tree of any size ``N`` — is the
right-to-left fold of at most ``log2(b - a) + 1`` complete subtrees (the
binary decomposition of ``b - a``). So the root, an inclusion proof and a
consistency proof for any size ``N`` up to the stored size need
``O(log N)`` node reads, issued as a single ``get_nodes`` batch.

Appending needs only the *frontier* of the current tree (the complete
subtrees of that decomposition, ``popcount(n)`` nodes); ``append_leaves``
reads it once and returns every newly completed subtree for the caller to
store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, TypeAlias

from forumlib.tlog.hashing import EMPTY_ROOT, HASH_SIZE, node_hash

NodeId: TypeAlias = tuple[int, int]
"""``(level, index)`` of a complete subtree: leaves ``[index*2**level, (index+1)*2**level)``."""


class TreeError(ValueError):
    """A request the tree cannot answer: bad sizes/indices, or a bad leaf hash."""


class MissingNodeError(TreeError):
    """The storage did not return a node the computation needs.

    This means the storage is behind the requested tree size, or corrupt;
    never silently substitute anything for a missing node.
    """

    def __init__(self, missing: Sequence[NodeId]) -> None:
        self.missing = tuple(missing)
        shown = ", ".join(f"(level {lv}, index {ix})" for lv, ix in self.missing[:5])
        more = f" and {len(self.missing) - 5} more" if len(self.missing) > 5 else ""
        super().__init__(f"storage is missing {len(self.missing)} tree node(s): {shown}{more}")


class NodeReader(Protocol):
    """Read access to stored complete-subtree hashes.

    ``get_nodes`` returns a mapping from each requested id that exists to its
    32-byte hash; ids it does not hold are simply absent from the result (the
    tree functions then raise ``MissingNodeError``). Callers pass each id at
    most once per call.
    """

    def get_nodes(self, ids: Sequence[NodeId]) -> Mapping[NodeId, bytes]: ...


def _check_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise TreeError(f"{name} must be non-negative, got {value}")


def _split(n: int) -> int:
    """RFC 9162's k: the largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_ids(begin: int, size: int) -> list[NodeId]:
    """Complete subtrees whose right-to-left fold is MTH(D[begin:begin+size]).

    Valid for the ranges RFC 9162's recursion produces: ``begin`` must be a
    multiple of the largest power of two not exceeding ``size`` (so each
    piece of the binary decomposition of ``size`` is an aligned, stored
    subtree). Ids are returned left to right; ``size == 0`` gives ``[]``.
    """
    _check_size("begin", begin)
    _check_size("size", size)
    if size and begin % (1 << (size.bit_length() - 1)):
        raise TreeError(f"range [{begin}, {begin + size}) is not an RFC 9162 subtree")
    ids: list[NodeId] = []
    while size:
        level = size.bit_length() - 1
        ids.append((level, begin >> level))
        begin += 1 << level
        size -= 1 << level
    return ids


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Combine left-to-right complete subtrees into their MTH, right to left.

    The right-to-left order is what makes the result equal RFC 9162's MTH,
    where the smaller right part is always nested inside the last split.
    """
    acc = hashes[-1]
    for left in reversed(hashes[:-1]):
        acc = node_hash(left, acc)
    return acc


def _read(reader: NodeReader, ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
    """One batched read, with every requested id checked to be present and 32 bytes."""
    unique = list(dict.fromkeys(ids))
    if not unique:
        return {}
    got = reader.get_nodes(unique)
    missing = [i for i in unique if i not in got]
    if missing:
        raise MissingNodeError(missing)
    out: dict[NodeId, bytes] = {}
    for i in unique:
        value = bytes(got[i])
        if len(value) != HASH_SIZE:
            raise TreeError(f"storage returned a {len(value)}-byte hash for node {i}, expected {HASH_SIZE}")
        out[i] = value
    return out


def _range_hashes(reader: NodeReader, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """MTH of each (begin, size) range, all nodes fetched in one batch."""
    plans = [subtree_ids(begin, size) for begin, size in ranges]
    nodes = _read(reader, (i for plan in plans for i in plan))
    return [_fold([nodes[i] for i in plan]) for plan in plans]


def root_hash(reader: NodeReader, size: int) -> bytes:
    """MTH(D[size]): the root hash of the tree's first ``size`` leaves."""
    _check_size("size", size)
    if size == 0:
        return EMPTY_ROOT
    return _range_hashes(reader, [(0, size)])[0]


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The subtrees whose MTHs form PATH(index, D[size]), in proof order (RFC 9162 §2.1.3.1).

    PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])   if m < k
                  = PATH(m-k, D[k:n]) : MTH(D[0:k])  if m >= k
    Walking top-down collects siblings root-first; the proof lists them leaf-first.
    """
    ranges: list[tuple[int, int]] = []
    begin, m, n = 0, index, size
    while n > 1:
        k = _split(n)
        if m < k:
            ranges.append((begin + k, n - k))
            n = k
        else:
            ranges.append((begin, k))
            begin, m, n = begin + k, m - k, n - k
    ranges.reverse()
    return ranges


def inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) — the audit path of leaf ``index`` in the tree of ``size`` leaves."""
    _check_size("index", index)
    _check_size("size", size)
    if index >= size:
        raise TreeError(f"leaf index {index} is outside a tree of size {size}")
    return _range_hashes(reader, _inclusion_ranges(index, size))


def _consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The subtrees whose MTHs form PROOF(m, D[n]), in proof order (RFC 9162 §2.1.4.1).

    SUBPROOF(m, D[m], true)  = {}
    SUBPROOF(m, D[m], false) = {MTH(D[m])}
    SUBPROOF(m, D[n], b)     = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])      if m <= k
                             = SUBPROOF(m-k, D[k:n], false) : MTH(D[0:k]) if m > k
    """
    ranges: list[tuple[int, int]] = []
    begin, m, n, whole = 0, old_size, new_size, True
    while m != n:
        k = _split(n)
        if m <= k:
            ranges.append((begin + k, n - k))
            n = k
        else:
            ranges.append((begin, k))
            begin, m, n, whole = begin + k, m - k, n - k, False
    if not whole:
        ranges.append((begin, n))
    ranges.reverse()
    return ranges


def consistency_proof(reader: NodeReader, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[new_size]): proves the first tree is a prefix of the second.

    Defined by RFC 9162 for ``0 < old_size < new_size``; for ``old_size == 0``
    or ``old_size == new_size`` there is nothing to prove and the proof is
    empty (which ``proofs.verify_consistency`` expects).
    """
    _check_size("old_size", old_size)
    _check_size("new_size", new_size)
    if old_size > new_size:
        raise TreeError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    return _range_hashes(reader, _consistency_ranges(old_size, new_size))


def _plan_ids(ranges: Sequence[tuple[int, int]]) -> list[NodeId]:
    return list(dict.fromkeys(i for begin, size in ranges for i in subtree_ids(begin, size)))


def root_node_ids(size: int) -> list[NodeId]:
    """The node ids ``root_hash(reader, size)`` reads (its single batch), for async prefetching.

    An asynchronous store fetches these ids in one query, then runs the pure
    function over a dict of the result (see ``DictNodeReader``).
    """
    _check_size("size", size)
    return subtree_ids(0, size)


def inclusion_node_ids(index: int, size: int) -> list[NodeId]:
    """The node ids ``inclusion_proof(reader, index, size)`` reads (same checks, same batch)."""
    _check_size("index", index)
    _check_size("size", size)
    if index >= size:
        raise TreeError(f"leaf index {index} is outside a tree of size {size}")
    return _plan_ids(_inclusion_ranges(index, size))


def consistency_node_ids(old_size: int, new_size: int) -> list[NodeId]:
    """The node ids ``consistency_proof(reader, old_size, new_size)`` reads (same checks, same batch)."""
    _check_size("old_size", old_size)
    _check_size("new_size", new_size)
    if old_size > new_size:
        raise TreeError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    return _plan_ids(_consistency_ranges(old_size, new_size))


class DictNodeReader:
    """A ``NodeReader`` over nodes already fetched (e.g. by one asynchronous database query)."""

    __slots__ = ("nodes",)

    def __init__(self, nodes: Mapping[NodeId, bytes]) -> None:
        self.nodes = nodes

    def get_nodes(self, ids: Sequence[NodeId]) -> Mapping[NodeId, bytes]:
        return {i: self.nodes[i] for i in ids if i in self.nodes}


class Frontier:
    """The complete subtrees covering ``[0, size)`` — all the state appending needs.

    Holds ``popcount(size)`` hashes, largest subtree first (the ids are
    ``subtree_ids(0, size)``). ``append`` returns every complete subtree the
    new leaf completes, which is exactly what storage must add: a leaf at
    level 0 plus one node per level it closes.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        _check_size("size", size)
        if len(hashes) != bin(size).count("1"):
            raise TreeError(f"a frontier of size {size} has {bin(size).count('1')} hashes, got {len(hashes)}")
        for h in hashes:
            if len(h) != HASH_SIZE:
                raise TreeError(f"frontier hashes must be {HASH_SIZE} bytes, got {len(h)}")
        self._size = size
        self._stack: list[tuple[int, bytes]] = [
            (level, bytes(h)) for (level, _), h in zip(subtree_ids(0, size), hashes, strict=True)
        ]

    @classmethod
    def load(cls, reader: NodeReader, size: int) -> Frontier:
        """Read the frontier of the tree of ``size`` leaves from storage (one batch)."""
        _check_size("size", size)
        ids = subtree_ids(0, size)
        nodes = _read(reader, ids)
        return cls(size, [nodes[i] for i in ids])

    @property
    def size(self) -> int:
        """Number of leaves covered."""
        return self._size

    @property
    def nodes(self) -> list[tuple[NodeId, bytes]]:
        """The frontier as ``((level, index), hash)`` pairs, left to right."""
        return [(i, h) for i, (_, h) in zip(subtree_ids(0, self._size), self._stack, strict=True)]

    def root(self) -> bytes:
        """MTH of the covered leaves (``EMPTY_ROOT`` when empty)."""
        if not self._stack:
            return EMPTY_ROOT
        return _fold([h for _, h in self._stack])

    def append(self, leaf_hash: bytes) -> list[tuple[NodeId, bytes]]:
        """Append one *leaf hash*; return the newly complete subtrees, lowest level first."""
        if len(leaf_hash) != HASH_SIZE:
            raise TreeError(f"a leaf hash must be {HASH_SIZE} bytes, got {len(leaf_hash)}")
        index = self._size
        level, acc = 0, bytes(leaf_hash)
        new: list[tuple[NodeId, bytes]] = [((0, index), acc)]
        while self._stack and self._stack[-1][0] == level:
            _, left = self._stack.pop()
            acc = node_hash(left, acc)
            level += 1
            index >>= 1
            new.append(((level, index), acc))
        self._stack.append((level, acc))
        self._size += 1
        return new

    def append_subtree(self, level: int, subtree_hash: bytes) -> None:
        """Append ``2**level`` leaves at once, given the MTH of their complete subtree (e.g. a full
        entry bundle's). The current size must be a multiple of ``2**level``."""
        if len(subtree_hash) != HASH_SIZE:
            raise TreeError(f"a subtree hash must be {HASH_SIZE} bytes, got {len(subtree_hash)}")
        if level < 0 or self._size % (1 << level):
            raise TreeError(f"a subtree of 2**{level} leaves cannot follow {self._size} leaves")
        added, acc = 1 << level, bytes(subtree_hash)
        while self._stack and self._stack[-1][0] == level:
            _, left = self._stack.pop()
            acc = node_hash(left, acc)
            level += 1
        self._stack.append((level, acc))
        self._size += added


def append_leaves(
    reader: NodeReader, size: int, leaf_hashes: Iterable[bytes]
) -> tuple[list[tuple[NodeId, bytes]], bytes]:
    """Append leaf hashes to a stored tree of ``size`` leaves.

    Returns ``(new_nodes, new_root)``: every ``((level, index), hash)`` to
    insert (each complete subtree exactly once, leaves included), and the
    root of the grown tree. Reads only the current frontier (one batch of at
    most ``log2(size) + 1`` ids); the new nodes are not read back, so the
    caller may insert them in the same transaction afterwards.
    """
    frontier = Frontier.load(reader, size)
    new_nodes: list[tuple[NodeId, bytes]] = []
    for leaf in leaf_hashes:
        new_nodes.extend(frontier.append(leaf))
    return new_nodes, frontier.root()
