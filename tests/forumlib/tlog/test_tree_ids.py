"""The node ids an async store must prefetch are exactly the ones the pure tree code reads."""
import hashlib

import pytest

from forumlib.tlog import (
    DictNodeReader, MemoryNodeStore, TreeError, consistency_node_ids, consistency_proof, inclusion_node_ids,
    inclusion_proof, leaf_hash, root_hash, root_node_ids,
)

N = 70


class Recording(MemoryNodeStore):
    def __init__(self, base: MemoryNodeStore) -> None:
        super().__init__()
        self._nodes = base._nodes
        self.size = base.size
        self.asked: list = []

    def get_nodes(self, ids):  # noqa: ANN001, ANN201
        self.asked.extend(ids)
        return super().get_nodes(ids)


@pytest.fixture(scope="module")
def store() -> MemoryNodeStore:
    s = MemoryNodeStore()
    s.append([leaf_hash(hashlib.sha256(b"%d" % i).digest()) for i in range(N)])
    return s


def test_root_ids(store: MemoryNodeStore) -> None:
    for size in range(N + 1):
        rec = Recording(store)
        expected = root_hash(rec, size)
        ids = root_node_ids(size)
        assert ids == rec.asked
        assert root_hash(DictNodeReader(store.get_nodes(ids)), size) == expected


def test_inclusion_ids(store: MemoryNodeStore) -> None:
    for size in range(1, N + 1):
        for index in range(size):
            rec = Recording(store)
            expected = inclusion_proof(rec, index, size)
            ids = inclusion_node_ids(index, size)
            assert ids == list(dict.fromkeys(rec.asked))
            assert inclusion_proof(DictNodeReader(store.get_nodes(ids)), index, size) == expected


def test_consistency_ids(store: MemoryNodeStore) -> None:
    for second in range(N + 1):
        for first in range(second + 1):
            rec = Recording(store)
            expected = consistency_proof(rec, first, second)
            ids = consistency_node_ids(first, second)
            assert ids == list(dict.fromkeys(rec.asked))
            assert consistency_proof(DictNodeReader(store.get_nodes(ids)), first, second) == expected


def test_bad_arguments_are_refused_before_any_read() -> None:
    with pytest.raises(TreeError):
        inclusion_node_ids(5, 5)
    with pytest.raises(TreeError):
        inclusion_node_ids(-1, 5)
    with pytest.raises(TreeError):
        consistency_node_ids(6, 5)
    with pytest.raises(TreeError):
        root_node_ids(-1)
    with pytest.raises(TypeError):
        root_node_ids(True)
