"""Rows a batch's handlers will look up by primary key, read in one query before them.

A batch consumer (`shared.service.batched`) hands its handlers one event at a time. Each one looking up
its member's row costs a query per event, even for a row that does not exist (an identity map only knows
the rows it has seen). `batched(..., preload=...)` reads them all first: `preload(uow, Model, keys,
where)` records, for every key of `keys`, the row `where` found or that there is none; `get` then answers
from that record (and falls back to the database for a key not covered), and `add` / `delete` keep it
true while the handlers write.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy import inspect
from sqlmodel import SQLModel, select

from shared.contracts.envelope import Envelope
from shared.outbox import UnitOfWork

M = TypeVar("M", bound=SQLModel)


def key_of(row: SQLModel) -> Any:
    """`row`'s primary key as `Session.get` takes it: the value, or a tuple of values."""
    values = tuple(getattr(row, c.key) for c in inspect(type(row)).primary_key)
    return values[0] if len(values) == 1 else values


async def preload(uow: UnitOfWork, model: type[M], keys: Iterable[Any], where: Any,
                  lock: dict[str, Any] | None = None) -> None:
    """Read the rows of `model` that `where` selects; `where` must select every row whose key is in `keys`.
    `lock`: `with_for_update` arguments, for handlers that lock the row they look up (taken in key order,
    as one row at a time would)."""
    known = uow.memo.setdefault(model, {})
    known.update(dict.fromkeys(keys))
    stmt = select(model).where(where)
    if lock is not None:
        stmt = stmt.order_by(*inspect(model).primary_key).with_for_update(**lock)
    for row in (await uow.tx.exec(stmt)).all():
        known[key_of(row)] = row


async def get(uow: UnitOfWork, model: type[M], key: Any,
              fallback: Callable[[], Awaitable[M | None]] | None = None) -> M | None:
    """The row with this key: from what was preloaded, else from `fallback()` (the handler's own lookup,
    e.g. with its lock) or the session."""
    known = uow.memo.get(model)
    if known is not None and key in known:
        return known[key]  # type: ignore[no-any-return]
    return await fallback() if fallback is not None else await uow.tx.get(model, key)


async def get_or_new(uow: UnitOfWork, model: type[M], key: Any,
                     fallback: Callable[[], Awaitable[M | None]] | None = None) -> M:
    """The row with this key (as `get`), or a new one with just its key, added: a later event of the batch
    about the same key finds it."""
    row = await get(uow, model, key, fallback)
    if row is None:
        [column] = inspect(model).primary_key
        row = model(**{column.key: key})
        add(uow, row)
    return row


async def member_rows(events: list[Envelope[Any]], uow: UnitOfWork, *, model: type[SQLModel],
                      lock: dict[str, Any] | None = None) -> None:
    """`preload` of a projection keyed by member id, for a batch of events about members (`data.member_id`):
    `batched(..., preload=functools.partial(member_rows, model=...))`."""
    ids = sorted({e.data.member_id for e in events})
    [column] = inspect(model).primary_key
    await preload(uow, model, ids, column.in_(ids), lock=lock)


def add(uow: UnitOfWork, row: SQLModel) -> None:
    uow.tx.add(row)
    if (known := uow.memo.get(type(row))) is not None:
        known[key_of(row)] = row


async def delete(uow: UnitOfWork, row: SQLModel) -> None:
    await uow.tx.delete(row)
    if (known := uow.memo.get(type(row))) is not None:
        known[key_of(row)] = None
