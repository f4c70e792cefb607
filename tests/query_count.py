"""The SQL statements a service runs to answer one request, counted on its own engine.

A `before_cursor_execute` listener on the service's engine keeps the statements executed while the
structlog context holds a correlation id of ours: the service binds the request's correlation id around
its handler (shared.service), and `RpcClient` sends the caller's. Statements of background work (the
outbox relay, jobs, consumers) carry no such id and are left out, so a count is exactly one answer's.
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.rpc import RpcClient

PREFIX = "qc-"


class StatementLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine
        self.seen: dict[str, list[str]] = defaultdict(list)
        event.listen(self.engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        cid = structlog.contextvars.get_contextvars().get("correlation_id")
        if isinstance(cid, str) and cid.startswith(PREFIX):
            self.seen[cid].append(statement)

    async def statements(self, rpc: RpcClient, request: Any) -> tuple[Any, list[str]]:
        """The reply to `request` and the statements the service ran to answer it."""
        cid = f"{PREFIX}{uuid.uuid4().hex}"
        with structlog.contextvars.bound_contextvars(correlation_id=cid):
            reply = await rpc(request)
        return reply, self.seen.pop(cid, [])

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)


def show(statements: list[str]) -> str:
    """For a failed assertion: one line per statement."""
    return "\n".join(" ".join(s.split())[:160] for s in statements)
