"""The contact form's command through the notifications service (real broker, real database, real SMTP):
the message is stored and mailed to the secretariat with Reply-To the sender, a copy goes to the sender,
a repeated request (same one-time token) sends nothing twice, each address is limited per day, and old
messages are deleted with what the delivery log kept of them."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlmodel import col, select, update

from services.notifications import contact_form, contacts, outgoing
from services.notifications.models import ContactMessage, Delivery
from shared.clock import utcnow
from shared.contracts.common import ErrorCode
from shared.contracts.notifications import DeliveryState, SendContactMessage
from shared.contracts.registry import MemberErased
from shared.rpc import RpcClient, RpcError
from tests.notifications.harness import SmtpServer, eventually, handle
from tests.notifications.test_session_notices import member

pytestmark = pytest.mark.integration
SECRETARIAT = "secretariat@forum.example.org"


def contact(email: str, title: str = "Question sur la prochaine plénière") -> SendContactMessage:
    return SendContactMessage(name="Léa Martin", email=email, title=title, client="192.0.2.7",
                              message="Bonjour,\nLa séance du 14 juillet sera-t-elle retransmise en ligne ?\nMerci.")


async def stored(service, email: str) -> list[ContactMessage]:  # noqa: ANN001 - the running Service
    async with service.db.read() as tx:
        return list((await tx.exec(select(ContactMessage).where(ContactMessage.email == email))).all())


async def test_a_message_reaches_the_secretariat_and_its_sender_gets_a_copy(start, smtp: SmtpServer) -> None:
    async with start(secretariat_email=SECRETARIAT) as service:
        rpc = RpcClient(service.broker)
        accepted = await rpc(contact("Lea.Martin@Exemple.FR"), idempotency_key=f"k-{uuid.uuid4()}")
        assert accepted.email == "lea.martin@exemple.fr" and "lea.martin@exemple.fr" in accepted.message

        [to_secretariat] = await eventually(lambda: smtp.to(SECRETARIAT))
        assert to_secretariat["Reply-To"] == "lea.martin@exemple.fr"  # answering reaches the sender
        assert to_secretariat["Subject"] == "[Contact] Question sur la prochaine plénière"
        text = to_secretariat.get_body(("plain",)).get_content()
        assert "Léa Martin <lea.martin@exemple.fr>" in text and "retransmise en ligne" in text
        html = to_secretariat.get_body(("html",)).get_content()
        assert "merci de ne pas y répondre" not in html  # this one is meant to be answered

        [copy] = await eventually(lambda: smtp.to("lea.martin@exemple.fr"))
        assert copy["Reply-To"] is None
        assert copy["Subject"] == "Votre message au forum ouvert : Question sur la prochaine plénière"
        copy_text = copy.get_body(("plain",)).get_content()
        assert "retransmise en ligne" in copy_text and "Si vous n'avez pas écrit ce message" in copy_text

        [row] = await stored(service, "lea.martin@exemple.fr")
        assert row.id == accepted.contact_id and row.client == "192.0.2.7" and row.title.startswith("Question")


async def test_the_same_form_sent_twice_sends_once(start, smtp: SmtpServer) -> None:
    async with start(secretariat_email=SECRETARIAT) as service:
        rpc = RpcClient(service.broker)
        key = f"k-{uuid.uuid4()}"
        first = await rpc(contact("double@exemple.fr"), idempotency_key=key)
        again = await rpc(contact("double@exemple.fr"), idempotency_key=key)
        assert again == first
        await eventually(lambda: smtp.to("double@exemple.fr"))
        assert len(await stored(service, "double@exemple.fr")) == 1
        async with service.db.read() as tx:
            assert len((await tx.exec(select(Delivery).where(Delivery.event_id == first.contact_id))).all()) == 2


async def test_each_address_is_limited_per_day(start, smtp: SmtpServer) -> None:
    async with start(secretariat_email=SECRETARIAT, contact_limit=2) as service:
        rpc = RpcClient(service.broker)
        for n in range(2):
            await rpc(contact("bavard@exemple.fr", f"Message numéro {n + 1}"))
        with pytest.raises(RpcError) as refused:
            await rpc(contact("Bavard@Exemple.fr", "Message numéro 3"))  # the same address, however typed
        assert refused.value.code == ErrorCode.CONFLICT and refused.value.field == "email"
        assert "2 messages aujourd'hui" in refused.value.error.message
        assert len(await stored(service, "bavard@exemple.fr")) == 2
        await rpc(contact("autre@exemple.fr"))  # another address is not held back

        # A day later the address may write again.
        async with service.db.transaction() as tx:
            await tx.exec(update(ContactMessage).where(col(ContactMessage.email) == "bavard@exemple.fr")
                          .values(created_at=utcnow() - timedelta(days=1, minutes=1)))
        await rpc(contact("bavard@exemple.fr", "Message du lendemain"))


async def test_an_invalid_address_is_refused_on_its_field(start) -> None:
    async with start(secretariat_email=SECRETARIAT) as service:
        with pytest.raises(RpcError) as refused:
            await RpcClient(service.broker)(contact("pas-une-adresse@"))
        assert refused.value.code == ErrorCode.INVALID and refused.value.field == "email"


async def sent(service, smtp: SmtpServer, *addresses: str) -> list:  # noqa: ANN001
    """A contact message from each address, once its copy has reached the sender."""
    rpc = RpcClient(service.broker)
    replies = [await rpc(contact(a)) for a in addresses]
    await eventually(lambda: all(smtp.to(a) for a in addresses))
    return replies


async def log_of(service, contact_id: str) -> list[Delivery]:  # noqa: ANN001
    """The delivery log's entries of one contact message (the secretariat's and the sender's copy)."""
    async with service.db.read() as tx:
        return list((await tx.exec(select(Delivery).where(Delivery.event_id == contact_id))).all())


async def test_old_messages_are_deleted_with_what_the_log_kept(start, smtp: SmtpServer) -> None:
    async with start(secretariat_email=SECRETARIAT, contact_retention_days=30) as service:
        old, recent = await sent(service, smtp, "ancien@exemple.fr", "recent@exemple.fr")
        async with service.db.transaction() as tx:
            await tx.exec(update(ContactMessage).where(col(ContactMessage.id) == old.contact_id)
                          .values(created_at=utcnow() - timedelta(days=31)))

        assert await contact_form.forget_old(service) == 1
        assert await stored(service, "ancien@exemple.fr") == []
        assert len(await stored(service, "recent@exemple.fr")) == 1
        logged, kept = await log_of(service, old.contact_id), await log_of(service, recent.contact_id)
        assert len(logged) == 2 and all(d.to_addr == "" and d.reply_to_addr is None and d.subject == "(effacé)"
                                         for d in logged)
        assert {d.to_addr for d in kept} == {SECRETARIAT, "recent@exemple.fr"}


async def test_an_erased_member_takes_their_messages_with_them(start, smtp: SmtpServer) -> None:
    async with start(secretariat_email=SECRETARIAT) as service:
        email = await member(service, "m-contact")
        mine = await RpcClient(service.broker)(contact(email.upper()))  # typed in capitals: the same address
        other = await RpcClient(service.broker)(contact("quelqu-un@exemple.fr"))
        await eventually(lambda: smtp.to(email))
        await handle(service, contacts.on_erased, MemberErased(member_id="m-contact", public_id="m-contact"))
        assert await stored(service, email) == [] and len(await stored(service, "quelqu-un@exemple.fr")) == 1
        logged, kept = await log_of(service, mine.contact_id), await log_of(service, other.contact_id)
        assert len(logged) == 2 and {d.to_addr for d in logged} == {""}
        assert {d.reply_to_addr for d in kept} == {"quelqu-un@exemple.fr", None}


async def test_the_delivery_log_forgets_addresses_after_its_retention(start, smtp: SmtpServer) -> None:
    """Entries older than `delivery_log_retention_days` keep what happened, not to whom nor about what; an
    entry still waiting to leave is left alone (and so are the recent ones)."""
    async with start(secretariat_email=SECRETARIAT, delivery_log_retention_days=90) as service:
        old, recent = await sent(service, smtp, "vieux@exemple.fr", "neuf@exemple.fr")
        async with service.db.transaction() as tx:
            await tx.exec(update(Delivery).where(col(Delivery.event_id) == old.contact_id)
                          .values(created_at=utcnow() - timedelta(days=91)))
            waiting = Delivery(event_id=str(uuid.uuid4()), member_id="m-waiting", kind="contact_copy",
                               to_addr="attend@exemple.fr", subject="En attente", status=DeliveryState.DEFERRED,
                               next_attempt_at=utcnow() + timedelta(days=1), created_at=utcnow() - timedelta(days=91))
            tx.add(waiting)

        assert await outgoing.forget_old_addresses(service) == 2
        assert await outgoing.forget_old_addresses(service) == 0  # done once
        forgotten, kept = await log_of(service, old.contact_id), await log_of(service, recent.contact_id)
        async with service.db.read() as tx:
            still = await tx.get(Delivery, waiting.id)
        assert len(forgotten) == 2 and all(d.to_addr == "" and d.subject == "(effacé)" and d.status == "sent"
                                           and d.text_body == "" for d in forgotten)
        assert {d.to_addr for d in kept} == {SECRETARIAT, "neuf@exemple.fr"}
        assert still is not None and still.to_addr == "attend@exemple.fr"
