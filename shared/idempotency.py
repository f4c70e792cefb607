"""Commands that happen once: the reply each idempotency key got, kept beside the work it did.

A form that creates something carries a one-time token; the web front sends it with the request as
its idempotency key. The service records (operation, key) in the same transaction as the work, so a
double click, a reload or a re-sent request finds the key taken and answers with the first reply.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from shared.clock import utcnow


class CommandReply(SQLModel, table=True):
    __tablename__ = "command_reply"

    op: str = Field(primary_key=True, max_length=120)
    key: str = Field(primary_key=True, max_length=64)
    actor: str | None = Field(default=None, max_length=36)
    reply: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, index=True)
