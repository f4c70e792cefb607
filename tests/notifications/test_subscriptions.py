"""Public subscriptions through the notifications service (real broker, real database, real SMTP):
double opt-in, the same answer for a known address, signed links that cannot be forged, reused or kept
past their time, notices of the public facts with one-click unsubscribe (RFC 8058), headers no title can
break, members' preferences, and the secretariat's announcements with pause, resume and the log."""
from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from urllib.parse import parse_qs, urlparse

import pytest
from pydantic import ValidationError
from sqlmodel import select

from services.notifications import member_notices, notices, participation, session_notices
from services.notifications.models import Delivery, Subscriber, SubscriberTopic
from shared.contracts.common import ErrorCode
from shared.contracts.forum import RsvpConfirmed, SessionScheduled, Theme
from shared.contracts.minutes import Adoption, AdoptionKind, MinutesPublished
from shared.contracts.notifications import (
    AnnouncementAction, ConfirmSubscription, ControlAnnouncement, DeliveryState, GetAnnouncement, GetMemberPreferences,
    GetSubscription, MemberNoticeKind, NoticeState, SaveAnnouncement, SearchDeliveries, SendAnnouncementTest,
    SetMemberPreferences, Subscribe, SubscriptionStatus, Unsubscribe, UpdateSubscription,
)
from shared.contracts.registry import Role, RoleGranted, SignInRequested
from shared.rpc import RpcClient, RpcError
from tests.notifications.harness import SmtpServer, eventually, handle
from tests.notifications.test_session_notices import member, session

pytestmark = pytest.mark.integration


def link(msg: EmailMessage, path: str) -> str:
    """The token of the first link to `path` in the message's text part."""
    text = msg.get_body(("plain",)).get_content()
    url = re.search(rf"https://forum\.example\.org{re.escape(path)}\?token=[^\s>]+", text)
    assert url, f"no link to {path} in:\n{text}"
    return parse_qs(urlparse(url.group(0)).query)["token"][0]


async def subscribe(rpc: RpcClient, smtp: SmtpServer, email: str, *topics: str) -> str:
    """Subscribe and confirm as a person would: returns the manage token from the confirmation."""
    before = len(smtp.to(email))
    await rpc(Subscribe(email=email, topics=list(topics)))
    msgs = await eventually(lambda: len(smtp.to(email)) > before and smtp.to(email))
    view = await rpc(ConfirmSubscription(token=link(msgs[-1], "/abonnements/confirmer")))
    assert view.status == SubscriptionStatus.CONFIRMED
    return view.manage_token


async def test_double_opt_in_and_the_same_answer_for_a_known_address(start, smtp: SmtpServer) -> None:
    async with start() as service:
        rpc = RpcClient(service.broker)
        first = await rpc(Subscribe(email="Lea@Exemple.FR", topics=["minutes", "theme:health"]))
        [confirm] = await eventually(lambda: smtp.to("lea@exemple.fr"))
        assert confirm["List-Unsubscribe"] is None  # not subscribed yet: nothing to leave
        text = confirm.get_body(("plain",)).get_content()
        assert "Comptes rendus" in text and "Groupe de travail : Santé" in text
        # Nothing is sent before the link is used: a notice now does not reach her.
        await _publish_minutes(service)
        await asyncio.sleep(1.5)
        assert len(smtp.to("lea@exemple.fr")) == 1

        # Asking again sends a new link; only the latest works.
        again = await rpc(Subscribe(email="lea@exemple.fr", topics=["minutes"]))
        assert again == first
        second = (await eventually(lambda: len(smtp.to("lea@exemple.fr")) == 2 and smtp.to("lea@exemple.fr")))[1]
        with pytest.raises(RpcError) as stale:
            await rpc(ConfirmSubscription(token=link(confirm, "/abonnements/confirmer")))
        assert stale.value.code == ErrorCode.CONFLICT
        token = link(second, "/abonnements/confirmer")
        view = await rpc(ConfirmSubscription(token=token))
        assert view.status == SubscriptionStatus.CONFIRMED and view.topics == ["minutes"]
        assert (await rpc(ConfirmSubscription(token=token))).status == SubscriptionStatus.CONFIRMED  # reused: same

        # A known, confirmed address: same answer; its owner is told, nothing changes.
        assert await rpc(Subscribe(email="lea@exemple.fr", topics=["sessions"])) == first
        known = (await eventually(lambda: len(smtp.to("lea@exemple.fr")) == 3 and smtp.to("lea@exemple.fr")))[2]
        assert "déjà abonnée" in known.get_body(("plain",)).get_content()
        assert (await rpc(GetSubscription(token=view.manage_token))).topics == ["minutes"]


async def test_bad_addresses_unknown_topics_and_forged_or_expired_links_are_refused(start, smtp: SmtpServer) -> None:
    async with start(subscription_confirm_ttl=1) as service:
        rpc = RpcClient(service.broker)
        for email in ["pas-une-adresse", "a@b", "x@exemple..fr", "é@@exemple.fr"]:
            with pytest.raises(RpcError) as bad:
                await rpc(Subscribe(email=email, topics=["minutes"]))
            assert bad.value.code == ErrorCode.INVALID and bad.value.field == "email"
        with pytest.raises(ValidationError):  # refused at the edge (the web front's form)...
            Subscribe(email="ok@exemple.fr", topics=["meteo"])
        with pytest.raises(RpcError) as topic:  # ...and by the service if it came on the wire anyway
            await rpc(Subscribe.model_construct(email="ok@exemple.fr", topics=["meteo"], client=""))
        assert topic.value.code == ErrorCode.INVALID and "n'existe pas" in str(topic.value)
        for forged in ["x" * 40, "eyJzIjoiMSJ9.forged.signature"]:
            with pytest.raises(RpcError) as err:
                await rpc(Unsubscribe(token=forged, one_click=True))
            assert err.value.code == ErrorCode.INVALID
        await rpc(Subscribe(email="lent@exemple.fr", topics=["minutes"]))
        [confirm] = await eventually(lambda: smtp.to("lent@exemple.fr"))
        await asyncio.sleep(2.1)  # the confirmation link lives 1 s here
        with pytest.raises(RpcError) as late:
            await rpc(ConfirmSubscription(token=link(confirm, "/abonnements/confirmer")))
        assert late.value.code == ErrorCode.EXPIRED
        # A confirmation token is not a manage token, nor the other way round.
        with pytest.raises(RpcError):
            await rpc(GetSubscription(token=link(confirm, "/abonnements/confirmer")))
    assert len(smtp.received) == 1


async def test_flooding_one_address_mails_it_three_times_a_day_at_most(start, smtp: SmtpServer) -> None:
    async with start() as service:
        rpc = RpcClient(service.broker)
        answers = {(await rpc(Subscribe(email="cible@exemple.fr", topics=["minutes"], client="203.0.113.9"))).message
                   for _ in range(6)}
        assert len(answers) == 1
        await eventually(lambda: len(smtp.to("cible@exemple.fr")) == 3)
        await asyncio.sleep(1.5)
        assert len(smtp.to("cible@exemple.fr")) == 3


async def _publish_minutes(service, title: str = "Plénière de rentrée", theme: str | None = None) -> str:  # noqa: ANN001
    s = session(datetime.now(UTC) - timedelta(days=3)).model_copy(  # model_copy does not validate: the enum itself
        update={"title": title, "theme": Theme(theme) if theme else None})
    await handle(service, session_notices.on_session_scheduled, SessionScheduled(session=s))
    minutes_id = str(uuid.uuid4())
    await handle(service, notices.on_minutes_published, MinutesPublished(
        minutes_id=minutes_id, session_id=s.session_id, version=1, sha256="ab" * 32, published_at=datetime.now(UTC),
        adoption=Adoption(kind=AdoptionKind.NONE)))
    return minutes_id


async def test_a_notice_reaches_each_subscriber_once_with_one_click_unsubscribe(start, smtp: SmtpServer) -> None:
    async with start() as service:
        rpc = RpcClient(service.broker)
        await subscribe(rpc, smtp, "ana@exemple.fr", "minutes")
        await subscribe(rpc, smtp, "bo@exemple.fr", "minutes", "theme:health")  # two topics, one e-mail
        await subscribe(rpc, smtp, "cy@exemple.fr", "decisions")                 # another topic: nothing
        minutes_id = await _publish_minutes(service, theme="health")
        [notice] = await eventually(lambda: [m for m in smtp.to("ana@exemple.fr") if "Compte rendu" in m["Subject"]])
        await eventually(lambda: [m for m in smtp.to("bo@exemple.fr") if "Compte rendu" in m["Subject"]])
        await asyncio.sleep(1)
        assert len([m for m in smtp.to("bo@exemple.fr") if "Compte rendu" in m["Subject"]]) == 1
        assert not [m for m in smtp.to("cy@exemple.fr") if "Compte rendu" in m["Subject"]]

        assert notice["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert notice["List-Id"].endswith("<minutes.forum-ouvert.local>")
        unsubscribe_url = str(notice["List-Unsubscribe"]).strip("<>")
        assert unsubscribe_url.startswith("https://forum.example.org/abonnements/desabonner?token=")
        text, html = notice.get_body(("plain",)).get_content(), notice.get_body(("html",)).get_content()
        assert f"https://forum.example.org/comptes-rendus/{minutes_id}" in text
        assert unsubscribe_url in text and "Me désabonner" in html and "Gérer mon abonnement" in html
        assert notice["Message-ID"].endswith("@forum-ouvert.local>") and notice["Date"]

        token = parse_qs(urlparse(unsubscribe_url).query)["token"][0]
        view = await rpc(Unsubscribe(token=token, one_click=True))
        assert view.status == SubscriptionStatus.UNSUBSCRIBED
        assert (await rpc(Unsubscribe(token=token, one_click=True))).status == SubscriptionStatus.UNSUBSCRIBED
        await _publish_minutes(service, title="Deuxième séance")
        await eventually(lambda: [m for m in smtp.to("bo@exemple.fr") if "Deuxième" in m["Subject"]])
        await asyncio.sleep(1)
        assert not [m for m in smtp.to("ana@exemple.fr") if "Deuxième" in m["Subject"]]

        # The manage link changes topics; an empty choice unsubscribes.
        bo = await rpc(GetSubscription(token=link(notice, "/abonnements/gerer")))
        assert bo.email == "ana@exemple.fr" and bo.status == SubscriptionStatus.UNSUBSCRIBED
        again = await rpc(UpdateSubscription(token=bo.manage_token, topics=["sessions"]))
        assert again.status == SubscriptionStatus.CONFIRMED and again.topics == ["sessions"]


async def test_a_title_with_line_breaks_emoji_or_rtl_breaks_no_header_and_no_batch(start, smtp: SmtpServer) -> None:
    async with start() as service:
        rpc = RpcClient(service.broker)
        for name in ["un", "deux", "trois"]:
            await subscribe(rpc, smtp, f"{name}@exemple.fr", "minutes")
        await _publish_minutes(service, title="Séance\r\nBcc: victime@exemple.fr\n🎉 \u202eעברית مرحبا")
        for name in ["un", "deux", "trois"]:
            [m] = await eventually(lambda n=name: [m for m in smtp.to(f"{n}@exemple.fr") if "Compte rendu" in m["Subject"]])
            subject = m["Subject"]
            assert "\n" not in subject and "\r" not in subject and "\u202e" not in subject
            assert "Bcc: victime@exemple.fr 🎉 עברית مرحبا" in subject
            assert m["Bcc"] is None
    assert not smtp.to("victime@exemple.fr")


async def test_members_choose_what_they_receive_but_never_lose_a_sign_in_link(start, smtp: SmtpServer) -> None:
    async with start() as service:
        rpc = RpcClient(service.broker)
        await member(service, "m-alice")
        prefs = await rpc(GetMemberPreferences(actor_id="m-alice"))
        assert all(prefs.enabled.values())
        prefs = await rpc(SetMemberPreferences(actor_id="m-alice", enabled={MemberNoticeKind.RSVP: False}))
        assert not prefs.enabled[MemberNoticeKind.RSVP] and prefs.enabled[MemberNoticeKind.REMINDERS]
        s = session(datetime.now(UTC) + timedelta(days=10))
        await handle(service, session_notices.on_session_scheduled, SessionScheduled(session=s))
        await handle(service, session_notices.on_rsvp_confirmed,
                     RsvpConfirmed(session_id=s.session_id, member_id="m-alice", seats_left=3))
        await handle(service, member_notices.on_sign_in_requested,
                     SignInRequested(member_id="m-alice", email="m-alice@example.org", full_name="Alice",
                                     token="tok", expires_at=datetime.now(UTC) + timedelta(minutes=15)))
        [signin] = await eventually(lambda: smtp.to("m-alice@example.org"))
        assert "connexion" in signin["Subject"]
        async with service.db.read() as tx:
            rows = (await tx.exec(select(Delivery).where(Delivery.member_id == "m-alice"))).all()
        suppressed = [d for d in rows if d.kind == "rsvp_confirmed"]
        assert suppressed and suppressed[0].status == DeliveryState.SUPPRESSED
        assert "préférences" in (suppressed[0].last_error or "")


async def secretariat(service) -> str:  # noqa: ANN001
    await member(service, "m-sec")
    await handle(service, participation.on_role_granted, RoleGranted(member_id="m-sec", role=Role.SECRETARIAT))
    return "m-sec"


async def test_an_announcement_is_previewed_tested_sent_paused_resumed_and_accounted_for(
        start, smtp: SmtpServer) -> None:
    async with start(mail_connections=2, mail_rate=20) as service:
        rpc = RpcClient(service.broker)
        sec = await secretariat(service)
        with pytest.raises(RpcError) as forbidden:
            await rpc(SaveAnnouncement(actor_id="m-nobody", title="Bonjour", body="Texte"))
        assert forbidden.value.code == ErrorCode.FORBIDDEN
        async with service.db.transaction() as tx:  # 60 confirmed subscribers (seeded: not what is tested)
            for i in range(60):
                s = Subscriber(email=f"abonne{i}@exemple.fr", status=SubscriptionStatus.CONFIRMED)
                tx.add(s)
                await tx.flush()
                tx.add(SubscriberTopic(subscriber_id=s.id, topic="announcements"))
        a = await rpc(SaveAnnouncement(actor_id=sec, title="Forum du 12 janvier",
                                       body="Le **forum** se réunit.\n\n<script>alert(1)</script>"))
        assert a.state == NoticeState.DRAFT and "<strong>forum</strong>" in a.body_html and "<script" not in a.body_html
        await rpc(SendAnnouncementTest(actor_id=sec, announcement_id=a.announcement_id))
        [test] = await eventually(lambda: smtp.to("m-sec@example.org"))
        assert test["Subject"] == "[Test] Forum du 12 janvier"
        a = await rpc(ControlAnnouncement(actor_id=sec, announcement_id=a.announcement_id, action=AnnouncementAction.SEND))
        assert a.state == NoticeState.SENDING and a.recipients_planned == 60
        await eventually(lambda: len(smtp.received) >= 6)
        paused = await rpc(ControlAnnouncement(actor_id=sec, announcement_id=a.announcement_id,
                                               action=AnnouncementAction.PAUSE))
        assert paused.state == NoticeState.PAUSED
        await asyncio.sleep(1)
        count = len(smtp.received)
        await asyncio.sleep(1.5)
        assert len(smtp.received) == count  # nothing leaves while paused
        with pytest.raises(RpcError) as edit:
            await rpc(SaveAnnouncement(actor_id=sec, announcement_id=a.announcement_id, title="Autre", body="x"))
        assert edit.value.code == ErrorCode.CONFLICT
        await rpc(ControlAnnouncement(actor_id=sec, announcement_id=a.announcement_id, action=AnnouncementAction.RESUME))

        async def done() -> bool:
            v = await rpc(GetAnnouncement(actor_id=sec, announcement_id=a.announcement_id))
            return v.state == NoticeState.SENT and v.tally.sent == 60 and v
        view = await eventually(done, timeout=30)
        assert view.finished_at is not None
        log = await rpc(SearchDeliveries(actor_id=sec, notice_id=a.announcement_id, limit=500))
        assert log.total == 60 and {e.state for e in log.items} == {DeliveryState.SENT}
        assert all(e.smtp_reply and e.smtp_reply.startswith("250") for e in log.items)
        one = await rpc(SearchDeliveries(actor_id=sec, address="ABONNE17@"))
        assert [e.to for e in one.items] == ["abonne17@exemple.fr"]
    received = [m for m in smtp.received if m["Subject"] == "Forum du 12 janvier"]
    assert len(received) == 60 and len({m["Message-ID"] for m in received}) == 60
