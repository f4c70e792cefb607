"""Local mail catcher: a real SMTP server (aiosmtpd) that keeps every message as an .eml file.

Only for the local run and tests; the web front shows the folder at /dev/mail in local mode. It refuses
addresses starting with `refus-smtp-` (550), so that a failed delivery can be produced for real.
In deployment, Mailpit or a real relay takes its place.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller


# Addresses the catcher refuses for good, as a real server refuses an unknown mailbox: how the local run and
# the tests get a failed delivery (the secretariat's « Courriels en échec ») through the real sender.
REFUSED_PREFIX = "refus-smtp-"
REFUSAL = "550 5.1.1 Boite aux lettres inconnue (serveur de courriel local)"  # ASCII: an SMTP reply


class _SaveToFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:  # noqa: ANN001, N802
        if address.lower().startswith(REFUSED_PREFIX):
            return REFUSAL
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001, N802 - aiosmtpd hook
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        tmp = self.folder / f".{name}.tmp"
        tmp.write_bytes(envelope.original_content or envelope.content)
        tmp.rename(self.folder / name)  # atomic: readers never see half a message
        return "250 Message accepted for delivery"


def serve(folder: Path, host: str, port: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    controller = Controller(_SaveToFolder(folder), hostname=host, port=port)
    controller.start()
    print(f"mail catcher listening on {host}:{port}, writing to {folder}", flush=True)
    try:
        asyncio.run(_forever())
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


async def _forever() -> None:
    await asyncio.Event().wait()


def read_messages(folder: Path) -> list[tuple[str, EmailMessage]]:
    """Caught messages, newest first, as (id, parsed message)."""
    if not folder.exists():
        return []
    files = sorted((p for p in folder.glob("*.eml")), reverse=True)
    return [(p.stem, message_from_bytes(p.read_bytes(), policy=policy.default)) for p in files]  # type: ignore[misc]


def read_message(folder: Path, message_id: str) -> EmailMessage | None:
    if not message_id.replace("-", "").isalnum():
        return None
    p = folder / f"{message_id}.eml"
    return message_from_bytes(p.read_bytes(), policy=policy.default) if p.exists() else None  # type: ignore[return-value]
