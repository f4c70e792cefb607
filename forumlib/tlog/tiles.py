"""C2SP tlog-tiles (https://c2sp.org/tlog-tiles): the log as static, cacheable resources.

* ``tile/<L>/<N>[.p/<W>]`` — a *hash tile*: ``W`` (256 when full) consecutive Merkle tree hashes at
  tile level ``L``, i.e. the complete subtrees of ``256**L`` leaves number ``N*256`` to
  ``N*256 + W - 1``. In this package's storage layout (``tree``: complete subtrees by
  ``(level, index)``) those are the nodes ``(8*L, N*256 + i)``: a tile is read straight from storage.
* ``tile/entries/<N>[.p/<W>]`` — an *entry bundle*: leaves ``N*256`` to ``N*256 + W - 1``, each as a
  big-endian uint16 length followed by the leaf bytes.

``<N>`` is written in zero-padded groups of three digits, all but the last prefixed with ``x``
(1234067 -> ``x001/x234/067``); ``.p/<W>`` (1 <= W <= 255) marks a partial tile, the rightmost one of a
level when the tree size is not a multiple of its span. Only the canonical spelling parses, so one
resource has one path (and one cache entry).

A full tile never changes once it exists; a partial tile of width ``W`` neither, but the spec lets a
log drop it once the full tile exists, so it is served as short-lived.

Pure functions, no I/O: the service computes tiles from stored nodes and leaves, the verifier parses
them and recomputes the tree.
"""
from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from forumlib.tlog.hashing import HASH_SIZE
from forumlib.tlog.tree import NodeId, TreeError

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
"""Hashes in a full tile, leaves in a full entry bundle."""
MAX_LEVEL = 63
MAX_ENTRY_SIZE = 0xFFFF
"""An entry bundle prefixes each leaf with a uint16 length: a larger leaf cannot be bundled."""


class TileError(TreeError):
    """A tile path that does not name a tile, a tile the tree does not (yet) hold, or malformed tile data."""


@dataclass(frozen=True)
class Tile:
    """A hash tile (``level >= 0``) or an entry bundle (``level is None``) of ``width`` hashes or leaves."""

    level: int | None
    index: int
    width: int = TILE_WIDTH

    @property
    def entries(self) -> bool:
        return self.level is None

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def path(self) -> str:
        """``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``."""
        return tile_path(self.level, self.index, self.width)

    def leaf_range(self) -> tuple[int, int]:
        """The leaves ``[start, end)`` this tile's hashes (or entries) cover."""
        span = 1 << (TILE_HEIGHT * (self.level or 0))
        start = self.index * TILE_WIDTH * span
        return start, start + self.width * span

    def node_ids(self) -> list[NodeId]:
        """The stored complete subtrees a hash tile is made of, left to right."""
        if self.level is None:
            raise TileError("an entry bundle holds leaves, not tree nodes")
        first = self.index * TILE_WIDTH
        return [(TILE_HEIGHT * self.level, first + i) for i in range(self.width)]

    def within(self, size: int) -> bool:
        """Whether a tree of ``size`` leaves holds all of this tile."""
        return self.leaf_range()[1] <= size


# ---------------------------------------------------------------- paths
def format_index(n: int) -> str:
    """``N`` as tile path elements: 5 -> ``005``, 1234067 -> ``x001/x234/067``."""
    if n < 0:
        raise TileError(f"a tile index is non-negative, got {n}")
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def tile_path(level: int | None, index: int, width: int = TILE_WIDTH) -> str:
    if not 1 <= width <= TILE_WIDTH:
        raise TileError(f"a tile holds 1 to {TILE_WIDTH} hashes, not {width}")
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    head = "entries" if level is None else str(level)
    return f"tile/{head}/{format_index(index)}{suffix}"


_GROUP = re.compile(r"x[0-9]{3}")
_LAST = re.compile(r"[0-9]{3}")
_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")


def parse_tile_path(path: str) -> Tile:
    """The tile named by ``tile/…`` (or the part after ``tile/``). Only canonical paths parse: no
    leading ``x000`` group, no leading zeros in ``L`` or ``W``; otherwise ``TileError``."""
    parts = path.removeprefix("tile/").split("/")
    if len(parts) < 2:
        raise TileError(f"not a tile path: {path!r}")
    head, rest = parts[0], parts[1:]
    if head == "entries":
        level = None
    elif _LEVEL.fullmatch(head) and int(head) <= MAX_LEVEL:
        level = int(head)
    else:
        raise TileError(f"tile level must be 0 to {MAX_LEVEL}: {head!r}")
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        if not _WIDTH.fullmatch(rest[-1]) or int(rest[-1]) >= TILE_WIDTH:
            raise TileError(f"a partial tile's width is 1 to {TILE_WIDTH - 1}: {rest[-1]!r}")
        width = int(rest[-1])
        rest = [*rest[:-2], rest[-2][:-2]]
    *groups, last = rest
    if not _LAST.fullmatch(last) or not all(_GROUP.fullmatch(g) for g in groups) or (groups and groups[0] == "x000"):
        raise TileError(f"not a canonical tile index: {'/'.join(rest)!r}")
    index = 0
    for g in [*groups, last]:
        index = index * 1000 + int(g.removeprefix("x"))
    if index >= 1 << 63:
        raise TileError("tile index out of range")
    return Tile(level, index, width)


def tiles_for(size: int) -> list[Tile]:
    """Every tile of a tree of ``size`` leaves — full ones, then each level's partial one — hash tiles
    from level 0 up, then the entry bundles (what a mirror copies)."""
    out: list[Tile] = []
    level = 0
    while hashes := size >> (TILE_HEIGHT * level):
        out.extend(Tile(level, n) for n in range(hashes // TILE_WIDTH))
        if hashes % TILE_WIDTH:
            out.append(Tile(level, hashes // TILE_WIDTH, hashes % TILE_WIDTH))
        level += 1
    out.extend(Tile(None, n) for n in range(size // TILE_WIDTH))
    if size % TILE_WIDTH:
        out.append(Tile(None, size // TILE_WIDTH, size % TILE_WIDTH))
    return out


def entry_bundles(size: int) -> list[Tile]:
    """The entry bundles of a tree of ``size`` leaves, in order (the last one partial if need be)."""
    return [t for t in tiles_for(size) if t.entries]


# ---------------------------------------------------------------- contents
def encode_entry_bundle(leaves: Iterable[bytes]) -> bytes:
    """A sequence of big-endian uint16 length-prefixed leaves."""
    out = bytearray()
    for leaf in leaves:
        if len(leaf) > MAX_ENTRY_SIZE:
            raise TileError(f"a {len(leaf)}-byte leaf does not fit an entry bundle (at most {MAX_ENTRY_SIZE})")
        out += len(leaf).to_bytes(2, "big")
        out += leaf
    return bytes(out)


def decode_entry_bundle(data: bytes) -> list[bytes]:
    """The leaves of an entry bundle; ``TileError`` if a length runs past the end."""
    data = bytes(data)
    leaves: list[bytes] = []
    append = leaves.append
    pos, end = 0, len(data)
    while pos < end:
        if pos + 2 > end:
            raise TileError("entry bundle truncated inside a length prefix")
        start = pos + 2
        pos = start + ((data[pos] << 8) | data[pos + 1])
        if pos > end:
            raise TileError("entry bundle truncated inside an entry")
        append(data[start:pos])
    return leaves


def encode_hash_tile(hashes: Sequence[bytes]) -> bytes:
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise TileError(f"a tile holds {HASH_SIZE}-byte hashes, got {len(h)}")
    return b"".join(hashes)


def decode_hash_tile(data: bytes, width: int | None = None) -> list[bytes]:
    """The hashes of a hash tile (checked to be ``width`` of them, when given)."""
    if len(data) % HASH_SIZE or (width is not None and len(data) != width * HASH_SIZE):
        expected = f"{width * HASH_SIZE}" if width is not None else f"a multiple of {HASH_SIZE}"
        raise TileError(f"a hash tile of {len(data)} bytes; expected {expected}")
    return [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def gzip_bytes(data: bytes) -> bytes:
    """gzip at level 1 and without a timestamp: the same bytes every time (cacheable anywhere), at a
    quarter of the default level's cost for about the same size on JSON (entry bundles shrink about
    five-fold)."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()


# ---------------------------------------------------------------- hashing a bundle
_sha256 = hashlib.sha256


def leaf_hashes(leaves: Iterable[bytes]) -> list[bytes]:
    """RFC 9162 leaf hashes, in bulk (the level-0 tile of an entry bundle)."""
    return [_sha256(b"\x00" + leaf).digest() for leaf in leaves]


def subtree_root(hashes: Sequence[bytes]) -> bytes:
    """MTH of a complete subtree given its ``2**k`` leftmost-level hashes (e.g. a full tile: the hash
    its parent tile holds)."""
    n = len(hashes)
    if n == 0 or n & (n - 1):
        raise TileError(f"a complete subtree has a power-of-two number of hashes, not {n}")
    level = list(hashes)
    while len(level) > 1:
        level = [_sha256(b"\x01" + left + right).digest() for left, right in zip(level[::2], level[1::2])]
    return level[0]
