"""Leaf/node hashing (RFC 9162 §2.1.1) and the JCS leaf bytes of a record."""

import hashlib

import pytest
import rfc8785

from forumlib.tlog.hashing import (
    EMPTY_ROOT,
    HASH_SIZE,
    leaf_hash,
    node_hash,
    record_leaf_bytes,
)
from tests.forumlib.tlog import vectors


def test_empty_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT == hashlib.sha256(b"").digest() == vectors.EMPTY_ROOT
    assert HASH_SIZE == 32


def test_leaf_hashes_match_published_level_zero() -> None:
    assert [leaf_hash(x) for x in vectors.LEAF_INPUTS] == vectors.NODE_HASHES[0]


def test_node_hashes_match_published_level_one() -> None:
    level0 = vectors.NODE_HASHES[0]
    assert [node_hash(level0[2 * i], level0[2 * i + 1]) for i in range(4)] == vectors.NODE_HASHES[1]


def test_domain_separation() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(a + b) != node_hash(a, b)
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()


def test_record_leaf_bytes_are_jcs() -> None:
    record = {"z": 1, "a": [True, None, "é"], "m": {"b": 2, "a": 1.5}}
    assert record_leaf_bytes(record) == b'{"a":[true,null,"\xc3\xa9"],"m":{"a":1.5,"b":2},"z":1}'
    # Key order of the input does not matter.
    assert record_leaf_bytes(dict(reversed(list(record.items())))) == record_leaf_bytes(record)
    assert leaf_hash(record_leaf_bytes(record)) == leaf_hash(rfc8785.dumps(record))


def test_record_leaf_bytes_refuses_non_objects_and_inexact_numbers() -> None:
    with pytest.raises(TypeError):
        record_leaf_bytes([1, 2])  # type: ignore[arg-type]
    with pytest.raises(rfc8785.CanonicalizationError):
        record_leaf_bytes({"n": 2**60})
    with pytest.raises(rfc8785.CanonicalizationError):
        record_leaf_bytes({"n": float("nan")})


# ---------------------------------------------------------------- the standard library's encoder where it is JCS
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_scalars = (st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=8)
            | st.text(alphabet=st.characters(codec="ascii"), max_size=8)
            | st.floats(allow_nan=False, allow_infinity=False))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=5) | st.sampled_from(["\ue000", "\U0001f600"]), inner,
                                         max_size=4), max_leaves=12)
_records = st.dictionaries(st.text(max_size=5) | st.sampled_from(["a", "B", "\ue000", "\U0001f600", "é"]), _values,
                           max_size=5)


@settings(max_examples=500, deadline=None)
@given(_records)
def test_record_leaf_bytes_agree_with_the_reference_jcs(record: dict) -> None:
    """Plain records take `json`'s C encoder: byte for byte what `rfc8785` writes, and the same refusals."""
    try:
        expected = rfc8785.dumps(record)
    except Exception as exc:  # noqa: BLE001
        with pytest.raises(type(exc)):
            record_leaf_bytes(record)
        return
    assert record_leaf_bytes(record) == expected
