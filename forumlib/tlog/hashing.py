"""RFC 9162 §2.1 hashing, and the canonical bytes of a record.

Domain separation (0x00 for leaves, 0x01 for interior nodes) is what stops a
leaf from being passed off as an interior node (second-preimage attacks), so
every hash in the log goes through these two functions.
"""

from __future__ import annotations

import hashlib
import json
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


_MAX_JCS_INT = 2**53 - 1
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _plain(value: Any) -> bool:
    """JSON made of objects with ASCII keys, arrays, strings, booleans, null and exactly representable
    integers (no floats): the values whose RFC 8785 form is what Python's sorted compact JSON writes
    (same key order for ASCII keys, same string escapes)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is dict:
        for k, v in value.items():
            if type(k) is not str or not k.isascii():
                return False
            if type(v) is not str and not _plain(v):
                return False
        return True
    if kind is list:
        for v in value:
            if type(v) is not str and not _plain(v):
                return False
        return True
    return kind is int and -_MAX_JCS_INT <= value <= _MAX_JCS_INT


def record_leaf_bytes(record: Mapping[str, Any]) -> bytes:
    """The leaf bytes of a record: its RFC 8785 (JCS) canonical JSON.

    Canonical JSON makes the leaf reproducible by anyone holding the record,
    whatever JSON library they use, so third parties can recompute leaf
    hashes. Raises ``TypeError`` for a non-mapping and the ``rfc8785``
    exceptions (e.g. ``rfc8785.CanonicalizationError``, ``IntegerDomainError``
    for integers beyond ±2**53, ``FloatDomainError`` for NaN/inf) for values
    JCS cannot represent exactly.

    Records of plain values (see ``_plain``: the forum's records never hold a
    float) take the standard library's C encoder, about twice as fast; any other
    value goes through the reference implementation (``rfc8785``).
    """
    if not isinstance(record, Mapping):
        raise TypeError(f"a record must be a JSON object (mapping), not {type(record).__name__}")
    record = dict(record)
    if _plain(record):
        try:
            return _JSON.encode(record).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: let the reference implementation decide
            pass
    return rfc8785.dumps(record)
