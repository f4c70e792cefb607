"""Minutes service contracts: the public record (transparency log) queries the web front sends.

Request/reply subjects `rpc.<op>`, each named by its request class:

| op                            | request               | reply              |
| ----------------------------- | --------------------- | ------------------ |
| `minutes.ledger-checkpoint`   | `GetCheckpoint`       | `LedgerCheckpoint` |
| `minutes.ledger-key`          | `GetVerifierKey`      | `LedgerKey`        |
| `minutes.ledger-entries`      | `ListEntries`         | `LedgerEntries`    |
| `minutes.ledger-inclusion`    | `GetInclusionProof`   | `InclusionProof`   |
| `minutes.ledger-consistency`  | `GetConsistencyProof` | `ConsistencyProof` |
| `minutes.ledger-locate`       | `LocateEntries`       | `EntryLocations`   |

The reply models of entries and proofs are also the public HTTP response bodies of
`GET /ledger/entries` and `GET /ledger/proof/...`: field names are a stable public API (third
parties script it).
Hashes and leaves travel as standard, padded base64.

Typed errors: negative or non-integer numbers → `invalid` (field set); `start >= end`,
`first > second`, `index >= size` → `invalid`; a tree size beyond the current log → `not_found`
(the tree does not exist yet); no checkpoint signed yet → `unavailable`.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from shared.contracts.common import Request

MAX_PAGE = 1000
"""Most entries one `ledger-entries` reply holds (it may hold fewer: continue from the last index + 1)."""

MAX_INDEX = 2**63 - 1
"""Indices and sizes are non-negative signed 64-bit integers (what SQL BIGINT holds)."""

Index = Annotated[int, Field(ge=0, le=MAX_INDEX)]


# ---------------------------------------------------------------- replies (= public HTTP bodies)
class LedgerCheckpoint(BaseModel):
    """The latest signed checkpoint (C2SP tlog-checkpoint in a C2SP signed note)."""

    note: str = Field(description="The signed note text, exactly as served by GET /ledger/checkpoint.")
    size: int = Field(description="Tree size the checkpoint commits to.")
    root: str = Field(description="Base64 RFC 9162 root hash of the first `size` leaves.")


class LedgerKey(BaseModel):
    key: str = Field(description="Note verifier key: <name>+<key id hex>+<base64(0x01 || Ed25519 public key)>.")
    origin: str = Field(description="Checkpoint origin line (equal to the key name).")


class LedgerEntry(BaseModel):
    index: int = Field(description="Position of the leaf in the log, from 0.")
    leaf: str = Field(description="Base64 of the exact leaf bytes: RFC 8785 (JCS) canonical JSON of `record`.")
    record: dict[str, Any] = Field(description="The public record (see the record schema).")


class LedgerEntries(BaseModel):
    entries: list[LedgerEntry] = Field(
        description=f"Entries start <= index < end, in order, at most {MAX_PAGE}; fewer when the log is "
                    "shorter than `end` or the page is full (continue from the last index + 1).")


class InclusionProof(BaseModel):
    leaf_index: int
    tree_size: int
    hashes: list[str] = Field(description="RFC 9162 inclusion path, leaf to root, base64 SHA-256 hashes.")


class ConsistencyProof(BaseModel):
    first: int
    second: int
    hashes: list[str] = Field(description="RFC 9162 consistency proof, base64 SHA-256 hashes.")


class EntryLocation(BaseModel):
    event_id: str
    index: int
    type: str = Field(description="The record type, e.g. `decision.recorded`.")


class EntryLocations(BaseModel):
    locations: list[EntryLocation]
    size: int = Field(description="Current size of the log (the latest checkpoint may be smaller).")


# ---------------------------------------------------------------- requests
class GetCheckpoint(Request[LedgerCheckpoint], op="minutes.ledger-checkpoint"):
    pass


class GetVerifierKey(Request[LedgerKey], op="minutes.ledger-key"):
    pass


class ListEntries(Request[LedgerEntries], op="minutes.ledger-entries"):
    start: Index
    end: Index


class GetInclusionProof(Request[InclusionProof], op="minutes.ledger-inclusion"):
    index: Index
    size: Index


class GetConsistencyProof(Request[ConsistencyProof], op="minutes.ledger-consistency"):
    first: Index
    second: Index


class LocateEntries(Request[EntryLocations], op="minutes.ledger-locate"):
    """Where the records carried by these events are in the log (e.g. a decision page links to its
    leaf). Unknown ids are left out of the reply: not yet appended, or not a public fact."""

    event_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(min_length=1, max_length=100)
