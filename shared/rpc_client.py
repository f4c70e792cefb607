"""Calling a service over NATS request/reply: typed request in, typed reply or typed error out."""
from __future__ import annotations

import uuid
from typing import TypeVar

import structlog
from faststream.nats import NatsBroker
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import BaseModel

from shared.contracts.common import ErrorBody, ErrorCode, Reply
from shared.streams import RPC_PREFIX

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

    async def call(self, service: str, op: str, request: BaseModel, reply_type: type[T],
                   timeout: float | None = None) -> T:
        subject = f"{RPC_PREFIX}.{service}.{op}"
        correlation_id = structlog.contextvars.get_contextvars().get("correlation_id") or str(uuid.uuid4())
        try:
            msg = await self.broker.request(request.model_dump(mode="json"), subject,
                                            timeout=timeout or self.timeout, correlation_id=correlation_id)
        except (NatsTimeout, TimeoutError, NoRespondersError):
            raise RpcError(ErrorBody(code=ErrorCode.UNAVAILABLE,
                                     message=f"Le service « {service} » ne répond pas. Réessayez dans un instant.")
                           ) from None
        reply = Reply.model_validate(await msg.decode())
        if not reply.ok:
            assert reply.error is not None
            raise RpcError(reply.error)
        return reply_type.model_validate(reply.data)
