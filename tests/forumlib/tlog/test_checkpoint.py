"""C2SP tlog-checkpoint: format/parse, a real sum.golang.org checkpoint, and end to end."""

import base64

import pytest

from forumlib.tlog.checkpoint import (
    Checkpoint,
    CheckpointError,
    format_checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from forumlib.tlog.hashing import EMPTY_ROOT, leaf_hash, record_leaf_bytes
from forumlib.tlog.note import (
    InvalidSignatureError,
    UnverifiedNoteError,
    parse_signer_key,
    parse_verifier_key,
)
from forumlib.tlog.proofs import ProofError, verify_consistency, verify_inclusion
from forumlib.tlog.storage import MemoryNodeStore
from tests.forumlib.tlog import vectors as v

ROOT = base64.b64decode("qINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=")


def test_real_sum_golang_org_checkpoint_verifies() -> None:
    sumdb = parse_verifier_key(v.SUMDB_VERIFIER_KEY)
    cp, note = open_checkpoint(v.SUMDB_CHECKPOINT, [sumdb], v.SUMDB_ORIGIN)
    assert cp == Checkpoint(v.SUMDB_ORIGIN, 31700353, ROOT)
    assert note.signatures[0].name == "sum.golang.org"
    assert format_checkpoint(cp) + "\n" + note.signatures[0].line() == v.SUMDB_CHECKPOINT
    with pytest.raises(InvalidSignatureError):
        open_checkpoint(v.SUMDB_CHECKPOINT.replace("31700353", "31700354"), [sumdb], v.SUMDB_ORIGIN)
    with pytest.raises(CheckpointError, match="expected 'forum.example/record'"):
        open_checkpoint(v.SUMDB_CHECKPOINT, [sumdb], "forum.example/record")


def test_c2sp_example_checkpoint_parses() -> None:
    with pytest.raises(UnverifiedNoteError) as info:
        open_checkpoint(v.C2SP_CHECKPOINT, [], "example.com/behind-the-sofa")
    cp = parse_checkpoint(info.value.note.text)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")


def test_format_parse_round_trip_with_extensions() -> None:
    cp = Checkpoint("forum.example/record", 0, EMPTY_ROOT, ("ext one", "ext-two"))
    text = format_checkpoint(cp)
    assert text == "forum.example/record\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next one\next-two\n"
    assert parse_checkpoint(text) == cp


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("original.example.com\n42\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=", "end with a newline"),
        ("42\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\n", "at least 3 lines"),
        ("\n42\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\n", "origin must not be empty"),
        ("o\n-42\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\n", "decimal"),
        ("o\n+42\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\n", "decimal"),
        ("o\n042\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\n", "decimal"),
        ("o\n 42\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\n", "decimal"),
        ("o\n4_2\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\n", "decimal"),
        ("o\n\u0664\u0662\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\n", "decimal"),
        ("o\n18446744073709551616\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\n", "64 bits"),
        ("o\n42\nthisisnotright\n", "base64"),
        ("o\n42\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs\n", "base64"),
        ("o\n42\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVct=\n", "base64"),
        ("o\n42\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVl\n", "32 bytes"),
        ("o\n42\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\n\n", "extension line must not be empty"),
        ("o\n42\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\na\tb\n", "forbidden character"),
    ],
)
def test_parse_rejects(text: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        parse_checkpoint(text)


def test_format_rejects() -> None:
    for cp in (
        Checkpoint("", 1, ROOT),
        Checkpoint("a\nb", 1, ROOT),
        Checkpoint("o", -1, ROOT),
        Checkpoint("o", 2**64, ROOT),
        Checkpoint("o", True, ROOT),
        Checkpoint("o", 1, ROOT[:31]),
        Checkpoint("o", 1, ROOT, ("",)),
    ):
        with pytest.raises(CheckpointError):
            format_checkpoint(cp)


def test_end_to_end_public_record() -> None:
    """Append records, publish signed checkpoints, prove inclusion and consistency."""
    skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
    log_key = parse_signer_key(skey)
    origin = "PeterNeumann"
    store = MemoryNodeStore()
    records = [{"seq": i, "kind": "decision", "text": f"Décision {i}"} for i in range(37)]

    store.append(leaf_hash(record_leaf_bytes(r)) for r in records[:20])
    old_note = sign_checkpoint(Checkpoint(origin, store.size, store.root()), log_key)
    store.append(leaf_hash(record_leaf_bytes(r)) for r in records[20:])
    new_note = sign_checkpoint(Checkpoint(origin, store.size, store.root()), log_key)

    # A monitor checks both checkpoints and that the log only grew.
    old, _ = open_checkpoint(old_note, [log_key.verifier], origin)
    new, _ = open_checkpoint(new_note, [log_key.verifier], origin)
    verify_consistency(old.size, new.size, old.root_hash, new.root_hash, store.consistency_proof(old.size, new.size))
    # A citizen checks a record is in the published tree.
    proof = store.inclusion_proof(7, new.size)
    verify_inclusion(7, new.size, leaf_hash(record_leaf_bytes(records[7])), proof, new.root_hash)
    # A rewritten record is caught.
    forged = dict(records[7], text="Décision falsifiée")
    with pytest.raises(ProofError):
        verify_inclusion(7, new.size, leaf_hash(record_leaf_bytes(forged)), proof, new.root_hash)
    # A forked log (same size, different history) is caught.
    fork = MemoryNodeStore()
    fork.append(leaf_hash(record_leaf_bytes(r)) for r in [*records[:5], forged, *records[6:]])
    with pytest.raises(ProofError):
        verify_consistency(old.size, new.size, old.root_hash, fork.root(), fork.consistency_proof(old.size))
