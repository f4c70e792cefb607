"""Calling a service over NATS request/reply: a typed request in, its typed reply or a typed error out.

    view = await rpc(AnswerRsvp(session_id=..., actor_id=...))   # an RsvpView

The request class names the operation (`shared.contracts.common.Request`), so the caller writes one
name and gets the reply type checked. A command sent with `idempotency_key=` (a form's one-time token)
is done once: repeating it with the same key answers the first reply (see `shared.idempotency`)."""
from __future__ import annotations

import functools
import uuid
from typing import TypeVar

import structlog
from faststream.nats import NatsBroker
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import BaseModel, create_model

from shared.contracts.common import RPC_PREFIX, ErrorBody, ErrorCode, Health, Reply, Request
from shared.idempotency import IDEMPOTENCY_HEADER
from shared.rpc_answers import CORRELATION_HEADER

T = TypeVar("T", bound=BaseModel)


class RpcError(Exception):
    """A typed error reply (or the absence of any reply, as `unavailable`)."""

    def __init__(self, error: ErrorBody) -> None:
        super().__init__(error.message)
        self.error = error

    @property
    def code(self) -> ErrorCode:
        return self.error.code

    @property
    def field(self) -> str | None:
        return self.error.field


class RpcClient:
    def __init__(self, broker: NatsBroker, timeout: float = 5.0) -> None:
        self.broker = broker
        self.timeout = timeout

    async def __call__(self, request: Request[T], *, timeout: float | None = None,
                       idempotency_key: str | None = None) -> T:
        headers = {IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else None
        reply: type[T] = type(request).REPLY  # type: ignore[assignment]
        return await self._request(request.subject(), request.service(),
                                   request.__pydantic_serializer__.to_json(request), reply, timeout, headers)

    async def health(self, service: str, *, timeout: float | None = None) -> Health:
        """The service's own answer to `rpc.<service>.health`."""
        return await self._request(f"{RPC_PREFIX}.{service}.health", service, b"{}", Health, timeout)

    async def _request(self, subject: str, service: str, body: bytes, model: type[T], timeout: float | None,
                       headers: dict[str, str] | None = None) -> T:
        correlation_id = structlog.contextvars.get_contextvars().get("correlation_id") or str(uuid.uuid4())
        try:
            # Straight on the broker's NATS connection: the services read the JSON themselves
            # (shared.rpc_answers), and FastStream's request would wrap the reply in a message object.
            msg = await self.broker.connection.request(
                subject, body, timeout=timeout or self.timeout,
                headers={CORRELATION_HEADER: correlation_id, **(headers or {})})
        except (NatsTimeout, TimeoutError, NoRespondersError):
            raise RpcError(ErrorBody(code=ErrorCode.UNAVAILABLE,
                                     message=f"Le service « {service} » ne répond pas. Réessayez dans un instant.")
                           ) from None
        reply = reply_of(model).model_validate_json(msg.data)
        if not reply.ok:
            assert reply.error is not None
            raise RpcError(reply.error)
        return reply.data  # type: ignore[no-any-return]


@functools.cache
def reply_of(model: type[T]) -> type[Reply]:
    """`Reply` whose `data` is a `model`: the reply read from its JSON in one pass."""
    return create_model(f"{model.__name__}Reply", __base__=Reply, data=(model | None, None))
