"""JetStream streams: one per producing service, plus the dead-letter stream.

Event subjects equal event types (`registry.member.approved`), so a stream per producer is just
`<service>.>`. Request/reply subjects live under `rpc.` and must stay outside every stream
(a stream would answer the request with its PubAck).
"""
from __future__ import annotations

import asyncio

from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError, ServiceUnavailableError

DEAD_LETTER_PREFIX = "deadletter"
PRODUCERS = ("registry", "forum", "minutes", "notifications")
DUPLICATE_WINDOW_S = 15 * 60  # outbox re-publishes after a crash are dropped by JetStream within this
MAX_AGE_S = 90 * 24 * 3600  # events carry personal data (e-mail addresses): keep them bounded in time


def stream_name(subject: str) -> str:
    return subject.split(".", 1)[0].upper()


def stream_configs(replicas: int) -> list[StreamConfig]:
    common = dict(retention=RetentionPolicy.LIMITS, storage=StorageType.FILE, num_replicas=replicas,
                  duplicate_window=DUPLICATE_WINDOW_S, discard=DiscardPolicy.OLD)
    configs = [StreamConfig(name=p.upper(), subjects=[f"{p}.>"], max_age=MAX_AGE_S, **common)
               for p in PRODUCERS]
    configs.append(StreamConfig(name=DEAD_LETTER_PREFIX.upper(), subjects=[f"{DEAD_LETTER_PREFIX}.>"],
                                max_age=MAX_AGE_S, **common))
    return configs


async def ensure_streams(js: JetStreamContext, replicas: int = 1, attempts: int = 10) -> None:
    """Create or update every stream; safe to run from every process at every start.

    Several processes starting together on a fresh cluster may time out while the meta leader is
    being elected or busy: retry with backoff rather than crash."""
    for cfg in stream_configs(replicas):
        for attempt in range(attempts):
            try:
                try:
                    await js.stream_info(cfg.name)
                except NotFoundError:
                    await js.add_stream(cfg)
                else:
                    await js.update_stream(cfg)
                break
            except (NatsTimeout, TimeoutError, ServiceUnavailableError, BadRequestError):
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(min(0.2 * 2**attempt, 5))
