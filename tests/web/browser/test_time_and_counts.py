"""One source for every count, and pages that know what time it is — in headless Chromium, on a forum filled
with the demo content (the package's `demo_forum`, shared with the page sweep).

- The same figure reads the same wherever it is shown: approved members in the demo's banner, the
  secretariat's list and the electorate of an open vote; a session's attendance on the list, its page, the
  decisions recorded there and « Mes séances »; the ballots of a vote on its page and on its decision's. A
  quorum is a snapshot (the check-in sheet when the decision was recorded, or the voters of an online vote)
  and says so, beside the sheet as it stands today.
- A past session shows who came and its minutes, never seats or an answer button; a cancelled one says so; a
  member's « Mes séances » says present, absent or not yet checked in; a decision's record status never
  contradicts its verified proof (even when the browser verifies it before the page knew); the public
  record's last entry has no « suivant »."""
from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from faststream.nats import NatsBroker
from playwright.sync_api import Browser, Page, Route, expect

from forum_ouvert.demo import SECRETARIAT_EMAIL, _email
from forum_ouvert.launcher import Stack
from shared.contracts.common import ErrorCode
from shared.contracts.decisions import Method, Outcome, RecordDecision
from shared.contracts.forum import AnswerRsvp, CheckIn, CreateSession
from shared.contracts.registry import ListMembers
from shared.rpc import RpcClient, RpcError
from tests.web.browser.conftest import DemoForum, in_thread
from tests.web.browser.test_registration_journey import Visitor
from tests.web.browser.test_waitlist_journey import sign_in
from tests.web.test_web_sessions import ForumDb

pytestmark = pytest.mark.browser
PLENARY = "Plénière de lancement du forum ouvert"
SHORT = "Atelier éclair"  # sessions made by this module, held (by time travel) while the tests run
# A came; B held a seat and did not come; C was checked in after a decision was recorded (a late check-in).
A, B, C = "Antoine Girard", "Hugo Mercier", "Pierre Lambert"


@dataclass
class Demo:
    stack: Stack
    banner: str
    secretariat: str
    members: dict[str, str]  # name -> member id
    held: str                # a session of the coming hour: A present, B absent
    unchecked: str           # one nobody was checked in at (A held a seat)


async def _rpc(stack: Stack, *requests: object, retry: bool = False) -> list[object]:
    async with NatsBroker(stack.nats_url) as broker:
        rpc = RpcClient(broker, timeout=30)
        out = []
        for req in requests:
            for attempt in range(100):  # services learn members and sessions from each other's events
                try:
                    out.append(await rpc(req))  # type: ignore[arg-type]
                    break
                except RpcError as exc:
                    if not retry or exc.code not in (ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND) or attempt == 99:
                        raise
                    await asyncio.sleep(0.2)
        return out


@pytest.fixture(scope="module")
def demo(demo_forum: DemoForum) -> Demo:
    stack, sec = demo_forum.stack, demo_forum.secretariat
    [listed] = in_thread(_rpc(stack, ListMembers(actor_id=sec)))
    members = {m.full_name: m.member_id for m in listed.members}  # type: ignore[attr-defined]
    # Two sessions of the coming hour, answered now; a test moves them into the past (time travel in the
    # forum's own table) instead of waiting for them to be held.
    now = datetime.now(UTC)
    starts, ends = now + timedelta(hours=1), now + timedelta(hours=2)
    fields = dict(kind="working_group", theme="health", starts_at=starts, ends_at=ends, place="CESE, salle 221",
                  capacity=10, rsvp_opens_at=now - timedelta(hours=1), rsvp_closes_at=starts,
                  agenda=["Tour de table"])
    held, unchecked = in_thread(_rpc(stack, CreateSession(actor_id=sec, title=f"{SHORT} : présences", **fields),
                                     CreateSession(actor_id=sec, title=f"{SHORT} : sans émargement", **fields)))
    in_thread(_rpc(stack, AnswerRsvp(actor_id=members[A], session_id=held.session_id, answer="attend"),
                   AnswerRsvp(actor_id=members[B], session_id=held.session_id, answer="attend"),
                   AnswerRsvp(actor_id=members[A], session_id=unchecked.session_id, answer="attend"),
                   CheckIn(actor_id=sec, session_id=held.session_id, member_id=members[A]), retry=True))
    return Demo(stack, demo_forum.banner, sec, members, held.session_id, unchecked.session_id)


@pytest.fixture(autouse=True)
def patient_expectations() -> Iterator[None]:
    """This module's own stack shares the machine with the rest: give a page more than 5 s to show."""
    expect.set_options(timeout=30_000)
    yield
    expect.set_options(timeout=5_000)


def person(browser: Browser, stack: Stack) -> Visitor:
    """A browser tab on the demo forum, patient: this module's own stack shares the machine with the rest."""
    v = Visitor(browser, stack)
    v.page.set_default_timeout(60_000)
    v.page.set_default_navigation_timeout(90_000)
    return v


def number(text: str, pattern: str) -> int:
    m = re.search(pattern, text)
    assert m, f"« {pattern} » not in « {text} »"
    return int(m.group(1))


def per_college(page: Page, table: str, column: int) -> dict[str, int]:
    """College label -> the figure in `column` of a table whose rows are headed by a college."""
    out = {}
    for row in page.locator(f"#{table} tbody tr").all():
        label, cells = row.locator("th").inner_text().strip(), row.locator("td").all_inner_texts()
        out[label] = int(cells[column])
    return out


def test_every_count_has_one_source(demo: Demo, browser: Browser) -> None:
    clerk, member, visitor = person(browser, demo.stack), person(browser, demo.stack), person(browser, demo.stack)
    try:
        # -- approved members: the banner, the secretariat's list, the electorate of a vote open to all of them
        banner_approved = number(demo.banner, r"\((\d+) validés")
        banner_accounts = number(demo.banner, r"(\d+) comptes? du secrétariat")
        sign_in(clerk, SECRETARIAT_EMAIL)
        clerk.goto("/secretariat/membres?statut=approved")
        rows = clerk.page.locator("#table-membres tbody tr")
        listed = number(clerk.page.locator("#table-membres caption").inner_text(), r"\((\d+)\)")
        accounts = rows.filter(has_text="Secrétariat").count()
        assert rows.count() == listed  # one page holds them all
        assert (listed - accounts, accounts) == (banner_approved, banner_accounts)
        visitor.goto("/votes")
        open_vote = visitor.page.locator("#votes-open li").filter(has_text="Priorité des engagements à suivre en 2027")
        assert number(open_vote.inner_text(), r"sur (\d+) votants possibles") == banner_approved

        # -- a session's attendance: the list, its page, a decision recorded there, a member's « Mes séances »
        visitor.goto("/seances/passees")
        card = visitor.page.locator("#liste-seances li").filter(has_text=PLENARY)
        listed_present = number(card.inner_text(), r"(\d+) présents")
        card.get_by_role("link", name=PLENARY).click()
        expect(visitor.page.get_by_role("heading", level=1)).to_have_text(PLENARY)
        session_url = visitor.page.url
        assert number(visitor.page.locator("#seance-presents").inner_text(), r"(\d+) membres présents") \
            == listed_present
        on_session = per_college(visitor.page, "table-presence", 0)
        assert on_session.pop("Total") == listed_present
        # A past session: who came and its minutes; no seats, no answer to give, no sign-in to answer.
        expect(visitor.page.locator("#seance-places")).to_have_count(0)
        expect(visitor.page.locator("#seance-reponses")).to_have_count(0)
        expect(visitor.page.get_by_role("link", name="Se connecter pour répondre")).to_have_count(0)
        expect(visitor.page.locator("#lien-compte-rendu")).to_have_text(re.compile("Lire le compte rendu"))

        visitor.page.get_by_role("link", name=re.compile("Adoption des règles de fonctionnement")).click()
        quorum = per_college(visitor.page, "table-quorum", 1)
        assert quorum == {c: n for c, n in on_session.items() if c in quorum} and quorum
        expect(visitor.page.locator("#table-quorum thead")).to_contain_text("Présents")
        expect(visitor.page.locator("#quorum-instantane")).to_contain_text("au moment où la décision a été enregistrée")
        assert int(visitor.page.locator("#presents-seance").inner_text()) == listed_present

        # -- the ballots of a vote: its decision's page and the vote's own page; its quorum counts voters
        visitor.page.goto(session_url)
        visitor.page.get_by_role("link", name=re.compile("Thème du prochain atelier ouvert")).click()
        expect(visitor.page.locator("#table-quorum thead")).to_contain_text("Votants")
        expect(visitor.page.locator("#table-quorum thead")).not_to_contain_text("Présents")
        on_decision = visitor.page.locator("#participation-vote").inner_text()
        ballots, eligible = number(on_decision, r"(\d+) bulletins"), number(on_decision, r"sur (\d+) votants")
        voters = per_college(visitor.page, "table-quorum", 1)
        assert sum(voters.values()) <= ballots
        visitor.page.get_by_role("link", name="Page du vote").click()
        on_vote = visitor.page.locator("#vote-participation").inner_text()
        assert (number(on_vote, r"(\d+) bulletins"), number(on_vote, r"sur (\d+) votants")) == (ballots, eligible)

        # -- the member who came reads the same thing on their own pages
        sign_in(member, _email(A))
        member.goto("/espace/seances")
        row = member.page.locator("tbody tr").filter(has_text=PLENARY)
        expect(row.locator("[data-attendance]")).to_have_attribute("data-attendance", "present")
        member.page.goto(session_url)
        expect(member.page.locator("#ma-presence")).to_contain_text("Présent·e")
        expect(member.page.get_by_role("button", name="Je participe")).to_have_count(0)
        member.axe("une séance passée")
    finally:
        for v in (clerk, member, visitor):
            v.close()


def test_pages_know_what_time_it_is(demo: Demo, browser: Browser) -> None:
    visitor = person(browser, demo.stack)
    page = visitor.page
    try:
        # -- a past session whose minutes are not published yet
        visitor.goto("/seances/passees")
        page.locator("#liste-seances").get_by_role("link", name="Groupe de travail Santé : priorités d'ouverture "
                                                                "des données").click()
        expect(page.locator("#compte-rendu-seance")).to_contain_text("Compte rendu en préparation")
        expect(page.locator("#participation-seance")).to_be_visible()

        # -- a cancelled session: says so, no seats, no answer
        visitor.goto("/seances")
        page.locator("#liste-seances").get_by_role("link", name="Groupe de travail Éducation", exact=True).click()
        expect(page.locator("#seance-annulee")).to_contain_text("Cette séance est annulée")
        expect(page.locator("#seance-places")).to_have_count(0)
        expect(page.locator("#ma-reponse")).to_have_count(0)

        # -- the public record's last entry: no « suivant » leading to a 404
        visitor.goto("/registre")
        page.locator("[id^=enregistrement-] a[href^='/registre/']").first.click()
        expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"Enregistrement n° \d+"))
        last = int(page.url.rsplit("/", 1)[1])
        if page.get_by_role("link", name="Enregistrement suivant").count():  # appended since the checkpoint
            page.get_by_role("link", name="Enregistrement suivant").click()
            last += 1
        while page.get_by_role("link", name="Enregistrement suivant").count():
            page.get_by_role("link", name="Enregistrement suivant").click()
            last += 1
        expect(page.locator("#dernier-enregistrement")).to_be_visible()
        assert visitor.page.url.endswith(f"/registre/{last}")

        # -- a decision the browser verifies before its page knew where it is in the log: the status follows
        visitor.goto("/decisions")
        page.get_by_role("link", name=re.compile("Adoption des règles de fonctionnement")).click()
        expect(page.locator("#statut-registre")).to_have_attribute("data-record-status", "ok", timeout=60_000)
        url = page.url

        def as_if_not_located_yet(route: Route) -> None:
            body = route.fetch().text()
            body = re.sub(r'(<div id="statut-registre" data-record-status=")ok(">).*?(</div>)',
                          r"\1pending\2<p>En cours d'inscription au registre public</p>\3", body, flags=re.S)
            route.fulfill(status=200, content_type="text/html; charset=utf-8",
                          body=re.sub(r' data-index="\d+"', "", body))

        page.route(url, as_if_not_located_yet, times=1)  # the first load only: the script's own reload is real
        page.goto(url)
        proof = page.locator("#preuve-inclusion")
        expect(proof).to_have_attribute("data-verification", "ok", timeout=60_000)
        expect(page.locator("#preuve-navigateur")).to_contain_text("Preuve vérifiée")
        status = page.locator("#statut-registre")
        expect(status).to_have_attribute("data-record-status", "ok")
        expect(status).to_contain_text("Inscrite au registre public le")
        expect(status).not_to_contain_text("En cours d'inscription")
        assert not visitor.csp_errors(), visitor.console
    finally:
        visitor.close()


def test_my_sessions_say_who_came(demo: Demo, browser: Browser) -> None:
    came, missed = person(browser, demo.stack), person(browser, demo.stack)
    visitor = person(browser, demo.stack)
    try:
        # A decision recorded while the session is on (A checked in), then C checked in late; then both
        # sessions are over.
        db = ForumDb(demo.stack)
        db.begin_now(demo.held)
        # The home page lists it among the next sessions, as under way, without seats to offer.
        visitor.goto("/")
        on_home = visitor.page.locator(f"#accueil-seance-{demo.held}")
        expect(on_home).to_contain_text("En cours")
        expect(on_home).not_to_contain_text("place")
        [decision] = in_thread(_rpc(demo.stack, RecordDecision(
            actor_id=demo.secretariat, session_id=demo.held, agenda_position=1, method=Method.CONSENSUS,
            outcome=Outcome.DEFERRED, title="Report du tour de table", text="Le tour de table est reporté.")))
        in_thread(_rpc(demo.stack, CheckIn(actor_id=demo.secretariat, session_id=demo.held,
                                             member_id=demo.members[C])))
        for session_id in (demo.held, demo.unchecked):
            db.end_now(session_id)

        sign_in(came, _email(A))
        came.goto("/espace/seances")
        rows = came.page.locator("#table-mes-seances-passees tbody tr")
        expect(rows.filter(has_text=f"{SHORT} : présences").locator("[data-attendance]")).to_have_attribute(
            "data-attendance", "present")
        expect(rows.filter(has_text=f"{SHORT} : sans émargement").locator("[data-attendance]")).to_have_attribute(
            "data-attendance", "not_recorded")
        expect(rows.filter(has_text=f"{SHORT} : sans émargement")).to_contain_text("Pas encore émargé")

        sign_in(missed, _email(B))
        missed.goto("/espace/seances")
        row = missed.page.locator("#table-mes-seances-passees tbody tr").filter(has_text=f"{SHORT} : présences")
        expect(row).to_contain_text("Absent·e")
        missed.goto(f"/seances/{demo.held}")
        expect(missed.page.locator("#ma-presence")).to_contain_text("Absent·e")
        missed.axe("« Mes séances »")

        # The late check-in: the session counts it; the decision's quorum stays what it was, and says so.
        visitor.goto(f"/seances/{demo.held}")
        on_session = per_college(visitor.page, "table-presence", 0)
        assert on_session["Total"] == 2 and on_session["Organisations de la société civile"] == 2
        visitor.goto(f"/decisions/{decision.decision.decision_id}")  # type: ignore[attr-defined]
        quorum = per_college(visitor.page, "table-quorum", 1)
        assert quorum["Organisations de la société civile"] == 1
        expect(visitor.page.locator("#quorum-instantane")).to_contain_text("ils ne changent plus ensuite")
        expect(visitor.page.locator("#presents-seance")).to_have_text("2")
    finally:
        for v in (came, missed, visitor):
            v.close()
