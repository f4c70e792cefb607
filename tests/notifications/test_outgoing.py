"""The mail sender: queued e-mails leave once, over real SMTP; what was mid-send when the process died
is sent again with the same Message-ID, and the log says so; temporary refusals are retried later,
permanent ones are not."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from services.notifications import contacts, member_notices
from services.notifications.models import Delivery
from shared.contracts.notifications import DeliveryState as DeliveryStatus
from shared.contracts.notifications import DeliveryCounts, GetDeliveryCounts
from shared.contracts.registry import MemberErased, MemberRegistered, SignInRequested
from shared.db import Database
from shared.rpc import RpcClient
from tests.notifications.harness import SmtpServer, eventually, handle

pytestmark = pytest.mark.integration


async def deliveries(service, member_id: str) -> list[Delivery]:  # noqa: ANN001
    async with service.db.read() as tx:
        return list((await tx.exec(select(Delivery).where(Delivery.member_id == member_id))).all())


async def test_a_sign_in_link_is_mailed_once_with_its_expiry_in_french(start, smtp: SmtpServer) -> None:
    expires = datetime(2030, 7, 14, 12, 5, tzinfo=UTC)  # 14:05 in Paris (summer time)
    async with start() as service:
        event = await handle(service, member_notices.on_sign_in_requested,
                             SignInRequested(member_id="m-1", email="alice@example.org", full_name="Alice Martin",
                                             token="tok123", expires_at=expires))
        [mail] = await eventually(lambda: smtp.to("alice@example.org"))
        text = mail.get_body(("plain",)).get_content()
        assert "Bonjour Alice Martin" in text
        assert "https://forum.example.org/connexion/lien?token=tok123" in text
        assert "expire le 14/07/2030 à 14:05 (heure de Paris)" in text
        assert "expire le 14/07/2030 à 14:05 (heure de Paris)" in mail.get_body(("html",)).get_content()
        [d] = await eventually(lambda: _sent(service, "m-1"))
        assert d.event_id == str(event.event_id) and d.attempts == 1 and d.sent_at is not None
        assert d.text_body == d.html_body == ""  # the link is not kept once sent
        counts = await RpcClient(service.broker)(GetDeliveryCounts())
        assert counts == DeliveryCounts(by_status={"sent": 1})
        health = await RpcClient(service.broker).health("notifications")
        assert health.status == "ok" and health.details["deliveries"] == {"sent": 1}
    assert len(smtp.received) == 1


async def _sent(service, member_id: str) -> list[Delivery]:  # noqa: ANN001
    ds = await deliveries(service, member_id)
    return ds if ds and all(d.status == DeliveryStatus.SENT for d in ds) else []


async def test_what_was_mid_send_at_a_crash_is_sent_again_with_the_same_message_id(
        start, smtp: SmtpServer, notifications_db: str) -> None:
    # As a killed process leaves them: one e-mail claimed (handed to SMTP, or not), one still waiting.
    db = Database(notifications_db)
    async with db.transaction() as tx:
        for member_id, status in [("m-claimed", DeliveryStatus.SENDING), ("m-waiting", DeliveryStatus.QUEUED)]:
            tx.add(Delivery(event_id=f"e-{member_id}", member_id=member_id, kind="approved",
                            to_addr=f"{member_id}@example.org", subject="Validée", text_body="t",
                            html_body="<p>h</p>", status=status, message_id=f"<{member_id}@forum.example>",
                            attempts=1 if status == DeliveryStatus.SENDING else 0))
    await db.dispose()
    async with start() as service:
        await eventually(lambda: smtp.to("m-waiting@example.org"))
        [mail] = await eventually(lambda: smtp.to("m-claimed@example.org"))
        assert mail["Message-ID"] == "<m-claimed@forum.example>"  # the receiving side can tell a repeat
        [claimed] = await eventually(lambda: _sent(service, "m-claimed"))
        assert claimed.resent and claimed.attempts == 2


async def test_temporary_refusals_are_retried_later_permanent_ones_are_not(start, smtp: SmtpServer) -> None:
    smtp.refuse = {"later@example.org": "451 4.3.0 Try again later", "never@example.org": "550 5.1.1 No such user"}
    async with start() as service:
        for member_id, address in [("m-later", "later@example.org"), ("m-never", "never@example.org"),
                                   ("m-fine", "fine@example.org")]:
            await handle(service, contacts.on_registered,
                         MemberRegistered(member_id=member_id, public_id=member_id, full_name="X", email=address,
                                          organisation="", college="citizen", role="member"))
            await handle(service, member_notices.on_sign_in_requested,
                         SignInRequested(member_id=member_id, email=address, full_name="X", token="t",
                                         expires_at=datetime.now(UTC) + timedelta(minutes=15)))
        await eventually(lambda: smtp.to("fine@example.org"))

        async def settled() -> bool:
            later, never = (await deliveries(service, "m-later"))[0], (await deliveries(service, "m-never"))[0]
            return later.status == DeliveryStatus.DEFERRED and later.attempts == 1 and never.status == DeliveryStatus.FAILED

        await eventually(settled)
        [later] = await deliveries(service, "m-later")
        assert later.next_attempt_at > datetime.now(UTC) + timedelta(seconds=2)  # first retry after 5 s ± 25 %
        assert "451" in (later.last_error or "") and later.text_body  # kept for the retry
        [never] = await deliveries(service, "m-never")
        assert never.attempts == 1 and "550" in (never.last_error or "")

        # Erasure: the e-mail waiting for its retry is cancelled and nothing about it is kept.
        await handle(service, contacts.on_erased, MemberErased(member_id="m-later", public_id="m-later"))
        [later] = await deliveries(service, "m-later")
        assert later.status == DeliveryStatus.CANCELLED and later.to_addr == "" and later.text_body == ""
    assert smtp.to("later@example.org") == [] and smtp.to("never@example.org") == []
