"""Transactional outbox and inbox: nothing accepted is lost, nothing is done twice.

`UnitOfWork.emit()` writes the event into the `outbox` table inside the caller's transaction (at its end,
one statement for all its events: `unit_of_work`); the
`OutboxRelay` (run as the service's `outbox-relay` job) publishes committed rows to JetStream with
`Nats-Msg-Id = event_id` and marks them.
A crash between publish and mark re-publishes the row, which JetStream's duplicate window drops and
consumers' inboxes ignore. Consumers record processed event ids in `inbox` in their own transaction.
"""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from nats.js import JetStreamContext
from sqlalchemy import Column, Index, Text, insert, update
from sqlmodel import col, select
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import Database
from shared.clock import utcnow
from shared.contracts.envelope import SYSTEM, Envelope, EventData, make_event
from shared.logging import get_logger
from shared.streams import stream_name

if TYPE_CHECKING:
    from shared.settings import Settings

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
    """One transaction (`tx`) plus the events it will emit. Obtained from `Service.unit_of_work()`
    (or `HandlerContext.unit_of_work()`); consumers are handed one that also holds their inbox row."""

    def __init__(self, tx: AsyncSession, producer: str, correlation_id: str, causation_id: str | None = None,
                 actor: str = SYSTEM, settings: Settings | None = None,
                 wake: Callable[[str], None] | None = None) -> None:
        self.tx = tx
        self.producer = producer
        self.correlation_id = correlation_id
        self.causation_id = causation_id
        self.actor = actor
        self.settings = settings
        self._wake = wake
        self._jobs_to_wake: set[str] = set()
        self.emitted: list[Envelope[Any]] = []
        self.after_commit: list[Callable[[], None]] = []
        self.memo: dict[Any, Any] = {}  # what a batch's preload read for its handlers (shared.preload)

    def on_commit(self, hook: Callable[[], None]) -> None:
        """Run `hook` once this unit of work has committed (never if it rolls back)."""
        if hook not in self.after_commit:
            self.after_commit.append(hook)

    def wake_after_commit(self, job: str) -> None:
        """Wake the service's job `job` (e.g. the mail sender) once the work it will find is committed."""
        if self._wake is not None and job not in self._jobs_to_wake:
            self._jobs_to_wake.add(job)
            wake = self._wake
            self.on_commit(lambda: wake(job))

    def emit(self, data: EventData, actor: str | None = None, correlation_id: str | None = None) -> Envelope[Any]:
        """`actor` and `correlation_id` default to the unit of work's; a grouped command gives each
        request's own. The event goes into the outbox when the unit of work ends (`unit_of_work`)."""
        env = make_event(data, producer=self.producer, correlation_id=correlation_id or self.correlation_id,
                         causation_id=self.causation_id, actor=actor or self.actor)
        self.emitted.append(env)
        return env

    def outbox_rows(self) -> list[dict[str, Any]]:
        """The outbox rows of the events emitted, in order of emission."""
        now = utcnow()
        return [{"event_id": str(env.event_id), "subject": env.type, "correlation_id": env.correlation_id,
                 "payload": env.model_dump_json(), "created_at": now} for env in self.emitted]


@asynccontextmanager
async def unit_of_work(db: Database, producer: str, correlation_id: str | None = None,
                       **options: Any) -> AsyncIterator[UnitOfWork]:
    """A transaction of `db` and the events it emits: they are written into the outbox just before it
    commits, in one INSERT (Core rows, not ORM objects: this is every command's path), in order of
    emission, which the relay keeps (the ids ascend). `options`: `UnitOfWork`'s keyword arguments."""
    async with db.transaction() as tx:
        uow = UnitOfWork(tx, producer, correlation_id or str(uuid.uuid4()), **options)
        yield uow
        if rows := uow.outbox_rows():
            await tx.exec(insert(OutboxMessage.__table__), params=rows)  # type: ignore[attr-defined, call-overload]


async def already_processed(tx: AsyncSession, consumer: str, event_id: str) -> bool:
    """Check-and-record in the handler's transaction; a concurrent duplicate fails on the key."""
    if await tx.get(InboxMessage, (consumer, event_id)) is not None:
        return True
    tx.add(InboxMessage(consumer=consumer, event_id=event_id))
    return False


async def record_new(tx: AsyncSession, consumer: str, event_ids: list[str]) -> set[str]:
    """`already_processed` for many events with one query: records the new ones (distinct) in the
    inbox and returns them."""
    wanted = list(dict.fromkeys(event_ids))
    done = set((await tx.exec(select(InboxMessage.event_id).where(
        InboxMessage.consumer == consumer, col(InboxMessage.event_id).in_(wanted)))).all())
    new = [e for e in wanted if e not in done]
    tx.add_all([InboxMessage(consumer=consumer, event_id=e) for e in new])
    return set(new)


class OutboxRelay:
    """Publishes committed outbox rows in id order, a batch per step of the `outbox-relay` job (woken
    by commits that emitted events, and sweeping every `outbox_poll_interval` seconds)."""

    BATCH = 200

    def __init__(self, db: Database, js: JetStreamContext) -> None:
        self.db = db
        self.js = js
        self.published = 0

    async def relay_once(self) -> int:
        """Publish one batch; returns how many rows were published."""
        async with self.db.read() as tx:
            stmt = (select(OutboxMessage).where(OutboxMessage.published_at.is_(None))  # type: ignore[union-attr]
                    .order_by(OutboxMessage.id).limit(self.BATCH))
            rows = (await tx.exec(stmt)).all()  # type: ignore[call-overload]
        if not rows:
            return 0
        # Publish in order but pipelined: acks are awaited together.
        acks = await asyncio.gather(*[
            self.js.publish(r.subject, r.payload.encode(), stream=stream_name(r.subject), timeout=10,
                            headers={"Nats-Msg-Id": r.event_id, "correlation_id": r.correlation_id,
                                     "content-type": "application/json"})
            for r in rows])
        async with self.db.transaction() as tx:  # one statement: re-marking a row marked meanwhile is harmless
            await tx.exec(update(OutboxMessage).where(  # type: ignore[call-overload]
                col(OutboxMessage.id).in_([r.id for r in rows]), col(OutboxMessage.published_at).is_(None)
            ).values(published_at=utcnow()))
        dupes = sum(1 for a in acks if a.duplicate)
        self.published += len(rows) - dupes
        if dupes:
            log.info("outbox re-published rows dropped by JetStream dedupe", duplicates=dupes)
        return len(rows)
