"""Atom 1.0 (RFC 4287) and RSS 2.0 feeds of the forum's sessions, decisions, minutes and announcements,
globally and per working group (theme), with RFC 5005 paged archives; and the catalogue of every feed
(and of the iCalendar feeds) that the page « S'abonner » lists.

Pure: the routes (services/web/routes/feeds.py) fetch the views from the services and hand them here.

Stable by construction, so that a feed reader never sees a « new » entry twice:
- an entry's id is a name-based UUID (uuid5) of its kind and its item's id: it never changes;
- entries are ordered by `published` (when the item first appeared: a session's creation, a decision's
  recording, minutes' first publication, an announcement's send), which never changes either, so the
  archive page an entry falls in never changes;
- a feed document's `updated` is the latest `updated` of its entries (never « now »): the same data gives
  the same bytes, hence the same ETag.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from feedgen.ext.base import BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree
from markupsafe import Markup, escape

from forumlib.markdown import render_markdown
from shared import clock
from shared.contracts.decisions import OUTCOME_LABELS, DecisionView
from shared.contracts.forum import KIND_LABELS, THEME_LABELS, SessionStatus, SessionView, Theme
from shared.contracts.minutes import AdoptionKind, MinutesSummary
from shared.contracts.notifications import AnnouncementView

PAGE_SIZE = 50
"""Entries in the current feed, and in each archive page."""
ATOM_TYPE = "application/atom+xml; charset=utf-8"
RSS_TYPE = "application/rss+xml; charset=utf-8"
FORMATS = {"atom": ATOM_TYPE, "rss": RSS_TYPE}
HISTORY_NS = "http://purl.org/syndication/history/1.0"  # RFC 5005
ATOM_NS = "http://www.w3.org/2005/Atom"
# The namespace of the entry and feed ids (a fixed, random UUID: changing it would change every id).
ID_NAMESPACE = uuid.UUID("6f1d6f43-2f0c-4c55-9a55-0e3f7d0f4a11")
EMPTY_FEED_UPDATED = datetime(2024, 1, 1, tzinfo=UTC)  # `updated` of a feed with no entry yet (stable)
AUTHOR = "Forum ouvert — secrétariat"


# ---------------------------------------------------------------- what a feed is about
class Kind(StrEnum):
    SESSION = "session"
    DECISION = "decision"
    MINUTES = "minutes"
    ANNOUNCEMENT = "announcement"


@dataclass(frozen=True)
class Topic:
    slug: str           # in the address: /flux/{slug}.atom
    label: str          # « Décisions »
    kinds: tuple[Kind, ...]
    page: str           # the HTML page the feed mirrors (its alternate link)


TOPICS: dict[str, Topic] = {t.slug: t for t in (
    Topic("tout", "Toute l'actualité", tuple(Kind), "/"),
    Topic("seances", "Séances", (Kind.SESSION,), "/seances"),
    Topic("decisions", "Décisions", (Kind.DECISION,), "/decisions"),
    Topic("comptes-rendus", "Comptes rendus", (Kind.MINUTES,), "/comptes-rendus"),
    Topic("annonces", "Annonces du secrétariat", (Kind.ANNOUNCEMENT,), "/annonces"),
)}


@dataclass(frozen=True)
class FeedSpec:
    """One logical feed: a topic, globally or for one working group."""

    topic: Topic
    theme: Theme | None = None

    @property
    def base_path(self) -> str:
        """/flux/decisions or /flux/groupes/health/decisions (add `.atom`, or `/archives/3.atom`)."""
        group = f"groupes/{self.theme.value}/" if self.theme else ""
        return f"/flux/{group}{self.topic.slug}"

    def path(self, fmt: str, page: int | None = None) -> str:
        return f"{self.base_path}/archives/{page}.{fmt}" if page else f"{self.base_path}.{fmt}"

    @property
    def title(self) -> str:
        group = f" — Groupe de travail : {THEME_LABELS[self.theme]}" if self.theme else ""
        return f"Forum ouvert — {self.topic.label}{group}"

    @property
    def html_page(self) -> str:
        if self.theme is None:
            return self.topic.page
        if self.topic.slug == "comptes-rendus":
            return f"/comptes-rendus?theme={self.theme.value}"
        if self.topic.slug in ("decisions", "annonces"):
            return self.topic.page
        return f"/seances?theme={self.theme.value}"

    @property
    def feed_id(self) -> str:
        """The same for the current feed and its archives (one logical feed), in Atom and RSS."""
        return uuid.uuid5(ID_NAMESPACE, "feed:" + self.base_path).urn


def feed_spec(topic: str, theme: str | None = None) -> FeedSpec | None:
    """The feed at this address, or None for an unknown topic or theme."""
    if topic not in TOPICS:
        return None
    if theme is None:
        return FeedSpec(TOPICS[topic])
    themes = {t.value: t for t in Theme}
    return FeedSpec(TOPICS[topic], themes[theme]) if theme in themes else None


# ---------------------------------------------------------------- entries
@dataclass(frozen=True)
class Entry:
    kind: Kind
    item_id: str
    title: str
    path: str               # the public page: /decisions/{id}
    published: datetime     # first appearance: never changes
    updated: datetime       # last change that shows in the entry
    summary: str            # one line, plain text
    content: Markup         # sanitised HTML
    category: str

    @property
    def entry_id(self) -> str:
        return entry_id(self.kind, self.item_id)

    @property
    def order(self) -> tuple[datetime, str]:
        return (self.published, self.entry_id)


def entry_id(kind: Kind, item_id: str) -> str:
    """`urn:uuid:…`, derived from the kind and the item's id: the same on every run and every server."""
    return uuid.uuid5(ID_NAMESPACE, f"{kind.value}:{item_id}").urn


def _p(*parts: str | Markup) -> Markup:
    return Markup("<p>{}</p>").format(Markup("").join(escape(p) for p in parts))


def session_entry(s: SessionView) -> Entry:
    cancelled = s.status == SessionStatus.CANCELLED
    what = KIND_LABELS[s.kind] + (f" — {THEME_LABELS[s.theme]}" if s.theme else "")
    where = ", ".join(x for x in (s.place, "en ligne" if s.online_url else None) if x) or "lieu à préciser"
    when = clock.paris_span(s.starts_at, s.ends_at)
    parts = [_p(what, ", ", when, ". Lieu : ", where, ".")]
    if cancelled:
        parts.insert(0, _p("Cette séance est annulée", f" : {s.cancel_reason}" if s.cancel_reason else "", "."))
    if s.description:
        parts.append(Markup("").join(_p(para.strip()) for para in s.description.split("\n\n") if para.strip()))
    if s.agenda:
        items = Markup("").join(Markup("<li>{}</li>").format(a.text) for a in s.agenda)
        parts.append(Markup("<p>Ordre du jour :</p><ol>{}</ol>").format(items))
    title = ("Séance annulée : " if cancelled else "Séance : ") + s.title
    return Entry(Kind.SESSION, s.session_id, title, f"/seances/{s.session_id}", clock.as_utc(s.created_at),
                 clock.as_utc(max(s.updated_at, s.cancelled_at or s.updated_at)),
                 f"{what}, {when}." + (" Séance annulée." if cancelled else ""), Markup("").join(parts), what)


def decision_entries(decisions: Iterable[DecisionView]) -> list[Entry]:
    """One entry per decision. A corrected (superseded) decision's entry is updated when its
    correction was recorded, and says which decision corrects it."""
    views = list(decisions)
    by_id = {d.decision.decision_id: d.decision for d in views}
    out = []
    for d in views:
        info = d.decision
        updated = info.recorded_at
        parts = [_p(f"Décision n° {info.number} — {OUTCOME_LABELS[info.outcome]}. Séance : {info.session_title} ; "
                    f"point {info.agenda_position} de l'ordre du jour : {info.agenda_text}.")]
        if d.superseded_by:
            corrector = by_id.get(d.superseded_by)
            if corrector is not None:
                updated = max(updated, corrector.recorded_at)
                parts.append(_p(f"Cette décision a été corrigée par la décision n° {corrector.number}."))
            else:
                parts.append(_p("Cette décision a été corrigée."))
        if info.supersedes and info.supersedes in by_id:
            parts.append(_p(f"Elle corrige la décision n° {by_id[info.supersedes].number}."))
        parts.append(render_markdown(info.text))
        title = f"Décision n° {info.number} : {info.title}" + (" (corrigée)" if d.superseded_by else "")
        out.append(Entry(Kind.DECISION, info.decision_id, title, f"/decisions/{info.decision_id}",
                         clock.as_utc(info.recorded_at), clock.as_utc(updated),
                         f"{OUTCOME_LABELS[info.outcome]} — {info.session_title}.", Markup("").join(parts),
                         "Décisions"))
    return out


ADOPTION_TEXTS = {
    AdoptionKind.DECISION: "Adopté par la décision n° {number}.",
    AdoptionKind.VOTE: "Adopté par un vote des participants de la séance.",
    AdoptionKind.NONE: "Publié sans adoption.",
}


def minutes_entry(m: MinutesSummary) -> Entry | None:
    """Published minutes (None for a draft). A correction (a new version) updates the entry."""
    if m.latest_version is None or m.first_published_at is None:
        return None
    s = m.session
    what = KIND_LABELS[s.kind] + (f" — {THEME_LABELS[s.theme]}" if s.theme else "")
    version = (f"Version {m.latest_version} (corrigée), publiée le {clock.paris_date(m.latest_published_at)}."
               if m.latest_version > 1 else f"Publié le {clock.paris_date(m.first_published_at)}.")
    parts = [_p(f"{what}, séance {clock.paris_span(s.starts_at, s.ends_at)}."), _p(version)]
    if m.adoption is not None:
        parts.append(_p(ADOPTION_TEXTS[m.adoption.kind].format(number=m.adoption.decision_number or "")))
    return Entry(Kind.MINUTES, m.minutes_id, f"Compte rendu : {s.title}", f"/comptes-rendus/{m.minutes_id}",
                 clock.as_utc(m.first_published_at), clock.as_utc(m.latest_published_at or m.first_published_at),
                 f"{what}. {version}", Markup("").join(parts), "Comptes rendus")


def announcement_entry(a: AnnouncementView) -> Entry | None:
    """A sent announcement (None for a draft: nothing public yet)."""
    if a.sent_at is None:
        return None
    return Entry(Kind.ANNOUNCEMENT, a.announcement_id, a.title, f"/annonces/{a.announcement_id}",
                 clock.as_utc(a.sent_at), clock.as_utc(a.sent_at), f"Annonce du secrétariat — {a.topic_label}.",
                 render_markdown(a.body), a.topic_label)


# ---------------------------------------------------------------- pages (RFC 5005)
@dataclass(frozen=True)
class FeedPage:
    """The entries of one document, newest first, and its neighbours (archive page numbers)."""

    entries: list[Entry]
    page: int | None            # None: the current feed
    prev_archive: int | None    # older
    next_archive: int | None    # newer (archives only)

    @property
    def updated(self) -> datetime:
        return max((e.updated for e in self.entries), default=EMPTY_FEED_UPDATED)


def archive_count(total: int, size: int = PAGE_SIZE) -> int:
    """Archive pages are the full pages counted from the oldest entry: they never change."""
    return total // size


def paginate(entries: Iterable[Entry], page: int | None, size: int = PAGE_SIZE) -> FeedPage | None:
    """The current feed (page None: the newest `size` entries) or archive page `page` (1 = oldest);
    None for a page that does not exist (yet)."""
    ordered = sorted(entries, key=lambda e: e.order)
    archives = archive_count(len(ordered), size)
    if page is None:
        return FeedPage(list(reversed(ordered[-size:])), None, archives or None, None)
    if not 1 <= page <= archives:
        return None
    chunk = ordered[(page - 1) * size:page * size]
    return FeedPage(list(reversed(chunk)), page, page - 1 or None, page + 1 if page < archives else None)


# ---------------------------------------------------------------- rendering
class _History(BaseExtension):
    """RFC 5005 in both formats: `<fh:archive/>` on archive pages and, in RSS (where feedgen writes only the
    self link), the `atom:link` elements of the archive chain."""

    def __init__(self) -> None:
        self.archive = False
        self.rss_links: list[tuple[str, str]] = []  # (rel, href)

    def extend_ns(self) -> dict[str, str]:
        return {"fh": HISTORY_NS}

    def extend_atom(self, feed: etree._Element) -> etree._Element:
        if self.archive:
            etree.SubElement(feed, f"{{{HISTORY_NS}}}archive")
        return feed

    def extend_rss(self, feed: etree._Element) -> etree._Element:
        channel = feed.find("channel")
        for rel, href in self.rss_links:
            etree.SubElement(channel, f"{{{ATOM_NS}}}link", rel=rel, href=href,
                             type="application/rss+xml")
        if self.archive:
            etree.SubElement(channel, f"{{{HISTORY_NS}}}archive")
        return feed


class _HistoryEntry(BaseExtension):
    """An RSS item has no « updated »: `atom:updated` carries it, so that a correction shows in RSS too."""

    def __init__(self) -> None:
        self.updated: datetime | None = None

    def extend_rss(self, item: etree._Element) -> etree._Element:
        if self.updated is not None:
            etree.SubElement(item, f"{{{ATOM_NS}}}updated").text = self.updated.isoformat()
        return item


def render_feed(spec: FeedSpec, doc: FeedPage, fmt: str, public_url: str) -> bytes:
    """The document as Atom or RSS bytes (the same input gives the same bytes)."""
    base = public_url.rstrip("/")
    media = "application/atom+xml" if fmt == "atom" else "application/rss+xml"
    fg = FeedGenerator()
    fg.register_extension("history", _History, _HistoryEntry)
    fg.id(spec.feed_id)
    title = spec.title + (f" — archives, page {doc.page}" if doc.page else "")
    fg.title(title)
    fg.subtitle(f"{spec.topic.label} du forum ouvert du Partenariat pour un gouvernement ouvert (CESE)"
                + (f", groupe de travail « {THEME_LABELS[spec.theme]} »" if spec.theme else "") + ".")
    fg.author({"name": AUTHOR, "uri": base + "/"})
    fg.language("fr")
    fg.generator("Forum ouvert", uri=base + "/")
    fg.rights("Licence Ouverte / Etalab 2.0")
    fg.updated(doc.updated)
    fg.lastBuildDate(doc.updated)
    fg.link(href=base + spec.path(fmt, doc.page), rel="self", type=media)
    chain: list[tuple[str, str]] = []
    if doc.page is not None:
        chain.append(("current", base + spec.path(fmt)))
    if doc.prev_archive:
        chain.append(("prev-archive", base + spec.path(fmt, doc.prev_archive)))
    if doc.next_archive:
        chain.append(("next-archive", base + spec.path(fmt, doc.next_archive)))
    for rel, href in chain:
        fg.link(href=href, rel=rel, type=media)
    fg.history.archive = doc.page is not None
    fg.history.rss_links = chain
    # Last: feedgen takes the last link as the RSS channel's <link>, the HTML page.
    fg.link(href=base + spec.html_page, rel="alternate", type="text/html")
    fg.description(fg.subtitle())
    for e in doc.entries:
        fe = fg.add_entry(order="append")
        fe.id(e.entry_id)
        fe.guid(e.entry_id, permalink=False)
        fe.title(e.title)
        fe.link(href=base + e.path, rel="alternate", type="text/html")
        fe.published(e.published)
        fe.updated(e.updated)
        fe.summary(e.summary)
        fe.content(str(e.content), type="html")
        fe.category(term=e.kind.value, label=e.category)
        fe.history.updated = e.updated
    return fg.atom_str(pretty=True) if fmt == "atom" else fg.rss_str(pretty=True)


# ---------------------------------------------------------------- the catalogue (page « S'abonner »)
@dataclass(frozen=True)
class FeedLink:
    label: str   # « Séances »
    atom: str    # absolute addresses: what one pastes into a feed reader
    rss: str


@dataclass(frozen=True)
class CalendarLink:
    label: str
    url: str


@dataclass(frozen=True)
class FeedGroup:
    key: str                 # `tout`, or the theme's value: an HTML id
    title: str               # « Tout le forum », « Groupe de travail : Santé »
    feeds: list[FeedLink]
    calendars: list[CalendarLink] = field(default_factory=list)


def feed_links(spec: FeedSpec, public_url: str) -> FeedLink:
    base = public_url.rstrip("/")
    return FeedLink(spec.topic.label, base + spec.path("atom"), base + spec.path("rss"))


def feed_catalogue(public_url: str) -> list[FeedGroup]:
    """Every Atom/RSS feed, globally then per working group, and the iCalendar feeds."""
    base = public_url.rstrip("/")
    groups = [FeedGroup("tout", "Tout le forum", [feed_links(FeedSpec(t), base) for t in TOPICS.values()],
                        [CalendarLink("Toutes les séances (plénières et groupes de travail)", base + "/seances.ics")])]
    for theme in Theme:
        groups.append(FeedGroup(theme.value, f"Groupe de travail : {THEME_LABELS[theme]}",
                                [feed_links(FeedSpec(t, theme), base) for t in TOPICS.values()]))
    return groups

