"""Transactional outbox and inbox (design brief, rule 4).

`UnitOfWork.emit()` writes the event into the `outbox` table inside the caller's transaction; the
`OutboxRelay` publishes committed rows to JetStream with `Nats-Msg-Id = event_id` and marks them.
A crash between publish and mark re-publishes the row, which JetStream's duplicate window drops and
consumers' inboxes ignore. Consumers record processed event ids in `inbox` in their own transaction.
"""
from __future__ import annotations

import asyncio
from datetime import datetime
from collections.abc import Callable
from typing import Any

from nats.js import JetStreamContext
from sqlalchemy import Column, Index, Text
from sqlmodel import col, select
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import Database
from shared.envelope import SYSTEM, Envelope, EventData, make_event, utcnow
from shared.logging import get_logger
from shared.streams import stream_name

log = get_logger(__name__)


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_unpublished", "published_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True, max_length=36)
    subject: str = Field(max_length=200)
    correlation_id: str = Field(max_length=100)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    published_at: datetime | None = Field(default=None)


class InboxMessage(SQLModel, table=True):
    __tablename__ = "inbox"

    consumer: str = Field(primary_key=True, max_length=120)
    event_id: str = Field(primary_key=True, max_length=36)
    processed_at: datetime = Field(default_factory=utcnow)


class UnitOfWork:
    """One transaction plus the events it will emit. Obtained from `Service.unit_of_work()`."""

    def __init__(self, session: AsyncSession, producer: str, correlation_id: str,
                 causation_id: str | None = None, actor: str = SYSTEM) -> None:
        self.session = session
        self.producer = producer
        self.correlation_id = correlation_id
        self.causation_id = causation_id
        self.actor = actor
        self.emitted: list[Envelope[Any]] = []
        self.after_commit: list[Callable[[], None]] = []

    def on_commit(self, hook: Callable[[], None]) -> None:
        """Run `hook` once this unit of work has committed (never if it rolls back)."""
        if hook not in self.after_commit:
            self.after_commit.append(hook)

    def emit(self, data: EventData, actor: str | None = None) -> Envelope[Any]:
        env = make_event(data, producer=self.producer, correlation_id=self.correlation_id,
                         causation_id=self.causation_id, actor=actor or self.actor)
        self.session.add(OutboxMessage(event_id=str(env.event_id), subject=env.type,
                                       correlation_id=env.correlation_id,
                                       payload=env.model_dump_json()))
        self.emitted.append(env)
        return env


async def already_processed(session: AsyncSession, consumer: str, event_id: str) -> bool:
    """Check-and-record in the handler's transaction; a concurrent duplicate fails on the key."""
    if await session.get(InboxMessage, (consumer, event_id)) is not None:
        return True
    session.add(InboxMessage(consumer=consumer, event_id=event_id))
    return False


async def record_new(session: AsyncSession, consumer: str, event_ids: list[str]) -> set[str]:
    """`already_processed` for many events with one query: records the new ones (distinct) in the
    inbox and returns them."""
    wanted = list(dict.fromkeys(event_ids))
    done = set((await session.exec(select(InboxMessage.event_id).where(
        InboxMessage.consumer == consumer, col(InboxMessage.event_id).in_(wanted)))).all())
    new = [e for e in wanted if e not in done]
    session.add_all([InboxMessage(consumer=consumer, event_id=e) for e in new])
    return set(new)


class OutboxRelay:
    """Publishes committed outbox rows in id order. Woken by commits, and sweeps periodically."""

    BATCH = 200

    def __init__(self, db: Database, js: JetStreamContext, poll_interval: float = 1.0) -> None:
        self.db = db
        self.js = js
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    def wake(self) -> None:
        """A unit of work committed events: publish them now rather than at the next sweep."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                while await self.relay_once() == self.BATCH:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS down, DB busy: keep the rows, retry on the next sweep
                log.warning("outbox relay failed, will retry", error=str(exc))
                await asyncio.sleep(self.poll_interval)

    async def relay_once(self) -> int:
        """Publish one batch; returns how many rows were published."""
        async with self.db.session() as s:
            stmt = (select(OutboxMessage).where(OutboxMessage.published_at.is_(None))  # type: ignore[union-attr]
                    .order_by(OutboxMessage.id).limit(self.BATCH))
            rows = (await s.exec(stmt)).all()  # type: ignore[call-overload]
        if not rows:
            return 0
        # Publish in order but pipelined: acks are awaited together.
        acks = await asyncio.gather(*[
            self.js.publish(r.subject, r.payload.encode(), stream=stream_name(r.subject), timeout=10,
                            headers={"Nats-Msg-Id": r.event_id, "correlation_id": r.correlation_id,
                                     "content-type": "application/json"})
            for r in rows])
        now = utcnow()
        async with self.db.transaction(notify=False) as s:
            for r in rows:
                row = await s.get(OutboxMessage, r.id)
                if row is not None and row.published_at is None:
                    row.published_at = now
                    s.add(row)
        dupes = sum(1 for a in acks if a.duplicate)
        self.published += len(rows) - dupes
        if dupes:
            log.info("outbox re-published rows dropped by JetStream dedupe", duplicates=dupes)
        return len(rows)
