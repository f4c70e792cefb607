"""An in-memory ``NodeReader``: the reference storage for tests and small tools.

It mirrors what a database table keyed by ``(level, index)`` does, and counts
reads so tests can check that proofs stay O(log n) in node reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from forumlib.tlog.hashing import HASH_SIZE
from forumlib.tlog.tree import (
    NodeId,
    TreeError,
    append_leaves,
    consistency_proof,
    inclusion_proof,
    root_hash,
)


class MemoryNodeStore:
    """Complete-subtree hashes in a dict, plus the tree size they cover.

    ``put_nodes`` refuses to overwrite a node with a different hash: stored
    subtrees are immutable, and a conflicting write means a bug or an attack.
    """

    def __init__(self) -> None:
        self._nodes: dict[NodeId, bytes] = {}
        self.size = 0
        self.reads = 0
        """Total number of node ids requested through ``get_nodes``."""
        self.read_calls = 0
        """Number of ``get_nodes`` calls (batches)."""

    def __len__(self) -> int:
        return len(self._nodes)

    def get_nodes(self, ids: Sequence[NodeId]) -> Mapping[NodeId, bytes]:
        self.read_calls += 1
        self.reads += len(ids)
        return {i: self._nodes[i] for i in ids if i in self._nodes}

    def put_nodes(self, nodes: Iterable[tuple[NodeId, bytes]]) -> None:
        for node_id, value in nodes:
            if len(value) != HASH_SIZE:
                raise TreeError(f"node {node_id} must be {HASH_SIZE} bytes, got {len(value)}")
            old = self._nodes.get(node_id)
            if old is not None and old != value:
                raise TreeError(f"node {node_id} already stored with a different hash")
            self._nodes[node_id] = bytes(value)

    # Conveniences binding the pure tree functions to this store.

    def append(self, leaf_hashes: Iterable[bytes]) -> bytes:
        """Append leaf hashes, store the new subtrees, and return the new root."""
        leaf_hashes = list(leaf_hashes)
        new_nodes, root = append_leaves(self, self.size, leaf_hashes)
        self.put_nodes(new_nodes)
        self.size += len(leaf_hashes)
        return root

    def root(self, size: int | None = None) -> bytes:
        return root_hash(self, self.size if size is None else self._within(size))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(self, index, self.size if size is None else self._within(size))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        return consistency_proof(self, old_size, self.size if new_size is None else self._within(new_size))

    def _within(self, size: int) -> int:
        if size > self.size:
            raise TreeError(f"tree size {size} is beyond the stored size {self.size}")
        return size
