"""Helpers for the notifications tests: an SMTP server that records what it receives, and running a
consumer on one event the way the service does."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from shared.contracts.envelope import Envelope, EventData, make_event
from shared.service import Service


@dataclass
class SmtpServer:
    """Keeps each accepted message; `refuse` maps a recipient to the reply its RCPT (5xx, for good) or
    DATA (4xx, try later) gets instead."""

    port: int
    received: list[EmailMessage] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:  # noqa: ANN001, N802
        reply = self.refuse.get(address, "")
        if reply.startswith("5"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001, N802
        for address in envelope.rcpt_tos:
            if self.refuse.get(address, "").startswith("4"):
                return self.refuse[address]
        self.received.append(message_from_bytes(envelope.original_content or envelope.content,  # type: ignore[arg-type]
                                                policy=policy.default))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.received if str(m["To"]) == address]


async def handle(service: Service, handler: Callable[..., Any], data: EventData) -> Envelope[Any]:
    """Run a consumer on one event as the service would: in a unit of work of its own."""
    event = make_event(data, producer="test", correlation_id=str(uuid.uuid4()))
    async with service.unit_of_work(correlation_id=event.correlation_id, causation_id=str(event.event_id)) as uow:
        await handler(event, uow)
    return event


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll `check` (sync or async) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
