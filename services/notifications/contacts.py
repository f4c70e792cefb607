"""Who can be mailed: the address and name of each member, learnt from registry events and forgotten
when the member is erased."""
from __future__ import annotations

import functools

from sqlmodel import col, delete, update

from services.notifications import contact_form
from services.notifications.models import Delivery, MemberPreference, NoticeAttendee, NoticeSeat, Recipient
from services.notifications.outgoing import suppress_unsent
from shared import preload
from shared.clock import utcnow
from shared.contracts.envelope import Envelope
from shared.contracts.notifications import DeliveryState
from shared.contracts.registry import MemberErased, MemberRegistered, ProfileUpdated, Role
from shared.errors import RetryLater
from shared.outbox import UnitOfWork


async def on_registered(event: Envelope[MemberRegistered], uow: UnitOfWork) -> None:
    """Remember how to reach a new member."""
    d = event.data
    existing = await preload.get(uow, Recipient, d.member_id)
    if existing is None:
        # `forum-ouvert create-secretariat` registers its accounts with the role (no RoleGranted follows).
        preload.add(uow, Recipient(member_id=d.member_id, email=d.email, full_name=d.full_name,
                             secretariat=d.role == Role.SECRETARIAT))


# The batch's members' addresses, in one query.
preload_recipients = functools.partial(preload.member_rows, model=Recipient)


async def on_profile_updated(event: Envelope[ProfileUpdated], uow: UnitOfWork) -> None:
    """Keep the member's name current in greetings."""
    r = await preload.get(uow, Recipient, event.data.member_id)
    if r is None:
        raise RetryLater("profile update before registration")
    r.full_name, r.updated_at = event.data.full_name, utcnow()
    uow.tx.add(r)


async def on_erased(event: Envelope[MemberErased], uow: UnitOfWork) -> None:
    """Forget the member's address and the contact messages written from it, cancel the e-mails not sent
    yet, and redact every e-mail kept for them."""
    r = await uow.tx.get(Recipient, event.data.member_id)
    if r is not None:
        await contact_form.forget_address(uow, r.email)
        await uow.tx.delete(r)
    member = event.data.member_id
    await suppress_unsent(uow, member, DeliveryState.CANCELLED, "membre effacé avant l'envoi")
    await uow.tx.exec(update(Delivery).where(col(Delivery.member_id) == member)  # type: ignore[call-overload]
                      .values(to_addr="", domain="", text_body="", html_body="", ics=None, subject="(effacé)"))
    for table in (MemberPreference, NoticeAttendee, NoticeSeat):
        await uow.tx.exec(delete(table).where(col(table.member_id) == member))  # type: ignore[call-overload]
