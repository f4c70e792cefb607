"""Group commit for batch consumers: the events that arrive together are written in one transaction."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from shared.contracts.envelope import Envelope
from shared.logging import get_logger
from shared.outbox import already_processed, record_new
from shared.worker import Worker

if TYPE_CHECKING:
    from shared.service import Service

log = get_logger(__name__)


class GroupCommit:
    """A batch consumer's events, written a group at a time: each message's handler submits its event
    and waits; the group-commit job writes every event submitted so far in one transaction with their
    inbox rows, then tells each submitter its event's fate (returns once committed, or raises that
    event's error, so the message is retried or parked on its own). Events that arrive while a group is
    being written form the next group, so groups grow with the load and an idle event waits for nothing.

    If a group's transaction fails, each of its events is retried in a transaction of its own, so one bad
    event never holds back the others. A batch handler must not emit events (a group has no single
    causation id).

    A submitter's message keeps signalling progress to JetStream while it waits (the consumer middleware
    does it), so a long group is not redelivered meanwhile."""

    def __init__(self, service: Service, durable: str, fn: Callable[..., Awaitable[None]], max_size: int) -> None:
        self.service, self.durable, self.fn, self.max_size = service, durable, fn, max_size
        self.pending: list[tuple[Envelope[Any], asyncio.Future[None]]] = []
        self.worker = Worker(f"group-commit {durable}", self.write_next, idle=lambda: 60.0)

    async def submit(self, env: Envelope[Any]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((env, future))
        self.worker.wake()
        await future

    async def write_next(self) -> int:
        group, self.pending = self.pending[:self.max_size], self.pending[self.max_size:]
        if not group:
            return 0
        try:
            await self._write(group)
        except BaseException as exc:  # the job is stopping: the submitters' messages are redelivered
            for _, future in group:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("stopped"))
            raise
        return len(group)

    async def _write(self, group: list[tuple[Envelope[Any], asyncio.Future[None]]]) -> None:
        if len(group) > 1:
            try:
                async with self.service.unit_of_work(correlation_id=group[0][0].correlation_id) as uow:
                    new = await record_new(uow.tx, self.durable, [str(env.event_id) for env, _ in group])
                    fresh = []
                    for env, _ in group:  # stream order; a duplicate within the group counts once
                        if str(env.event_id) in new:
                            new.discard(str(env.event_id))
                            fresh.append(env)
                    if fresh:
                        await self.fn(fresh, uow)
            except Exception as exc:  # noqa: BLE001 - retried one by one below
                log.warning("group commit failed, retrying its events one by one", consumer=self.durable,
                            events=len(group), error=f"{type(exc).__name__}: {exc}")
            else:
                for _, future in group:
                    _settle(future)
                return
        for env, future in group:
            try:
                async with self.service.unit_of_work(correlation_id=env.correlation_id,
                                                     causation_id=str(env.event_id)) as uow:
                    if not await already_processed(uow.tx, self.durable, str(env.event_id)):
                        await self.fn([env], uow)
            except Exception as exc:  # noqa: BLE001 - the submitter's message is retried or parked
                _settle(future, exc)
            else:
                _settle(future)


def _settle(future: asyncio.Future[None], exc: Exception | None = None) -> None:
    """Tell a submitter its event's fate, unless it stopped waiting (its handler was cancelled at
    shutdown: its message is redelivered and the inbox recognises the event)."""
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)
