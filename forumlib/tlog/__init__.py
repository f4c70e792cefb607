"""The forum's public record: an append-only, verifiable transparency log.

Pure and I/O-free. Storage is reached only through the small ``NodeReader``
protocol (see ``tree``), so the same code serves tests (``storage``) and the
database. Modules:

* ``hashing``    — RFC 9162 leaf/node hashes, RFC 8785 leaf bytes of a record.
* ``tree``       — complete-subtree storage layout, append, root, proofs.
* ``proofs``     — pure RFC 9162 verification of inclusion/consistency proofs.
* ``note``       — C2SP signed notes with Ed25519 keys (x/mod/sumdb/note format).
* ``checkpoint`` — C2SP tlog-checkpoint body, and signing/opening one.
* ``storage``    — an in-memory ``NodeReader`` for tests and small tools.
* ``tiles``      — C2SP tlog-tiles: tile paths, entry bundles, hashing a bundle in bulk.
"""

from forumlib.tlog.checkpoint import (
    Checkpoint,
    CheckpointError,
    format_checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from forumlib.tlog.hashing import (
    EMPTY_ROOT,
    HASH_SIZE,
    leaf_hash,
    node_hash,
    record_leaf_bytes,
)
from forumlib.tlog.note import (
    InvalidSignatureError,
    KeyFormatError,
    MalformedNoteError,
    Note,
    NoteError,
    Signature,
    Signer,
    UnverifiedNoteError,
    Verifier,
    generate_key,
    is_valid_key_name,
    key_id,
    open_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)
from forumlib.tlog.proofs import (
    ProofError,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from forumlib.tlog.storage import MemoryNodeStore
from forumlib.tlog.tree import (
    DictNodeReader,
    Frontier,
    MissingNodeError,
    NodeId,
    NodeReader,
    TreeError,
    append_leaves,
    consistency_node_ids,
    consistency_proof,
    inclusion_node_ids,
    inclusion_proof,
    root_hash,
    root_node_ids,
    subtree_ids,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Checkpoint",
    "CheckpointError",
    "DictNodeReader",
    "Frontier",
    "InvalidSignatureError",
    "KeyFormatError",
    "MalformedNoteError",
    "MemoryNodeStore",
    "MissingNodeError",
    "NodeId",
    "NodeReader",
    "Note",
    "NoteError",
    "ProofError",
    "Signature",
    "Signer",
    "TreeError",
    "UnverifiedNoteError",
    "Verifier",
    "append_leaves",
    "consistency_node_ids",
    "consistency_proof",
    "format_checkpoint",
    "generate_key",
    "inclusion_node_ids",
    "inclusion_proof",
    "is_valid_key_name",
    "key_id",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "parse_signer_key",
    "parse_verifier_key",
    "record_leaf_bytes",
    "root_from_inclusion_proof",
    "root_hash",
    "root_node_ids",
    "sign_checkpoint",
    "sign_note",
    "subtree_ids",
    "verify_consistency",
    "verify_inclusion",
]
