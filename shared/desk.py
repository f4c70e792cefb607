"""Group commit for commands: requests that arrive together are decided in one transaction.

When many requests of one kind come at once (« Je participe » when a session opens, registrations
when the forum is announced), one transaction each makes the per-transaction cost — or the lock they
all need — the bottleneck. A desk queues the requests per key and lets one task per key decide them:
the requests that arrived while a transaction ran go together in the next one (at most `group`). A
lone request is decided at once, alone: the desk only groups what would otherwise wait.

An operation declares its grouping once, as its decorator (`Grouped`: the decider and the group's
size), and hands each request to it (`Grouped.submit`). The decider settles each request
(`Pending.settle`, or `Pending.refuse` with that request's own error). If it raises, every request of
the group it did not settle gets that error. When the service stops, the requests still queued are
refused: no caller is left waiting.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from weakref import WeakKeyDictionary

from shared.service import HandlerContext, Service

Req = TypeVar("Req")
Res = TypeVar("Res")


@dataclass
class Pending(Generic[Req, Res]):
    """One request waiting at a desk, and the future its handler awaits."""

    req: Req
    ctx: HandlerContext
    done: asyncio.Future[Res] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def settle(self, result: Res) -> None:
        if not self.done.done():
            self.done.set_result(result)

    def refuse(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


Decide = Callable[[str, list[Pending[Req, Res]]], Awaitable[None]]
"""Decides one group of one key's requests (its requests' contexts give the service)."""
Operation = TypeVar("Operation", bound=Callable[..., Any])


@dataclass(frozen=True)
class Grouped(Generic[Req, Res]):
    """How an operation's requests are decided together: `decide`, up to `group` at once. Used as the
    operation's decorator: waiting at its desk holds no database connection, so the service takes up to
    `group` of its requests at a time rather than `rpc_workers` (`shared.rpc_answers`) — a desk can only
    group the requests it was given."""

    decide: Decide[Req, Res]
    group: int

    def __call__(self, operation: Operation) -> Operation:
        operation.rpc_workers = self.group  # type: ignore[attr-defined]
        return operation

    async def submit(self, ctx: HandlerContext, key: str, req: Req) -> Res:
        """Queue `req` at the service's desk for `key`; its result once its group is decided."""
        desks = _desks.setdefault(ctx.service, {})
        if (d := desks.get(self)) is None:
            d = desks[self] = Desk(self.decide, self.group)
        return await d.submit(key, req, ctx)


class Desk(Generic[Req, Res]):
    def __init__(self, decide: Decide[Req, Res], group: int) -> None:
        self._decide = decide
        self.group = group
        self._waiting: dict[str, list[Pending[Req, Res]]] = {}  # key -> requests not yet decided, in arrival order
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, key: str, req: Req, ctx: HandlerContext) -> Res:
        pending: Pending[Req, Res] = Pending(req, ctx)
        queue = self._waiting.get(key)
        if queue is None:  # nobody deciding this key's requests: this one starts
            self._waiting[key] = [pending]
            task = asyncio.create_task(self._decide_all(key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            queue.append(pending)
        return await pending.done

    async def _decide_all(self, key: str) -> None:
        try:
            while queue := self._waiting.get(key):
                group = queue[:self.group]
                del queue[:self.group]
                try:
                    await self._decide(key, group)
                except Exception as exc:  # noqa: BLE001 - each waiting handler answers with it
                    _refuse(group, exc)
                _refuse(group, RuntimeError("request left undecided"))  # a decider's bug must not hang a caller
                if not queue:
                    del self._waiting[key]
        except BaseException:  # stopped (the service shuts down): nobody is left waiting for ever
            _refuse(self._waiting.pop(key, []), RuntimeError("Le service s'arrête."))
            raise


def _refuse(requests: list[Pending[Any, Any]], exc: BaseException) -> None:
    for p in requests:
        p.refuse(exc)


_desks: WeakKeyDictionary[Service, dict[Grouped[Any, Any], Desk[Any, Any]]] = WeakKeyDictionary()
"""Each service's desks (one per process: the database's locks order several processes)."""
