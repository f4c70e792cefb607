"""Notifications contracts: request/reply shapes."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from shared.contracts.common import ActorRequest, Request


class DeliveryCounts(BaseModel):
    by_status: dict[str, int]


class MemberNotifications(BaseModel):
    contact: dict[str, str] | None
    emails: list[dict[str, Any]]


class GetDeliveryCounts(Request[DeliveryCounts], op="notifications.delivery-counts"):
    """How many e-mails are in each delivery state (queued, sent, failed...)."""


class ExportNotifications(ActorRequest[MemberNotifications], op="notifications.export"):
    """What notifications keeps about the actor (their address and the e-mails sent to them)."""
