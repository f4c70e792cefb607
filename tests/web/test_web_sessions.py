"""Sessions through the web front, against the running forum (every service a real process, real NATS,
the real database): the secretariat schedules, edits and cancels sessions with its forms; members answer;
the calendars (`.ics`, feed) are read back with the `icalendar` parser; the participants list, its CSV
export and the check-in; and every bad input, each a clear French page with nothing half-written.

Members are made the way the forum makes them: registered, verified and approved through the registry's
commands, and signed in through the web front's real `/connexion/lien` flow. The one-time tokens are read
from the registry's events on JetStream (the very events the notifications service turns into e-mails),
which is much faster than waiting for hundreds of e-mails. `Crowd` is reused by the RSVP-rush test.

Long because each page is checked with its bad inputs beside it, on one running forum."""
from __future__ import annotations

import asyncio
import csv
import html
import io
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import nats
import pytest
from icalendar import Calendar
from nats.js.api import DeliverPolicy
from sqlalchemy import create_engine, func
from sqlmodel import Session, col, select

from services.forum.models import ForumAttendance, ForumMember, ForumRsvp, ForumSession
from forum_ouvert.launcher import Stack
from shared.contracts.registry import (
    ApproveMember, College, Register, RequestSignIn, VerifyEmail,
)
from shared.rpc import RpcClient
from tests.web.test_web_bad_input import csrf_in, field_error, h1, text

pytestmark = pytest.mark.integration
PARIS = ZoneInfo("Europe/Paris")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SECRETARIAT_EMAIL = "secretariat@tests.forum-ouvert.example"  # tests/conftest.py's `secretariat`


# ================================================================ the forum's database, read-only
class ForumDb:
    """Reads the forum service's own tables, to check what was (or was not) written."""

    def __init__(self, forum: Stack) -> None:
        self.engine = create_engine(forum.database_urls["forum"].replace("sqlite+aiosqlite://", "sqlite://"))

    def rsvps(self, session_id: str) -> list[ForumRsvp]:
        with Session(self.engine) as tx:
            return list(tx.exec(select(ForumRsvp).where(ForumRsvp.session_id == session_id)).all())

    def session(self, session_id: str) -> ForumSession | None:
        with Session(self.engine) as tx:
            return tx.get(ForumSession, session_id)

    def attendance(self, session_id: str) -> list[ForumAttendance]:
        with Session(self.engine) as tx:
            return list(tx.exec(select(ForumAttendance).where(ForumAttendance.session_id == session_id)).all())

    def count_sessions(self, title_contains: str) -> int:
        with Session(self.engine) as tx:
            return int(tx.exec(select(func.count()).select_from(ForumSession).where(  # type: ignore[call-overload]
                col(ForumSession.title).contains(title_contains))).one())

    def begin_now(self, session_id: str) -> None:
        """Time travel for a journey: the session began a minute ago (its end unchanged)."""
        with Session(self.engine) as tx:
            fs = tx.get(ForumSession, session_id)
            assert fs is not None
            fs.starts_at = datetime.now(UTC) - timedelta(minutes=1)
            tx.add(fs)
            tx.commit()

    def end_now(self, session_id: str) -> None:
        """Time travel for a journey: the session began two minutes ago and ended a moment ago."""
        with Session(self.engine) as tx:
            fs = tx.get(ForumSession, session_id)
            assert fs is not None
            now = datetime.now(UTC)
            fs.starts_at, fs.ends_at = now - timedelta(minutes=2), now - timedelta(seconds=1)
            tx.add(fs)
            tx.commit()

    def approved(self, member_ids: Iterable[str]) -> int:
        ids, n = list(member_ids), 0
        with Session(self.engine) as tx:
            for i in range(0, len(ids), 500):
                n += int(tx.exec(select(func.count()).select_from(ForumMember).where(  # type: ignore[call-overload]
                    ForumMember.standing == "approved", col(ForumMember.member_id).in_(ids[i:i + 500]))).one())
        return n

    async def wait_approved(self, member_ids: list[str], timeout: float = 120) -> None:
        """Until the forum's projection (fed by registry events) knows every member as approved."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (n := await asyncio.to_thread(self.approved, member_ids)) < len(member_ids):
            assert loop.time() < deadline, f"the forum knows {n}/{len(member_ids)} members as approved"
            await asyncio.sleep(0.1)


# ================================================================ people in front of the web front
@dataclass
class WebMember:
    """One person with their own browser session (cookie jar) on the web front."""

    member_id: str
    email: str
    name: str
    college: College | None
    http: httpx.AsyncClient
    csrf: str = ""

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        r = await self.http.get(path, **kw)
        if m := CSRF.search(r.text):
            self.csrf = m.group(1)
        return r

    async def post(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        if not self.csrf:
            await self.get("/seances")
        return await self.http.post(path, data={"csrf_token": self.csrf, **(data or {})})

    async def answer(self, session_id: str, answer: str) -> httpx.Response:
        return await self.post(f"/seances/{session_id}/reponse", {"answer": answer})

    async def withdraw(self, session_id: str) -> httpx.Response:
        return await self.post(f"/seances/{session_id}/retrait")


@dataclass
class Crowd:
    """Makes members (approved, or only verified) signed in on the web front, quickly and for real."""

    forum: Stack
    rpc: RpcClient
    secretariat_id: str
    max_connections: int = 20
    transport: httpx.AsyncHTTPTransport | None = None
    nc: Any = None
    subs: list[Any] = field(default_factory=list)
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, member_id) -> token
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> Crowd:
        # Idle connections are dropped before uvicorn's own 5 s keep-alive timeout closes them under our feet.
        self.transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(
            max_connections=self.max_connections, max_keepalive_connections=self.max_connections,
            keepalive_expiry=2.0))
        self.nc = await nats.connect(self.forum.nats_url)
        js = self.nc.jetstream()

        async def on_event(msg: Any) -> None:
            kind = "verify" if msg.subject == "registry.email_verification.requested" else "sign_in"
            data = json.loads(msg.data)["data"]
            self.tokens[(kind, data["member_id"])] = data["token"]
            self.arrived.set()

        for subject in ("registry.email_verification.requested", "registry.sign_in.requested"):
            self.subs.append(await js.subscribe(subject, cb=on_event, ordered_consumer=True,
                                                deliver_policy=DeliverPolicy.NEW))
        return self

    async def close(self) -> None:
        for sub in self.subs:
            await sub.unsubscribe()
        await self.nc.drain()
        if self.transport is not None:
            await self.transport.aclose()

    def client(self) -> httpx.AsyncClient:
        """A cookie jar of its own, on the shared connection pool (its size = the concurrent clients)."""
        return httpx.AsyncClient(base_url=self.forum.web_url, transport=self.transport,
                                 timeout=httpx.Timeout(120, pool=None))

    async def _token(self, kind: str, member_id: str, timeout: float = 120) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (kind, member_id) not in self.tokens:
            assert loop.time() < deadline, f"no {kind} token for {member_id}"
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), 0.5)
            except TimeoutError:
                pass
        return self.tokens.pop((kind, member_id))

    async def sign_in(self, member_id: str, email: str, http: httpx.AsyncClient) -> None:
        """The real sign-in: ask for a link, open it, press « Me connecter »."""
        await self.rpc(RequestSignIn(email=email), timeout=60)
        token = await self._token("sign_in", member_id)
        page = await http.get("/connexion/lien", params={"token": token})
        assert page.status_code == 200, text(page)
        r = await http.post("/connexion/lien", data={"csrf_token": csrf_in(page), "token": token})
        assert r.status_code == 303 and r.headers["location"] == "/espace", text(r)

    async def members(self, n: int, *, approve: bool = True, names: list[str] | None = None,
                      colleges: tuple[College, ...] = tuple(College), concurrency: int = 50) -> list[WebMember]:
        tag = uuid.uuid4().hex[:8]
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> WebMember:
            async with gate:
                email = f"seance-{tag}-{i}@example.org"
                name = names[i] if names else f"Membre {tag} n°{i}"
                college = colleges[i % len(colleges)]
                reg = await self.rpc(Register(full_name=name, email=email, organisation="Association test",
                                              college=college, charter_accepted=True), timeout=60)
                token = await self._token("verify", reg.member_id)
                await self.rpc(VerifyEmail(token=token), timeout=60)
                if approve:
                    await self.rpc(ApproveMember(actor_id=self.secretariat_id, member_id=reg.member_id), timeout=60)
                m = WebMember(reg.member_id, email, name, college, self.client())
                await self.sign_in(m.member_id, email, m.http)
                return m

        people = list(await asyncio.gather(*[one(i) for i in range(n)]))
        if approve:
            await ForumDb(self.forum).wait_approved([m.member_id for m in people])
        return people


# ================================================================ sessions, as the secretariat types them
def local(dt: datetime) -> str:
    """What a `datetime-local` field holds: Europe/Paris wall-clock time."""
    return dt.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M")


def session_form(*, start: timedelta = timedelta(days=2), hours: float = 2, opens: timedelta = -timedelta(hours=1),
                 closes: timedelta | None = None, **fields: str) -> dict[str, str]:
    """A valid form; times relative to now (RSVPs open an hour ago, close an hour before the start)."""
    now = datetime.now(UTC)
    data = {"title": f"Séance plénière {uuid.uuid4().hex[:6]}", "kind": "plenary", "theme": "",
            "description": "Point d'étape du plan d'action national.\n\nOuverte à tous les membres.",
            "starts_at": local(now + start), "ends_at": local(now + start + timedelta(hours=hours)),
            "place": "CESE, salle Hémicycle, 9 place d'Iéna, Paris", "online_url": "https://visio.example.org/pleniere",
            "capacity": "50", "rsvp_opens_at": local(now + opens),
            "rsvp_closes_at": local(now + (closes if closes is not None else start - timedelta(hours=1))),
            "agenda": "Accueil\nBilan des engagements\nQuestions diverses"}
    data.update(fields)
    return data


async def create_session(admin: WebMember, **kw: Any) -> str:
    r = await admin.post("/secretariat/seances/nouvelle", session_form(**kw))
    assert r.status_code == 303, text(r)
    m = re.fullmatch(r"/seances/([0-9a-f-]{36})", r.headers["location"])
    assert m, r.headers["location"]
    return m.group(1)


def utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def events(body: bytes) -> list[Any]:
    return list(Calendar.from_ical(body).walk("VEVENT"))


def my_state(page: httpx.Response) -> str:
    m = re.search(r'id="mon-etat"[^>]*>.*?<p class="fr-badge[^"]*">(.*?)</p>', page.text, re.S)
    assert m, "no state shown"
    return html.unescape(m.group(1)).strip()


def alert(page: httpx.Response) -> str:
    m = re.search(r'role="alert"[^>]*>(.*?)</div>', page.text, re.S)
    assert m, "no error shown"
    return text(httpx.Response(200, text=m.group(1))).strip()


# ================================================================ fixtures
@pytest.fixture(scope="module")
async def crowd(forum: Stack, rpc: RpcClient, secretariat: str) -> AsyncIterator[Crowd]:
    c = await Crowd(forum, rpc, secretariat).start()
    await ForumDb(forum).wait_approved([secretariat])
    yield c
    await c.close()


@pytest.fixture(scope="module")
async def admin(crowd: Crowd, secretariat: str) -> WebMember:
    m = WebMember(secretariat, SECRETARIAT_EMAIL, "Secrétariat", None, crowd.client())
    await crowd.sign_in(secretariat, SECRETARIAT_EMAIL, m.http)
    return m


@pytest.fixture(scope="module")
def db(forum: Stack) -> ForumDb:
    return ForumDb(forum)


# ================================================================ the secretariat's forms and the calendars
async def test_schedule_edit_cancel_with_calendars(admin: WebMember, crowd: Crowd, db: ForumDb) -> None:
    r = await admin.get("/secretariat/seances/nouvelle")
    assert r.status_code == 200 and h1(r) == "Programmer une séance"
    title = f"Plénière de rentrée {uuid.uuid4().hex[:6]}"
    # A winter date: Paris is UTC+1.
    form = session_form(title=title, starts_at="2031-01-15T10:00", ends_at="2031-01-15T12:30",
                        rsvp_closes_at="2031-01-15T09:00", capacity="40",
                        agenda="Accueil par le CESE\nBilan des engagements\n\nQuestions diverses\n")
    r = await admin.post("/secretariat/seances/nouvelle", form)
    assert r.status_code == 303, text(r)
    sid = r.headers["location"].rsplit("/", 1)[1]
    stored = db.session(sid)
    assert stored is not None and utc(stored.starts_at) == datetime(2031, 1, 15, 9, 0, tzinfo=UTC)

    page = await admin.get(f"/seances/{sid}")
    assert page.status_code == 200 and h1(page) == title
    body = text(page)
    assert f"La séance « {title} » est programmée." in body
    assert "Le mercredi 15 janvier 2031 de 10 h 00 à 12 h 30 (heure de Paris)" in body
    assert "CESE, salle Hémicycle" in body and 'href="https://visio.example.org/pleniere"' in page.text
    assert "40 places restantes sur 40" in body and "Réponses ouvertes jusqu'au mercredi 15 janvier 2031 à 9 h 00" in body
    agenda = re.search(r'<ol id="ordre-du-jour">(.*?)</ol>', page.text, re.S)
    assert agenda and re.findall(r"<li>(.*?)</li>", agenda.group(1)) == [
        "Accueil par le CESE", "Bilan des engagements", "Questions diverses"]
    assert "Participants et émargement" in body  # the secretariat's tools

    # The .ics file: Europe/Paris, UID from the session id, SEQUENCE 0.
    ics = await admin.get(f"/seances/{sid}.ics")
    assert ics.status_code == 200 and ics.headers["content-type"].startswith("text/calendar")
    assert re.fullmatch(r'attachment; filename="seance-2031-01-15-[0-9a-f]{8}\.ics"', ics.headers["content-disposition"])
    [ev] = events(ics.content)
    uid = str(ev["uid"])
    assert uid == f"session-{sid}@forum-ouvert"
    assert ev["dtstart"].params["TZID"] == "Europe/Paris"
    assert ev.decoded("dtstart") == datetime(2031, 1, 15, 10, 0, tzinfo=PARIS)
    assert ev.decoded("dtend").astimezone(UTC) == datetime(2031, 1, 15, 11, 30, tzinfo=UTC)
    assert int(ev["sequence"]) == 0 and str(ev["status"]) == "CONFIRMED"
    assert "Bilan des engagements" in str(ev["description"])
    assert any(c.name == "VTIMEZONE" and str(c["tzid"]) == "Europe/Paris"
               for c in Calendar.from_ical(ics.content).walk("VTIMEZONE"))

    # Edit: a summer date now (Paris is UTC+2), another room; the form comes back filled in.
    edit = await admin.get(f"/secretariat/seances/{sid}/modifier")
    assert edit.status_code == 200 and h1(edit) == "Modifier la séance"
    assert 'value="2031-01-15T10:00"' in edit.text and 'name="revision" value="0"' in edit.text
    assert "Accueil par le CESE\nBilan des engagements\nQuestions diverses</textarea>" in edit.text
    changed = {**form, "starts_at": "2031-07-15T10:00", "ends_at": "2031-07-15T12:00",
               "rsvp_closes_at": "2031-07-14T18:00", "place": "CESE, salle 233", "revision": "0"}
    r = await admin.post(f"/secretariat/seances/{sid}/modifier", changed)
    assert r.status_code == 303 and r.headers["location"] == f"/seances/{sid}", text(r)
    page = await admin.get(f"/seances/{sid}")
    assert "Le mardi 15 juillet 2031 de 10 h 00 à 12 h 00 (heure de Paris)" in text(page)
    assert "CESE, salle 233" in text(page)
    [ev] = events((await admin.get(f"/seances/{sid}.ics")).content)
    assert str(ev["uid"]) == uid and int(ev["sequence"]) == 1
    assert ev.decoded("dtstart").astimezone(UTC) == datetime(2031, 7, 15, 8, 0, tzinfo=UTC)
    assert str(ev["location"]) == "CESE, salle 233"

    # An edit made over somebody else's (the form was loaded at revision 0): refused, input kept.
    stale = {**changed, "title": "Titre que personne ne verra"}
    r = await admin.post(f"/secretariat/seances/{sid}/modifier", stale)
    assert r.status_code == 409
    assert "La séance a été modifiée entre-temps : rechargez-la avant d'enregistrer." in alert(r)
    assert 'value="Titre que personne ne verra"' in r.text
    assert db.session(sid).title == title  # type: ignore[union-attr]

    # Cancel: a reason is required; then the page, the file and the feed say so.
    r = await admin.get(f"/secretariat/seances/{sid}/annuler")
    assert r.status_code == 200 and h1(r) == f"Annuler la séance « {title} »"
    r = await admin.post(f"/secretariat/seances/{sid}/annuler", {"reason": "x"})
    assert r.status_code == 422 and field_error(r, "reason").startswith("Indiquez le motif de l'annulation")
    assert db.session(sid).status == "scheduled"  # type: ignore[union-attr]
    r = await admin.post(f"/secretariat/seances/{sid}/annuler", {"reason": "Salle indisponible (travaux)."})
    assert r.status_code == 303
    page = await admin.get(f"/seances/{sid}")
    assert "Cette séance est annulée" in text(page) and "Motif : Salle indisponible (travaux)." in text(page)
    [ev] = events((await admin.get(f"/seances/{sid}.ics")).content)
    assert str(ev["uid"]) == uid and int(ev["sequence"]) == 2 and str(ev["status"]) == "CANCELLED"

    feed = await crowd.client().get("/seances.ics")
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    assert 'filename="forum-ouvert-seances.ics"' in feed.headers["content-disposition"]
    cal = Calendar.from_ical(feed.content)
    assert str(cal["x-wr-timezone"]) == "Europe/Paris"
    [mine] = [e for e in cal.walk("VEVENT") if str(e["uid"]) == uid]
    assert str(mine["status"]) == "CANCELLED" and int(mine["sequence"]) == 2
    assert mine["dtstart"].params["TZID"] == "Europe/Paris"

    # A cancelled session can be neither edited nor cancelled again.
    r = await admin.get(f"/secretariat/seances/{sid}/modifier")
    assert r.status_code == 409 and "ne peut plus être modifiée" in text(r)
    r = await admin.post(f"/secretariat/seances/{sid}/modifier", {**changed, "revision": "2"})
    assert r.status_code == 409
    r = await admin.post(f"/secretariat/seances/{sid}/annuler", {"reason": "Encore une fois"})
    assert r.status_code == 409 and "déjà annulée" in text(r)
    assert db.session(sid).revision == 2  # type: ignore[union-attr]

    listing = await admin.get("/secretariat/seances", params={"periode": "all"})
    row = re.search(rf'<tr id="seance-{sid}">(.*?)</tr>', listing.text, re.S)
    assert row and "Annulée" in row.group(1)


async def test_session_form_errors_keep_the_input(admin: WebMember, db: ForumDb) -> None:
    tag = uuid.uuid4().hex[:8]

    async def post(**fields: str) -> httpx.Response:
        r = await admin.post("/secretariat/seances/nouvelle", session_form(title=f"Erreur {tag}", **fields))
        assert r.status_code == 422, text(r)
        assert 'value="Erreur ' + tag + '"' in r.text  # what was typed is kept
        assert "<title>Erreur : " in r.text
        return r

    r = await post(starts_at="2031-03-10T14:00", ends_at="2031-03-10T12:00", rsvp_closes_at="2031-03-10T10:00")
    assert field_error(r, "ends_at") == "La fin doit être après le début."
    assert 'value="2031-03-10T14:00"' in r.text and "Le formulaire contient 1 erreur" in text(r)
    r = await post(starts_at="32/13/2031 25:00")
    assert field_error(r, "starts_at") == ("Date et heure invalides : utilisez le format JJ/MM/AAAA HH:MM "
                                           "(heure de Paris).")
    r = await post(starts_at="2031-03-30T02:30", ends_at="2031-03-30T05:00", rsvp_closes_at="2031-03-29T20:00")
    assert field_error(r, "starts_at").startswith("Cette heure n'existe pas à Paris")
    r = await post(kind="working_group", theme="")
    assert field_error(r, "theme") == "Un groupe de travail doit avoir un thème."
    r = await post(place="", online_url="")
    assert field_error(r, "online_url") == "Indiquez un lieu ou un lien de participation en ligne."
    r = await post(online_url="javascript:alert(1)")
    assert field_error(r, "online_url") == "Le lien de participation doit être une adresse web (https://…)."
    r = await post(capacity="trois")
    assert field_error(r, "capacity") == "Saisissez un nombre entier (chiffres 0 à 9)."
    r = await post(capacity="0")
    assert field_error(r, "capacity") == "La capacité doit être comprise entre 1 et 10000 places."
    r = await post(rsvp_closes_at=local(datetime.now(UTC) + timedelta(days=3)))
    assert field_error(r, "rsvp_closes_at") == "Les réponses doivent être closes au plus tard au début de la séance."
    r = await post(agenda="\n".join(f"Point {i}" for i in range(31)))
    assert field_error(r, "agenda") == "L'ordre du jour ne peut pas compter plus de 30 points."
    r = await post(agenda="Accueil\n" + "x" * 301)
    assert field_error(r, "agenda") == "Point 2 : Ce champ ne doit pas dépasser 300 caractères."
    r = await post(theme="astrologie")
    assert field_error(r, "theme") == "Choisissez une des valeurs proposées."
    r = await post(description="avec un octet nul \x00")
    assert field_error(r, "description") == "Ce champ contient des caractères non autorisés."

    r = await admin.post("/secretariat/seances/nouvelle", {"title": ""})
    assert r.status_code == 422
    for name in ("title", "starts_at", "ends_at", "capacity", "rsvp_opens_at", "rsvp_closes_at"):
        assert field_error(r, name) == "Ce champ est obligatoire.", name
    assert field_error(r, "kind") == "Choisissez le type de séance."
    assert db.count_sessions(f"Erreur {tag}") == 0  # nothing was written


async def test_capacity_cannot_drop_below_confirmed(admin: WebMember, crowd: Crowd, db: ForumDb) -> None:
    a, b, c = await crowd.members(3)
    form = session_form(capacity="2")
    r = await admin.post("/secretariat/seances/nouvelle", form)
    assert r.status_code == 303
    sid = r.headers["location"].rsplit("/", 1)[1]
    for m in (a, b, c):
        assert (await m.answer(sid, "attend")).status_code == 303
    form = {**form, "capacity": "1", "revision": "0"}  # RSVPs do not change the session's revision
    r = await admin.post(f"/secretariat/seances/{sid}/modifier", form)
    assert r.status_code == 409
    assert field_error(r, "capacity") == "2 places sont déjà confirmées : la capacité ne peut pas être inférieure."
    assert re.search(r'name="capacity"\s+value="1"', r.text)
    assert db.session(sid).capacity == 2  # type: ignore[union-attr]
    # Raising it gives the new seat to the first on the waitlist.
    r = await admin.post(f"/secretariat/seances/{sid}/modifier", {**form, "capacity": "3"})
    assert r.status_code == 303, text(r)
    assert my_state(await c.get(f"/seances/{sid}")) == "Place confirmée"


# ================================================================ members: answering
async def test_rsvp_waitlist_and_promotion(admin: WebMember, crowd: Crowd) -> None:
    a, b, c = await crowd.members(3)
    sid = await create_session(admin, capacity="1", title=f"Groupe santé {uuid.uuid4().hex[:6]}",
                               kind="working_group", theme="health")
    page = await a.get(f"/seances/{sid}")
    assert my_state(page) == "Pas de réponse"
    assert re.search(r">\s*Je participe\s*</button>", page.text) and "Retirer ma réponse" not in page.text

    r = await a.answer(sid, "attend")
    assert r.status_code == 303 and r.headers["location"] == f"/seances/{sid}"
    page = await a.get(f"/seances/{sid}")
    assert "Votre place est confirmée." in text(page) and my_state(page) == "Place confirmée"
    assert "Retirer ma réponse" in page.text and "Complet (1 place)" in text(page)

    assert (await b.answer(sid, "attend")).status_code == 303
    page = await b.get(f"/seances/{sid}")
    assert "vous êtes sur la liste d'attente, en position 1" in text(page)
    assert my_state(page) == "Sur liste d'attente (position 1)"
    assert (await c.answer(sid, "attend")).status_code == 303
    assert my_state(await c.get(f"/seances/{sid}")) == "Sur liste d'attente (position 2)"
    assert "Complet (1 place) — 2 personnes sur liste d'attente" in text(await crowd.client().get(f"/seances/{sid}"))

    mine = await b.get("/espace/seances")
    row = re.search(rf'<tr id="ma-seance-{sid}">(.*?)</tr>', mine.text, re.S)
    assert mine.status_code == 200 and row and "Sur liste d'attente (position 1)" in html.unescape(row.group(1))
    listed = await b.get("/seances", params={"type": "working_group", "theme": "health"})
    assert "Ma réponse : Sur liste d'attente (position 1)" in text(listed)

    # A declines: B gets the seat, C moves up.
    assert (await a.answer(sid, "decline")).status_code == 303
    page = await a.get(f"/seances/{sid}")
    assert my_state(page) == "Ne participe pas" and "vous ne participez pas à cette séance" in text(page)
    assert my_state(await b.get(f"/seances/{sid}")) == "Place confirmée"
    assert my_state(await c.get(f"/seances/{sid}")) == "Sur liste d'attente (position 1)"
    # B withdraws: C gets the seat. A changes their mind: the waitlist.
    assert (await b.withdraw(sid)).status_code == 303
    page = await b.get(f"/seances/{sid}")
    assert my_state(page) == "Pas de réponse" and "Votre réponse est retirée" in text(page)
    assert my_state(await c.get(f"/seances/{sid}")) == "Place confirmée"
    assert (await a.answer(sid, "attend")).status_code == 303
    assert my_state(await a.get(f"/seances/{sid}")) == "Sur liste d'attente (position 1)"


async def test_rsvp_bad_input(admin: WebMember, crowd: Crowd, db: ForumDb) -> None:
    [m] = await crowd.members(1)
    [pending] = await crowd.members(1, approve=False)
    open_sid = await create_session(admin, capacity="5")
    not_yet = await create_session(admin, start=timedelta(days=3), opens=timedelta(days=1),
                                   closes=timedelta(days=2))
    closed = await create_session(admin, start=timedelta(hours=2), opens=-timedelta(hours=3),
                                  closes=-timedelta(hours=1))
    past = await create_session(admin, start=-timedelta(hours=3), opens=-timedelta(hours=5),
                                closes=-timedelta(hours=4))
    cancelled = await create_session(admin)
    assert (await admin.post(f"/secretariat/seances/{cancelled}/annuler", {"reason": "Reportée"})).status_code == 303

    async def refused(member: WebMember, sid: str, status: int, message: str, answer: str = "attend") -> None:
        r = await member.answer(sid, answer)
        assert r.status_code == status, text(r)
        assert "Votre réponse n'a pas été enregistrée" in text(r) and message in alert(r), alert(r)
        assert h1(r) == db.session(sid).title  # type: ignore[union-attr]  # the session's page, saying why

    await refused(m, not_yet, 409, "Les réponses à cette séance ne sont pas encore ouvertes.")
    assert "Les réponses ouvriront le" in text(await m.get(f"/seances/{not_yet}"))
    await refused(m, closed, 410, "Les réponses à cette séance sont closes.")
    await refused(m, past, 410, "Cette séance a déjà eu lieu ou a commencé.")
    await refused(m, cancelled, 409, "Cette séance a été annulée.")
    await refused(pending, open_sid, 403, "Votre inscription attend la validation du secrétariat")
    page = await pending.get(f"/seances/{open_sid}")
    assert "attend la validation du secrétariat" in text(page) and "Je participe" not in page.text
    mine = await pending.get("/espace/seances")
    assert mine.status_code == 200 and "Vous ne pouvez pas encore répondre aux séances" in text(mine)
    r = await m.withdraw(open_sid)
    assert r.status_code == 409 and "Vous n'avez ni place ni rang sur la liste d'attente" in alert(r)
    r = await m.answer(open_sid, "peut-être")
    assert r.status_code == 422 and "Choisissez « Je participe » ou « Je ne participe pas »." in alert(r)
    for sid in (not_yet, closed, past, cancelled, open_sid):
        assert db.rsvps(sid) == [], sid  # nothing half-written

    assert (await m.answer(open_sid, "attend")).status_code == 303
    await refused(m, open_sid, 409, "Vous êtes déjà inscrit·e à cette séance.")
    assert (await m.answer(open_sid, "decline")).status_code == 303
    await refused(m, open_sid, 409, "Vous avez déjà indiqué ne pas participer à cette séance.", answer="decline")
    [row] = db.rsvps(open_sid)
    assert row.state == "declined"

    unknown = str(uuid.uuid4())
    for r in (await m.answer(unknown, "attend"), await m.withdraw(unknown), await m.get(f"/seances/{unknown}"),
              await m.get(f"/seances/{unknown}.ics"), await m.get("/seances/pas%20un%20identifiant"),
              await m.get(f"/seances/{'a' * 40}")):
        assert r.status_code == 404 and h1(r) == "Séance introuvable", r.url
    # No CSRF token: refused before anything; a visitor is sent to sign in.
    r = await m.http.post(f"/seances/{open_sid}/reponse", data={"answer": "attend"})
    assert r.status_code == 403 and h1(r) == "Formulaire expiré, rechargez la page"
    visitor = crowd.client()
    page = await visitor.get(f"/seances/{open_sid}")
    assert "Se connecter pour répondre" in text(page)
    token = csrf_in(await visitor.get("/connexion"))
    r = await visitor.post(f"/seances/{open_sid}/reponse", data={"csrf_token": token, "answer": "attend"})
    assert r.status_code == 303 and r.headers["location"] == "/connexion"
    r = await visitor.get("/espace/seances")
    assert r.status_code == 303 and r.headers["location"] == "/connexion"
    [row] = db.rsvps(open_sid)
    assert row.state == "declined"


async def test_public_lists_and_filters(admin: WebMember, crowd: Crowd) -> None:
    tag = uuid.uuid4().hex[:6]
    soon = {"start": timedelta(minutes=20), "closes": timedelta(minutes=10)}  # first on the list's first page
    health = await create_session(admin, title=f"Groupe santé {tag}", kind="working_group", theme="health", **soon)
    plenary = await create_session(admin, title=f"Plénière {tag}", **soon)
    past = await create_session(admin, title=f"Plénière passée {tag}", start=-timedelta(hours=3),
                                opens=-timedelta(hours=5), closes=-timedelta(hours=4))
    visitor = crowd.client()
    r = await visitor.get("/seances")
    assert r.status_code == 200 and h1(r) == "Séances à venir"
    assert f"/seances/{health}" in r.text and f"/seances/{plenary}" in r.text and f"/seances/{past}" not in r.text
    r = await visitor.get("/seances", params={"type": "working_group", "theme": "health"})
    assert f"/seances/{health}" in r.text and f"/seances/{plenary}" not in r.text
    assert re.search(r'value="health"\s+selected', r.text)
    r = await visitor.get("/seances/passees")
    assert h1(r) == "Séances passées" and f"/seances/{past}" in r.text and f"/seances/{plenary}" not in r.text
    for params in ({"type": "fete"}, {"theme": "astrologie"}, {"page": "0"}, {"page": "abc"}):
        r = await visitor.get("/seances", params=params)
        assert r.status_code == 400, params
    r = await visitor.get(f"/seances/{plenary}")
    assert "Se connecter pour répondre" in text(r) and "Participants et émargement" not in text(r)


async def test_secretariat_pages_are_reserved(admin: WebMember, crowd: Crowd, db: ForumDb) -> None:
    [m] = await crowd.members(1)
    sid = await create_session(admin)
    for path in ("/secretariat/seances", "/secretariat/seances/nouvelle", f"/secretariat/seances/{sid}/modifier",
                 f"/secretariat/seances/{sid}/participants", f"/secretariat/seances/{sid}/participants.csv",
                 f"/secretariat/seances/{sid}/annuler"):
        r = await m.get(path)
        assert r.status_code == 403 and "réservée au secrétariat" in text(r), path
        r = await crowd.client().get(path)
        assert r.status_code == 303 and r.headers["location"] == "/connexion", path
    r = await m.post(f"/secretariat/seances/{sid}/annuler", {"reason": "Je n'ai pas le droit"})
    assert r.status_code == 403
    r = await m.post("/secretariat/seances/nouvelle", session_form())
    assert r.status_code == 403
    r = await m.post(f"/secretariat/seances/{sid}/emargement", {"member_id": m.member_id})
    assert r.status_code == 403
    assert db.session(sid).status == "scheduled" and db.attendance(sid) == []  # type: ignore[union-attr]
    r = await admin.get(f"/secretariat/seances/{uuid.uuid4()}/participants")
    assert r.status_code == 404 and h1(r) == "Séance introuvable"
    r = await admin.get("/secretariat/seances", params={"periode": "demain"})
    assert r.status_code == 400


# ================================================================ participants, CSV, check-in
async def test_participants_csv_and_check_in(admin: WebMember, crowd: Crowd, db: ForumDb) -> None:
    tag = uuid.uuid4().hex[:6]
    a, b, c, d, walk_in = await crowd.members(5, names=[
        f"=SOMME(A1:A9) Dupont {tag}", f"Bernard {tag}", f"Chloé {tag}", f"Driss {tag}", f"Élise {tag}"])
    [pending] = await crowd.members(1, approve=False)
    sid = await create_session(admin, capacity="2", start=timedelta(hours=2), closes=timedelta(hours=1))
    for m, answer in ((a, "attend"), (b, "attend"), (c, "attend"), (d, "decline")):
        assert (await m.answer(sid, answer)).status_code == 303

    page = await admin.get(f"/secretariat/seances/{sid}/participants")
    assert page.status_code == 200 and h1(page).startswith("Participants : ")
    assert "2 / 2 places confirmées" in text(page) and "1 sur liste d'attente" in text(page)
    waiting = re.search(rf'<tr id="attente-{c.member_id}">\s*<td>(\d+)</td>', page.text)
    assert waiting and waiting.group(1) == "1"
    assert f"Driss {tag}" in re.search(r'<ul id="liste-declines">(.*?)</ul>', page.text, re.S).group(1)  # type: ignore[union-attr]
    options = re.search(r'<select class="fr-select" id="member_id".*?</select>', page.text, re.S).group(0)  # type: ignore[union-attr]
    assert f'value="{walk_in.member_id}"' in options and f'value="{pending.member_id}"' not in options

    csv_response = await admin.get(f"/secretariat/seances/{sid}/participants.csv")
    assert csv_response.status_code == 200 and csv_response.headers["content-type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(r'attachment; filename="participants-seance-\d{4}-\d\d-\d\d-[0-9a-f]{8}\.csv"',
                        csv_response.headers["content-disposition"])
    assert csv_response.content.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    rows = list(csv.reader(io.StringIO(csv_response.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:3] == ["Réponse", "Rang sur la liste d'attente", "Nom"]
    by_name = {r[2]: r for r in rows[1:]}
    assert by_name[f"'=SOMME(A1:A9) Dupont {tag}"][0] == "Place confirmée"  # no formula for the spreadsheet
    assert by_name[f"Bernard {tag}"][0] == "Place confirmée"
    assert by_name[f"Chloé {tag}"][:2] == ["Sur liste d'attente", "1"]
    assert by_name[f"Driss {tag}"][0] == "Ne participe pas"
    assert by_name[f"Bernard {tag}"][4] == "Organisations de la société civile"
    assert by_name[f"Bernard {tag}"][7] == "non"

    # « Présent·e » for a confirmed member, then a walk-in chosen in the list.
    r = await admin.post(f"/secretariat/seances/{sid}/emargement", {"member_id": b.member_id, "present": "1"})
    assert r.status_code == 303 and r.headers["location"] == f"/secretariat/seances/{sid}/participants"
    page = await admin.get(r.headers["location"])
    assert "Présence enregistrée : 1 présent au total." in text(page)
    row = re.search(rf'<tr id="confirme-{b.member_id}">(.*?)</tr>', page.text, re.S)
    assert row and 'fr-badge--success">Présent·e</p>' in row.group(1)
    r = await admin.post(f"/secretariat/seances/{sid}/emargement",
                         {"member_id": walk_in.member_id, "present": "1", "walk_in": "1"})
    assert r.status_code == 303
    assert "(venu·e sans inscription)" in text(await admin.get(r.headers["location"]))
    assert {(x.member_id, x.walk_in) for x in db.attendance(sid)} == {(b.member_id, False), (walk_in.member_id, True)}

    # Refused check-ins: a member not approved, an unknown id, nobody chosen.
    for member_id in (pending.member_id, str(uuid.uuid4())):
        r = await admin.post(f"/secretariat/seances/{sid}/emargement",
                             {"member_id": member_id, "present": "1", "walk_in": "1"})
        assert r.status_code == 403 and field_error(r, "member_id") == ("Cette personne n'est pas un membre validé "
                                                                        "du forum.")
    r = await admin.post(f"/secretariat/seances/{sid}/emargement", {"member_id": "", "walk_in": "1"})
    assert r.status_code == 422 and field_error(r, "member_id") == "Choisissez le membre à enregistrer comme présent·e."
    assert len(db.attendance(sid)) == 2

    # A correction, then the export tells who came.
    r = await admin.post(f"/secretariat/seances/{sid}/emargement", {"member_id": b.member_id, "present": "0"})
    assert r.status_code == 303 and "Présence retirée" in text(await admin.get(r.headers["location"]))
    rows = list(csv.reader(io.StringIO((await admin.get(f"/secretariat/seances/{sid}/participants.csv"))
                                       .content.decode("utf-8-sig")), delimiter=";"))
    by_name = {r[2]: r for r in rows[1:]}
    assert by_name[f"Bernard {tag}"][7] == "non"
    assert by_name[f"Élise {tag}"][0] == "Sans réponse" and by_name[f"Élise {tag}"][7:] == ["oui", "oui"]

    # Check-in opens on the day.
    later = await create_session(admin, start=timedelta(days=3))
    page = await admin.get(f"/secretariat/seances/{later}/participants")
    assert "L'émargement ouvre 24 heures avant le début" in text(page) and 'id="member_id"' not in page.text
    r = await admin.post(f"/secretariat/seances/{later}/emargement", {"member_id": a.member_id, "present": "1"})
    assert r.status_code == 409 and "L'émargement ouvre le jour de la séance." in alert(r)
    assert db.attendance(later) == []


async def test_past_session_shows_attendance_per_college(admin: WebMember, crowd: Crowd, db: ForumDb) -> None:
    people = await crowd.members(3, colleges=(College.PUBLIC_ACTOR, College.CITIZEN, College.CITIZEN))
    title = f"Plénière passée {uuid.uuid4().hex[:6]}"
    sid = await create_session(admin, title=title, start=-timedelta(hours=3), opens=-timedelta(hours=5),
                               closes=-timedelta(hours=4))
    for m in people:
        r = await admin.post(f"/secretariat/seances/{sid}/emargement",
                             {"member_id": m.member_id, "present": "1", "walk_in": "1"})
        assert r.status_code == 303, text(r)
    page = await crowd.client().get(f"/seances/{sid}")
    table = re.search(r'<div class="fr-table fr-table--no-scroll" id="table-presence">(.*?)</table>', page.text, re.S)
    assert table, "no attendance table"
    cells = dict(re.findall(r'<th scope="row">(.*?)</th><td>(\d+)</td>', table.group(1)))
    assert cells == {"Acteurs publics": "1", "Organisations de la société civile": "0",
                     "Citoyennes et citoyens": "2", "Total": "3"}
    # Over: who came, not seats left or an answer to give.
    assert "3 membres présents" in text(page) and "places restantes" not in text(page)
    assert "Les réponses sont closes." not in text(page) and "Se connecter pour répondre" not in text(page)
    assert f"/seances/{sid}" in (await crowd.client().get("/seances/passees")).text
    r = await admin.post(f"/secretariat/seances/{sid}/annuler", {"reason": "Trop tard"})
    assert r.status_code == 409 and "Une séance terminée ne peut pas être annulée." in text(r)
    assert db.session(sid).status == "scheduled"  # type: ignore[union-attr]
