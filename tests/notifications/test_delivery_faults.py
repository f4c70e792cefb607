"""Fault tests of the mail sender against a real SMTP server (aiosmtpd, in this process), the real broker
and a real database: a kill -9 in the middle of a fan-out to 1,500 subscribers, a server that answers
421 to everything for a while, permanent refusals (550), and one destination domain that stalls.

What counts is what the SMTP server saw, by Message-ID: every subscriber gets the notice once. The
numbers of each run are printed (`pytest -s`), never asserted on time."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert
from sqlmodel import select

from services.notifications.models import Delivery, Notice, Recipient, Subscriber, SubscriberTopic
from shared.contracts.notifications import (
    AnnouncementAction, AnnouncementView, ControlAnnouncement, DeliveryState, GetAnnouncement, NoticeState,
    SaveAnnouncement, SearchDeliveries, SubscriptionStatus,
)
from shared.db import Database
from shared.rpc import RpcClient
from tests.notifications.harness import SmtpServer, eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ACTOR = "secretariat-fault-tests"
DOMAINS = ["orange.example", "free.example", "laposte.example", "gmail.example", "mairie.example",
           "asso.example", "journal.example", "sfr.example"]


# ---------------------------------------------------------------- seeding and asking
async def seed(db: Database, addresses: list[str], topic: str = "announcements", id_prefix: str = "") -> None:
    """Confirmed subscribers of `topic` and the secretariat member who sends (bulk: seeding is not
    what is tested). With `id_prefix`, their ids sort in the order given (the fan-out's order)."""
    subscribers = [Subscriber(email=a, status=SubscriptionStatus.CONFIRMED) for a in addresses]
    if id_prefix:
        for i, s in enumerate(subscribers):
            s.id = f"{id_prefix}-{i:06d}"
    async with db.transaction() as tx:
        if await tx.get(Recipient, ACTOR) is None:
            tx.add(Recipient(member_id=ACTOR, email="secretariat@forum.example", full_name="Secrétariat",
                             secretariat=True))
        conn = await tx.connection()
        subscriber, subscriber_topic = Subscriber.__table__, SubscriberTopic.__table__  # type: ignore[attr-defined]
        await conn.execute(insert(subscriber), [s.model_dump() for s in subscribers])
        await conn.execute(insert(subscriber_topic), [{"subscriber_id": s.id, "topic": topic} for s in subscribers])


async def announce(rpc: RpcClient, title: str) -> str:
    """Write an announcement and send it to the subscribers of « Annonces »; returns its id."""
    draft = await rpc(SaveAnnouncement(actor_id=ACTOR, title=title, topic="announcements",
                                       body="Bonjour,\n\nLe forum se réunit **jeudi**. Ordre du jour en ligne."))
    await rpc(ControlAnnouncement(actor_id=ACTOR, announcement_id=draft.announcement_id,
                                  action=AnnouncementAction.SEND))
    return draft.announcement_id


async def view(rpc: RpcClient, announcement_id: str) -> AnnouncementView:
    return await rpc(GetAnnouncement(actor_id=ACTOR, announcement_id=announcement_id))


async def sent(rpc: RpcClient, announcement_id: str, timeout: float) -> AnnouncementView:
    """The announcement once every one of its messages has an outcome."""
    async def done() -> AnnouncementView | None:
        v = await view(rpc, announcement_id)
        return v if v.state == NoticeState.SENT else None
    return await eventually(done, timeout)


async def rows(db: Database, notice_id: str) -> list[Delivery]:
    async with db.read() as tx:
        return list((await tx.exec(select(Delivery).where(Delivery.notice_id == notice_id))).all())


def once_each(smtp: SmtpServer, addresses: list[str]) -> dict[str, str]:
    """Assert every address got exactly one message, counted by Message-ID, never twice; returns the
    Message-ID each got."""
    by_address = smtp.message_ids_by_address()
    assert sorted(by_address) == sorted(addresses)
    assert {a: ids for a, ids in by_address.items() if len(ids) != 1} == {}, "an address got two different notices"
    repeated = {a: ids for a, ids in by_address.items() if sum(ids.values()) != 1}
    assert repeated == {}, "a message reached its recipient twice"
    return {a: next(iter(ids)) for a, ids in by_address.items()}


def once_each_allowing_repeats(smtp: SmtpServer, addresses: list[str]) -> dict[str, str]:
    """After a kill: every address got exactly one notice (one Message-ID), perhaps physically twice
    (the message in flight on a connection, re-sent with the same Message-ID)."""
    by_address = smtp.message_ids_by_address()
    assert sorted(by_address) == sorted(addresses), "a subscriber got nothing"
    assert {a: ids for a, ids in by_address.items() if len(ids) != 1} == {}, "an address got two different notices"
    return {a: next(iter(ids)) for a, ids in by_address.items()}


# ---------------------------------------------------------------- 1. kill -9 mid fan-out, own process
class NotificationsProcess:
    """`forum-ouvert serve notifications` as its own process, as it runs in production."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "forum_ouvert.cli", "serve", "notifications"],
                                         cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        return self.proc.pid

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL

    def alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"the notifications process exited ({self.proc.returncode}):\n"
                                 + self.log.read_text()[-3000:])
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def ready(rpc: RpcClient, process: NotificationsProcess) -> None:
    async def answers() -> bool:
        process.alive()
        try:
            return (await rpc.health("notifications", timeout=1)).status == "ok"
        except Exception:  # noqa: BLE001 - not up yet
            return False
    await eventually(answers, 60)


async def until(check: Callable[[], Any], timeout: float, process: NotificationsProcess) -> None:
    async def alive_and() -> Any:
        process.alive()
        return check()
    await eventually(alive_and, timeout)


async def test_a_kill_9_in_the_middle_of_a_fan_out_to_1500_leaves_everyone_one_notice(
        own_nats: str, smtp: SmtpServer, notifications_db: str, tmp_path: Path) -> None:
    from faststream.nats import NatsBroker

    smtp.keep = False  # (Message-IDs and recipients only: parsing each message would slow the server)
    # Big enough that the kill lands after hundreds of sends, with the fan-out's batches (100) and the
    # eight connections all at work: more subscribers would check the same, only for longer.
    subscribers, connections, kill_at = 1500, 8, 300
    addresses = [f"abonne{i:04d}@{DOMAINS[i % len(DOMAINS)]}" for i in range(subscribers)]
    db = Database(notifications_db)
    await seed(db, addresses)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FORUM_")},
           "FORUM_DATABASE_URL": notifications_db, "FORUM_NATS_URL": own_nats, "FORUM_SMTP_HOST": "127.0.0.1",
           "FORUM_SMTP_PORT": str(smtp.port), "FORUM_DATA_DIR": str(tmp_path), "FORUM_LOG_LEVEL": "WARNING",
           "FORUM_PUBLIC_URL": "https://forum.example.org", "FORUM_MAIL_CONNECTIONS": str(connections),
           # Small fan-out batches, interleaved with the sends (whether the fan-out had finished at the
           # kill is printed: inserting is faster than sending, so it usually has).
           "FORUM_FANOUT_BATCH": "100", "PYTHONUNBUFFERED": "1"}
    process = NotificationsProcess(env, tmp_path / "notifications.log")
    try:
        async with NatsBroker(own_nats) as broker:
            rpc = RpcClient(broker, timeout=10)
            t0 = time.monotonic()
            process.start()
            await ready(rpc, process)
            notice_id = await announce(rpc, "Kill -9 au milieu de l'envoi")

            await until(lambda: len(smtp.accepted) >= kill_at, 120, process)
            process.kill()
            killed_after = time.monotonic() - t0
            at_kill = len(smtp.accepted)
            async with db.read() as tx:
                by_status = (select(Delivery.status, func.count())  # type: ignore[call-overload]
                             .where(Delivery.notice_id == notice_id).group_by(Delivery.status))
                left = {str(k): v for k, v in (await tx.exec(by_status)).all()}
                notice = await tx.get(Notice, notice_id)
                assert notice is not None
                fanned_out = notice.fanout_done
            assert kill_at <= at_kill < subscribers, "the kill did not land in the middle of the send"
            assert left.get(DeliveryState.SENDING, 0) <= connections  # one in flight per connection at most

            process.start()
            await ready(rpc, process)
            restarted_after = time.monotonic() - t0
            await until(lambda: len(smtp.by_address) == subscribers, 180, process)
            all_after = time.monotonic() - t0
            final = await sent(rpc, notice_id, 60)
            sent_log = await rpc(SearchDeliveries(actor_id=ACTOR, notice_id=notice_id, state=DeliveryState.SENT))
            physical = Counter(message_id for message_id, _ in smtp.accepted)
            repeats = {m: n for m, n in physical.items() if n > 1}
            delivered = await rows(db, notice_id)
            by_message_id = {d.message_id: d for d in delivered}
            # The secretariat's log owns up to each repeat.
            for m in repeats:
                entry, = (await rpc(SearchDeliveries(actor_id=ACTOR, notice_id=notice_id,
                                                      address=by_message_id[m].to_addr))).items
                assert entry.message_id == m and entry.resent_after_interruption
    finally:
        process.stop()
        await db.dispose()

    print(f"\n[kill -9 fan-out] subscribers={subscribers} accepted before the kill={at_kill} "
          f"rows left by the kill={left} fan-out finished at the kill={fanned_out} "
          f"physical messages={len(smtp.accepted)} repeats (same Message-ID)={sum(n - 1 for n in repeats.values())} "
          f"rows marked resent={sum(d.resent for d in delivered)} seconds (kill, back up, everyone served)="
          f"{killed_after:.1f}, {restarted_after:.1f}, {all_after:.1f}")
    ids = once_each_allowing_repeats(smtp, addresses)
    assert sorted(ids.values()) == sorted(by_message_id)  # each the Message-ID of the subscriber's own row
    assert all(by_message_id[m].to_addr == a for a, m in ids.items())
    assert all(n == 2 for n in repeats.values()) and len(repeats) <= connections
    assert all(by_message_id[m].resent for m in repeats), "a repeat the log does not own up to"
    assert sum(d.resent for d in delivered) <= connections
    # Nothing else was tried twice: only what was in flight at the kill.
    assert all(d.attempts == (2 if d.resent else 1) for d in delivered)
    assert final.state == NoticeState.SENT and final.tally.sent == subscribers == final.recipients_planned
    assert sent_log.total == subscribers and len(delivered) == subscribers
    assert {d.status for d in delivered} == {DeliveryState.SENT}


# ---------------------------------------------------------------- 2. 421 to everything for a while
async def test_a_server_that_answers_421_for_a_while_gets_every_message_once_afterwards(
        start, smtp: SmtpServer) -> None:
    addresses = [f"lecteur{i:02d}@{DOMAINS[i % 3]}" for i in range(45)]
    smtp.refuse_all = "421 4.3.2 Service temporairement indisponible, réessayez plus tard"
    async with start(mail_retry_base=1, mail_retry_max=4, mail_domain_slow_for=1) as service:
        await seed(service.db, addresses)
        rpc = RpcClient(service.broker)
        opened = time.monotonic()
        notice_id = await announce(rpc, "Annonce pendant une panne du serveur")

        async def all_deferred_with_a_reason() -> bool:
            ds = await rows(service.db, notice_id)
            waiting = [d for d in ds if d.status != DeliveryState.SENDING]
            return (len(ds) == len(addresses) and len(waiting) >= len(addresses) - service.settings.mail_connections
                    and all(d.status == DeliveryState.DEFERRED and "421" in (d.last_error or "")
                            and d.next_attempt_at > d.created_at for d in waiting))
        await eventually(all_deferred_with_a_reason, 10)
        log = await rpc(SearchDeliveries(actor_id=ACTOR, notice_id=notice_id, state=DeliveryState.DEFERRED,
                                         limit=500))
        assert log.total >= len(addresses) - service.settings.mail_connections
        assert all("421" in (e.smtp_reply or "") and e.next_attempt_at is not None for e in log.items)

        async def each_domain_tried_again() -> bool:  # the outage lasts until each domain was retried (and refused)
            return {d.domain for d in await rows(service.db, notice_id) if d.attempts >= 2} == set(DOMAINS[:3])
        await eventually(each_domain_tried_again, 60)
        window = time.monotonic() - opened
        assert smtp.accepted == []  # nothing got through the window
        in_window = await rows(service.db, notice_id)
        tries_in_window = sum(d.attempts for d in in_window)
        retried_in_window = {d.domain for d in in_window if d.attempts >= 2}
        smtp.refuse_all = ""

        final = await sent(rpc, notice_id, 60)
        ds = await rows(service.db, notice_id)
    once_each(smtp, addresses)
    print(f"\n[421 window] messages={len(addresses)} window={window:.1f}s attempts during the window="
          f"{tries_in_window} attempts in all={sum(d.attempts for d in ds)}")
    assert final.tally.sent == len(addresses) and final.tally.failed == 0
    assert {d.status for d in ds} == {DeliveryState.SENT} and tries_in_window > 0
    assert retried_in_window == set(DOMAINS[:3])
    assert {m for m, _ in smtp.accepted} == {d.message_id for d in ds}


# ---------------------------------------------------------------- 3. 550 for some addresses
async def test_a_550_is_recorded_never_retried_and_the_address_is_suspended_after_repeated_refusals(
        start, smtp: SmtpServer) -> None:
    addresses = [f"membre{i:02d}@{DOMAINS[i % 4]}" for i in range(24)]
    refused = addresses[::8]  # 3 addresses
    smtp.refuse = {a: "550 5.1.1 Utilisateur inconnu" for a in refused}
    fine = [a for a in addresses if a not in refused]
    async with start(mail_retry_base=1, mail_hard_failure_limit=3) as service:
        limit = service.settings.mail_hard_failure_limit
        await seed(service.db, addresses)
        rpc = RpcClient(service.broker)
        for n in range(1, limit + 1):
            notice_id = await announce(rpc, f"Annonce n° {n}")
            final = await sent(rpc, notice_id, 30)
            ds = {d.to_addr: d for d in await rows(service.db, notice_id)}
            assert final.tally.sent == len(fine) and final.tally.failed == len(refused)
            for a in refused:
                assert ds[a].status == DeliveryState.FAILED and ds[a].attempts == 1
                assert (ds[a].last_error or "").startswith("550") and "Utilisateur inconnu" in (ds[a].last_error or "")
                assert smtp.rcpt_attempts[a] == n  # one attempt per notice, never a retry
            assert all(ds[a].status == DeliveryState.SENT for a in fine)
            async with service.db.read() as tx:
                statuses = {s.email: s.status for s in (await tx.exec(select(Subscriber))).all()}
            expected = SubscriptionStatus.SUSPENDED if n == limit else SubscriptionStatus.CONFIRMED
            assert {statuses[a] for a in refused} == {expected}
            assert {statuses[a] for a in fine} == {SubscriptionStatus.CONFIRMED}
        # Suspended: the next notice is not even tried on them.
        after = await sent(rpc, await announce(rpc, "Annonce après la suspension"), 30)
        assert after.recipients_planned == after.tally.sent == len(fine)
        assert all(smtp.rcpt_attempts[a] == limit for a in refused)
    by_address = smtp.message_ids_by_address()
    assert sorted(by_address) == sorted(fine)
    assert all(len(ids) == limit + 1 and set(ids.values()) == {1} for ids in by_address.values())
    print(f"\n[550] refused addresses={len(refused)} attempts each={[smtp.rcpt_attempts[a] for a in refused]} "
          f"notices={limit + 1} delivered to the others={len(smtp.accepted)}")


# ---------------------------------------------------------------- 4. one stalled domain
async def test_a_domain_that_stalls_does_not_hold_up_the_others(start, smtp: SmtpServer) -> None:
    stalled = "lent.example"
    others = [f"citoyen{i:03d}@{DOMAINS[i % 4]}" for i in range(120)]
    # The stalled domain's subscribers come first in the queue (fan-out order is by subscriber id).
    slow = [f"patient{i:02d}@{stalled}" for i in range(20)]
    smtp.stall = {stalled: 600.0}  # longer than any send timeout: the client gives up first
    async with start(mail_send_timeout=2, mail_connections=6, mail_domain_connections=2, mail_retry_base=1,
                     mail_retry_max=4, mail_domain_slow_for=2, fanout_batch=1000) as service:
        await seed(service.db, slow, id_prefix="0")
        await seed(service.db, others, id_prefix="1")
        rpc = RpcClient(service.broker)
        notice_id = await announce(rpc, "Annonce à un domaine qui ne répond plus")

        others_done = await eventually(lambda: len(smtp.accepted) >= len(others) and smtp.message_ids_by_address(),
                                       60)
        ds = await rows(service.db, notice_id)
        stalled_rows = [d for d in ds if d.domain == stalled]
        # Ordering, not timing: every other domain's message left while the stalled domain's still wait.
        assert sorted(others_done) == sorted(others)
        assert len(stalled_rows) == len(slow)
        assert all(d.status in (DeliveryState.QUEUED, DeliveryState.DEFERRED, DeliveryState.SENDING)
                   for d in stalled_rows)
        tried = [d for d in stalled_rows if d.attempts]
        assert tried, "the stalled domain was never tried"

        async def deferred_with_a_reason() -> list[Delivery]:
            ds = [d for d in await rows(service.db, notice_id) if d.domain == stalled]
            return ds if all(d.status == DeliveryState.DEFERRED for d in ds) else []
        waiting = await eventually(deferred_with_a_reason, 30)
        reasons = Counter((d.last_error or "").split(" (")[0] for d in waiting)
        assert all("pas de réponse du serveur en 2 s" in (d.last_error or "")
                   or f"domaine {stalled} ralenti" in (d.last_error or "") for d in waiting), reasons
        assert any(d.attempts for d in waiting)
        peak = smtp.stalled_peak

        smtp.stall = {}  # the domain recovers
        final = await sent(rpc, notice_id, 60)
        ds = await rows(service.db, notice_id)
    once_each(smtp, others + slow)
    print(f"\n[stalled domain] others={len(others)} stalled={len(slow)} stalled tries before the others were "
          f"done={sum(d.attempts for d in tried)} most connections waiting on it at once={peak} "
          f"reasons={dict(reasons)} attempts in all for it={sum(d.attempts for d in ds if d.domain == stalled)}")
    assert peak <= service.settings.mail_domain_connections  # the others always had connections left
    assert final.tally.sent == len(others) + len(slow) and {d.status for d in ds} == {DeliveryState.SENT}


# ---------------------------------------------------------------- 5. work queued while one connection is stuck
async def test_what_is_queued_while_a_connection_is_stuck_goes_out_over_the_others(start, smtp: SmtpServer) -> None:
    """A drain whose connections found nothing keeps them while one is still sending: a notice queued while
    that one waits on a slow server is sent by the others at once, not after it comes back."""
    stalled = "lent.example"
    smtp.stall = {stalled: 20.0}  # shorter than the send timeout: the exchange ends well, but late
    others = [f"citoyen{i:03d}@{DOMAINS[i % 4]}" for i in range(40)]
    async with start(mail_send_timeout=30, mail_connections=6, mail_domain_connections=2) as service:
        rpc = RpcClient(service.broker)
        await seed(service.db, [f"patient@{stalled}"], id_prefix="0")
        await announce(rpc, "Première annonce")
        await eventually(lambda: smtp.stalled_now == 1, 20)  # one connection stuck, the five others idle

        await seed(service.db, others, id_prefix="1")
        await announce(rpc, "Deuxième annonce")
        await eventually(lambda: len(smtp.accepted) >= len(others), 15)
        # Ordering, not timing: the others' messages all left while the first exchange was still stuck.
        assert smtp.stalled_now >= 1
        assert sorted(a for _, recipients in smtp.accepted for a in recipients) == sorted(others)
