"""structlog set-up: JSON in deployment, readable console locally.

`correlation_id` lives in structlog's contextvars: the web front binds it per HTTP request, the
NATS middleware binds it per message, so every log line of one user action carries the same id.
Libraries log through stdlib logging; their records go through the same processors (contextvars
included) and renderer, at WARNING and above unless `log_level` is DEBUG.
"""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from shared.settings import Settings

_HANDLER = "forum-ouvert"  # our handler on the root logger, replaced when logging is configured again
_configured = False


class ExpectedTrouble(logging.Filter):
    """Libraries' reports of things that happen in normal operation, without their tracebacks.

    - A JetStream pull that finds nothing before its deadline can raise the builtin `TimeoutError`, which
      FastStream's fetch loop does not catch: its task supervisor restarts the loop and reports it as an
      ERROR with a traceback. The restart is all there is to it: dropped.
    - A lost NATS connection (the server restarted, the process is stopping) is worth a WARNING line, not
      a traceback: the client reconnects by itself.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not _expected(exc):
            return True
        if isinstance(exc, TimeoutError) and "retrying" in record.getMessage():
            return False
        record.exc_info, record.exc_text = None, None
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        message = record.getMessage()
        if type(exc).__name__ not in message:
            record.msg, record.args = f"{message} ({type(exc).__name__}: {exc})", None
        return True


def _expected(exc: BaseException) -> bool:
    import nats.errors

    return isinstance(exc, (TimeoutError, ConnectionError, nats.errors.ConnectionClosedError,
                            nats.errors.UnexpectedEOF, nats.errors.StaleConnectionError,
                            nats.errors.NoServersError))


def configure_logging(settings: Settings, service: str) -> None:
    global _configured
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    renderer = (structlog.processors.JSONRenderer() if settings.log_format == "json"
                else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)

    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER)
    handler.addFilter(ExpectedTrouble())
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer]))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)
    # Uvicorn installs handlers of its own; its records go through ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    _configured = True


def library_logger(name: str) -> logging.Logger:
    """A stdlib logger for a library that takes one (FastStream): its records go through our handler
    and formatter, at the level set above, rather than through the library's own."""
    return logging.getLogger(f"lib.{name}")


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)


@contextmanager
def log_context(**values: object) -> Iterator[None]:
    """Add `values` to every log line of the current task, and put back what was there after: structlog's
    `bound_contextvars` without its read of the whole context at entry (a cost on every request served)."""
    tokens = structlog.contextvars.bind_contextvars(**values)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def ms_since(started: float) -> float:
    """Milliseconds since `started` (a `time.perf_counter()`), as log lines give them."""
    return round((time.perf_counter() - started) * 1000, 1)
