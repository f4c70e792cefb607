"""C2SP tlog-tiles: paths, the tiles of a tree, entry bundles, and tile hashes against the spec's
definition computed with the naive RFC 9162 oracle."""
import hashlib

import pytest

from forumlib.tlog.hashing import leaf_hash
from forumlib.tlog.storage import MemoryNodeStore
from forumlib.tlog.tiles import (
    TILE_WIDTH, Tile, TileError, decode_entry_bundle, decode_hash_tile, encode_entry_bundle, encode_hash_tile,
    entry_bundles, format_index, leaf_hashes, parse_tile_path, subtree_root, tile_path, tiles_for,
)
from forumlib.tlog.tree import Frontier, TreeError
from tests.forumlib.tlog import reference


@pytest.mark.parametrize(("n", "text"), [
    (0, "000"), (5, "005"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067"),
    (2**63 - 1, "x009/x223/x372/x036/x854/x775/807"),
])
def test_index_encoding_round_trips(n: int, text: str) -> None:
    assert format_index(n) == text
    assert parse_tile_path(f"tile/3/{text}") == Tile(3, n)
    assert parse_tile_path(f"tile/entries/{text}.p/17") == Tile(None, n, 17)


def test_paths_name_hash_tiles_and_entry_bundles() -> None:
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(0, 1234067, 8) == "tile/0/x001/x234/067.p/8"
    assert tile_path(None, 3, 255) == "tile/entries/003.p/255"
    assert Tile(2, 7).path == "tile/2/007" and Tile(None, 7, 1).path == "tile/entries/007.p/1"
    assert parse_tile_path("0/x001/x234/067.p/8") == Tile(0, 1234067, 8)  # what follows /tile/ in a URL
    assert parse_tile_path("tile/63/000") == Tile(63, 0)


@pytest.mark.parametrize("path", [
    "tile/0/5", "tile/0/0005", "tile/0/x000/005", "tile/0/x01/005", "tile/0/005/x001", "tile/0/x001",
    "tile/00/005", "tile/01/005", "tile/64/000", "tile/-1/000", "tile/a/000", "tile/0/005.p/0",
    "tile/0/005.p/256", "tile/0/005.p/08", "tile/0/005.p/", "tile/0/005.p", "tile/entries/005.q/3",
    "tile/0/", "tile/0", "tile/", "", "tile/entries", "tile/0/x1000/000", "tile/0/X001/000", "tile/0/005/",
    "tile/0/x010/x000/x000/x000/x000/x000/x000/000",  # 10**22: beyond a 64-bit index
])
def test_only_canonical_paths_parse(path: str) -> None:
    with pytest.raises(TileError):
        parse_tile_path(path)


def test_the_tiles_of_a_tree_follow_the_spec_examples() -> None:
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0 tile of
    # width 112, one full level 1 tile, one partial level 1 tile of width 17, and one partial level 2
    # tile of width 1" (plus its entry bundles).
    tiles = tiles_for(70_000)
    hashes = [t for t in tiles if not t.entries]
    assert [t for t in hashes if t.level == 0 and t.full] == [Tile(0, n) for n in range(273)]
    assert [t for t in hashes if not t.full or t.level > 0] == [Tile(0, 273, 112), Tile(1, 0), Tile(1, 1, 17),
                                                                Tile(2, 0, 1)]
    assert entry_bundles(70_000) == [*(Tile(None, n) for n in range(273)), Tile(None, 273, 112)]
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile of width 1"
    assert [t.path for t in tiles_for(256)] == ["tile/0/000", "tile/1/000.p/1", "tile/entries/000"]
    assert tiles_for(0) == [] and entry_bundles(1) == [Tile(None, 0, 1)]
    assert all(t.within(70_000) for t in tiles) and not Tile(0, 273).within(70_000)
    assert not Tile(1, 1, 18).within(70_000) and Tile(1, 1, 17).within(70_000)


def test_entry_bundles_are_uint16_length_prefixed() -> None:
    leaves = [b"", b"a", b"\x00\xff" * 300, bytes(0xFFFF)]
    data = encode_entry_bundle(leaves)
    assert data[:5] == b"\x00\x00\x00\x01a" and data[5:7] == (600).to_bytes(2, "big")
    assert decode_entry_bundle(data) == leaves
    with pytest.raises(TileError):
        encode_entry_bundle([bytes(0x10000)])
    for truncated in (data[:-1], data[:6], b"\x00"):
        with pytest.raises(TileError):
            decode_entry_bundle(truncated)
    assert decode_entry_bundle(b"") == []


def test_hash_tiles_are_concatenated_hashes() -> None:
    hashes = [hashlib.sha256(bytes([i])).digest() for i in range(3)]
    assert decode_hash_tile(encode_hash_tile(hashes), 3) == hashes
    with pytest.raises(TileError):
        decode_hash_tile(encode_hash_tile(hashes), 4)
    with pytest.raises(TileError):
        decode_hash_tile(b"\x00" * 33)
    with pytest.raises(TileError):
        encode_hash_tile([b"short"])


@pytest.fixture(scope="module")
def tree() -> tuple[list[bytes], MemoryNodeStore]:
    data = [b"leaf %d" % i for i in range(65_536 + 3 * 256 + 5)]
    store = MemoryNodeStore()
    store.append([leaf_hash(d) for d in data])
    return data, store


def test_hash_tiles_read_from_stored_nodes_are_the_specs_merkle_tree_hashes(tree) -> None:  # noqa: ANN001
    data, store = tree
    size = len(data)
    # "the n-th tile at level l ... MTH(D[(n * 256 + i) * 256**l : (n * 256 + i + 1) * 256**l])"
    for t in (Tile(0, 0), Tile(0, 256), Tile(0, 259, 5), Tile(1, 0), Tile(1, 1, 3), Tile(2, 0, 1)):
        assert t.within(size)
        got = decode_hash_tile(encode_hash_tile([store.get_nodes([i])[i] for i in t.node_ids()]), t.width)
        span = TILE_WIDTH ** t.level
        want = [reference.mth(data[(t.index * 256 + i) * span:(t.index * 256 + i + 1) * span]) for i in range(t.width)]
        assert got == want, t
    # A full tile's hashes fold into the hash its parent tile holds.
    level0 = [store.get_nodes([i])[i] for i in Tile(0, 3).node_ids()]
    assert subtree_root(level0) == store.get_nodes([(8, 3)])[(8, 3)]
    with pytest.raises(TileError):
        Tile(None, 0).node_ids()


def test_an_entry_bundle_hashes_to_its_level_0_tile_and_folds_into_the_tree(tree) -> None:  # noqa: ANN001
    data, store = tree
    frontier = Frontier()
    for bundle in entry_bundles(len(data)):
        start, end = bundle.leaf_range()
        leaves = decode_entry_bundle(encode_entry_bundle(data[start:end]))
        hashes = leaf_hashes(leaves)
        assert hashes == [store.get_nodes([i])[i] for i in Tile(0, bundle.index, bundle.width).node_ids()]
        if bundle.full:
            frontier.append_subtree(8, subtree_root(hashes))
        else:
            for h in hashes:
                frontier.append(h)
    assert frontier.size == len(data) and frontier.root() == store.root()
    with pytest.raises(TreeError):
        frontier.append_subtree(8, bytes(32))  # 5 leaves past a multiple of 256
    with pytest.raises(TileError):
        subtree_root([bytes(32)] * 3)
