"""A member's copy of their data (« Mon espace » → « Télécharger mes données »), against the running forum
(every service a real process, real NATS, the real database).

The walk: every column of every service's tables that holds a member id, a member's public pseudonym or
a member's address — found by its name in the SQLModel metadata, and by its values in the databases — is
either exported (`EXPORTED`: where its rows show in the copy) or excused (`NOT_PERSONAL`, with the
reason). A new table with a member id column fails here until it is one or the other.

Then two people get a row in each such table through the real services: a member (registered, approved,
signed in, seated, waitlisted, checked in, voting, commenting on minutes in review, turning an e-mail
off, subscribing their address, receiving e-mails) and the secretariat (scheduling, checking in,
recording a decision and its follow-up, opening a vote, setting a rule, drafting, answering and
publishing minutes, writing an announcement, approving the member). Every one of their rows shows in
their copy — and the member's grades never do. Last, the download through the web front, and no file at
all when a service does not answer.
"""
from __future__ import annotations

import asyncio
import importlib
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import String, Table, Text, create_engine, func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session
from sqlmodel.main import default_registry

from forum_ouvert.launcher import Stack
from forumlib.majority_judgment import Grade
from shared.clock import utcnow
from shared.contracts.decisions import (
    CastBallot, FollowUpStatus, Method, OpenVote, Outcome, RecordDecision, Rule, SetRule, UpdateFollowUp,
)
from shared.contracts.forum import AnswerRsvp, CheckIn, ExportForumData, RsvpAnswer, SessionKind
from shared.contracts.minutes import (
    AdoptionKind, AnswerMinutesComment, CommentMinutes, ExportMinutesData, OpenMinutesDraft, OpenMinutesReview,
    PublishMinutes,
)
from shared.contracts.notifications import (
    ExportNotificationsData, MemberNoticeKind, SaveAnnouncement, SendContactMessage, SetMemberPreferences, Subscribe,
    TopicKind,
)
from shared.contracts.registry import ExportData, GetMember
from shared.db import sync_url
from shared.idempotency import CommandReply
from shared.rpc import RpcClient
from shared.settings import SERVICES
from tests.forum.harness import session_request
from tests.web.test_web_bad_input import h1, text
from tests.web.test_web_minutes import MinutesDb
from tests.web.test_web_sessions import Crowd, WebMember, crowd  # noqa: F401 - fixture

pytestmark = pytest.mark.integration
SECRETARIAT_EMAIL = "secretariat@tests.forum-ouvert.example"  # tests/conftest.py's `secretariat`


# ================================================================ which columns hold a member
# By name: ids of members (and of who did something: `*_by`), their public pseudonym, their address.
PERSONAL_NAME = re.compile(r"^(member|actor|author|voter|subscriber|user|owner|recipient|person)(_id)?$"
                           r"|_by$|^public_id$|email|_addr$")
# A table whose own id is the member's.
MEMBER_TABLES = {("registry", "member"): "id"}

# Whose rows a column holds: the person's member id, address, public pseudonym, or their address's
# subscriptions (by subscriber id).
ID, EMAIL, PUBLIC_ID, SUBSCRIBER = "id", "email", "public_id", "subscriber"
Extract = Callable[[dict[str, Any]], Iterable[tuple[Any, ...]]]


@dataclass(frozen=True)
class Exported:
    """The column's rows for a person (`who` they are keyed by) show in that service's part of their copy:
    each row's `keys` columns are among the tuples `extract` reads from the part."""

    who: str
    keys: tuple[str, ...]
    extract: Extract


def rows_of(section: str, *keys: str, where: Callable[[dict[str, Any]], bool] = lambda e: True) -> Extract:
    return lambda part: [tuple(e[k] for k in keys) for e in part[section] if where(e)]


def one(section: str, *keys: str) -> Extract:
    return lambda part: [tuple(part[section][k] for k in keys)] if part[section] else []


def each(section: str) -> Extract:
    """One empty tuple per entry: rows counted, not matched (the export shows no key of them)."""
    return lambda part: [() for _ in part[section]]


COMMANDS = Exported(ID, ("op",), rows_of("commands", "operation"))
EXPORTED: dict[tuple[str, str, str], Exported] = {
    # registry
    ("registry", "member", "id"): Exported(ID, ("id",), one("member", "id")),
    ("registry", "member", "email"): Exported(EMAIL, ("email",), one("member", "email")),
    ("registry", "member", "public_id"): Exported(PUBLIC_ID, ("public_id",), one("member", "public_id")),
    ("registry", "member", "decided_by"): Exported(ID, ("status",), rows_of("registrations_decided", "status")),
    ("registry", "email_token", "member_id"): Exported(ID, ("purpose",), rows_of("email_links", "purpose")),
    ("registry", "web_session", "member_id"): Exported(ID, (), each("signed_in_browsers")),
    ("registry", "command_reply", "actor"): COMMANDS,
    # forum
    ("forum", "forum_member", "member_id"): Exported(ID, ("standing",), one("member", "standing")),
    ("forum", "forum_member", "public_id"): Exported(PUBLIC_ID, ("public_id",), one("member", "public_id")),
    ("forum", "forum_session", "created_by"): Exported(ID, ("id",), rows_of("sessions_created", "session_id")),
    ("forum", "forum_rsvp", "member_id"): Exported(ID, ("session_id", "state"),
                                                   rows_of("rsvps", "session_id", "state")),
    ("forum", "forum_attendance", "member_id"): Exported(ID, ("session_id",), rows_of("attendance", "session_id")),
    ("forum", "forum_attendance", "recorded_by"): Exported(ID, ("session_id",),
                                                           rows_of("check_ins_recorded", "session_id")),
    ("forum", "forum_rule", "updated_by"): Exported(ID, ("kind",), rows_of("rules_set", "kind")),
    ("forum", "forum_decision", "recorded_by"): Exported(ID, ("id", "number"),
                                                         rows_of("decisions_recorded", "decision_id", "number")),
    ("forum", "forum_follow_up", "updated_by"): Exported(ID, ("decision_id", "seq"),
                                                         rows_of("follow_ups_written", "decision_id", "seq")),
    ("forum", "forum_vote", "created_by"): Exported(ID, ("id",), rows_of("votes_opened", "vote_id")),
    # The ballot shows as « your ballot is kept until the closing », never its grades.
    ("forum", "forum_ballot", "member_id"): Exported(ID, ("vote_id",), rows_of(
        "votes", "vote_id", where=lambda v: v["ballot_kept_until_closing"])),
    ("forum", "forum_voter", "member_id"): Exported(ID, ("vote_id",), rows_of("votes", "vote_id")),
    ("forum", "command_reply", "actor"): COMMANDS,
    # minutes
    ("minutes", "minutes_member", "member_id"): Exported(ID, ("role",), one("member", "role")),
    ("minutes", "minutes_attendance", "member_id"): Exported(ID, ("session_id",), rows_of("attendance", "session_id")),
    ("minutes", "minutes_doc", "created_by"): Exported(ID, ("id",), rows_of(
        "minutes_drafted", "minutes_id", where=lambda m: m["created_by_you"])),
    ("minutes", "minutes_doc", "updated_by"): Exported(ID, ("id",), rows_of(
        "minutes_drafted", "minutes_id", where=lambda m: m["last_changed_by_you"])),
    ("minutes", "minutes_version", "published_by"): Exported(ID, ("minutes_id", "version"),
                                                             rows_of("versions_published", "minutes_id", "version")),
    ("minutes", "minutes_comment", "author_id"): Exported(ID, ("id",), rows_of("comments", "comment_id")),
    ("minutes", "minutes_comment", "answered_by"): Exported(ID, ("id",), rows_of("comments_answered", "comment_id")),
    ("minutes", "command_reply", "actor"): COMMANDS,
    # notifications
    ("notifications", "recipient", "member_id"): Exported(ID, ("email",), one("contact", "email")),
    ("notifications", "recipient", "email"): Exported(EMAIL, ("full_name",), one("contact", "full_name")),
    ("notifications", "member_preference", "member_id"): Exported(
        ID, ("kind",), lambda part: [(k,) for k in part["stopped_notices"]]),
    ("notifications", "subscriber", "email"): Exported(EMAIL, ("email", "status"),
                                                       rows_of("subscriptions", "email", "status")),
    ("notifications", "subscriber_topic", "subscriber_id"): Exported(
        SUBSCRIBER, ("topic",), lambda part: [(t,) for s in part["subscriptions"] for t in s["topics"]]),
    ("notifications", "notice", "created_by"): Exported(ID, ("id",),
                                                        rows_of("announcements_written", "announcement_id")),
    ("notifications", "delivery", "member_id"): Exported(ID, ("kind", "subject"), rows_of("emails", "kind", "subject")),
    ("notifications", "delivery", "to_addr"): Exported(EMAIL, ("kind", "subject"),
                                                       rows_of("emails", "kind", "subject")),
    ("notifications", "delivery", "reply_to_addr"): Exported(EMAIL, ("kind", "subject"),
                                                             rows_of("emails", "kind", "subject")),
    ("notifications", "contact_message", "email"): Exported(EMAIL, ("title",), rows_of("contact_messages", "title")),
    ("notifications", "notice_seat", "member_id"): Exported(ID, ("session_id",), rows_of("seats", "session_id")),
    ("notifications", "notice_attendee", "member_id"): Exported(ID, ("session_id",),
                                                                rows_of("attendance", "session_id")),
    ("notifications", "command_reply", "actor"): COMMANDS,
}
NOT_PERSONAL: dict[tuple[str, str, str], str] = {
    ("forum", "forum_decision", "superseded_by"): "the id of the decision that corrects this one, not a person",
    ("minutes", "minutes_decision", "superseded_by"): "the id of the decision that corrects this one, not a person",
}
EXPORTS = {"registry": ExportData, "forum": ExportForumData, "minutes": ExportMinutesData,
           "notifications": ExportNotificationsData}


def service_tables(service: str) -> list[Table]:
    """The tables of one service: its own models, and the shared ones (outbox, inbox, command replies)
    that every service's database holds."""
    importlib.import_module(f"services.{service}.service")  # imports every model the service uses
    return sorted((m.local_table for m in default_registry.mappers
                   if m.class_.__module__.startswith((f"services.{service}.", "shared."))), key=lambda t: t.name)


def text_columns(table: Table) -> Iterator[str]:
    yield from (c.name for c in table.columns if isinstance(c.type, String | Text))


def personal_columns() -> set[tuple[str, str, str]]:
    found = {(s, t, c) for (s, t), c in MEMBER_TABLES.items()}
    for service in SERVICES:
        for table in service_tables(service):
            found |= {(service, table.name, c.name) for c in table.columns if PERSONAL_NAME.search(c.name)}
    return found


def test_every_member_column_is_exported_or_excused() -> None:
    found = personal_columns()
    unknown = sorted(found - EXPORTED.keys() - NOT_PERSONAL.keys())
    assert not unknown, (f"columns that hold a member (or their address) but are neither in the member's copy "
                         f"of their data nor excused: {unknown}. Export them (services/<service>/personal_data.py) "
                         "and list them in EXPORTED, or list them in NOT_PERSONAL with the reason.")
    stale = sorted((EXPORTED.keys() | NOT_PERSONAL.keys()) - found)
    assert not stale, f"listed here but no such column any more: {stale}"
    assert not EXPORTED.keys() & NOT_PERSONAL.keys()


# ================================================================ the two people and their rows
@dataclass
class Person:
    member_id: str
    email: str
    public_id: str
    web: WebMember | None = None


@dataclass
class People:
    member: Person
    secretariat: Person
    grades: dict[int, Grade]
    vote_id: str


class Databases:
    """Each service's database, read (and, for command replies, written) directly."""

    def __init__(self, forum: Stack) -> None:
        self.engines: dict[str, Engine] = {s: create_engine(sync_url(forum.database_urls[s])) for s in SERVICES}
        self.tables = {s: {t.name: t for t in service_tables(s)} for s in SERVICES}

    def close(self) -> None:
        for e in self.engines.values():
            e.dispose()

    def rows(self, key: tuple[str, str, str], spec: Exported, person: Person) -> list[tuple[Any, ...]]:
        service, table_name, column = key
        table = self.tables[service][table_name]
        if spec.who == SUBSCRIBER:
            subscriber = self.tables[service]["subscriber"]
            match = table.c[column].in_(select(subscriber.c.id).where(subscriber.c.email == person.email))
        else:
            value = {ID: person.member_id, EMAIL: person.email, PUBLIC_ID: person.public_id}[spec.who]
            match = table.c[column] == value
        with self.engines[service].connect() as c:
            if spec.keys:
                return [tuple(r) for r in c.execute(select(*[table.c[k] for k in spec.keys]).where(match))]
            return [()] * c.execute(select(func.count()).select_from(table).where(match)).scalar_one()

    def columns_holding(self, person: Person) -> set[tuple[str, str, str]]:
        """Every text column, in every table, with a row equal to the person's id, address or pseudonym."""
        values = [person.member_id, person.email, person.public_id]
        found = set()
        for service, tables in self.tables.items():
            with self.engines[service].connect() as c:
                for table in tables.values():
                    for column in text_columns(table):
                        if c.execute(select(func.count()).select_from(table)
                                     .where(table.c[column].in_(values))).scalar_one():
                            found.add((service, table.name, column))
        return found

    def seed_command_replies(self, actor: str) -> None:
        """A kept reply of the member's in every service: written here, since which commands carry an
        idempotency key is not this test's business."""
        for engine in self.engines.values():
            with Session(engine) as tx:
                tx.add(CommandReply(op="test.personal-data", key=uuid.uuid4().hex, actor=actor, digest="0" * 64,
                                    reply="{}"))
                tx.commit()


@pytest.fixture(scope="module")
def dbs(forum: Stack) -> Iterator[Databases]:
    d = Databases(forum)
    yield d
    d.close()


async def person(rpc: RpcClient, member_id: str, email: str, web: WebMember | None = None) -> Person:
    return Person(member_id, email, (await rpc(GetMember(member_id=member_id))).public_id, web)


@pytest.fixture(scope="module")
async def people(forum: Stack, rpc: RpcClient, secretariat: str, crowd: Crowd, dbs: Databases) -> People:  # noqa: F811
    """A member and the secretariat, with a row in every table that can hold one of them."""
    tag = uuid.uuid4().hex[:6]
    me, other = await crowd.members(2)  # registered, verified, approved, signed in on the web front
    now = utcnow()
    sec = secretariat
    # -- sessions: a past one (check-in, decision, vote, minutes), one with seats, one already full
    await rpc(SetRule(actor_id=sec, rule=Rule(kind=SessionKind.PLENARY)))
    past = await rpc(session_request(sec, title=f"Plénière passée {tag}", starts_at=now - timedelta(hours=3),
                                     ends_at=now - timedelta(hours=1), rsvp_opens_at=now - timedelta(hours=5),
                                     rsvp_closes_at=now - timedelta(hours=4)))
    seated = await rpc(session_request(sec, title=f"Plénière à venir {tag}"))
    full = await rpc(session_request(sec, title=f"Plénière complète {tag}", capacity=1))
    await rpc(AnswerRsvp(actor_id=me.member_id, session_id=seated.session_id, answer=RsvpAnswer.ATTEND))
    await rpc(AnswerRsvp(actor_id=other.member_id, session_id=full.session_id, answer=RsvpAnswer.ATTEND))
    waiting = await rpc(AnswerRsvp(actor_id=me.member_id, session_id=full.session_id, answer=RsvpAnswer.ATTEND))
    assert waiting.waitlist_position == 1
    await rpc(CheckIn(actor_id=sec, session_id=past.session_id, member_id=me.member_id))
    decision = await rpc(RecordDecision(actor_id=sec, session_id=past.session_id, agenda_position=2,
                                        title=f"Ouvrir les données {tag}", text="Le forum reporte ce point.",
                                        outcome=Outcome.DEFERRED, method=Method.CONSENSUS))
    await rpc(UpdateFollowUp(actor_id=sec, decision_id=decision.decision.decision_id,
                             status=FollowUpStatus.IN_PROGRESS, note="Reprise à la prochaine séance."))
    vote = await rpc(OpenVote(actor_id=sec, session_id=past.session_id, agenda_position=3,
                              question=f"Quel jeu de données d'abord ? {tag}", options=["Air", "Eau", "Bruit"],
                              opens_at=now, closes_at=now + timedelta(days=2)))
    grades = {1: Grade.A_REJETER, 2: Grade.PASSABLE, 3: Grade.TRES_BIEN}
    await rpc(CastBallot(actor_id=me.member_id, vote_id=vote.vote.vote_id, grades=grades))

    # -- minutes: drafted, reviewed (the member comments, the secretariat answers), published
    await MinutesDb(forum).wait(session_id=past.session_id, attendees=[me.member_id], secretariat=sec)
    draft = await rpc(OpenMinutesDraft(actor_id=sec, session_id=past.session_id))
    await rpc(OpenMinutesReview(actor_id=sec, minutes_id=draft.minutes_id, until=now + timedelta(days=3)))
    comment = await rpc(CommentMinutes(actor_id=me.member_id, minutes_id=draft.minutes_id,
                                       anchor=draft.paragraphs[0].anchor, text=f"Il manque mon intervention {tag}."))
    await rpc(AnswerMinutesComment(actor_id=sec, comment_id=comment.comment_id, accepted=False,
                                   reason="Elle figure au paragraphe suivant."))
    await rpc(PublishMinutes(actor_id=sec, minutes_id=draft.minutes_id, adoption=AdoptionKind.NONE))

    # -- e-mails: one kind turned off, the address subscribed to public notices, an announcement written
    await rpc(SetMemberPreferences(actor_id=me.member_id,
                                   enabled={k: k != MemberNoticeKind.REMINDERS for k in MemberNoticeKind}))
    await rpc(Subscribe(email=me.email, topics=[TopicKind.ANNOUNCEMENTS.value, TopicKind.MINUTES.value]))
    await rpc(SaveAnnouncement(actor_id=sec, title=f"Prochaines séances {tag}", body="Le calendrier est en ligne."))
    await rpc(SendContactMessage(name="Membre du forum", email=me.email, title=f"Une question {tag}",
                                 message="Où trouver le calendrier des ateliers ?"))
    await asyncio.to_thread(dbs.seed_command_replies, me.member_id)
    return People(await person(rpc, me.member_id, me.email, me), await person(rpc, sec, SECRETARIAT_EMAIL),
                  grades, vote.vote.vote_id)


async def exports(rpc: RpcClient, p: Person) -> dict[str, dict[str, Any]]:
    return {s: (await rpc(op(actor_id=p.member_id))).data for s, op in EXPORTS.items()}


def scalars(value: Any) -> Iterator[Any]:
    """Every key and leaf value of a JSON document."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from scalars(v)
    elif isinstance(value, list):
        for v in value:
            yield from scalars(v)
    else:
        yield value


def assert_no_ballot_content(copy: Any, grades: dict[int, Grade]) -> None:
    leaves = set(scalars(copy))
    assert "grades" not in leaves
    assert not leaves & {g.value for g in Grade}, "a grade shows in the copy"
    assert not leaves & {g.value for g in grades.values()}


# ================================================================ every row in the copy
async def test_every_row_about_a_member_is_in_their_copy(people: People, rpc: RpcClient, dbs: Databases) -> None:
    both = (people.member, people.secretariat)

    def missing_rows() -> list[tuple[str, str, str]]:
        return [key for key, spec in EXPORTED.items() if not any(dbs.rows(key, spec, p) for p in both)]

    # Projections (notifications' seats and attendees, the minutes' facts, e-mails) follow events.
    deadline = time.monotonic() + 60
    while (missing := await asyncio.to_thread(missing_rows)) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    assert not missing, f"no row for either person in {missing}: make one above"

    # Found by value too: a column the names above miss, holding one of them, fails here.
    for p in both:
        holding = await asyncio.to_thread(dbs.columns_holding, p)
        assert not holding - EXPORTED.keys() - NOT_PERSONAL.keys(), p

    for p in both:
        # The rows first, then the copy: what a job adds meanwhile (a session reminder…) is in the copy too.
        rows = {key: Counter(await asyncio.to_thread(dbs.rows, key, spec, p)) for key, spec in EXPORTED.items()}
        copy = await exports(rpc, p)
        for key, spec in EXPORTED.items():
            shown = Counter(spec.extract(copy[key[0]]))
            missing = rows[key] - shown
            assert not missing, f"{key}: rows of {p.email} missing from their copy: {sorted(missing)}"

    mine = await exports(rpc, people.member)
    assert [v for v in mine["forum"]["votes"] if v["vote_id"] == people.vote_id][0]["voted_at"]
    assert {r["state"] for r in mine["forum"]["rsvps"]} == {"confirmed", "waitlisted"}
    assert [r["waitlist_position"] for r in mine["forum"]["rsvps"] if r["state"] == "waitlisted"] == [1]
    assert any(e["kind"] == "subscription_confirm" and e["to"] == people.member.email
               for e in mine["notifications"]["emails"])
    assert_no_ballot_content(mine, people.grades)


# ================================================================ through the web front
async def test_download_through_the_web_front(people: People) -> None:
    web = people.member.web
    assert web is not None
    page = await web.get("/espace")
    assert page.status_code == 200 and 'id="contenu-export"' in page.text
    assert "jamais vos mentions" in text(page) and "aucun fichier n'est produit" in text(page)

    r = await web.get("/espace/donnees")
    assert r.status_code == 200, text(r)
    assert r.headers["content-type"].startswith("application/json") and r.headers["cache-control"] == "no-store"
    assert re.fullmatch(r'attachment; filename="forum-ouvert-mes-donnees-\d{4}-\d{2}-\d{2}\.json"',
                        r.headers["content-disposition"])
    copy = json.loads(r.content)
    assert set(copy["contents"]) == {*EXPORTS, "left_out"}
    assert copy["registry"]["member"]["email"] == people.member.email
    assert [v["vote_id"] for v in copy["forum"]["votes"]] == [people.vote_id]
    assert copy["forum"]["rsvps"] and copy["forum"]["attendance"]
    assert copy["minutes"]["comments"] and copy["notifications"]["subscriptions"]
    assert copy["registry"]["signed_in_browsers"]
    assert_no_ballot_content(copy, people.grades)


async def test_no_file_when_a_service_does_not_answer(people: People, forum: Stack) -> None:
    web = people.member.web
    assert web is not None
    forum.kill("minutes")
    try:
        r = await web.get("/espace/donnees")
    finally:
        forum.start_service("minutes")
        await asyncio.to_thread(forum.wait_ready, 60, ["minutes"])
    assert r.status_code == 503 and "content-disposition" not in r.headers
    assert r.headers["content-type"].startswith("text/html")
    assert h1(r) == "Téléchargement de vos données impossible pour l'instant"
    assert ("Vos données n'ont pas pu être rassemblées : le service des comptes rendus ne répond pas. "
            "Aucun fichier n'a été produit") in text(r)
    assert (await web.get("/espace/donnees")).status_code == 200  # back once the service is
