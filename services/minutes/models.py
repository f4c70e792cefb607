"""Tables of the public record (prefix `ledger_`), owned by the minutes service.

- `ledger_entry`: one row per leaf: its exact bytes (RFC 8785 JCS of `record`), the record as JSON
  text, the event it came from (UNIQUE: a redelivered event never makes a second leaf).
- `ledger_node`: every complete subtree hash `(level, idx)` (level 0 = leaf hashes), written once
  and never updated: about 2 rows per leaf. Roots and proofs for any tree size are folded from
  O(log n) of them, read with one query.
- `ledger_checkpoint`: every signed checkpoint (tree size, root, the signed note text).
- `ledger_head`: a single row (id 1) with the current size, root and frontier; appenders lock it
  (`SELECT … FOR UPDATE` on PostgreSQL) so leaves get consecutive indices across replicas.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Integer, LargeBinary, SmallInteger, Text
from sqlmodel import Field, SQLModel

from shared.clock import utcnow


class EntryRow(SQLModel, table=True):
    __tablename__ = "ledger_entry"

    leaf_index: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    event_id: str = Field(unique=True, max_length=64)
    kind: str = Field(max_length=80, index=True)
    leaf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    record: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class NodeRow(SQLModel, table=True):
    __tablename__ = "ledger_node"

    level: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class CheckpointRow(SQLModel, table=True):
    __tablename__ = "ledger_checkpoint"

    tree_size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class HeadRow(SQLModel, table=True):
    __tablename__ = "ledger_head"

    id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    tree_size: int = Field(sa_column=Column(BigInteger, nullable=False))
    root: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # The hashes of the complete subtrees covering [0, tree_size), largest first (32 bytes each,
    # popcount(tree_size) of them): all an append needs, read with the lock. Also in ledger_node.
    frontier: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


LEDGER_TABLES = [EntryRow.__tablename__, NodeRow.__tablename__, CheckpointRow.__tablename__,
                 HeadRow.__tablename__]
