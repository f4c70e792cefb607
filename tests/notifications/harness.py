"""Helpers for the notifications tests: an SMTP server that records what it receives, and running a
consumer on one event the way the service does."""
from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
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
    DATA (4xx, try later) gets instead.

    For the fault tests: `accepted` holds (Message-ID, recipients) of every message accepted, repeats
    included (`keep=False` keeps only that, for thousands of messages); `rcpt_attempts` counts the RCPT
    commands per recipient; while `refuse_all` is set, MAIL, RCPT and DATA all get that reply; a domain
    in `stall` makes its RCPT wait that many seconds (the client gives up first), and `stalled_peak` is
    the most connections waiting on a stalled RCPT at once."""

    port: int
    received: list[EmailMessage] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    keep: bool = True
    accepted: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    rcpt_attempts: Counter[str] = field(default_factory=Counter)
    refuse_all: str = ""
    stall: dict[str, float] = field(default_factory=dict)
    stalled_now: int = 0
    stalled_peak: int = 0
    by_address: dict[str, Counter[str]] = field(default_factory=dict)  # recipient -> Message-ID -> times

    async def handle_MAIL(self, server, session, envelope, address, mail_options) -> str:  # noqa: ANN001, N802
        if self.refuse_all:
            return self.refuse_all
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:  # noqa: ANN001, N802
        self.rcpt_attempts[address] += 1
        if self.refuse_all:
            return self.refuse_all
        if (delay := self.stall.get(address.rpartition("@")[2].lower())) is not None:
            self.stalled_now += 1  # (the handler is cancelled when the client hangs up)
            self.stalled_peak = max(self.stalled_peak, self.stalled_now)
            try:
                await asyncio.sleep(delay)
            finally:
                self.stalled_now -= 1
        reply = self.refuse.get(address, "")
        if reply.startswith("5"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001, N802
        if self.refuse_all:
            return self.refuse_all
        for address in envelope.rcpt_tos:
            if self.refuse.get(address, "").startswith("4"):
                return self.refuse[address]
        content = envelope.original_content or envelope.content
        found = _MESSAGE_ID.search(content.split(b"\r\n\r\n", 1)[0])  # type: ignore[union-attr, arg-type]
        message_id = found.group(1).decode() if found else ""
        self.accepted.append((message_id, tuple(envelope.rcpt_tos)))
        for address in envelope.rcpt_tos:
            self.by_address.setdefault(address, Counter())[message_id] += 1
        if self.keep:
            self.received.append(message_from_bytes(content, policy=policy.default))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.received if str(m["To"]) == address]

    def message_ids_by_address(self) -> dict[str, Counter[str]]:
        """For each recipient, how many times each Message-ID reached it (a copy: the server runs in a
        thread of its own; `len(by_address)` is the cheap way to poll)."""
        return {a: Counter(ids) for a, ids in list(self.by_address.items())}


_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


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
