"""The mail sender: every queued message leaves once, and the delivery log says what happened to it.

A drain opens `mail_connections` SMTP connections. Each sends one message at a time: it hands the
outcome of the last one to the bookkeeper and gets the next one back. The bookkeeper writes the
outcomes of every connection and claims their next messages in one transaction (a group commit), so
a message is marked `sent` as soon as the server answered, and a kill can leave at most one message
per connection `sending`. A connection that finds nothing to send waits while others are still sending
(what is queued meanwhile goes out over the whole pool, not only over the connections still busy); the
drain ends when none is. At the next start those are queued again and re-sent with the **same**
Message-ID (the log says so): the receiving system recognises a repeat, the subscriber gets the
notice once.

Temporary failures (4xx, dropped connections, timeouts) are retried with exponential backoff and
jitter; a 421 or a stalled exchange slows that destination domain only (its waiting messages are
deferred, the others keep going); at most `mail_domain_connections` connections serve one domain at
a time, so a domain that stalls cannot take them all. A 5xx is recorded and never retried; after
`mail_hard_failure_limit` of them a subscriber's address is suspended.
"""
from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiosmtplib
from sqlalchemy import bindparam, case, select, text, update as sql_update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, update

from services.notifications import links, mail
from services.notifications.models import Delivery, Notice, Subscriber
from services.notifications.outgoing import UNSENT_STATES
from shared.clock import utcnow
from shared.contracts.notifications import DeliveryState, SubscriptionStatus, topic_label
from shared.logging import get_logger
from shared.service import Service
from shared.settings import Settings

log = get_logger(__name__)

WAITING = (DeliveryState.QUEUED, DeliveryState.DEFERRED)
GATHER_WAIT = 0.002  # seconds the bookkeeper waits for more connections to share a transaction
PARKED_POLL = 0.2  # seconds between claims for the connections waiting for work while others send


# ---------------------------------------------------------------- after a crash
async def requeue_interrupted(service: Service) -> None:
    """At start, before the sender runs: what was in flight when the last process died may or may not
    have left. It is queued again, to be re-sent with the same Message-ID, and the log says so."""
    async with service.db.transaction() as tx:
        n = await _requeue(tx, col(Delivery.status) == DeliveryState.SENDING)
    if n:
        log.warning("messages interrupted mid-send queued again (same Message-ID)", count=n)


async def _requeue(tx: Any, where: Any) -> int:
    return (await tx.exec(update(Delivery).where(where).values(  # type: ignore[call-overload]
        status=DeliveryState.QUEUED, resent=True, next_attempt_at=utcnow(),
        last_error="interrompu pendant l'envoi : renvoyé avec le même Message-ID"))).rowcount


# ---------------------------------------------------------------- claims and outcomes
@dataclass(slots=True)
class Claim:
    """What the sender needs of a delivery it claimed (read with Core: no ORM objects on the hot path)."""

    id: str
    member_id: str
    kind: str
    notice_id: str | None
    topic: str | None
    to_addr: str
    domain: str
    subject: str
    message_id: str
    text_body: str
    html_body: str
    ics: str | None
    attempts: int
    next_attempt_at: datetime
    reply_to_addr: str | None


_TABLE = Delivery.__table__  # type: ignore[attr-defined]
_CLAIM_COLUMNS = [_TABLE.c[name] for name in Claim.__slots__]  # type: ignore[attr-defined]


@dataclass
class Outcome:
    delivery: Claim
    state: DeliveryState
    reply: str
    slow_domain: bool = False  # a 421 or a stalled exchange: the destination wants fewer messages


def backoff(settings: Settings, attempts: int) -> float:
    """Seconds before the next try: doubled at each attempt, capped, with ±25 % jitter so retries of
    many messages do not arrive together."""
    base = min(settings.mail_retry_base * 2 ** max(attempts - 1, 0), settings.mail_retry_max)
    return base * random.uniform(0.75, 1.25)


# ---------------------------------------------------------------- pacing
class Pace:
    """A minimum interval between sends (overall, or per domain); 0 = no limit."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.next = 0.0

    def take(self) -> float:
        """Reserve the next slot; returns how long to wait for it."""
        if not self.interval:
            return 0.0
        now = time.monotonic()
        slot = max(now, self.next)
        self.next = slot + self.interval
        return slot - now

    def ready(self) -> bool:
        return not self.interval or self.next <= time.monotonic()


@dataclass
class Domains:
    """What the sender knows about destination domains during a drain."""

    settings: Settings
    busy: Counter[str] = field(default_factory=Counter)
    slowed_until: dict[str, datetime] = field(default_factory=dict)
    paces: dict[str, Pace] = field(default_factory=dict)

    def pace(self, domain: str) -> Pace:
        if domain not in self.paces:
            self.paces[domain] = Pace(self.settings.mail_domain_rate)
        return self.paces[domain]

    def closed(self, now: datetime) -> list[str]:
        """Domains not to claim for now: slowed, at their connection limit, or ahead of their rate."""
        limit = self.settings.mail_domain_connections
        out = {d for d, n in self.busy.items() if n >= limit}
        out |= {d for d, until in self.slowed_until.items() if until > now}
        out |= {d for d, p in self.paces.items() if not p.ready()}
        return sorted(out)

    def can_take(self, domain: str, now: datetime) -> bool:
        return (self.busy[domain] < self.settings.mail_domain_connections
                and self.slowed_until.get(domain, now) <= now and self.pace(domain).ready())


# ---------------------------------------------------------------- the bookkeeper (group commit)
@dataclass
class _Turn:
    outcome: Outcome | None
    wants_next: bool
    answer: asyncio.Future[tuple[Claim, Any] | None]


class Bookkeeper:
    """Writes the outcomes of every connection and claims their next messages, one transaction for
    all the connections waiting at that moment, on one database connection held for the drain (Core
    statements only: this is the sender's hot path)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.settings = service.settings
        self.domains = Domains(service.settings)
        self.notices: dict[str, Any] = {}
        self.queue: asyncio.Queue[_Turn] = asyncio.Queue()
        self.arrived = asyncio.Event()  # set when a turn is queued
        self.sent = 0
        self.sending = 0  # claims handed to connections whose outcome has not come back
        self.failed: BaseException | None = None  # the database error that stopped the bookkeeper

    async def turn(self, outcome: Outcome | None, wants_next: bool = True) -> tuple[Claim, Any] | None:
        if self.failed is not None:
            raise self.failed
        future: asyncio.Future[tuple[Claim, Any] | None] = asyncio.get_running_loop().create_future()
        await self.queue.put(_Turn(outcome, wants_next, future))
        self.arrived.set()
        return await future

    async def run(self) -> None:
        parked: list[_Turn] = []  # connections that found nothing, waiting while others send
        async with self.service.db.held_connection() as held:
            while True:
                turns = [*parked, *await self._gather(PARKED_POLL if parked else None)]
                parked = []
                outcomes = [t.outcome for t in turns if t.outcome]
                try:
                    async with held.transaction() as conn:
                        claims = await self._commit(conn, outcomes, sum(t.wants_next for t in turns))
                except Exception as exc:  # noqa: BLE001 - every waiting connection learns it and stops
                    self.failed = exc
                    while not self.queue.empty():
                        turns.append(self.queue.get_nowait())
                    for t in turns:
                        if not t.answer.done():
                            t.answer.set_exception(exc)
                    raise
                self.sending -= len(outcomes)
                for t in turns:
                    if t.answer.done():
                        continue
                    if t.wants_next and claims:
                        self.sending += 1
                        t.answer.set_result(claims.pop(0))
                    elif t.wants_next:
                        t.outcome = None  # recorded
                        parked.append(t)
                    else:
                        t.answer.set_result(None)
                if not self.sending and self.queue.empty():  # nobody sending, nothing due: the drain ends
                    for t in parked:
                        t.answer.set_result(None)
                    parked = []

    async def _gather(self, at_most: float | None = None) -> list[_Turn]:
        """The turns for the next transaction: the first, then whoever arrives within a millisecond or
        two, up to half the connections. A transaction costs about as much for one message as for
        ten, and a connection waits for its transaction anyway. With `at_most`, none after that many
        seconds (the parked connections then claim again on their own)."""
        loop = asyncio.get_running_loop()
        if at_most is not None and self.queue.empty():
            self.arrived.clear()
            try:  # (an Event, not `wait_for(queue.get())`: see below)
                await asyncio.wait_for(self.arrived.wait(), at_most)
            except TimeoutError:
                return []
        turns = [await self.queue.get()]
        target, deadline = max(1, self.settings.mail_connections // 2), loop.time() + GATHER_WAIT
        while len(turns) < target:
            if not self.queue.empty():
                turns.append(self.queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            # Polled, not `wait_for(queue.get())`: on Python 3.11 that can drop the item it times out on
            # (gh-86296), and a connection whose turn is lost would wait for ever.
            await asyncio.sleep(min(remaining, 0.0005))
        while not self.queue.empty():
            turns.append(self.queue.get_nowait())
        return turns

    async def _commit(self, conn: AsyncConnection, outcomes: list[Outcome], wanted: int) -> list[tuple[Claim, Any]]:
        now = utcnow()
        if outcomes:
            await self._record(conn, outcomes, now)
        claims = await self._claim(conn, wanted, now) if wanted else []
        missing = {c.notice_id for c in claims if c.notice_id and c.notice_id not in self.notices}
        if missing:
            notices = Notice.__table__  # type: ignore[attr-defined]
            for row in (await conn.execute(select(notices).where(notices.c.id.in_(missing)))).all():
                self.notices[row.id] = row
        return [(c, self.notices.get(c.notice_id or "")) for c in claims]

    async def _record(self, conn: AsyncConnection, outcomes: list[Outcome], now: datetime) -> None:
        rows: list[dict[str, Any]] = []
        for o in outcomes:
            d = o.delivery
            self.domains.busy[d.domain] -= 1
            state, next_at, reply = o.state, None, o.reply[:1000]
            if state == DeliveryState.DEFERRED:
                if d.attempts >= self.settings.mail_max_attempts:
                    state, reply = DeliveryState.FAILED, f"abandonné après {d.attempts} essais : {reply}"[:1000]
                else:
                    next_at = now + timedelta(seconds=backoff(self.settings, d.attempts))
            rows.append({"b_id": d.id, "b_status": state, "b_error": reply, "b_next": next_at or d.next_attempt_at,
                         "b_sent": now if state == DeliveryState.SENT else None,
                         "b_keep": state not in (DeliveryState.SENT, DeliveryState.FAILED)})
            if state == DeliveryState.SENT:
                self.sent += 1
            elif state == DeliveryState.FAILED and o.reply[:1] == "5" and d.notice_id is not None:
                await self._hard_failure(conn, d.member_id)
            if o.slow_domain:
                await self._slow(conn, d.domain, now, o.reply)
        # The bodies may hold single-use links: not kept once the message left (or never will).
        await conn.execute(sql_update(_TABLE).where(_TABLE.c.id == bindparam("b_id")).values(
            status=bindparam("b_status"), last_error=bindparam("b_error"), next_attempt_at=bindparam("b_next"),
            sent_at=bindparam("b_sent"), claimed_at=None,
            text_body=case((bindparam("b_keep"), _TABLE.c.text_body), else_=""),
            html_body=case((bindparam("b_keep"), _TABLE.c.html_body), else_=""),
            ics=case((bindparam("b_keep"), _TABLE.c.ics), else_=None)), rows)

    async def _hard_failure(self, conn: AsyncConnection, subscriber_id: str) -> None:
        subscribers = Subscriber.__table__  # type: ignore[attr-defined]
        row = (await conn.execute(sql_update(subscribers).where(subscribers.c.id == subscriber_id)
                                  .values(hard_failures=subscribers.c.hard_failures + 1)
                                  .returning(subscribers.c.hard_failures, subscribers.c.status))).first()
        if row is None or row.hard_failures < self.settings.mail_hard_failure_limit \
                or row.status != SubscriptionStatus.CONFIRMED:
            return
        await conn.execute(sql_update(subscribers).where(subscribers.c.id == subscriber_id)
                           .values(status=SubscriptionStatus.SUSPENDED))
        await conn.execute(sql_update(_TABLE).where(_TABLE.c.member_id == subscriber_id,
                                                    _TABLE.c.status.in_(UNSENT_STATES)).values(
            status=DeliveryState.SUPPRESSED, text_body="", html_body="", ics=None,
            last_error=f"adresse suspendue après {row.hard_failures} refus définitifs"))
        log.warning("subscriber address suspended after permanent refusals", subscriber=subscriber_id)

    async def _slow(self, conn: AsyncConnection, domain: str, now: datetime, reply: str) -> None:
        """The domain asked us to slow down (421) or stalled: its waiting messages wait, the others go."""
        previous = self.domains.slowed_until.get(domain)
        pause = self.settings.mail_domain_slow_for
        if previous is not None and previous > now - timedelta(seconds=2 * pause):
            pause = min(2 * (previous - now).total_seconds() + pause, self.settings.mail_retry_max)
        until = now + timedelta(seconds=pause)
        self.domains.slowed_until[domain] = until
        await conn.execute(sql_update(_TABLE).where(
            _TABLE.c.domain == domain, _TABLE.c.status.in_(WAITING), _TABLE.c.next_attempt_at < until,
        ).values(status=DeliveryState.DEFERRED, next_attempt_at=until,
                 last_error=f"domaine {domain} ralenti ({reply[:200]})"))
        log.info("destination domain slowed", domain=domain, until=until.isoformat(), reply=reply[:200])

    async def _claim(self, conn: AsyncConnection, wanted: int, now: datetime) -> list[Claim]:
        # The states as literals, as in the partial index ix_delivery_due: with bound parameters SQLite
        # cannot tell the index applies and scans (and sorts) the whole delivery log at every claim.
        stmt = (select(*_CLAIM_COLUMNS).where(text("delivery.status IN ('queued', 'deferred')"),
                                               _TABLE.c.next_attempt_at <= now)
                .order_by(_TABLE.c.priority, _TABLE.c.next_attempt_at).limit(wanted * 2))
        if closed := self.domains.closed(now):
            stmt = stmt.where(_TABLE.c.domain.not_in(closed))
        if not self.service.db.sqlite:
            stmt = stmt.with_for_update(skip_locked=True)  # replicas claim different messages
        picked: list[Claim] = []
        for row in (await conn.execute(stmt)).all():
            if len(picked) == wanted:
                break
            if self.domains.can_take(row.domain, now):
                self.domains.busy[row.domain] += 1
                self.domains.pace(row.domain).take()
                picked.append(Claim(*row))
        if picked:
            await conn.execute(sql_update(_TABLE).where(_TABLE.c.id.in_([c.id for c in picked])).values(
                status=DeliveryState.SENDING, attempts=_TABLE.c.attempts + 1, claimed_at=now))
            for c in picked:
                c.attempts += 1
        return picked


# ---------------------------------------------------------------- one message
class Messages:
    """Writes the bytes of each message: a personal one from its stored bodies, a notice's from the
    notice's template (written once per notice and topic) with the subscriber's own links."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.templates: dict[tuple[str, str], bytes] = {}

    def build(self, d: Claim, notice: Any) -> bytes:
        settings = self.settings
        if d.notice_id is None:
            return mail.compose(settings=settings, to=d.to_addr, subject=d.subject, text=d.text_body,
                                html=d.html_body, message_id=d.message_id, ics=d.ics, reply_to=d.reply_to_addr)
        if notice is None:
            raise LookupError(f"notice {d.notice_id} not found")
        topic = d.topic or notice.topics.split()[0]
        key = (notice.id, topic)
        if key not in self.templates:
            list_id = (f"{mail.header_text('Forum ouvert — ' + topic_label(topic), 120)} "
                       f"<{topic.replace(':', '-').replace('_', '-')}.{mail.sender_domain(settings)}>")
            self.templates[key] = mail.notice_template(settings=settings, subject=notice.subject, text=notice.text,
                                                       html=notice.html, list_id=list_id)
        return mail.personalise(self.templates[key], to=d.to_addr, message_id=d.message_id,
                                manage_url=links.url(settings, links.Purpose.MANAGE, d.member_id),
                                unsubscribe_url=links.url(settings, links.Purpose.UNSUBSCRIBE, d.member_id))


class Connection:
    """One SMTP connection of the pool: opened when first needed, closed after an error that may
    leave it in an unknown state."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sender = mail.envelope_sender(settings)
        self.smtp: aiosmtplib.SMTP | None = None

    async def send(self, to: str, data: bytes) -> str:
        if self.smtp is None or not self.smtp.is_connected:
            self.smtp = mail.smtp_client(self.settings)
            try:
                await asyncio.wait_for(self.smtp.connect(), self.settings.mail_send_timeout)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                self.drop()
                raise mail.TemporaryFailure(f"connexion impossible au serveur SMTP : {exc}") from exc
        try:
            return await asyncio.wait_for(mail.send_on(self.smtp, self.sender, to, data),
                                          self.settings.mail_send_timeout)
        except TimeoutError as exc:
            self.drop()
            raise mail.TemporaryFailure(f"pas de réponse du serveur en {self.settings.mail_send_timeout:g} s",
                                        code=0) from exc
        except mail.TemporaryFailure:
            self.drop()
            raise

    def drop(self) -> None:
        if self.smtp is not None:
            self.smtp.close()
            self.smtp = None

    async def close(self) -> None:
        if self.smtp is not None and self.smtp.is_connected:
            try:
                await asyncio.wait_for(self.smtp.quit(), 5)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                pass
        self.drop()


async def deliver(messages: Messages, conn: Connection, d: Claim, notice: Any) -> Outcome:
    """Send one message and say what happened; never raises (one bad message does not stop the others)."""
    try:
        data = messages.build(d, notice)
    except Exception as exc:  # noqa: BLE001 - a message that cannot be written is refused, the batch goes on
        log.error("message could not be composed", delivery=d.id, error=f"{type(exc).__name__}: {exc}")
        return Outcome(d, DeliveryState.FAILED, f"message impossible à composer : {type(exc).__name__}: {exc}")
    try:
        reply = await conn.send(d.to_addr, data)
    except mail.PermanentFailure as exc:
        return Outcome(d, DeliveryState.FAILED, str(exc))
    except mail.TemporaryFailure as exc:
        return Outcome(d, DeliveryState.DEFERRED, str(exc), slow_domain=exc.code in (421, 0))
    return Outcome(d, DeliveryState.SENT, reply)


# ---------------------------------------------------------------- the job
async def send_due(service: Service) -> int:
    """One step of the mail sender: drain what is due over the connection pool; returns how many
    messages were sent."""
    settings = service.settings
    async with service.db.transaction() as tx:  # another sender's claims past their lease
        lease = utcnow() - timedelta(seconds=settings.mail_claim_lease)
        await _requeue(tx, (col(Delivery.status) == DeliveryState.SENDING) & (col(Delivery.claimed_at) < lease))
    book = Bookkeeper(service)
    overall = Pace(settings.mail_rate)
    messages = Messages(settings)

    async def connection_loop() -> None:
        conn = Connection(settings)
        unrecorded: Outcome | None = None
        try:
            while (claim := await book.turn(unrecorded)) is not None:
                unrecorded = None  # handed over: the bookkeeper's transaction records it
                if wait := overall.take():
                    await asyncio.sleep(wait)
                unrecorded = await deliver(messages, conn, *claim)
            unrecorded = None
        finally:
            if unrecorded is not None and book.failed is None:
                # Stopped after the server answered: record it, or the next start sends it again.
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(book.turn(unrecorded, wants_next=False)), 5)
            await conn.close()

    keeper = asyncio.create_task(book.run(), name="mail-bookkeeper")
    loops = [asyncio.create_task(connection_loop()) for _ in range(settings.mail_connections)]
    try:
        await asyncio.gather(*loops)
    finally:
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
    return book.sent
