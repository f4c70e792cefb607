"""Errors a command handler raises on purpose; the RPC layer turns them into typed error replies."""
from __future__ import annotations

from shared.contracts.common import ErrorBody, ErrorCode


class DomainError(Exception):
    code: ErrorCode = ErrorCode.CONFLICT

    def __init__(self, message: str, field: str | None = None, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def body(self) -> ErrorBody:
        return ErrorBody(code=self.code, message=self.message, field=self.field)


class Invalid(DomainError):
    code = ErrorCode.INVALID


class NotFound(DomainError):
    code = ErrorCode.NOT_FOUND


class Conflict(DomainError):
    code = ErrorCode.CONFLICT


class Forbidden(DomainError):
    code = ErrorCode.FORBIDDEN


class Expired(DomainError):
    code = ErrorCode.EXPIRED


class RetryLater(Exception):
    """An event handler cannot proceed yet (e.g. it needs a fact that has not arrived): retry."""
