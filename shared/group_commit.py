"""Batch consumers: the events of one fetch are written in one transaction (group commit).

A batch consumer pulls what its durable JetStream consumer has ready — up to `batch_size` messages in one
pull request, never waiting for a batch to fill — and handles them together: each envelope validated on
its own, one transaction for the inbox rows (one statement) and the handler, one progress-signal task for
the whole batch, then one ack per message. The per-message cost is what the work needs (parse, a row,
an ack); FastStream's per-message machinery (middlewares, dependency injection) is paid once per batch or
not at all.

While a batch is written, the next one is already being fetched and parsed: at most two batches are in
flight, written one after the other in stream order. During a burst (the last pull found several messages,
not a full batch) pulls are spaced by `consumer_gather` seconds, so that a batch holds what arrived in that
time rather than what arrived while the last one was written: the per-batch cost (a pull, a transaction,
its preload and inbox statements) is paid a few times a second, not once for every dozen events.

Failures stay per event: a malformed message is parked at once; if the batch's transaction fails, each of
its events is retried in a transaction of its own, so one bad event never holds back the others, and a
failing one is retried later or parked (`Service._on_failure`). A batch handler must not emit events (a
batch has no single causation id).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any

import structlog
from nats.errors import ConnectionClosedError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import FetchTimeoutError, ServiceUnavailableError
from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.clock import utcnow
from shared.contracts.envelope import Envelope
from shared.db import dialect_insert
from shared.logging import get_logger, ms_since
from shared.outbox import InboxMessage

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from shared.service import Service

log = get_logger(__name__)

BURST_WAIT = 0.005
"""Seconds a pull waits for messages beyond those ready now: a batch is what is there, not a full one."""
BUSY_WAIT = 0.25
"""The same while a backlog drains (the last batch was at least half full): the next batch is received
while the previous one is written in the same thread, so it takes longer than BURST_WAIT to arrive — a
pull that gave up early would halve the batches. It returns as soon as the batch is full anyway; only
the last pull of a burst waits it out."""
GATHER_FROM = 4
"""A pull that finds at least this many messages (and not a full batch) means a burst: the next pull waits
until `consumer_gather` seconds after this one. A lone event, or a backlog (full batches), is pulled at once."""
IDLE_WAIT = 5.0
"""Seconds one pull request is held open by the server while the stream is idle (it returns at the
first message)."""
_FETCH_ERRORS = (TimeoutError, NatsTimeout, FetchTimeoutError)
_DISCONNECTED = (ConnectionClosedError, ServiceUnavailableError)


_PG_RECORD_NEW = ("INSERT INTO inbox (consumer, event_id, processed_at) SELECT %b, e, %b FROM unnest(%b::text[]) AS e "
                  "ON CONFLICT DO NOTHING RETURNING event_id")


async def record_new(tx: AsyncSession, consumer: str, event_ids: Sequence[str]) -> set[str]:
    """Record these events in the inbox of `consumer` and return those that were not there yet: one
    `INSERT … ON CONFLICT DO NOTHING RETURNING` for all of them (on PostgreSQL with one array parameter,
    sent in binary). A concurrent transaction recording the same event makes this one wait on the key,
    then leaves it out."""
    wanted = list(dict.fromkeys(event_ids))
    if not wanted:
        return set()
    now = utcnow()
    if tx.get_bind().dialect.name == "postgresql":
        conn = await tx.connection()
        raw = (await conn.get_raw_connection()).driver_connection
        async with raw.cursor() as cur:
            await cur.execute(_PG_RECORD_NEW, [consumer, now, wanted])
            return {r[0] for r in await cur.fetchall()}
    table = InboxMessage.__table__  # type: ignore[attr-defined]
    stmt = dialect_insert(tx, table).on_conflict_do_nothing().returning(table.c.event_id)
    rows = await tx.exec(stmt, params=[{"consumer": consumer, "event_id": e, "processed_at": now}  # type: ignore[call-overload]
                                       for e in wanted])
    return {r[0] for r in rows.all()}


class BatchConsumer:
    """Handles the messages of one durable pull consumer a batch at a time (see the module docstring).
    `run(subscriber)` is the subscriber's consume loop; `handle(messages)` handles one batch."""

    def __init__(self, service: Service, durable: str, fn: Callable[..., Awaitable[None]],
                 model: type[Envelope[Any]], batch_size: int) -> None:
        self.service, self.durable, self.fn, self.model = service, durable, fn, model
        self.batch_size = batch_size
        self.name = getattr(fn, "__name__", durable)
        self.handled = 0
        """Messages settled (acked, retried later or parked) so far, in `batches` batches."""
        self.batches = 0
        self._busy = False
        self._gather_until = 0.0  # (monotonic) a burst's next pull is not made before this

    # ------------------------------------------------------------------ the consume loop
    async def run(self, subscriber: Any) -> None:
        """Replaces the FastStream subscriber's consume loop: fetch what is ready, hand it to `handle`
        while fetching the next batch. The subscriber's lock makes a graceful stop wait for the batches
        in flight."""
        structlog.contextvars.bind_contextvars(consumer=self.durable)
        inflight: asyncio.Task[None] | None = None
        started: list[asyncio.Task[None]] = []
        try:
            while subscriber.running:
                messages = await self._fetch(subscriber.subscription)
                if not messages or not subscriber.running:
                    continue  # (a fetched message not handled is redelivered after the ack wait)
                task = asyncio.create_task(self._handle_after(inflight, messages, subscriber.lock))
                started = [t for t in (*started, task) if not t.done()]
                if inflight is not None:
                    await inflight  # at most one batch waiting behind the one being written
                inflight = task
        finally:
            # Stopping: the batches already fetched are still written and settled.
            await asyncio.shield(asyncio.gather(*started, return_exceptions=True))

    async def _fetch(self, subscription: Any) -> list[Msg]:
        pause = self._gather_until - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        wait = BUSY_WAIT if self._busy else BURST_WAIT
        try:
            got: list[Msg] = await subscription.fetch(self.batch_size, timeout=wait)
            self._busy = len(got) * 2 >= self.batch_size
            return self._pulled(got)
        except _FETCH_ERRORS:
            self._busy = False
        except _DISCONNECTED:
            await asyncio.sleep(0.5)  # reconnecting: don't spin
            return []
        try:
            first: list[Msg] = await subscription.fetch(1, timeout=IDLE_WAIT)
        except _FETCH_ERRORS:
            return []
        except _DISCONNECTED:
            await asyncio.sleep(0.5)
            return []
        if self.batch_size > 1:
            with suppress(*_FETCH_ERRORS, *_DISCONNECTED):
                first += await subscription.fetch(self.batch_size - 1, timeout=BURST_WAIT)
        return self._pulled(first)

    def _pulled(self, got: list[Msg]) -> list[Msg]:
        burst = GATHER_FROM <= len(got) < self.batch_size
        self._gather_until = time.monotonic() + self.service.settings.consumer_gather if burst else 0.0
        return got

    async def _handle_after(self, previous: asyncio.Task[None] | None, messages: list[Msg], lock: Any) -> None:
        with lock:
            async with progress_signals(messages, self.service.settings.consumer_ack_wait / 3):
                if previous is not None:
                    with suppress(Exception):
                        await previous  # stream order: one transaction after the other
                try:
                    await self.handle(messages)
                except Exception as exc:  # noqa: BLE001 - e.g. no broker to park on: unacked, redelivered later
                    log.error("batch left unsettled, redelivered after the ack wait", handler=self.name,
                              events=len(messages), error=f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ one batch
    async def handle(self, messages: Sequence[Msg]) -> None:
        """Handle one batch: returns once every message is acked, scheduled for redelivery or parked."""
        started = time.perf_counter()
        events: list[tuple[Envelope[Any], Msg]] = []
        for raw in messages:
            try:
                events.append((self.model.model_validate_json(raw.data), raw))
            except ValidationError as exc:  # malformed: parked at once
                await self.service._on_failure(raw, exc, handler=self.name, ms=ms_since(started))
        failed = await self._write(events) if events else {}
        for env, raw in events:
            if id(raw) not in failed:
                await raw.ack()
        for raw, exc in failed.values():
            await self.service._on_failure(raw, exc, handler=self.name, ms=ms_since(started))
        self.handled += len(messages)
        self.batches += 1
        log.info("events handled", handler=self.name, events=len(messages),
                 outcome="ok" if not failed and len(events) == len(messages) else "partly failed",
                 ms=ms_since(started))

    async def _write(self, events: list[tuple[Envelope[Any], Msg]]) -> dict[int, tuple[Msg, Exception]]:
        """Write the events in one transaction; if it fails, each in its own. Returns the failures,
        keyed by `id()` of their message."""
        if len(events) > 1:
            try:
                async with self.service.unit_of_work(correlation_id=events[0][0].correlation_id) as uow:
                    ids = [str(env.event_id) for env, _ in events]
                    new = await record_new(uow.tx, self.durable, ids)
                    fresh = []
                    for (env, _), event_id in zip(events, ids, strict=True):  # stream order
                        if event_id in new:
                            new.discard(event_id)  # a duplicate within the batch counts once
                            fresh.append(env)
                    if fresh:
                        await self.fn(fresh, uow)
            except Exception as exc:  # noqa: BLE001 - retried one by one below
                log.warning("batch transaction failed, retrying its events one by one", handler=self.name,
                            events=len(events), error=f"{type(exc).__name__}: {exc}")
            else:
                return {}
        failed: dict[int, tuple[Msg, Exception]] = {}
        for env, raw in events:
            try:
                async with self.service.unit_of_work(correlation_id=env.correlation_id,
                                                     causation_id=str(env.event_id)) as uow:
                    if await record_new(uow.tx, self.durable, [str(env.event_id)]):
                        await self.fn([env], uow)
            except Exception as exc:  # noqa: BLE001 - its message is retried or parked
                failed[id(raw)] = (raw, exc)
        return failed


@asynccontextmanager
async def progress_signals(messages: Sequence[Msg], every: float) -> AsyncIterator[None]:
    """While messages wait or are handled, tell JetStream every `every` seconds that each of them still
    is: only the messages of a handler that is gone (process killed, connection lost) wait out the ack
    wait and move on. One task per batch (or per message, for a plain consumer)."""
    async def signal() -> None:
        while True:
            await asyncio.sleep(every)
            for raw in messages:
                try:
                    await raw.in_progress()
                except Exception:  # noqa: BLE001, S112 - no connection: redelivery is then the right outcome
                    continue

    task = asyncio.create_task(signal())
    try:
        yield
    finally:
        task.cancel()
