"""Commands that happen once: the reply each idempotency key got, kept beside the work it did.

A form that creates something carries a one-time token; the web front sends it with the request as
its idempotency key (the `Idempotency-Key` NATS header, see `shared.rpc.RpcClient`). The service
records (operation, actor, key) in the same transaction as the work — the first unit of work the
handler opens — and stores the reply once the handler returns. So a double click, a reload or a
re-sent request finds the key taken and answers with the first reply:

- a repeat that arrives after the first finished reads the stored reply;
- a repeat that arrives while the first runs blocks on the key's row (PostgreSQL's unique index,
  SQLite's single writer), then fails on it, and waits for the first reply;
- a command that fails rolls its row back (or has it deleted), so the key is free again: the corrected
  form is sent again with the same token;
- the key is scoped by operation and actor: another actor's request with the same key runs as its own
  and never sees someone else's reply; the same key with other data is refused.

A reply lost between the two transactions (the process died after the work committed) cannot be
re-derived in general: the repeat is refused with « Cette demande a déjà été enregistrée. » rather than
done twice. Keys are forgotten after `KEEP`.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Column, Text, bindparam, delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.clock import utcnow
from shared.db import Database, dialect_insert
from shared.errors import Conflict, Invalid

IDEMPOTENCY_HEADER = "Idempotency-Key"
KEEP = timedelta(days=1)             # nobody re-sends a form a day later
PURGE_EVERY = 600.0                  # seconds between two purges of forgotten keys, per database
WAIT_FOR_FIRST = 5.0                 # seconds a repeat waits for the reply of the request still running
LOST_AFTER = timedelta(minutes=2)    # a key recorded this long ago without a reply lost it (a crash)
ALREADY_DONE = "Cette demande a déjà été enregistrée."
OTHER_DATA = ("Ce formulaire a déjà été envoyé avec d'autres valeurs : rechargez la page pour en remplir un "
              "nouveau.")
FIELD = "idempotency_key"
_KEY = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")
_ATTEMPTS = 3
_purged_at: dict[str, float] = {}


class KeyTaken(Exception):
    """A grouped command found its key already recorded (see `take_keys`): answered as the repeat it is."""


class CommandReply(SQLModel, table=True):
    __tablename__ = "command_reply"

    op: str = Field(primary_key=True, max_length=120)
    actor: str = Field(primary_key=True, max_length=64)  # "" for a request that names no actor
    key: str = Field(primary_key=True, max_length=64)
    digest: str = Field(max_length=64)  # SHA-256 of the request: the same key with other data is refused
    reply: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, index=True)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Once:
    """The idempotency key of one request while its handler runs (`HandlerContext.once`)."""

    op: str
    actor: str
    key: str
    digest: str
    recorded: bool = False  # the key's row is committed with the handler's first unit of work
    replied: bool = False  # the reply was stored in that same transaction (`store_replies`)

    @classmethod
    def of(cls, request: BaseModel, key: str) -> Once:
        if not _KEY.match(key):
            raise Invalid("Clé d'idempotence invalide : 8 à 64 lettres, chiffres, points, tirets ou deux-points.",
                          field=FIELD)
        actor = str(getattr(request, "actor_id", "") or "")
        return cls(op=str(getattr(request, "OP", type(request).__name__)),
                   actor=actor if len(actor) <= 64 else _sha256(actor), key=key,
                   digest=_sha256(request.model_dump_json()))

    @property
    def where(self) -> tuple[Any, ...]:
        return (CommandReply.op == self.op, CommandReply.actor == self.actor, CommandReply.key == self.key)

    async def record(self, tx: AsyncSession) -> None:
        """Take the key in the handler's transaction: a repeat running at the same time blocks here until
        this transaction ends, then fails on the primary key (or takes it, if this one rolled back)."""
        await tx.exec(insert(CommandReply).values(  # type: ignore[call-overload]
            op=self.op, actor=self.actor, key=self.key, digest=self.digest, created_at=utcnow()))

    def committed(self) -> None:
        self.recorded = True


def records_key_first(operation: Callable[..., Any]) -> Callable[..., Any]:
    """Marks an operation whose every path records the key before anything can refuse the request (its
    first statement opens the unit of work): a repeat then fails on the key at once, so `run_once` need
    not read the stored replies beforehand — one transaction less on the hot path (an RSVP rush)."""
    operation.records_key_first = True  # type: ignore[attr-defined]
    return operation


async def run_once(db: Database, once: Once, handler: Callable[[], Awaitable[BaseModel]], *,
                   look_first: bool = True) -> Any:
    """The reply data of a request that carries an idempotency key: the stored reply when the key was
    already used for this operation by this actor, else the handler's, stored for the repeats."""
    for attempt in range(_ATTEMPTS):
        if (look_first or attempt > 0) and (done := await _stored(db, once)) is not None:
            return done
        once.recorded = False
        try:
            result = await handler()
        except Exception as exc:
            if once.recorded:  # a later step failed after the key was committed: the command did not finish
                await _forget(db, once)
            elif isinstance(exc, (IntegrityError, KeyTaken)) and attempt < _ATTEMPTS - 1:
                continue  # the key was taken while this one ran: answer as the repeat it is
            raise
        data = result.model_dump(mode="json")
        if not once.replied:
            await _remember(db, once, json.dumps(data, ensure_ascii=False))
        return data
    raise AssertionError("unreachable")  # pragma: no cover - the last attempt returns or raises


async def take_keys(tx: AsyncSession, onces: list[Once]) -> set[int]:
    """`Once.record` for the requests of a grouped command (one statement): the indexes of those whose key
    was free and is now taken in `tx`; the others are repeats (`KeyTaken`)."""
    first: dict[tuple[str, str, str], int] = {}
    for i, o in enumerate(onces):
        first.setdefault((o.op, o.actor, o.key), i)
    first = dict(sorted(first.items()))  # one order everywhere: two groups taking the same keys cannot deadlock
    if not first:
        return set()
    now = utcnow()
    stmt = dialect_insert(tx, CommandReply).values([
        {"op": onces[i].op, "actor": onces[i].actor, "key": onces[i].key, "digest": onces[i].digest,
         "created_at": now} for i in first.values()
    ]).on_conflict_do_nothing().returning(CommandReply.op, CommandReply.actor, CommandReply.key)
    taken = {tuple(row) for row in (await tx.exec(stmt)).all()}  # type: ignore[call-overload]
    return {i for k, i in first.items() if k in taken}


async def store_replies(tx: AsyncSession, replies: list[tuple[Once, BaseModel]], failed: list[Once]) -> None:
    """In the grouped command's transaction: the replies of the keys it took (so no second transaction
    stores them) and the keys of the requests it refused given back."""
    if replies:  # a Core UPDATE run as executemany (the ORM's bulk update wants primary keys only)
        t = CommandReply.__table__.c  # type: ignore[attr-defined]
        stmt = update(CommandReply.__table__).where(  # type: ignore[arg-type]
            t.op == bindparam("o"), t.actor == bindparam("a"), t.key == bindparam("k")).values(reply=bindparam("r"))
        await (await tx.connection()).execute(stmt, [{"o": o.op, "a": o.actor, "k": o.key, "r": reply.model_dump_json()}
                                for o, reply in replies])
    for o in failed:
        await tx.exec(delete(CommandReply).where(*o.where))  # type: ignore[call-overload]


def replied_with(replies: list[tuple[Once, BaseModel]]) -> None:
    """After the grouped command committed: its keys and replies are stored."""
    for o, _ in replies:
        o.recorded = o.replied = True


async def _stored(db: Database, once: Once) -> Any | None:
    """The stored reply of the key, None when the key is free; waits a moment for a reply still to come."""
    deadline = time.monotonic() + WAIT_FOR_FIRST
    while True:
        async with db.read() as tx:
            row = await tx.get(CommandReply, (once.op, once.actor, once.key))
        if row is None:
            return None
        if row.digest != once.digest:
            raise Conflict(OTHER_DATA, field=FIELD)
        if row.reply is not None:
            return json.loads(row.reply)
        if time.monotonic() >= deadline or utcnow() - row.created_at > LOST_AFTER:
            raise Conflict(ALREADY_DONE, field=FIELD)
        await asyncio.sleep(0.05)


async def _remember(db: Database, once: Once, reply: str) -> None:
    async with db.transaction() as tx:
        if once.recorded:
            await tx.exec(update(CommandReply).where(*once.where).values(reply=reply))  # type: ignore[call-overload]
        else:  # the handler wrote nothing through a unit of work: its answer is kept all the same
            await tx.exec(dialect_insert(tx, CommandReply).values(  # type: ignore[call-overload]
                op=once.op, actor=once.actor, key=once.key, digest=once.digest, reply=reply, created_at=utcnow()
            ).on_conflict_do_nothing())
        await _purge(db, tx)


async def _forget(db: Database, once: Once) -> None:
    async with db.transaction() as tx:
        await tx.exec(delete(CommandReply).where(*once.where))  # type: ignore[call-overload]


async def _purge(db: Database, tx: AsyncSession) -> None:
    """Forget keys older than `KEEP`, at most once every `PURGE_EVERY` seconds per database."""
    now = time.monotonic()
    if now - _purged_at.get(db.url, float("-inf")) < PURGE_EVERY:
        return
    _purged_at[db.url] = now
    stale = delete(CommandReply).where(col(CommandReply.created_at) < utcnow() - KEEP)
    await tx.exec(stale)  # type: ignore[call-overload]
