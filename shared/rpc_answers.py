"""Answering a service's `rpc.*` requests straight from its NATS connection.

FastStream still declares each request subject: its subscriber documents the channel in the AsyncAPI
document, starts with the broker and waits for the answers under way when the service stops. What it no
longer does is carry each request through its own machinery (a memory stream and a task group per
subject, middlewares, dependency injection, a message object, its codec): about a third of the CPU an
RSVP cost the registry, whose answer itself is one indexed read. Here a request is one task: its JSON
read once into the request class, the operation run, and the reply written once.

Every request gets a reply: its data, or a typed error (`invalid` with the field, a `DomainError`'s
code, or `internal` with the trace in the log only).
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.msg import Msg
from pydantic import BaseModel, ValidationError

from shared.contracts.common import ErrorBody, ErrorCode, Reply
from shared.errors import DomainError
from shared.idempotency import IDEMPOTENCY_HEADER
from shared.logging import get_logger, log_context, ms_since
from shared.validation import field_errors

log = get_logger(__name__)
CORRELATION_HEADER = "correlation_id"  # the header FastStream's and `shared.rpc`'s requests carry

# (request body, idempotency key or None, correlation id) -> the reply's JSON
Answer = Callable[[bytes, "str | None", str], Awaitable[bytes]]


class RpcAnswers:
    """The request subjects of one service, each a queue subscription (replicas share the load) answered
    by `answer`, at most `workers` at once per subject; the rest wait in the subscription's queue."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._under_way: set[asyncio.Task[None]] = set()

    def serve(self, subscriber: Any, subject: str, handler: str, answer: Answer, workers: int = 0) -> None:
        """Make FastStream's `subscriber` of `subject` subscribe with `answer` when it starts; `workers`:
        more answers at once than the service's own number (an operation whose requests wait at a desk,
        `shared.desk.Grouped`)."""

        async def subscribe() -> None:
            if subscriber.subscription:
                return
            limiter = asyncio.Semaphore(max(workers, self.workers))

            async def on_request(msg: Msg) -> None:
                await limiter.acquire()  # nats-py holds the next requests meanwhile
                task = asyncio.create_task(self._answer(subscriber, msg, handler, answer))
                self._under_way.add(task)
                task.add_done_callback(lambda t: (limiter.release(), self._under_way.discard(t)))

            subscriber.subscription = await subscriber.connection.subscribe(
                subject, queue=subscriber.queue, cb=on_request)
            await subscriber.connection.flush()  # the server knows the subject once the service has started

        subscriber._create_subscription = subscribe  # called by the subscriber's own start

    async def _answer(self, subscriber: Any, msg: Msg, handler: str, answer: Answer) -> None:
        headers = msg.headers or {}
        correlation_id = headers.get(CORRELATION_HEADER) or str(uuid.uuid4())
        started = time.perf_counter()
        # The subscriber's lock counts the answers under way: its graceful stop waits for them.
        with subscriber.lock, log_context(correlation_id=correlation_id, subject=msg.subject):
            outcome = "ok"
            try:
                reply = await answer(msg.data, headers.get(IDEMPOTENCY_HEADER), correlation_id)
            except (ValidationError, DomainError) as exc:
                refusal = validation_reply(exc) if isinstance(exc, ValidationError) else Reply(ok=False, error=exc.body())
                reply, outcome = refusal.model_dump_json().encode(), refusal.error.code.value  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001 - answer, never hang; the trace goes to the log only
                log.exception("request handler failed", handler=handler, outcome=ErrorCode.INTERNAL.value,
                              ms=ms_since(started))
                reply, outcome = INTERNAL_ERROR, ""  # logged above
            if msg.reply:
                try:  # (not `msg.respond`, which sends the request's headers back with the reply)
                    await subscriber.connection.publish(msg.reply, reply)
                except Exception:  # noqa: BLE001 - the caller's time limit tells it; the work is done
                    log.warning("reply not sent", handler=handler, exc_info=True)
            if outcome:
                # Health probes come every few seconds from orchestrators: not worth a line each.
                (log.debug if msg.subject.endswith(".health") else log.info)(
                    "request handled", handler=handler, outcome=outcome, ms=ms_since(started))


def ok_reply(data: BaseModel) -> bytes:
    """`Reply(ok=True, data=data)` as JSON, written in one pass (a list of decisions or votes made three:
    to a dict, through `Reply`, to JSON)."""
    return b'{"ok":true,"data":' + data.__pydantic_serializer__.to_json(data) + b"}"


def validation_reply(exc: ValidationError) -> Reply:
    field_name, message = next(iter(field_errors(exc).items()))
    return Reply(ok=False, error=ErrorBody(code=ErrorCode.INVALID, message=message,
                                           field=None if field_name == "__root__" else field_name))


INTERNAL_ERROR = Reply(ok=False, error=ErrorBody(code=ErrorCode.INTERNAL, message="Erreur interne du service.")
                       ).model_dump_json().encode()
