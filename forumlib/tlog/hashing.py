"""RFC 9162 §2.1 hashing, and the canonical bytes of a record.

Domain separation (0x00 for leaves, 0x01 for interior nodes) is what stops a
leaf from being passed off as an interior node (second-preimage attacks), so
every hash in the log goes through these two functions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import rfc8785

HASH_SIZE = 32
"""SHA-256 output size; every leaf, node and root hash has exactly this length."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256() — the root hash of the empty tree (RFC 9162 §2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(leaf: bytes) -> bytes:
    """MTH({d(0)}) = SHA-256(0x00 || d(0)): the hash of one leaf's bytes."""
    return hashlib.sha256(_LEAF_PREFIX + bytes(leaf)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def record_leaf_bytes(record: Mapping[str, Any]) -> bytes:
    """The leaf bytes of a record: its RFC 8785 (JCS) canonical JSON.

    Canonical JSON makes the leaf reproducible by anyone holding the record,
    whatever JSON library they use, so third parties can recompute leaf
    hashes. Raises ``TypeError`` for a non-mapping and the ``rfc8785``
    exceptions (e.g. ``rfc8785.CanonicalizationError``, ``IntegerDomainError``
    for integers beyond ±2**53, ``FloatDomainError`` for NaN/inf) for values
    JCS cannot represent exactly.
    """
    if not isinstance(record, Mapping):
        raise TypeError(f"a record must be a JSON object (mapping), not {type(record).__name__}")
    return rfc8785.dumps(dict(record))
