"""Each thing once, in headless Chromium against the running forum: every form that creates or changes
something is filled in and submitted, then the very same request is sent again — the same body, so the
same CSRF token and the same one-time token, as a double click, a reload or a re-sent form sends it. The
second answer is the first one (the same page it leads to, the same message), and one thing exists.

Forms covered: schedule, edit and cancel a session; answer « Je participe », « Je ne participe pas » and
withdraw; record, correct and follow up a decision; open a vote and cast a ballot; approve and reject a
registration; a reviewer's comment, the secretariat's answer, publish and correct minutes; write an
announcement, send oneself a test, send it; set an adoption rule.
"""
from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import Engine, create_engine, func
from sqlmodel import Session, col, select

from forum_ouvert.launcher import Stack
from services.forum.models import ForumDecision, ForumFollowUp, ForumMember, ForumRsvp, ForumSession, ForumVote
from services.minutes.models import CommentRow
from services.notifications.models import Delivery, Notice
from shared.outbox import OutboxMessage
from tests.web.browser.test_minutes_journey import path_of, record_decision, schedule
from tests.web.browser.test_registration_journey import Visitor
from tests.web.browser.test_vote_journey import grade, verified_member
from tests.web.browser.test_waitlist_journey import local, sign_in
from tests.web.test_web_minutes import MinutesDb

pytestmark = pytest.mark.browser
FLASH = ".fr-alert[role=status]"


# ---------------------------------------------------------------- the same request, twice
def twice(v: Visitor, submit: Callable[[], None]) -> str:
    """Submit a form (`submit` clicks its button), then send its request again, byte for byte. Both answers
    lead to the same page with the same message; returns that page's address."""
    page = v.page
    with page.expect_response(lambda r: r.request.method == "POST") as caught:
        submit()
    first, sent = caught.value, caught.value.request
    assert first.status == 303, f"{sent.url}: {first.status}\n{shown(page)}"
    location = first.headers["location"]
    expect(page.locator(FLASH)).to_be_visible()
    message = page.locator(FLASH).inner_text()

    again = page.request.post(sent.url, data=sent.post_data_buffer, max_redirects=0,
                              headers={"content-type": sent.headers["content-type"]})
    assert again.status == 303, f"re-sent {sent.url}: {again.status}\n{_main(again.text())}"
    assert again.headers["location"] == location
    page_path = location.split("#", 1)[0]
    v.goto(page_path)  # not `location`: a fragment alone would not load the page again
    expect(page.locator(FLASH)).to_have_text(message)
    return page_path


def _main(html: str) -> str:
    """The page's main content as text, for a failure message."""
    body = html.split('id="contenu"', 1)[-1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))[:1500]


def shown(page: Page) -> str:
    return _main(page.content())


class Tables:
    """Counts in a service's own tables (what was written, how many times)."""

    def __init__(self, forum: Stack) -> None:
        self.engines: dict[str, Engine] = {
            name: create_engine(url.replace("sqlite+aiosqlite://", "sqlite://"))
            for name, url in forum.database_urls.items()}

    def count(self, service: str, table: Any, *where: Any) -> int:
        with Session(self.engines[service]) as tx:
            stmt = select(func.count()).select_from(table).where(*where)
            return int(tx.exec(stmt).one())  # type: ignore[call-overload]

    def rows(self, service: str, stmt: Any) -> list[Any]:
        with Session(self.engines[service]) as tx:
            return list(tx.exec(stmt).all())


@dataclass
class People:
    forum: Stack
    tag: str
    clerk: Visitor
    alice: Visitor
    alice_id: str
    db: Tables


def approve(clerk: Visitor, email: str) -> str:
    """Approve a verified registration from the members' list; returns the member's id."""
    clerk.goto("/secretariat/membres")
    row = clerk.page.locator("tbody tr").filter(has_text=email)
    member_id = (row.get_attribute("id") or "").removeprefix("membre-")
    row.get_by_role("button", name="Approuver").click()
    expect(clerk.page.get_by_text("est validée.")).to_be_visible()
    return member_id


@pytest.fixture(scope="module")
def people(forum: Stack, browser: Browser, clerk_email: str) -> Iterator[People]:
    """The secretariat and Alice (an approved member), each signed in in their own browser."""
    tag = uuid.uuid4().hex[:8]
    alice_email = f"alice-once-{tag}@example.org"
    verified_member(forum, alice_email, f"Alice Unique {tag}", "civil_society")
    clerk, alice = Visitor(browser, forum), Visitor(browser, forum)
    try:
        sign_in(clerk, clerk_email)
        alice_id = approve(clerk, alice_email)
        sign_in(alice, alice_email)
        db = Tables(forum)
        deadline = time.monotonic() + 60
        while db.count("forum", ForumMember, ForumMember.member_id == alice_id, ForumMember.standing == "approved") < 1:
            assert time.monotonic() < deadline, "the forum does not know Alice as approved"
            time.sleep(0.2)
        yield People(forum, tag, clerk, alice, alice_id, db)
    finally:
        clerk.close()
        alice.close()


def fill_session(page: Page, title: str, start: timedelta, hours: float = 2) -> None:
    now = datetime.now(UTC)
    page.get_by_label("Titre").fill(title)
    page.locator("label[for='kind-plenary']").click()
    page.locator("#starts_at").fill(local(now + start))
    page.locator("#ends_at").fill(local(now + start + timedelta(hours=hours)))
    page.get_by_label("Lieu (facultatif)").fill("CESE, salle 231, 9 place d'Iéna, Paris")
    page.locator("#capacity").fill("30")
    page.locator("#rsvp_opens_at").fill(local(now - timedelta(hours=1)))
    page.locator("#rsvp_closes_at").fill(local(now + start - timedelta(minutes=30)))
    page.locator("#agenda").fill("Accueil\nDonnées ouvertes\nQuestions diverses")


# ================================================================ sessions and answers
def test_sessions_and_answers_are_done_once(people: People) -> None:
    clerk, db, s = people.clerk, people.db, people.clerk.page
    title = f"Plénière une fois {people.tag}"
    clerk.goto("/secretariat/seances/nouvelle")
    fill_session(s, title, timedelta(days=2))
    session_path = twice(clerk, lambda: s.get_by_role("button", name="Programmer la séance").click())
    session_id = session_path.rsplit("/", 1)[1]
    assert db.count("forum", ForumSession, col(ForumSession.title) == title) == 1

    # -- edited: one new revision
    clerk.goto(f"/secretariat/seances/{session_id}/modifier")
    s.locator("#capacity").fill("35")
    assert twice(clerk, lambda: s.get_by_role("button", name="Enregistrer les modifications").click()) == session_path
    assert db.rows("forum", select(ForumSession.revision).where(ForumSession.id == session_id)) == [1]

    # -- Alice's answers: attend, decline, attend again, withdraw — each once
    a = people.alice.page
    members_rsvp = select(ForumRsvp.state).where(ForumRsvp.session_id == session_id,
                                                 ForumRsvp.member_id == people.alice_id)
    for button, state in (("Je participe", "confirmed"), ("Je ne participe pas", "declined"),
                          ("Je participe", "confirmed"), ("Retirer ma réponse", "withdrawn")):
        people.alice.goto(session_path)
        assert twice(people.alice, lambda b=button: a.get_by_role("button", name=b).click()) == session_path
        assert db.rows("forum", members_rsvp) == [state]

    # -- cancelled, with its reason
    clerk.goto(f"/secretariat/seances/{session_id}/annuler")
    s.get_by_label("Motif de l'annulation").fill("Salle indisponible ce jour-là.")
    assert twice(clerk, lambda: s.get_by_role("button", name="Annuler la séance").click()) == session_path
    cancelled = db.count("forum", OutboxMessage, OutboxMessage.subject == "forum.session.cancelled",
                         col(OutboxMessage.payload).contains(session_id))
    assert cancelled == 1


# ================================================================ decisions
def test_decisions_are_recorded_corrected_and_followed_up_once(people: People) -> None:
    clerk, db, s = people.clerk, people.db, people.clerk.page
    session_path = schedule(clerk, f"Plénière des décisions {people.tag}", -timedelta(hours=3), 1)
    title = f"Publier les données des marchés {people.tag}"
    clerk.goto(session_path)
    s.get_by_role("link", name="Enregistrer une décision").click()
    s.get_by_label("Point de l'ordre du jour").select_option("2")
    s.get_by_label("Titre de la décision").fill(title)
    s.get_by_label("Texte de la décision").fill("Le forum demande la publication des données des marchés.")
    s.locator("label[for='method-consensus']").click()
    s.locator("label[for='outcome-adopted']").click()
    decision_path = twice(clerk, lambda: s.get_by_role("button", name="Enregistrer la décision").click())
    assert db.count("forum", ForumDecision, col(ForumDecision.title) == title) == 1
    decision_id = decision_path.rsplit("/", 1)[1]

    # -- corrected by one new decision
    clerk.goto(f"/secretariat/decisions/{decision_id}/corriger")
    s.get_by_label("Titre de la décision").fill(title + " (corrigée)")
    correction_path = twice(clerk, lambda: s.get_by_role("button", name="Enregistrer la correction").click())
    assert correction_path != decision_path
    assert db.count("forum", ForumDecision, ForumDecision.supersedes == decision_id) == 1

    # -- one dated follow-up
    correction_id = correction_path.rsplit("/", 1)[1]
    clerk.goto(f"/secretariat/decisions/{correction_id}/suivi")
    s.locator("label[for='status-in_progress']").click()
    s.get_by_label("Note de suivi (facultatif)").fill("Premier jeu de données publié.")
    assert twice(clerk, lambda: s.get_by_role("button", name="Publier la mise à jour").click()) == correction_path
    assert db.count("forum", ForumFollowUp, ForumFollowUp.decision_id == correction_id) == 1


# ================================================================ votes
def test_a_vote_is_opened_once_and_a_ballot_cast_once(people: People) -> None:
    clerk, db, s = people.clerk, people.db, people.clerk.page
    session_path = schedule(clerk, f"Plénière du vote {people.tag}", timedelta(days=1), 2)
    question = f"Quel jeu de données ouvrir ? {people.tag}"
    clerk.goto(session_path)
    s.get_by_role("link", name="Ouvrir un vote").click()
    s.get_by_label("Point de l'ordre du jour").select_option("2")
    s.get_by_label("Question posée").fill(question)
    s.get_by_label("Options").fill("Commande publique\nQualité de l'air")
    s.locator("label[for='eligibility-approved_members']").click()
    s.locator("#opens_at").fill(local(datetime.now(UTC)))
    s.locator("#closes_at").fill(local(datetime.now(UTC) + timedelta(days=3)))
    vote_path = twice(clerk, lambda: s.get_by_role("button", name="Ouvrir le vote").click())
    assert db.count("forum", ForumVote, col(ForumVote.question) == question) == 1

    # -- Alice's ballot: « enregistré » both times (a second ballot would say « modifié »)
    a = people.alice.page
    people.alice.goto(vote_path)
    grade(a, 1, "tres_bien")
    grade(a, 2, "passable")
    assert twice(people.alice, lambda: a.get_by_role("button", name="Enregistrer mon vote").click()) == vote_path
    expect(a.locator(FLASH)).to_contain_text("Votre vote est enregistré")


# ================================================================ registrations
def test_a_registration_is_approved_once_and_another_rejected_once(people: People) -> None:
    clerk, s = people.clerk, people.clerk.page
    emails = [f"{who}-once-{people.tag}@example.org" for who in ("bruno", "chloe")]
    for email, name in zip(emails, ("Bruno", "Chloé"), strict=True):
        verified_member(people.forum, email, f"{name} Unique {people.tag}", "citizen")
    clerk.goto("/secretariat/membres")
    row = s.locator("tbody tr").filter(has_text=emails[0])
    assert twice(clerk, lambda: row.get_by_role("button", name="Approuver").click()) == "/secretariat/membres"
    expect(s.locator(FLASH)).to_contain_text("est validée")

    clerk.goto("/secretariat/membres")
    row = s.locator("tbody tr").filter(has_text=emails[1])
    expect(row.get_by_label("Motif du refus")).to_have_attribute("required", "")  # the browser asks for it first
    row.get_by_label("Motif du refus").fill("Inscription en double.")
    assert twice(clerk, lambda: row.get_by_role("button", name="Refuser").click()) == "/secretariat/membres"
    expect(s.locator(FLASH)).to_contain_text("est refusée")


# ================================================================ minutes
def test_minutes_comments_answers_publication_and_correction_happen_once(people: People) -> None:
    clerk, db, s = people.clerk, people.db, people.clerk.page
    title = f"Plénière du compte rendu {people.tag}"
    session_path = schedule(clerk, title, -timedelta(hours=4), 2)
    later_path = schedule(clerk, f"Plénière suivante {people.tag}", -timedelta(hours=1), 0.5)
    session_id = session_path.rsplit("/", 1)[1]
    clerk.goto(f"/secretariat/seances/{session_id}/participants")
    s.locator("#member_id").select_option(people.alice_id)
    s.get_by_role("button", name="Enregistrer sa présence").click()
    expect(s.get_by_text("Présence enregistrée")).to_be_visible()
    _, number = record_decision(clerk, later_path, f"Adoption du compte rendu {people.tag}")
    minutes_db, deadline = MinutesDb(people.forum), time.monotonic() + 60
    while not minutes_db.knows(session_id=session_id, attendees=[people.alice_id]):
        assert time.monotonic() < deadline, "the minutes service does not know the session yet"
        time.sleep(0.2)
    clerk.goto(session_path)
    s.get_by_role("button", name="Rédiger le compte rendu").click()
    editor_path = path_of(s)
    minutes_id = editor_path.rsplit("/", 1)[1]
    s.locator("#until").fill(local(datetime.now(UTC) + timedelta(days=2)))
    s.get_by_role("button", name="Ouvrir la relecture").click()
    expect(s.get_by_text("La relecture est ouverte aux membres présents")).to_be_visible()

    # -- Alice's remark on a paragraph: one comment
    a = people.alice.page
    people.alice.goto(f"/comptes-rendus/{minutes_id}/relecture")
    block = a.locator(".forum-review-block").nth(1)
    block.get_by_text("Commenter ce paragraphe").click()
    remark = f"Préciser les participants {people.tag}."
    block.get_by_label("Votre remarque").fill(remark)
    twice(people.alice, lambda: block.get_by_role("button", name="Envoyer la remarque").click())
    assert db.count("minutes", CommentRow, col(CommentRow.text) == remark) == 1

    # -- the secretariat's answer, once
    clerk.goto(editor_path)
    comment = s.locator("article.forum-comment").filter(has_text=remark).first
    comment.locator("label", has_text="Refuser").click()
    comment.get_by_label("Raison (lue par l'auteur du commentaire)").fill("Déjà dans la liste des présents.")
    assert twice(clerk, lambda: comment.get_by_role("button", name=re.compile("^Répondre")).click()) == editor_path

    # -- published (adopted by the later session's decision), then corrected: one version each
    clerk.goto(editor_path)
    s.locator("label[for='adoption-decision']").click()
    s.get_by_label("Numéro de la décision qui adopte le compte rendu").fill(number)
    minutes_path = twice(clerk, lambda: s.get_by_role("button", name="Publier le compte rendu").click())
    expect(s.locator(FLASH)).to_contain_text("(version 1)")
    s.get_by_role("link", name="Corriger ce compte rendu (secrétariat)").click()
    fixed = s.get_by_label("Texte corrigé")
    fixed.fill(fixed.input_value() + f"\n\nLa séance est levée à midi ({people.tag}).")
    s.get_by_label("Raison de la correction").fill("Heure de fin ajoutée")
    assert twice(clerk, lambda: s.get_by_role("button", name="Publier la correction").click()) == minutes_path
    expect(s.locator(FLASH)).to_contain_text("version 2")
    expect(s.locator("#table-versions tbody tr")).to_have_count(2)


# ================================================================ announcements
def test_an_announcement_is_written_tested_and_sent_once(people: People) -> None:
    clerk, db, s = people.clerk, people.db, people.clerk.page
    subject = f"Appel à contributions {people.tag}"
    clerk.goto("/secretariat/annonces/nouvelle")
    s.get_by_label("Objet").fill(subject)
    s.get_by_label("Texte de l'annonce").fill("Le forum ouvre un appel à contributions.")
    page_path = twice(clerk, lambda: s.get_by_role("button", name="Enregistrer et prévisualiser").click())
    assert db.count("notifications", Notice, col(Notice.body) == "Le forum ouvre un appel à contributions.",
                    col(Notice.subject).contains(subject)) == 1

    assert twice(clerk, lambda: s.get_by_role("button", name="M'envoyer un test").click()) == page_path
    assert db.count("notifications", Delivery, col(Delivery.subject).contains(subject),
                    Delivery.kind == "announcement_test") == 1

    clerk.goto(f"{page_path}/envoyer")
    assert twice(clerk, lambda: s.get_by_role("button", name=re.compile("^Envoyer aux abonnés")).click()) == page_path
    expect(s.locator(FLASH)).to_contain_text("a commencé")


# ================================================================ rules
def test_an_adoption_rule_is_set_once(people: People) -> None:
    clerk, db, s = people.clerk, people.db, people.clerk.page
    rule_events = (OutboxMessage.subject == "forum.rule.updated",)
    before = db.count("forum", OutboxMessage, *rule_events)
    clerk.goto("/secretariat/regles")
    # Saved as it stands (the other tests of the forum go on with the same rule): saving still records it.
    form = s.locator("form").filter(has=s.locator("input[name=kind][value=working_group]"))
    assert twice(clerk, lambda: form.get_by_role("button", name=re.compile("^Enregistrer la règle")).click()) \
        == "/secretariat/regles"
    assert db.count("forum", OutboxMessage, *rule_events) == before + 1
