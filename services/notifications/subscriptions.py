"""Public subscriptions, no account needed: double opt-in (nothing is sent before the confirmation
link is used; unconfirmed requests are forgotten), the same answer whether an address was known or
not, signed manage and unsubscribe links, and a limit on confirmation e-mails per address."""
from __future__ import annotations

import uuid
from datetime import timedelta

from email_validator import EmailNotValidError, validate_email
from sqlmodel import col, delete, select

from services.notifications import links
from services.notifications.links import Purpose
from services.notifications.models import Subscriber, SubscriberTopic
from services.notifications.outgoing import MAIL_SENDER, new_delivery, suppress_unsent
from services.notifications import mail
from shared.clock import paris_datetime, utcnow
from shared.contracts.notifications import (
    ConfirmSubscription, DeliveryState, GetSubscription, RequestManageLink, Subscribe, SubscribeAccepted,
    SubscriptionStatus, SubscriptionView, TOPICS, UpdateSubscription, Unsubscribe, topic_label,
)
from shared.errors import Conflict, Invalid, NotFound
from shared.logging import get_logger
from shared.outbox import UnitOfWork
from shared.service import HandlerContext, Service

log = get_logger(__name__)

ACCEPTED = ("Si cette adresse peut recevoir nos courriels, un message vient de lui être envoyé : ouvrez le lien "
            "qu'il contient pour confirmer votre abonnement. Rien ne vous sera envoyé d'autre avant cette "
            "confirmation. Pensez à regarder dans les indésirables.")
LINK_SENT = ("Si cette adresse est abonnée, un message vient de lui être envoyé avec un lien pour gérer son "
             "abonnement.")


def normalise(address: str) -> str:
    """The address as we store it (syntax only: no DNS lookup), or a clear error on the field. Lower
    case as a whole: one person typing « Lea@ » then « lea@ » is one subscriber."""
    try:
        return validate_email(address, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise Invalid(f"Cette adresse électronique n'est pas valide : {exc}", field="email") from exc


def _ordered(topics: list[str]) -> list[str]:
    return sorted(set(topics), key=TOPICS.index)


async def _topics(uow: UnitOfWork, subscriber_id: str) -> list[str]:
    rows = (await uow.tx.exec(select(SubscriberTopic.topic).where(SubscriberTopic.subscriber_id == subscriber_id))).all()
    return _ordered(list(rows))


async def _set_topics(uow: UnitOfWork, subscriber_id: str, topics: list[str]) -> None:
    await uow.tx.exec(delete(SubscriberTopic).where(col(SubscriberTopic.subscriber_id) == subscriber_id))  # type: ignore[call-overload]
    for topic in _ordered(topics):
        uow.tx.add(SubscriberTopic(subscriber_id=subscriber_id, topic=topic))


async def _view(uow: UnitOfWork, s: Subscriber) -> SubscriptionView:
    return SubscriptionView(email=s.email, status=SubscriptionStatus(s.status), topics=await _topics(uow, s.id),
                            confirmed_at=s.confirmed_at, manage_token=links.token(uow.settings, Purpose.MANAGE, s.id))


def _may_mail(uow: UnitOfWork, s: Subscriber) -> bool:
    """At most `subscription_confirm_limit` e-mails per address and day, whoever asks."""
    now = utcnow()
    if now - s.confirm_window_start > timedelta(days=1):
        s.confirm_window_start, s.confirm_requests = now, 0
    if s.confirm_requests >= uow.settings.subscription_confirm_limit:
        return False
    s.confirm_requests += 1
    return True


def _mail(uow: UnitOfWork, s: Subscriber, kind: str, **ctx: object) -> None:
    """A message about the subscription itself (not a notice): rendered now, sent first."""
    subject, text, html = mail.render(kind, **ctx)
    uow.tx.add(new_delivery(uow, event_id=str(uuid.uuid4()), member_id=s.id, kind=kind, to_addr=s.email,
                            subject=subject, text_body=text, html_body=html))
    uow.wake_after_commit(MAIL_SENDER)


async def subscribe(req: Subscribe, ctx: HandlerContext) -> SubscribeAccepted:
    """Ask for notices: mails a confirmation link (or, to a confirmed address, a link to manage it)."""
    address = normalise(req.email)
    async with ctx.unit_of_work() as uow:
        s = (await uow.tx.exec(select(Subscriber).where(Subscriber.email == address))).first()
        if s is None:
            s = Subscriber(email=address)
            uow.tx.add(s)
            await uow.tx.flush()
        if s.status == SubscriptionStatus.CONFIRMED:
            # Someone asks for an address already subscribed: its owner decides, from their own mailbox.
            if _may_mail(uow, s):
                _mail(uow, s, "subscription_known", topics=[topic_label(t) for t in _ordered(req.topics)],
                      manage=links.url(uow.settings, Purpose.MANAGE, s.id))
        else:
            s.status, s.requested_at, s.link_nonce = SubscriptionStatus.PENDING, utcnow(), uuid.uuid4().hex[:12]
            await _set_topics(uow, s.id, req.topics)
            if _may_mail(uow, s):
                expires = utcnow() + timedelta(seconds=uow.settings.subscription_confirm_ttl)
                _mail(uow, s, "subscription_confirm", topics=[topic_label(t) for t in _ordered(req.topics)],
                      link=links.url(uow.settings, Purpose.CONFIRM, s.id, s.link_nonce),
                      expires=paris_datetime(expires))
            else:
                log.info("subscription request over the per-address limit: no e-mail", subscriber=s.id,
                         client=req.client)
        uow.tx.add(s)
    return SubscribeAccepted(message=ACCEPTED)


async def _subscriber(uow: UnitOfWork, subscriber_id: str) -> Subscriber:
    s = await uow.tx.get(Subscriber, subscriber_id)
    if s is None:
        raise NotFound("Cet abonnement n'existe plus : l'adresse a été oubliée. Vous pouvez vous abonner à "
                       "nouveau.", field="token")
    return s


async def confirm(req: ConfirmSubscription, ctx: HandlerContext) -> SubscriptionView:
    """The confirmation link was used: notices start."""
    subscriber_id, _, nonce = links.read(ctx.settings, req.token, Purpose.CONFIRM)
    async with ctx.unit_of_work() as uow:
        s = await _subscriber(uow, subscriber_id)
        if nonce != s.link_nonce:
            raise Conflict("Ce lien de confirmation a été remplacé par un plus récent, ou l'abonnement a changé "
                           "depuis : utilisez le dernier lien reçu, ou abonnez-vous à nouveau.", field="token")
        if s.status == SubscriptionStatus.PENDING:
            s.status, s.confirmed_at, s.hard_failures = SubscriptionStatus.CONFIRMED, utcnow(), 0
            uow.tx.add(s)
        elif s.status != SubscriptionStatus.CONFIRMED:
            raise Conflict("Cet abonnement a été arrêté depuis : abonnez-vous à nouveau.", field="token")
        return await _view(uow, s)


async def get(req: GetSubscription, ctx: HandlerContext) -> SubscriptionView:
    """What a manage or unsubscribe link shows."""
    subscriber_id, _, _ = links.read(ctx.settings, req.token, Purpose.MANAGE, Purpose.UNSUBSCRIBE)
    async with ctx.unit_of_work() as uow:
        return await _view(uow, await _subscriber(uow, subscriber_id))


async def update(req: UpdateSubscription, ctx: HandlerContext) -> SubscriptionView:
    """New topics from the manage page (it was mailed to the address: its holder decides); none = stop."""
    subscriber_id, _, _ = links.read(ctx.settings, req.token, Purpose.MANAGE)
    async with ctx.unit_of_work() as uow:
        s = await _subscriber(uow, subscriber_id)
        if s.status == SubscriptionStatus.PENDING:
            raise Conflict("Confirmez d'abord votre abonnement avec le lien reçu par courriel.", field="token")
        await _set_topics(uow, s.id, req.topics)
        if not req.topics:
            await _stop(uow, s)
        elif s.status != SubscriptionStatus.CONFIRMED:
            s.status, s.confirmed_at, s.hard_failures = SubscriptionStatus.CONFIRMED, utcnow(), 0
        uow.tx.add(s)
        return await _view(uow, s)


async def _stop(uow: UnitOfWork, s: Subscriber) -> None:
    s.status, s.unsubscribed_at, s.link_nonce = SubscriptionStatus.UNSUBSCRIBED, utcnow(), uuid.uuid4().hex[:12]
    await suppress_unsent(uow, s.id, DeliveryState.CANCELLED, "désabonné avant l'envoi")


async def unsubscribe(req: Unsubscribe, ctx: HandlerContext) -> SubscriptionView:
    """Stop every notice at once (one-click, RFC 8058). Using the link again changes nothing."""
    subscriber_id, _, _ = links.read(ctx.settings, req.token, Purpose.UNSUBSCRIBE, Purpose.MANAGE)
    async with ctx.unit_of_work() as uow:
        s = await _subscriber(uow, subscriber_id)
        if s.status != SubscriptionStatus.UNSUBSCRIBED:
            await _stop(uow, s)
            uow.tx.add(s)
            log.info("unsubscribed", subscriber=s.id, one_click=req.one_click)
        return await _view(uow, s)


async def request_manage_link(req: RequestManageLink, ctx: HandlerContext) -> SubscribeAccepted:
    """« Send me a link to manage my subscription »: mailed only to a subscribed address; same answer."""
    address = normalise(req.email)
    async with ctx.unit_of_work() as uow:
        s = (await uow.tx.exec(select(Subscriber).where(Subscriber.email == address))).first()
        if s is not None and s.status in (SubscriptionStatus.CONFIRMED, SubscriptionStatus.SUSPENDED,
                                          SubscriptionStatus.UNSUBSCRIBED) and _may_mail(uow, s):
            _mail(uow, s, "manage_link", manage=links.url(uow.settings, Purpose.MANAGE, s.id),
                  topics=[topic_label(t) for t in await _topics(uow, s.id)])
            uow.tx.add(s)
    return SubscribeAccepted(message=LINK_SENT)


async def forget_unconfirmed(service: Service) -> int:
    """One step of the subscription-expiry job: requests never confirmed within the link's validity
    are forgotten (address and topics)."""
    cutoff = utcnow() - timedelta(seconds=service.settings.subscription_confirm_ttl)
    async with service.unit_of_work() as uow:
        ids = list((await uow.tx.exec(select(Subscriber.id).where(
            Subscriber.status == SubscriptionStatus.PENDING, col(Subscriber.requested_at) < cutoff,
            col(Subscriber.confirmed_at).is_(None)).limit(500))).all())
        if ids:
            await uow.tx.exec(delete(SubscriberTopic).where(col(SubscriberTopic.subscriber_id).in_(ids)))  # type: ignore[call-overload]
            await uow.tx.exec(delete(Subscriber).where(col(Subscriber.id).in_(ids)))  # type: ignore[call-overload]
    return len(ids)
