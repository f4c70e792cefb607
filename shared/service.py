"""How a back-end service is declared and run: one way to answer, one way to consume, one way to
run background jobs, one way to publish (through the outbox).

Every service opens with one `ServiceDef` in `services/<name>/service.py` that lists everything it
does; handlers are plain functions in the capability modules beside it:

    SERVICE = ServiceDef(
        "registry", title="Registre des membres",
        operations=[members.register, members.approve_member],     # (request, ctx) -> reply
        consumers=[contacts.on_member_registered],                 # (event, uow) -> None
        jobs=[Job("mail-sender", sending.send_due, idle=lambda s: s.mail_poll_interval)],
        produces=[MemberRegistered, MemberApproved],
    )

An operation's request class names its subject and reply (`shared.contracts.common.Request`); a
consumer's event type is read from its first parameter (`Envelope[MemberApproved]`, or
`list[Envelope[...]]` with `consumer(fn, batch=True)`). `SERVICE.build(settings)` makes the running
`Service`; `forum-ouvert serve <name>` runs `SERVICE.build().app`.
"""
from __future__ import annotations

import functools
import inspect
import json
import time
import typing
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Annotated, Any

import structlog
from faststream import AckPolicy, AsyncAPI, BaseMiddleware, FastStream
from faststream.nats import ConsumerConfig, JStream, NatsBroker, NatsMessage, NatsRouter, PullSub
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import BaseModel, ValidationError, WrapValidator

from shared.contracts.common import RPC_PREFIX, Health, HealthRequest, Reply, Request
from shared.contracts.envelope import SYSTEM, Envelope, EventData
from shared.db import Database
from shared.idempotency import Once, run_once
from shared.logging import configure_logging, get_logger, library_logger, log_context, ms_since
from shared.outbox import OutboxRelay, UnitOfWork, already_processed, unit_of_work
from shared.rpc_answers import Answer, RpcAnswers, ok_reply
from shared.settings import Settings, get_settings
from shared.streams import DEAD_LETTER_PREFIX, ensure_streams, stream_name
from shared.group_commit import IDLE_WAIT, BatchConsumer, progress_signals
from shared.worker import Worker

log = get_logger(__name__)
SPEC_NATS_URL = "nats://nats:4222"  # what the committed AsyncAPI documents say, whatever the run
OUTBOX_RELAY = "outbox-relay"

Operation = Callable[..., Awaitable[BaseModel]]
EventHandler = Callable[..., Awaitable[None]]


# ====================================================================== the declaration
@dataclass(frozen=True)
class Consumer:
    """A durable consumer of one event type. Plain handler functions in `consumers=[...]` get the
    defaults; wrap one in `consumer(...)` to batch it or to name its event explicitly."""

    handler: EventHandler
    event: type[EventData]
    batch: bool = False
    batch_size: int = 100
    role: str = ""

    @property
    def durable_suffix(self) -> str:
        return f"--{self.role}" if self.role else ""

    def durable(self, service: str) -> str:
        """Its durable name in `service`: the JetStream consumer's, and the `consumer` of its inbox rows."""
        return f"{service}--{self.event.TYPE.replace('.', '-')}{self.durable_suffix}"


def consumer(handler: EventHandler, *, event: type[EventData] | None = None, batch: bool = False,
             batch_size: int = 100, role: str = "") -> Consumer:
    """`batch=True`: the events of one fetch share one transaction and the handler gets them as a list
    (new ones only, in stream order); for consumers whose cost is per transaction. `role` names a second
    consumer of the same event in one service (its durable is `<service>--<event>--<role>`): each keeps
    its own position in the stream and its own inbox."""
    return Consumer(handler, event or _event_of(handler), batch, batch_size, role)


def batched(handler: EventHandler, *, role: str = "", batch_size: int = 100,
            preload: Callable[[list[Envelope[Any]], UnitOfWork], Awaitable[None]] | None = None) -> Consumer:
    """A consumer whose work is cheap per event and costly per transaction (a copy of another service's data,
    an e-mail queued): it runs as a batch consumer, the events of one fetch sharing one transaction, each
    given to `handler(event, uow)` in stream order. `handler` must not emit events. `preload(events, uow)`
    first reads, in a few queries, the rows the handlers would each look up (`shared.preload`)."""

    async def each(events: list[Envelope[Any]], uow: UnitOfWork) -> None:
        if preload is not None:
            await preload(events, uow)
        for event in events:
            await handler(event, uow)

    each.__module__, each.__name__, each.__qualname__ = handler.__module__, handler.__name__, handler.__qualname__
    each.__doc__ = handler.__doc__  # the durable's name and the AsyncAPI document are the handler's
    return Consumer(each, _event_of(handler), batch=True, batch_size=batch_size, role=role)


@dataclass(frozen=True)
class Job:
    """A background job: `step(service)` does one batch of work and returns how many items it handled
    (see `shared.worker`). `idle` and `pace` read the settings each time, in seconds."""

    name: str
    step: Callable[[Service], Awaitable[int]]
    idle: Callable[[Settings], float] = lambda s: 1.0
    pace: Callable[[Settings], float] = lambda s: 0.0


@dataclass(frozen=True)
class ServiceDef:
    name: str
    title: str
    operations: Sequence[Operation] = ()
    consumers: Sequence[EventHandler | Consumer] = ()
    jobs: Sequence[Job] = ()
    produces: Sequence[type[EventData]] = ()
    broadcasts: Sequence[type[BaseModel]] = ()  # core NATS notices (a `SUBJECT` each): `HandlerContext.broadcast`
    health: Callable[[Service], Awaitable[dict[str, Any]]] | None = None
    on_start: Sequence[Callable[[Service], Awaitable[None] | None]] = field(default=())

    def build(self, settings: Settings | None = None) -> Service:
        """A running-ready service with everything declared here registered on its broker."""
        return Service(self, settings or get_settings())


# ====================================================================== what handlers get
class HandlerContext:
    """What an operation runs with besides its request: the service's settings and database, the
    caller's correlation id, units of work (a transaction plus the events it emits), and a way to wake
    one of the service's jobs once new work is committed.

    When the request carries an idempotency key (`once`), the first unit of work also records the key,
    so the command and its key commit together (see `shared.idempotency`)."""

    def __init__(self, service: Service, correlation_id: str, once: Once | None = None) -> None:
        self.service = service
        self.correlation_id = correlation_id
        self.once = once

    @property
    def settings(self) -> Settings:
        return self.service.settings

    @property
    def db(self) -> Database:
        return self.service.db

    @asynccontextmanager
    async def unit_of_work(self, actor: str = SYSTEM) -> AsyncIterator[UnitOfWork]:
        async with self.service.unit_of_work(correlation_id=self.correlation_id, actor=actor) as uow:
            if self.once is not None and not self.once.recorded:
                await self.once.record(uow.tx)
                uow.on_commit(self.once.committed)
            yield uow

    def wake(self, job: str) -> None:
        self.service.wake(job)

    async def broadcast(self, notice: BaseModel) -> None:
        """A core NATS notice to whoever listens (no stream, no outbox: a hint that something committed
        changed, never a fact to replay). Awaited after the commit and before the reply: a caller on the same
        NATS connection hears it first. Lost only while NATS is unreachable; listeners must bound what
        they keep without it."""
        try:
            await self.service.broker.publish(notice, subject=type(notice).SUBJECT)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - the change is committed; the listeners' time limit covers a lost notice
            log.warning("notice not sent", subject=type(notice).SUBJECT, exc_info=True)


# ====================================================================== the running service
class Service:
    def __init__(self, definition: ServiceDef, settings: Settings) -> None:
        self.definition = definition
        self.name = definition.name
        self.settings = settings
        self.broker = NatsBroker(
            settings.nats_url.split(","), name=f"forum-{self.name}", graceful_timeout=15.0,
            inbox_prefix=f"_INBOX.{self.name}",  # its replies only: deploy/nats/auth.conf
            middlewares=[_log_context_middleware()], specification_url=SPEC_NATS_URL,
            log_level=10,  # FastStream's per-message "Received/Processed" lines only at DEBUG
            logger=library_logger("faststream"),
        )
        # Routers carry their own ack policy: a broker-level one is not inherited by their subscribers.
        self._events = NatsRouter(ack_policy=AckPolicy.MANUAL, middlewares=[self._consumer_middleware()])
        # Batch consumers settle each message themselves (shared.group_commit): no per-message middleware.
        self._batch_events = NatsRouter(ack_policy=AckPolicy.MANUAL)
        self._handler_names: dict[str, str] = {}  # durable -> handler, for the log
        self._rpcs = NatsRouter()
        self._answers = RpcAnswers(settings.rpc_workers)
        self._db: Database | None = None
        self.relay: OutboxRelay | None = None
        self.workers: dict[str, Worker] = {}
        self.batch_consumers: list[BatchConsumer] = []
        self._durables: list[tuple[str, str, ConsumerConfig]] = []  # (stream, durable, config)
        self._register_health()
        for op in definition.operations:
            self._register_operation(op)
        for c in definition.consumers:
            self._register_consumer(c if isinstance(c, Consumer) else consumer(c))
        for ev in definition.produces:
            self.broker.publisher(ev.TYPE, stream=JStream(stream_name(ev.TYPE), declare=False),
                                  schema=Envelope[ev], title=f"{ev.TYPE}:Publisher",  # type: ignore[valid-type]
                                  description=(ev.__doc__ or "").strip() or None)
        for notice in definition.broadcasts:
            self.broker.publisher(notice.SUBJECT, schema=notice, title=f"{notice.SUBJECT}:Publisher",
                                  description=inspect.cleandoc(notice.__doc__ or "") or None)
        self.broker.include_router(self._rpcs)
        self.broker.include_router(self._events)
        self.broker.include_router(self._batch_events)

    # ------------------------------------------------------------------ used by handlers and jobs
    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError(f"{self.name}: database not started")
        return self._db

    @asynccontextmanager
    async def unit_of_work(self, correlation_id: str | None = None, causation_id: str | None = None,
                           actor: str = SYSTEM) -> AsyncIterator[UnitOfWork]:
        async with unit_of_work(self.db, self.name, correlation_id, causation_id=causation_id, actor=actor,
                                settings=self.settings, wake=self.wake) as uow:
            yield uow
        if uow.emitted:
            self.wake(OUTBOX_RELAY)
        for hook in uow.after_commit:
            hook()

    def context(self, correlation_id: str | None = None) -> HandlerContext:
        return HandlerContext(self, correlation_id or str(uuid.uuid4()))

    def wake(self, job: str) -> None:
        """Run job `job` now (new work committed); unknown or stopped jobs are ignored."""
        worker = self.workers.get(job)
        if worker is not None:
            worker.wake()

    @property
    def app(self) -> FastStream:
        return FastStream(self.broker, lifespan=self._lifespan, logger=library_logger("faststream"),
                          specification=AsyncAPI(title=f"Forum ouvert — {self.definition.title}", version="0.1.0",
                                                 description=f"Events and request/reply subjects of the "
                                                             f"{self.name} service."))

    # ------------------------------------------------------------------ request/reply
    def _register_operation(self, fn: Operation) -> None:
        """`rpc.<service>.<op>` in a queue group (replicas share the load), answered concurrently up to
        `rpc_workers` (`shared.rpc_answers`); invalid requests and DomainErrors become typed error replies,
        never a hang."""
        req_model = _first_param_type(fn)
        if not (isinstance(req_model, type) and issubclass(req_model, Request) and req_model.OP):
            raise TypeError(f"{fn.__name__}: its first parameter must be an operation's request class")
        if req_model.service() != self.name:
            raise TypeError(f"{fn.__name__}: {req_model.__name__} is an operation of {req_model.service()}")
        service = self

        async def answer(data: bytes, key: str | None, correlation_id: str) -> bytes:
            body = req_model.model_validate_json(data)
            if key:  # done once: a repeat with the same key gets the first reply
                ctx = HandlerContext(service, correlation_id, Once.of(body, key))
                done = await run_once(service.db, ctx.once, lambda: fn(body, ctx),  # type: ignore[arg-type]
                                      look_first=not getattr(fn, "records_key_first", False))
                return Reply(ok=True, data=done).model_dump_json().encode()
            return ok_reply(await fn(body, HandlerContext(service, correlation_id)))

        self._subscribe_rpc(req_model.subject(), fn, req_model, answer)

    def _register_health(self) -> None:
        service = self

        async def health(body: HealthRequest) -> Health:
            """Liveness and readiness of the service: broker connected, database answering."""

        async def answer(data: bytes, key: str | None, correlation_id: str) -> bytes:
            try:
                await service.db.ping()
                db = "ok"
            except Exception as exc:  # noqa: BLE001 - report, don't crash: health must answer
                db = f"error: {exc}"
            details = await service.definition.health(service) if service.definition.health else {}
            if service.relay:
                details["outbox_published"] = service.relay.published
            # "ok" once every subject and consumer has started: the broker starts its subscribers one by one,
            # in no set order, so the health subject may answer before another subject is subscribed.
            status = "starting" if not service.broker.running else "ok" if db == "ok" else "degraded"
            return ok_reply(Health(service=service.name, status=status, database=db, details=details))

        self._subscribe_rpc(f"{RPC_PREFIX}.{self.name}.health", health, HealthRequest, answer)

    def _subscribe_rpc(self, subject: str, fn: Callable[..., Any], request: type[BaseModel], answer: Answer) -> None:
        """FastStream's subscriber documents `subject` (AsyncAPI) and runs with the broker; `answer` replies."""

        async def documented(body: request) -> None:  # type: ignore[valid-type]
            """Never called: `self._answers` answers the subject."""

        documented.__name__ = fn.__name__
        documented.__annotations__["body"] = request  # a local: the string annotation would not resolve
        subscriber = self._rpcs.subscriber(subject, queue=f"{self.name}-rpc", title=f"{subject}:{fn.__name__}",
                                           description=(fn.__doc__ or "").strip() or None)
        subscriber(documented)
        self._answers.serve(subscriber, subject, fn.__name__, answer, workers=getattr(fn, "rpc_workers", 0))

    # ------------------------------------------------------------------ events
    def _register_consumer(self, c: Consumer) -> None:
        """Durable pull consumer `<service>--<event-type>`. The handler runs in a transaction that also
        records the event id in the inbox, and the message is acked only after that commit; failures are
        retried with backoff and parked on `deadletter.<durable>` once `consumer_max_deliver` attempts
        are spent, or at once for a malformed message."""
        if c.batch:
            self._register_batch_consumer(c)
            return
        durable = c.durable(self.name)
        env_model = Envelope[c.event]  # type: ignore[valid-type]
        service = self

        async def handle(env: Envelope[Any]) -> None:
            async with service.unit_of_work(correlation_id=env.correlation_id,
                                            causation_id=str(env.event_id)) as uow:
                if not await already_processed(uow.tx, durable, str(env.event_id)):
                    await c.handler(env, uow)

        async def on_message(body: env_model) -> None:  # type: ignore[valid-type]
            msg = current_message()
            # The envelope's id is the one the whole user action logs under, whoever published it.
            structlog.contextvars.bind_contextvars(correlation_id=body.correlation_id)
            await handle(body)
            await msg.ack()

        on_message.__name__ = c.handler.__name__
        on_message.__annotations__["body"] = env_model  # a local: the string annotation would not resolve
        # A short ack wait: the messages of a killed process go to another consumer within seconds, while
        # a handler still at work keeps its message by signalling progress (see _consumer_middleware).
        config = ConsumerConfig(max_deliver=self.settings.consumer_max_deliver,
                                ack_wait=self.settings.consumer_ack_wait,
                                deliver_policy=DeliverPolicy.ALL, max_ack_pending=1000)
        self._durables.append((stream_name(c.event.TYPE), durable, config))
        self._handler_names[durable] = c.handler.__name__
        self._events.subscriber(
            c.event.TYPE, stream=JStream(stream_name(c.event.TYPE), declare=False), durable=durable,
            # FastStream starts the messages of one fetch together. An idle pull is held by the server and
            # returns at the first message: as long as the batch consumers' (a fifth of the pull requests at rest).
            pull_sub=PullSub(batch_size=50, timeout=IDLE_WAIT),
            inbox_prefix=f"_INBOX.{self.name}.".encode(),  # as the broker's: deploy/nats/auth.conf
            config=config,
            title=f"{c.event.TYPE}:{c.handler.__name__}",
            description=(c.handler.__doc__ or "").strip() or None)(on_message)

    def _register_batch_consumer(self, c: Consumer) -> None:
        """`consumer(..., batch=True)`: the same durable pull consumer `<service>--<event-type>`, its messages
        handled a fetch at a time by `shared.group_commit.BatchConsumer` — one transaction per batch with the
        inbox rows, acks after the commit, retries and dead-lettering per message. Its loop replaces
        FastStream's, which would wait for full batches and pay its per-message machinery; the subscriber still
        declares the consumer, documents the channel (each message an envelope) and stops gracefully."""
        durable = c.durable(self.name)
        env_model = Envelope[c.event]  # type: ignore[valid-type]
        batch = BatchConsumer(self, durable, c.handler, env_model, c.batch_size)
        self.batch_consumers.append(batch)

        async def on_batch(body: Annotated[env_model, WrapValidator(_unchecked)]) -> None:  # type: ignore[valid-type]
            await batch.handle(current_message().raw_message)  # each envelope is validated there, on its own

        on_batch.__name__ = c.handler.__name__
        # Documented as what each message on the wire is: one envelope (the batch is this consumer's affair).
        on_batch.__annotations__["body"] = Annotated[env_model, WrapValidator(_unchecked)]  # type: ignore[valid-type]
        config = ConsumerConfig(max_deliver=self.settings.consumer_max_deliver,
                                ack_wait=self.settings.consumer_ack_wait,
                                deliver_policy=DeliverPolicy.ALL, max_ack_pending=1000)
        self._durables.append((stream_name(c.event.TYPE), durable, config))
        self._handler_names[durable] = c.handler.__name__
        subscriber = self._batch_events.subscriber(
            c.event.TYPE, stream=JStream(stream_name(c.event.TYPE), declare=False), durable=durable,
            pull_sub=PullSub(batch_size=c.batch_size, timeout=1.0, batch=True), decoder=_raw_bodies,
            inbox_prefix=f"_INBOX.{self.name}.".encode(),  # as the broker's: deploy/nats/auth.conf
            config=config,
            title=f"{c.event.TYPE}:{c.handler.__name__}",
            description=(c.handler.__doc__ or "").strip() or None)
        subscriber(on_batch)
        subscriber._consume_pull = functools.partial(batch.run, subscriber)  # started by the subscriber

    def _consumer_middleware(self) -> type[BaseMiddleware]:
        service = self

        class RetryOrDeadLetter(BaseMiddleware):
            async def consume_scope(self, call_next: Any, msg: Any) -> Any:
                raw, started = msg.raw_message, time.perf_counter()
                handler = service._handler_names.get(raw.metadata.consumer if raw.metadata else "", "?")
                async with progress_signals([raw], service.settings.consumer_ack_wait / 3):
                    try:
                        result = await call_next(msg)
                    except Exception as exc:  # noqa: BLE001 - every failure is retried or parked, never lost
                        await service._on_failure(raw, exc, handler=handler, ms=ms_since(started))
                        return None
                delivered = raw.metadata.num_delivered if raw.metadata else 1
                log.info("event handled", handler=handler, outcome="ok", ms=ms_since(started),
                         **({"deliveries": delivered} if delivered > 1 else {}))
                return result

        return RetryOrDeadLetter

    async def _on_failure(self, raw: Any, exc: Exception, **fields: Any) -> None:
        delivered = raw.metadata.num_delivered if raw.metadata else 1
        poison = isinstance(exc, ValidationError)
        s = self.settings
        if poison or delivered >= s.consumer_max_deliver:
            consumer_name = raw.metadata.consumer if raw.metadata else "?"
            record = {"consumer": consumer_name, "subject": raw.subject, "deliveries": delivered,
                      "error": f"{type(exc).__name__}: {exc}"[:2000],
                      "headers": dict(raw.headers or {}), "payload": raw.data.decode(errors="replace")}
            await self.broker.publish(json.dumps(record).encode(), f"{DEAD_LETTER_PREFIX}.{consumer_name}",
                                      stream=DEAD_LETTER_PREFIX.upper(), timeout=10,
                                      headers={"Nats-Msg-Id": f"dl-{consumer_name}-{raw.metadata.sequence.stream}"})
            log.error("event parked on dead-letter subject", consumer=consumer_name, subject=raw.subject,
                      deliveries=delivered, error=record["error"], outcome="parked", **fields)
            await raw.term()
        else:
            delay = s.consumer_backoff[min(delivered - 1, len(s.consumer_backoff) - 1)]
            log.warning("event handler failed, will retry", subject=raw.subject, deliveries=delivered,
                        retry_in=delay, error=f"{type(exc).__name__}: {exc}", outcome="retry", **fields)
            await raw.nak(delay=delay)

    # ------------------------------------------------------------------ lifecycle
    async def _update_consumers(self) -> None:
        """A durable consumer keeps the settings it was created with, whatever its subscriber says later:
        bring existing ones in line (e.g. a shorter ack wait) before the subscribers bind to them. New ones
        are created as declared when their subscriber starts."""
        js = self.broker.connection.jetstream()
        for stream, durable, wanted in self._durables:
            try:
                current = (await js.consumer_info(stream, durable)).config
            except NotFoundError:
                continue
            changes = {name: getattr(wanted, name) for name in ("ack_wait", "max_deliver", "max_ack_pending")
                       if getattr(current, name) is None
                       or abs(float(getattr(current, name)) - float(getattr(wanted, name))) > 1e-3}
            if not changes:
                continue
            try:
                await js.add_consumer(stream, current.evolve(**changes))
            except Exception as exc:  # noqa: BLE001 - it still works with the old settings; say so
                log.warning("consumer settings could not be updated", consumer=durable, wanted=changes,
                            error=f"{type(exc).__name__}: {exc}")
            else:
                log.info("consumer settings updated", consumer=durable, **changes)

    def _start_jobs(self) -> None:
        s = self.settings
        jobs = list(self.definition.jobs)
        if s.outbox_relay_enabled:
            self.relay = OutboxRelay(self.db, self.broker.connection.jetstream())
            jobs.insert(0, Job(OUTBOX_RELAY, lambda _: self.relay.relay_once(),  # type: ignore[union-attr]
                               idle=lambda s: s.outbox_poll_interval))
        for job in jobs:
            self.workers[job.name] = Worker(job.name, lambda job=job: job.step(self),
                                            idle=lambda job=job: job.idle(s), pace=lambda job=job: job.pace(s))
        for worker in self.workers.values():
            worker.start()

    @asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        configure_logging(self.settings, self.name)
        self._db = Database(self.settings.service_database_url(self.name), pool_size=self.settings.db_pool_size)
        for check in self.definition.on_start:  # fail at start, not at the first request; before any job
            if (pending := check(self)) is not None:
                await pending
        # Streams must exist before durable consumers bind to them: connect, declare, then start.
        await self.broker.connect()
        await ensure_streams(self.broker.connection.jetstream(), self.settings.stream_replicas)
        await self._update_consumers()
        self._start_jobs()
        log.info("service started", nats=self.settings.nats_url, database=_safe_url(self._db.url))
        try:
            yield
        finally:
            for worker in self.workers.values():
                await worker.stop()
            self.workers.clear()
            await self._db.dispose()
            log.info("service stopped")


# ====================================================================== helpers
def _unchecked(value: Any, handler: Any) -> Any:
    """A batch's bodies pass through as they are (each is validated by the batch consumer, so one malformed
    message is parked alone); the annotation still documents each message as an envelope."""
    return value


async def _raw_bodies(msg: Any) -> list[bytes]:
    """A batch's decoder: the raw bodies, parsed once later by the batch consumer."""
    return [m.data for m in msg.raw_message]


def _first_param_type(fn: Callable[..., Any]) -> Any:
    hints = typing.get_type_hints(fn)
    first = next(iter(p for p in fn.__code__.co_varnames[:fn.__code__.co_argcount]))
    return hints[first]


def _event_of(fn: EventHandler) -> type[EventData]:
    """`Envelope[MemberApproved]` (or `list[Envelope[...]]`) -> MemberApproved."""
    tp = _first_param_type(fn)
    if typing.get_origin(tp) is list:
        tp = typing.get_args(tp)[0]
    args = getattr(tp, "__pydantic_generic_metadata__", {}).get("args") or ()
    if not args or not (isinstance(args[0], type) and issubclass(args[0], EventData)):
        raise TypeError(f"{fn.__name__}: its first parameter must be Envelope[<event>]")
    return args[0]


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# The message being handled, set by the broker's outermost middleware. Handlers read it here rather than
# take a `NatsMessage` parameter: FastStream resolves an injected message in a worker thread, a thread hop
# per message (5-8 % of a service's CPU in an RSVP rush).
_CURRENT_MESSAGE: ContextVar[NatsMessage] = ContextVar("current_message")


def current_message() -> NatsMessage:
    return _CURRENT_MESSAGE.get()


def _log_context_middleware() -> type[BaseMiddleware]:
    class LogContext(BaseMiddleware):
        async def consume_scope(self, call_next: Any, msg: Any) -> Any:
            token = _CURRENT_MESSAGE.set(msg)
            try:
                with log_context(correlation_id=msg.correlation_id, subject=msg.raw_message.subject):
                    return await call_next(msg)
            finally:
                _CURRENT_MESSAGE.reset(token)

    return LogContext


__all__ = ["Consumer", "HandlerContext", "Job", "Service", "ServiceDef", "UnitOfWork", "consumer"]
