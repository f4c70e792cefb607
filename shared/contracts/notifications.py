"""Notifications contracts: request/reply shapes."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class DeliveryCounts(BaseModel):
    by_status: dict[str, int]


class MemberNotifications(BaseModel):
    contact: dict[str, str] | None
    emails: list[dict[str, Any]]
