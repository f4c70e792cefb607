"""Atom and RSS feeds through the web front, against the running forum (every service a real process, real
NATS, the real database): every feed of the catalogue parses in feedparser without error, entry ids do not
change from one fetch to the next and entries link to pages that exist; a corrected decision and corrected
minutes update their entries; the RFC 5005 archives chain and hold every entry exactly once; ETag and
Last-Modified give 304 answers; pages advertise their feeds to feed readers; the iCalendar feeds parse in
`icalendar`; announcements sent by the secretariat reach their feeds and public pages; unknown feeds are
a readable 404.
"""
from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import feedparser
import httpx
import pytest
from icalendar import Calendar

from forum_ouvert.launcher import Stack
from services.web.feeds import PAGE_SIZE, Kind, entry_id, feed_catalogue
from shared.contracts.common import ErrorCode
from shared.contracts.forum import ListSessions, SessionPeriod, Theme
from shared.contracts.notifications import (
    AnnouncementAction, ControlAnnouncement, ListAnnouncements, SaveAnnouncement, theme_topic,
)
from shared.rpc import RpcClient, RpcError
from tests.web.test_web_bad_input import h1, text
from tests.web.test_web_decisions_admin import decision_form, decision_id, past_session
from tests.web.test_web_minutes import MinutesDb, decide, hidden, minutes_db, minutes_id_of, textarea  # noqa: F401
from tests.web.test_web_sessions import (  # noqa: F401 - fixtures
    Crowd, WebMember, admin, create_session, crowd,
)

pytestmark = pytest.mark.integration
ATOM = "application/atom+xml; charset=utf-8"
RSS = "application/rss+xml; charset=utf-8"
TOPICS = ("tout", "seances", "decisions", "comptes-rendus", "annonces")
ALTERNATE = re.compile(r'<link rel="alternate" type="(application/(?:atom|rss)\+xml)" title="([^"]+)" href="([^"]+)">')


# ================================================================ helpers
async def read_feed(http: httpx.AsyncClient, url: str, **kw: Any) -> tuple[httpx.Response, Any]:
    """The feed and what feedparser makes of it (it must parse without error)."""
    r = await http.get(url, **kw)
    assert r.status_code == 200, f"{url}: {r.status_code} {text(r)[:300]}"
    assert r.headers["content-type"] == (ATOM if url.endswith(".atom") else RSS), url
    parsed = feedparser.parse(r.content)
    assert not parsed.bozo, f"{url}: {parsed.get('bozo_exception')}"
    assert parsed.version == ("atom10" if url.endswith(".atom") else "rss20"), url
    return r, parsed


def ids(parsed: Any) -> list[str]:
    return [e.id for e in parsed.entries]


def link(parsed: Any, rel: str) -> str | None:
    found = [x.href for x in parsed.feed.get("links", []) if x.get("rel") == rel]
    assert len(found) <= 1, f"{len(found)} links {rel}"
    return found[0] if found else None


def entry(parsed: Any, kind: Kind, item_id: str) -> Any:
    wanted = entry_id(kind, item_id)
    found = [e for e in parsed.entries if e.id == wanted]
    assert len(found) == 1, f"{kind} {item_id}: {len(found)} entries"
    return found[0]


def updated(e: Any) -> datetime:
    return datetime.fromisoformat(e.updated)  # feedparser's *_parsed would drop the fraction of a second


def path_of(url: str, forum: Stack) -> str:
    assert url.startswith(forum.web_url), url
    return url.removeprefix(forum.web_url)


async def publish_minutes(admin: WebMember, minutes_db: MinutesDb, secretariat: str, sid: str) -> str:
    """The session's minutes, drafted and published without review nor adoption."""
    await minutes_db.wait(session_id=sid, secretariat=secretariat)
    mid = minutes_id_of(await admin.post("/secretariat/comptes-rendus/rediger", {"seance": sid}))
    page = await admin.get(f"/secretariat/comptes-rendus/{mid}")
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/publier",
                         {"adoption": "none", "request_id": hidden(page, "request_id"),
                          "base_revision": hidden(page, "base_revision")})
    assert r.status_code == 303, text(r)
    return mid


async def correct_minutes(admin: WebMember, mid: str) -> None:
    page = await admin.get(f"/secretariat/comptes-rendus/{mid}")
    r = await admin.post(f"/secretariat/comptes-rendus/{mid}/corriger",
                         {"markdown": textarea(page) + "\n\nUn oubli réparé.", "reason": "Oubli réparé",
                          "request_id": hidden(page, "request_id", f"/secretariat/comptes-rendus/{mid}/corriger")})
    assert r.status_code == 303, text(r)


async def sent_announcement(rpc: RpcClient, secretariat: str, title: str, topic: str, *, send: bool = True) -> str:
    """An announcement saved (and sent) by the secretariat, once the notifications service knows the role."""
    deadline = time.monotonic() + 30
    while True:
        try:
            a = await rpc(SaveAnnouncement(actor_id=secretariat, title=title, topic=topic,
                                           body="Bonjour,\n\nLa **plénière** est avancée. <script>x</script>"))
            break
        except RpcError as exc:
            if exc.code != ErrorCode.FORBIDDEN or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)
    if send:
        await rpc(ControlAnnouncement(actor_id=secretariat, announcement_id=a.announcement_id,
                                      action=AnnouncementAction.SEND))
    return a.announcement_id


# ================================================================ every feed parses; ids stable; links work
async def test_every_feed_parses_with_stable_ids_and_working_links(admin: WebMember, crowd: Crowd, forum: Stack,
                                                                   minutes_db: MinutesDb, secretariat: str) -> None:
    tag = uuid.uuid4().hex[:6]
    upcoming = await create_session(admin, title=f"Groupe santé à venir {tag}", kind="working_group",
                                    theme="health")
    held = await past_session(admin, title=f"Groupe santé tenu {tag}", kind="working_group", theme="health")
    decided = await decide(admin, held, f"Ouvrir les données de santé {tag}")
    mid = await publish_minutes(admin, minutes_db, secretariat, held)
    public = crowd.client()

    ours = {"seances": {(Kind.SESSION, upcoming), (Kind.SESSION, held)}, "decisions": {(Kind.DECISION, decided)},
            "comptes-rendus": {(Kind.MINUTES, mid)}, "annonces": set()}
    ours["tout"] = set().union(*ours.values())
    catalogue = feed_catalogue(forum.web_url)
    assert [g.key for g in catalogue] == ["tout", *(t.value for t in Theme)]
    for group in catalogue:
        assert [f.atom.rsplit("/", 1)[1] for f in group.feeds] == [f"{t}.atom" for t in TOPICS]
        for feed, topic in zip(group.feeds, TOPICS, strict=True):
            for url in (feed.atom, feed.rss):
                r, parsed = await read_feed(public, path_of(url, forum))
                assert parsed.feed.title.startswith("Forum ouvert — ") and parsed.feed.get("language", "fr") == "fr"
                assert link(parsed, "self") == url and link(parsed, "alternate")
                if url.endswith(".atom"):
                    assert parsed.feed.id.startswith("urn:uuid:") and parsed.feed.author
                    assert all(e.get("published") and e.get("updated") for e in parsed.entries)
                else:
                    assert all(e.get("published") for e in parsed.entries)  # pubDate
                    assert '<guid isPermaLink="false">urn:uuid:' in r.text or not parsed.entries
                assert len(parsed.entries) <= PAGE_SIZE
                found = set(ids(parsed))
                expected = {entry_id(k, i) for k, i in ours[topic]}
                if group.key in ("tout", "health"):
                    assert expected <= found, f"{url}: missing our entries"
                else:
                    assert not expected & found, f"{url}: a health item in another group's feed"
                again = await public.get(path_of(url, forum))
                assert ids(feedparser.parse(again.content)) == ids(parsed), f"{url}: ids changed"
                assert again.headers["etag"] == r.headers["etag"] and again.content == r.content

    # The everything feed: each entry leads to a public page that exists, with what the entry says.
    _, parsed = await read_feed(public, "/flux/tout.atom")
    for e in parsed.entries:
        page = await public.get(path_of(e.link, forum))
        assert page.status_code == 200, f"{e.link}: {page.status_code}"
    mine = entry(parsed, Kind.DECISION, decided)
    assert mine.link == f"{forum.web_url}/decisions/{decided}" and f"Ouvrir les données de santé {tag}" in mine.title
    assert "<strong>recommande</strong>" in mine.content[0].value  # the decision's Markdown, as HTML
    assert entry(parsed, Kind.MINUTES, mid).link == f"{forum.web_url}/comptes-rendus/{mid}"
    assert entry(parsed, Kind.SESSION, upcoming).title == f"Séance : Groupe santé à venir {tag}"


# ================================================================ corrections update their entries
async def test_corrected_decision_and_minutes_update_their_entries(admin: WebMember, crowd: Crowd, forum: Stack,
                                                                   minutes_db: MinutesDb, secretariat: str) -> None:
    tag = uuid.uuid4().hex[:6]
    sid = await past_session(admin, title=f"Groupe justice {tag}", kind="working_group", theme="justice")
    first = await decide(admin, sid, f"Publier les décisions de justice {tag}")
    mid = await publish_minutes(admin, minutes_db, secretariat, sid)
    public = crowd.client()
    feeds = ("/flux/decisions.atom", "/flux/groupes/justice/decisions.atom", "/flux/decisions.rss")
    before = {url: (await read_feed(public, url)) for url in feeds}

    corrected = decision_id(await admin.post(f"/secretariat/decisions/{first}/corriger", decision_form(
        title=f"Publier les décisions de justice, corrigée {tag}", method="consensus", outcome="deferred")))
    for url in feeds:
        r, parsed = await read_feed(public, url)
        old, new = entry(before[url][1], Kind.DECISION, first), entry(parsed, Kind.DECISION, first)
        assert updated(new) > updated(old), f"{url}: the corrected decision's entry was not updated"
        assert new.published == old.published and new.id == old.id
        assert new.title.endswith("(corrigée)")
        assert entry(parsed, Kind.DECISION, corrected)  # the correction is an entry of its own
        assert r.headers["etag"] != before[url][0].headers["etag"]

    minutes_feeds = ("/flux/comptes-rendus.atom", "/flux/groupes/justice/comptes-rendus.rss")
    before = {url: (await read_feed(public, url)) for url in minutes_feeds}
    await correct_minutes(admin, mid)
    for url in minutes_feeds:
        _, parsed = await read_feed(public, url)
        old, new = entry(before[url][1], Kind.MINUTES, mid), entry(parsed, Kind.MINUTES, mid)
        assert updated(new) > updated(old) and new.published == old.published
        assert "Version 2 (corrigée)" in new.summary


# ================================================================ RFC 5005 archives
async def check_archives(public: httpx.AsyncClient, forum: Stack, current_url: str, expected: set[str]) -> None:
    """From the current feed back to page 1: each page full, linked both ways and to the current feed, marked
    as an archive; together they hold every expected entry exactly once."""
    _, current = await read_feed(public, current_url)
    assert len(current.entries) == PAGE_SIZE and link(current, "next-archive") is None
    seen: list[str] = []
    url, pages, newer = link(current, "prev-archive"), 0, None
    assert url, "no prev-archive link"
    while url:
        r, page = await read_feed(public, path_of(url, forum))
        pages += 1
        assert "<fh:archive/>" in r.text and len(page.entries) == PAGE_SIZE
        assert link(page, "current") == forum.web_url + current_url
        assert link(page, "next-archive") == newer
        seen += ids(page)
        newer, url = url, link(page, "prev-archive")
    assert newer.endswith(("/archives/1.atom", "/archives/1.rss"))  # the chain ends at page 1, the oldest
    assert len(seen) == len(set(seen)) == pages * PAGE_SIZE, "an entry is in two archive pages"
    assert set(seen) | set(ids(current)) == expected
    # The current feed (the newest entries) overlaps only the part of the newest archive page it repeats.
    assert len(set(seen) & set(ids(current))) == (pages + 1) * PAGE_SIZE - len(expected)
    again = await public.get(path_of(newer, forum))
    assert ids(feedparser.parse(again.content)) == ids(page)  # an archive page does not move


async def test_archives_chain_and_cover_every_entry_once(admin: WebMember, crowd: Crowd, forum: Stack,
                                                         rpc: RpcClient) -> None:
    theme = "education"
    have = (await rpc(ListSessions(when=SessionPeriod.ALL, theme=Theme(theme), limit=1))).total
    wanted = 2 * PAGE_SIZE + 7
    gate = asyncio.Semaphore(8)

    async def one(i: int) -> str:
        async with gate:
            return await create_session(admin, title=f"Groupe éducation n° {i}", kind="working_group", theme=theme,
                                        start=timedelta(days=10, hours=i))
    await asyncio.gather(*(one(i) for i in range(max(0, wanted - have))))
    sessions = await rpc(ListSessions(when=SessionPeriod.ALL, theme=Theme(theme), limit=500))
    assert len(sessions.sessions) == sessions.total >= wanted
    expected = {entry_id(Kind.SESSION, s.session_id) for s in sessions.sessions}
    public = crowd.client()
    for fmt in ("atom", "rss"):
        await check_archives(public, forum, f"/flux/groupes/{theme}/seances.{fmt}", expected)
    # The global sessions feed has archives too; pages that do not exist (yet) are a readable 404.
    _, current = await read_feed(public, "/flux/seances.atom")
    last = int(re.search(r"/archives/(\d+)\.atom$", link(current, "prev-archive")).group(1))
    for bad in (f"/flux/seances/archives/{last + 1}.atom", "/flux/seances/archives/0.rss",
                "/flux/seances/archives/un.atom", f"/flux/groupes/{theme}/seances/archives/99999.atom"):
        r = await public.get(bad)
        assert r.status_code == 404 and h1(r) == "Flux introuvable", bad


# ================================================================ conditional requests
async def test_etag_and_last_modified_answer_304(admin: WebMember, crowd: Crowd) -> None:
    public = crowd.client()
    await create_session(admin, title=f"Groupe transparence {uuid.uuid4().hex[:6]}", kind="working_group",
                         theme="transparency")
    url = "/flux/groupes/transparency/seances.atom"
    r, _ = await read_feed(public, url)
    etag, modified = r.headers["etag"], r.headers["last-modified"]
    assert re.fullmatch(r'"[0-9a-f]+"', etag) and parsedate_to_datetime(modified)
    for headers in ({"If-None-Match": etag}, {"If-None-Match": f'"autre", W/{etag}'}, {"If-Modified-Since": modified},
                    {"If-Modified-Since": format_datetime(parsedate_to_datetime(modified) + timedelta(hours=1),
                                                          usegmt=True)}):
        again = await public.get(url, headers=headers)
        assert again.status_code == 304 and again.content == b"", headers
        assert again.headers["etag"] == etag
    earlier = format_datetime(parsedate_to_datetime(modified) - timedelta(seconds=1), usegmt=True)
    for headers in ({"If-None-Match": '"autre"'}, {"If-Modified-Since": earlier},
                    {"If-None-Match": '"autre"', "If-Modified-Since": modified}):  # If-None-Match wins
        again = await public.get(url, headers=headers)
        assert again.status_code == 200 and again.content == r.content, headers
    head = await public.head(url)
    assert head.status_code == 200 and head.headers["etag"] == etag

    # Something new: the old ETag no longer matches.
    await create_session(admin, title=f"Groupe transparence {uuid.uuid4().hex[:6]}", kind="working_group",
                         theme="transparency")
    changed = await public.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert parsedate_to_datetime(changed.headers["last-modified"]) >= parsedate_to_datetime(modified)


# ================================================================ feed readers find the feeds; calendars
async def test_pages_advertise_their_feeds(crowd: Crowd) -> None:
    public = crowd.client()
    for page, topic in (("/", "tout"), ("/seances", "seances"), ("/seances/passees", "seances"),
                        ("/decisions", "decisions"), ("/comptes-rendus", "comptes-rendus")):
        r = await public.get(page)
        head = r.text.split("</head>", 1)[0]
        found = ALTERNATE.findall(head)
        assert [(t, href) for t, _, href in found] == [("application/atom+xml", f"/flux/{topic}.atom"),
                                                       ("application/rss+xml", f"/flux/{topic}.rss")], page
        assert all(title.startswith("Forum ouvert — ") for _, title, _ in found)
        for _, _, href in found:
            await read_feed(public, href)
    # A page filtered on a working group also offers that group's feed.
    r = await public.get("/comptes-rendus", params={"theme": "health"})
    hrefs = [href for _, _, href in ALTERNATE.findall(r.text.split("</head>", 1)[0])]
    assert "/flux/groupes/health/comptes-rendus.atom" in hrefs and "/flux/comptes-rendus.rss" in hrefs
    r = await public.get("/seances", params={"theme": "justice"})
    assert 'href="/flux/groupes/justice/seances.rss"' in r.text.split("</head>", 1)[0]


async def test_icalendar_feeds_parse(admin: WebMember, crowd: Crowd, forum: Stack) -> None:
    sid = await create_session(admin, title=f"Plénière au calendrier {uuid.uuid4().hex[:6]}")
    calendars = [c for g in feed_catalogue(forum.web_url) for c in g.calendars]
    assert calendars
    public = crowd.client()
    for c in calendars:
        r = await public.get(path_of(c.url, forum))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
        events = list(Calendar.from_ical(r.content).walk("VEVENT"))
        assert any(sid in str(e.get("UID")) or sid in str(e.get("URL")) for e in events), c.url


async def test_unknown_feeds_are_a_readable_404(crowd: Crowd) -> None:
    public = crowd.client()
    for url in ("/flux/inconnu.atom", "/flux/seances.json", "/flux/seances.xml", "/flux/groupes/inconnu/seances.atom",
                "/flux/groupes/health/inconnu.rss", "/flux/groupes/Health/seances.atom",
                "/flux/groupes/health/seances/archives/0.atom", "/flux/tout/archives/-1.rss"):
        r = await public.get(url)
        assert r.status_code == 404, url
        assert h1(r) == "Flux introuvable" and "S'abonner" in text(r), url


# ================================================================ announcements
async def test_sent_announcements_reach_their_feeds_and_pages(crowd: Crowd, forum: Stack, rpc: RpcClient,
                                                              secretariat: str) -> None:
    tag = uuid.uuid4().hex[:6]
    sent = await sent_announcement(rpc, secretariat, f"Plénière avancée {tag}", theme_topic("health"))
    general = await sent_announcement(rpc, secretariat, f"Nouvelle charte {tag}", "announcements")
    draft = await sent_announcement(rpc, secretariat, f"Brouillon {tag}", "announcements", send=False)
    deadline = time.monotonic() + 30
    while {sent, general} - {a.announcement_id for a in (await rpc(ListAnnouncements(sent_only=True))).items}:
        assert time.monotonic() < deadline, "the announcements are not listed as sent"
        await asyncio.sleep(0.3)
    public = crowd.client()

    listing = await public.get("/annonces")
    assert listing.status_code == 200 and h1(listing) == "Annonces du secrétariat"
    assert f'href="/annonces/{sent}"' in listing.text and f'href="/annonces/{general}"' in listing.text
    assert draft not in listing.text
    assert listing.text.index(general) < listing.text.index(sent)  # newest first
    assert ALTERNATE.findall(listing.text.split("</head>", 1)[0])[0][2] == "/flux/annonces.atom"
    page = await public.get(f"/annonces/{sent}")
    assert page.status_code == 200 and h1(page) == f"Plénière avancée {tag}"
    assert "<strong>plénière</strong>" in page.text and "<script>" not in page.text.split('id="annonce-texte"')[1]
    assert "Groupe de travail : Santé" in text(page) and "envoyée le" in text(page)
    for unknown in (draft, str(uuid.uuid4()), "pas un identifiant !"):
        r = await public.get(f"/annonces/{unknown}")
        assert r.status_code == 404 and h1(r) == "Annonce introuvable", unknown

    for url, present, absent in (("/flux/annonces.atom", {sent, general}, {draft}),
                                 ("/flux/tout.rss", {sent, general}, {draft}),
                                 ("/flux/groupes/health/annonces.atom", {sent}, {general, draft}),
                                 ("/flux/groupes/health/tout.atom", {sent}, {general, draft}),
                                 ("/flux/groupes/justice/annonces.rss", set(), {sent, general, draft})):
        _, parsed = await read_feed(public, url)
        found = set(ids(parsed))
        assert {entry_id(Kind.ANNOUNCEMENT, a) for a in present} <= found, url
        assert not {entry_id(Kind.ANNOUNCEMENT, a) for a in absent} & found, url
    r, parsed = await read_feed(public, "/flux/annonces.atom")
    e = entry(parsed, Kind.ANNOUNCEMENT, sent)
    assert e.link == f"{forum.web_url}/annonces/{sent}" and e.title == f"Plénière avancée {tag}"
    assert "<strong>plénière</strong>" in e.content[0].value
    assert "&lt;script&gt;" not in r.text and "&amp;lt;script&amp;gt;x" in r.text  # shown as text, never as a tag
