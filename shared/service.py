"""The runtime every back-end service is built from: one way to consume, one way to answer, one way
to publish (through the outbox).

    svc = Service("registry")

    @svc.rpc("register")
    async def register(req: Register, cmd: Command) -> Registered:
        async with cmd.unit_of_work() as uow: ...; uow.emit(MemberRegistered(...))

    @svc.consume(MemberApproved)
    async def on_approved(event: Envelope[MemberApproved], uow: UnitOfWork) -> None: ...

`svc.app` is the FastStream application (`forum-ouvert serve registry` runs it).
"""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import structlog
from faststream import AckPolicy, AsyncAPI, BaseMiddleware, FastStream
from faststream.nats import ConsumerConfig, JStream, NatsBroker, NatsMessage, NatsRouter, PullSub
from nats.js.api import DeliverPolicy
from pydantic import BaseModel, ValidationError

from shared.contracts.common import ErrorBody, ErrorCode, Health, HealthRequest, Reply
from shared.db import Database
from shared.envelope import SYSTEM, Envelope, EventData
from shared.errors import DomainError
from shared.logging import configure_logging, get_logger
from shared.outbox import OutboxRelay, UnitOfWork, already_processed, record_new
from shared.settings import Settings, get_settings
from shared.validation import field_errors
from shared.streams import DEAD_LETTER_PREFIX, RPC_PREFIX, ensure_streams, stream_name

log = get_logger(__name__)
Req = TypeVar("Req", bound=BaseModel)
Sweep = Callable[[], Awaitable[Any]]
SPEC_NATS_URL = "nats://nats:4222"  # what the committed AsyncAPI documents say, whatever the run


def validation_reply(exc: ValidationError) -> Reply:
    field, message = next(iter(field_errors(exc).items()))
    return Reply(ok=False, error=ErrorBody(code=ErrorCode.INVALID, message=message,
                                           field=None if field == "__root__" else field))


class Command:
    """What an RPC handler gets besides its request: the caller's correlation id and a UoW factory."""

    def __init__(self, service: "Service", correlation_id: str) -> None:
        self.service = service
        self.correlation_id = correlation_id

    def unit_of_work(self, actor: str = SYSTEM) -> Any:
        return self.service.unit_of_work(correlation_id=self.correlation_id, actor=actor)


class Service:
    def __init__(self, name: str, title: str, settings: Settings | None = None) -> None:
        self.name = name
        self.settings = settings or get_settings()
        self.title = title
        self.broker = NatsBroker(
            self.settings.nats_url.split(","), name=f"forum-{name}", graceful_timeout=15.0,
            middlewares=[_log_context_middleware()], specification_url=SPEC_NATS_URL,
            log_level=10,  # FastStream's per-message "Received/Processed" lines only at DEBUG
        )
        self.events = NatsRouter(ack_policy=AckPolicy.MANUAL, middlewares=[self._consumer_middleware()])
        self.rpcs = NatsRouter(middlewares=[_rpc_error_middleware()])
        self._db: Database | None = None
        self.relay: OutboxRelay | None = None
        self.health_details: Callable[[], Awaitable[dict[str, Any]]] | None = None
        self._included = False
        self._background: list[Callable[[], Awaitable[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.rpc("health")(self._health)

    def background(self, fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """Run `fn` as a long-lived task while the service is up (e.g. the mail sender)."""
        self._background.append(fn)
        return fn

    def every(self, seconds: Callable[[], float]) -> Callable[[Sweep], Sweep]:
        """Run `fn` as a periodic sweep while the service is up, `seconds()` apart (read each time, so
        tests may change the setting); a failed sweep is logged and tried again at the next tick."""
        def deco(fn: Sweep) -> Sweep:
            async def sweep() -> None:
                while True:
                    try:
                        await fn()
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # noqa: BLE001 - keep the loop alive; retried on the next tick
                        log.exception("periodic sweep failed, will retry", sweep=sweep.__name__)
                    await asyncio.sleep(seconds())

            sweep.__name__ = fn.__name__
            self.background(sweep)
            return fn

        return deco

    # ------------------------------------------------------------------ plumbing
    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError(f"{self.name}: database not started")
        return self._db

    @asynccontextmanager
    async def unit_of_work(self, correlation_id: str | None = None, causation_id: str | None = None,
                           actor: str = SYSTEM) -> AsyncIterator[UnitOfWork]:
        async with self.db.transaction() as session:
            uow = UnitOfWork(session, producer=self.name, correlation_id=correlation_id or str(uuid.uuid4()),
                             causation_id=causation_id, actor=actor)
            yield uow
        if uow.emitted and self.relay:
            self.relay.wake()
        for hook in uow.after_commit:
            hook()

    def produces(self, *events: type[EventData]) -> None:
        """Document the events this service publishes (through its outbox) in its AsyncAPI."""
        for ev in events:
            self.broker.publisher(ev.TYPE, stream=JStream(stream_name(ev.TYPE), declare=False),
                                  schema=Envelope[ev], title=f"{ev.TYPE}:Publisher",  # type: ignore[valid-type]
                                  description=(ev.__doc__ or "").strip() or None)

    # ------------------------------------------------------------------ request/reply
    def rpc(self, op: str) -> Callable[[Callable[..., Awaitable[BaseModel]]], Callable[..., Any]]:
        """Register a request/reply handler on `rpc.<service>.<op>`.

        The handler's first parameter is a pydantic request model; invalid requests and DomainErrors
        become typed error replies. Handlers run concurrently (bounded) in a queue group, so any
        number of replicas share the load."""
        subject = f"{RPC_PREFIX}.{self.name}.{op}"

        def deco(fn: Callable[..., Awaitable[BaseModel]]) -> Callable[..., Any]:
            import inspect

            req_model = next(iter(inspect.signature(fn).parameters.values())).annotation
            if isinstance(req_model, str):
                req_model = fn.__globals__[req_model]
            service = self

            async def handler(body: req_model, msg: NatsMessage) -> dict[str, Any]:  # type: ignore[valid-type]
                result = await fn(body, Command(service, msg.correlation_id))
                return Reply(ok=True, data=result.model_dump(mode="json")).model_dump(mode="json")

            handler.__name__ = fn.__name__
            self.rpcs.subscriber(subject, queue=f"{self.name}-rpc", max_workers=self.settings.rpc_workers,
                                 title=f"{subject}:{fn.__name__}", description=(fn.__doc__ or "").strip() or None,
                                 )(handler)
            return fn

        return deco

    async def _health(self, req: HealthRequest, cmd: Command) -> Health:
        """Liveness and readiness of the service: broker connected, database answering."""
        try:
            await self.db.ping()
            db = "ok"
        except Exception as exc:  # report, don't crash: health must answer
            db = f"error: {exc}"
        details = await self.health_details() if self.health_details else {}
        if self.relay:
            details["outbox_published"] = self.relay.published
        return Health(service=self.name, status="ok" if db == "ok" else "degraded", database=db, details=details)

    # ------------------------------------------------------------------ events
    def consume(self, event: type[EventData], name: str | None = None) -> Callable[..., Any]:
        """Durable, idempotent consumer of one event type.

        The handler runs inside a transaction that also records the event id in the inbox; the
        message is acked only after that commit. Failures are retried with backoff, and parked on
        `deadletter.<durable>` once `consumer_max_deliver` attempts are spent."""
        durable = name or f"{self.name}--{event.TYPE.replace('.', '-')}"
        env_model = Envelope[event]  # type: ignore[valid-type]
        s = self.settings

        def deco(fn: Callable[[Any, UnitOfWork], Awaitable[None]]) -> Callable[..., Any]:
            service = self

            async def handler(body: env_model, msg: NatsMessage) -> None:  # type: ignore[valid-type]
                async with service.unit_of_work(correlation_id=body.correlation_id,
                                                causation_id=str(body.event_id)) as uow:
                    if not await already_processed(uow.session, durable, str(body.event_id)):
                        await fn(body, uow)
                await msg.ack()

            handler.__name__ = fn.__name__
            self.events.subscriber(
                event.TYPE, stream=JStream(stream_name(event.TYPE), declare=False), durable=durable,
                pull_sub=PullSub(batch_size=50, timeout=1.0),
                config=ConsumerConfig(max_deliver=s.consumer_max_deliver, ack_wait=60,
                                      deliver_policy=DeliverPolicy.ALL, max_ack_pending=1000),
                title=f"{event.TYPE}:{fn.__name__}", description=(fn.__doc__ or "").strip() or None,
            )(handler)
            return fn

        return deco

    def consume_batch(self, event: type[EventData], name: str | None = None,
                      batch_size: int = 100) -> Callable[..., Any]:
        """Like `consume`, but the events of one fetch share one transaction: the handler gets them
        (new ones only, in stream order) as a list, with their inbox rows in the same transaction, and
        each message is acked once it commits. For consumers whose cost is per transaction (the public
        record appends a batch of leaves under one head lock and one commit).

        Every message still travels the ordinary path (decoding, poison parking, retries and
        dead-lettering are those of `consume`): if a shared transaction fails, each of its events is
        retried in a transaction of its own, so one bad event never holds back the others. The handler
        must not emit events (a batch has no single causation id)."""
        durable = name or f"{self.name}--{event.TYPE.replace('.', '-')}"
        env_model = Envelope[event]  # type: ignore[valid-type]
        s = self.settings

        def deco(fn: Callable[[list[Any], UnitOfWork], Awaitable[None]]) -> Callable[..., Any]:
            batcher = _Batcher(self, durable, fn, batch_size)

            async def handler(body: env_model, msg: NatsMessage) -> None:  # type: ignore[valid-type]
                await batcher.submit(body)
                await msg.ack()

            handler.__name__ = fn.__name__
            self.events.subscriber(
                event.TYPE, stream=JStream(stream_name(event.TYPE), declare=False), durable=durable,
                # FastStream runs the messages of one fetch concurrently: the batcher gathers them.
                pull_sub=PullSub(batch_size=batch_size, timeout=1.0),
                config=ConsumerConfig(max_deliver=s.consumer_max_deliver, ack_wait=60,
                                      deliver_policy=DeliverPolicy.ALL, max_ack_pending=1000),
                title=f"{event.TYPE}:{fn.__name__}", description=(fn.__doc__ or "").strip() or None,
            )(handler)
            return fn

        return deco

    def _consumer_middleware(self) -> type[BaseMiddleware]:
        service = self

        class RetryOrDeadLetter(BaseMiddleware):
            async def consume_scope(self, call_next: Any, msg: Any) -> Any:
                try:
                    return await call_next(msg)
                except Exception as exc:  # noqa: BLE001 - every failure is retried or parked, never lost
                    await service._on_failure(msg.raw_message, exc)
                    return None

        return RetryOrDeadLetter

    async def _on_failure(self, raw: Any, exc: Exception) -> None:
        delivered = raw.metadata.num_delivered if raw.metadata else 1
        poison = isinstance(exc, ValidationError)
        s = self.settings
        if poison or delivered >= s.consumer_max_deliver:
            consumer = raw.metadata.consumer if raw.metadata else "?"
            record = {"consumer": consumer, "subject": raw.subject, "deliveries": delivered,
                      "error": f"{type(exc).__name__}: {exc}"[:2000],
                      "headers": dict(raw.headers or {}), "payload": raw.data.decode(errors="replace")}
            await self.broker.publish(json.dumps(record).encode(), f"{DEAD_LETTER_PREFIX}.{consumer}",
                                      stream=DEAD_LETTER_PREFIX.upper(), timeout=10,
                                      headers={"Nats-Msg-Id": f"dl-{consumer}-{raw.metadata.sequence.stream}"})
            log.error("event parked on dead-letter subject", consumer=consumer, subject=raw.subject,
                      deliveries=delivered, error=record["error"])
            await raw.term()
        else:
            delay = s.consumer_backoff[min(delivered - 1, len(s.consumer_backoff) - 1)]
            log.warning("event handler failed, will retry", subject=raw.subject, deliveries=delivered,
                        retry_in=delay, error=f"{type(exc).__name__}: {exc}")
            await raw.nak(delay=delay)

    # ------------------------------------------------------------------ lifecycle
    @property
    def app(self) -> FastStream:
        if not self._included:
            self.broker.include_router(self.rpcs)
            self.broker.include_router(self.events)
            self._included = True
        return FastStream(self.broker, lifespan=self._lifespan,
                          specification=AsyncAPI(title=f"Forum ouvert — {self.title}", version="0.1.0",
                                                 description=f"Events and request/reply subjects of the "
                                                             f"{self.name} service."))

    @asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        configure_logging(self.settings, self.name)
        self._db = Database(self.settings.service_database_url(self.name),
                            pool_size=self.settings.db_pool_size)
        # Streams must exist before durable consumers bind to them: connect, declare, then start.
        await self.broker.connect()
        await ensure_streams(self.broker.connection.jetstream(), self.settings.stream_replicas)
        if self.settings.outbox_relay_enabled:
            self.relay = OutboxRelay(self._db, self.broker.connection.jetstream(), self.settings.outbox_poll_interval)
            self.relay.start()
        self._tasks = [asyncio.create_task(fn(), name=fn.__name__) for fn in self._background]
        log.info("service started", nats=self.settings.nats_url, database=_safe_url(self._db.url))
        try:
            yield
        finally:
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self.relay:
                await self.relay.stop()
            await self._db.dispose()
            log.info("service stopped")


class _Batcher:
    """Gathers the events that one consumer's handlers submit in the same moment (the messages of one
    fetch, started together) and handles them in one unit of work; each submitter learns its own
    event's fate (returns once committed, or raises that event's error)."""

    def __init__(self, service: Service, durable: str,
                 fn: Callable[[list[Any], UnitOfWork], Awaitable[None]], max_size: int) -> None:
        self.service, self.durable, self.fn, self.max_size = service, durable, fn, max_size
        self.pending: list[tuple[Any, asyncio.Future[None]]] = []
        self.flushing: asyncio.Task[None] | None = None

    async def submit(self, env: Any) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((env, future))
        if self.flushing is None:
            self.flushing = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        try:
            for _ in range(3):  # let the other messages of the same fetch reach `submit`
                await asyncio.sleep(0)
            while self.pending:
                batch, self.pending = self.pending[:self.max_size], self.pending[self.max_size:]
                await self._run(batch)
        finally:
            self.flushing = None  # no await since the loop's last check: nothing can be left pending

    async def _run(self, batch: list[tuple[Any, asyncio.Future[None]]]) -> None:
        if len(batch) > 1:
            try:
                async with self.service.unit_of_work(correlation_id=batch[0][0].correlation_id) as uow:
                    new = await record_new(uow.session, self.durable, [str(env.event_id) for env, _ in batch])
                    fresh = []
                    for env, _ in batch:  # stream order; a duplicate within the batch counts once
                        if str(env.event_id) in new:
                            new.discard(str(env.event_id))
                            fresh.append(env)
                    if fresh:
                        await self.fn(fresh, uow)
            except Exception as exc:  # noqa: BLE001 - retried one by one below
                log.warning("batch failed, retrying its events one by one", consumer=self.durable,
                            events=len(batch), error=f"{type(exc).__name__}: {exc}")
            else:
                for _, future in batch:
                    future.set_result(None)
                return
        for env, future in batch:
            try:
                async with self.service.unit_of_work(correlation_id=env.correlation_id,
                                                     causation_id=str(env.event_id)) as uow:
                    if not await already_processed(uow.session, self.durable, str(env.event_id)):
                        await self.fn([env], uow)
            except Exception as exc:  # noqa: BLE001 - the submitter's message is retried or parked
                future.set_exception(exc)
            else:
                future.set_result(None)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _rpc_error_middleware() -> type[BaseMiddleware]:
    class TypedErrors(BaseMiddleware):
        async def consume_scope(self, call_next: Any, msg: Any) -> Any:
            try:
                return await call_next(msg)
            except ValidationError as exc:
                return validation_reply(exc).model_dump(mode="json")
            except DomainError as exc:
                return Reply(ok=False, error=exc.body()).model_dump(mode="json")
            except Exception:  # noqa: BLE001 - answer, never hang; the trace goes to the log only
                log.exception("request handler failed", subject=getattr(msg.raw_message, "subject", "?"))
                return Reply(ok=False, error=ErrorBody(code=ErrorCode.INTERNAL,
                                                       message="Erreur interne du service.")).model_dump(mode="json")

    return TypedErrors


def _log_context_middleware() -> type[BaseMiddleware]:
    class LogContext(BaseMiddleware):
        async def consume_scope(self, call_next: Any, msg: Any) -> Any:
            with structlog.contextvars.bound_contextvars(correlation_id=msg.correlation_id,
                                                        subject=msg.raw_message.subject):
                return await call_next(msg)

    return LogContext


__all__ = ["Command", "Service", "UnitOfWork"]
