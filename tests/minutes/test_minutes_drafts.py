"""Drafting the minutes of a session, against a real nats-server and a real database (PostgreSQL when
FORUM_TEST_DATABASE_URL is set, SQLite otherwise): the minutes service learns the session, the
check-ins, the organisations, the decisions and votes from events only, pre-fills the draft with
them (with links to their pages and their public record entries), and guards the draft: only the
secretariat drafts, only a session that took place, and a save from a stale tab never erases a newer
text."""
from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlmodel import select

from services.minutes import store
from services.minutes.models import MemberFact, MinutesRow
from shared.clock import paris_span, utcnow
from shared.contracts.common import ErrorCode
from shared.contracts.envelope import make_event
from shared.contracts.forum import SessionCancelled, SessionScheduled, SessionStatus
from shared.contracts.minutes import (
    GetMinutes, MinutesOfSession, MinutesState, OpenMinutesDraft, SaveMinutesDraft,
)
from shared.contracts.registry import MemberErased, ProfileUpdated, Role, RoleGranted
from shared.rpc import RpcError
from tests.minutes.harness import (
    MinutesHarness, held_session, registered_event, session_info, until,
)

pytestmark = pytest.mark.integration


async def refused(call, code: ErrorCode, field: str) -> RpcError:  # noqa: ANN001 - an awaitable
    with pytest.raises(RpcError) as caught:
        await call
    assert caught.value.code == code and caught.value.field == field, caught.value.error
    return caught.value


async def minutes_rows(h: MinutesHarness, session_id: str) -> list[MinutesRow]:
    async with h.svc.db.read() as tx:
        return list((await tx.exec(select(MinutesRow).where(MinutesRow.session_id == session_id))).all())


async def test_the_draft_is_prefilled_from_what_the_forum_recorded(h: MinutesHarness) -> None:
    held = await held_session(h)
    # Two clerks (or a double click) opening it at once make one draft.
    opened = await asyncio.gather(*[h.rpc(OpenMinutesDraft(actor_id=held.secretariat, session_id=held.session_id))
                                    for _ in range(3)])
    view = opened[0]
    assert {v.minutes_id for v in opened} == {view.minutes_id} and len(await minutes_rows(h, held.session_id)) == 1
    assert view.state == MinutesState.DRAFT and view.state_label == "en préparation"
    assert view.revision == 1 and view.may_edit and view.versions == []
    md = view.markdown
    assert md is not None
    s = held.session.data.session
    assert md.startswith("# Compte rendu — Plénière de printemps\n")
    assert f"Séance plénière — Données ouvertes et numérique, {paris_span(s.starts_at, s.ends_at)}, CESE, Paris." in md
    assert f"[Page de la séance](/seances/{held.session_id})" in md
    assert "1. Ouverture\n2. Engagement 5" in md
    assert "4 membres présents :" in md
    assert "- Acteurs publics : 1\n- Organisations de la société civile : 2\n- Citoyennes et citoyens : 1" in md
    assert "Organisations représentées : Association Alpha, Collectif Bêta et Ville de Lyon." in md
    assert "Absents Associés" not in md  # registered, not present
    d = held.decision.data.decision
    async with h.svc.db.read() as tx:
        leaves = {e: i for e, i, _ in await store.locate(tx, [str(held.decision.event_id),
                                                              str(held.vote.event_id)])}
    decision_line = next(line for line in md.splitlines() if f"Décision n° {d.number}" in line)
    assert "Publication des avis du forum" in decision_line and "adoptée" in decision_line
    assert "vote à main levée" in decision_line
    assert f"[Voir la décision](/decisions/{d.decision_id})" in decision_line
    assert f"(/registre/{leaves[str(held.decision.event_id)]})" in decision_line
    vote_line = next(line for line in md.splitlines() if "Vote en ligne" in line)
    result = held.vote.data.result
    winner = next(o.label for o in result.options if o.option_id == result.winner_option_id)
    assert f"option retenue : « {winner} »" in vote_line and "3 bulletins pour 12 électeurs" in vote_line
    assert f"[Voir le vote](/votes/{held.vote.data.vote.vote_id})" in vote_line
    assert f"(/registre/{leaves[str(held.vote.event_id)]})" in vote_line
    # Each decision and vote is a paragraph of its own: it has an anchor to cite.
    assert any(f"Décision n° {d.number}" in p.markdown and p.markdown.count("\n") == 0 for p in view.paragraphs)
    assert len({p.anchor for p in view.paragraphs}) == len(view.paragraphs)

    # Opening it again returns the same draft, as it stands.
    await h.rpc(SaveMinutesDraft(actor_id=held.secretariat, minutes_id=view.minutes_id, base_revision=view.revision,
                                 markdown=md + "\nDébats.\n"))
    again = await h.rpc(OpenMinutesDraft(actor_id=held.secretariat, session_id=held.session_id))
    assert again.minutes_id == view.minutes_id and again.revision == view.revision + 1 and "Débats." in again.markdown

    status = await h.rpc(MinutesOfSession(session_id=held.session_id))
    assert (status.minutes_id, status.state, status.state_label) == (view.minutes_id, MinutesState.DRAFT,
                                                                     "en préparation")
    assert (await h.rpc(MinutesOfSession(session_id="s-none"))).minutes_id is None


async def test_a_session_without_facts_still_gets_its_skeleton(h: MinutesHarness) -> None:
    held = await held_session(h, with_facts=False, theme=None)
    md = (await h.rpc(OpenMinutesDraft(actor_id=held.secretariat, session_id=held.session_id))).markdown
    assert md is not None
    assert "Aucune décision n'a été enregistrée au cours de cette séance." in md
    assert "Vote en ligne" not in md and "## Débats" in md


async def test_only_the_secretariat_drafts_and_only_a_session_that_took_place(h: MinutesHarness) -> None:
    held = await held_session(h)
    now = utcnow()
    upcoming = session_info(session_id=f"s-{uuid.uuid4().hex[:8]}", starts_at=now + timedelta(days=3),
                            ends_at=now + timedelta(days=3, hours=2))
    ongoing = session_info(session_id=f"s-{uuid.uuid4().hex[:8]}", starts_at=now - timedelta(hours=1),
                           ends_at=now + timedelta(hours=1))
    cancelled = session_info(session_id=f"s-{uuid.uuid4().hex[:8]}", starts_at=now - timedelta(days=3),
                             ends_at=now - timedelta(days=3) + timedelta(hours=2), revision=1,
                             status=SessionStatus.CANCELLED, cancel_reason="Grève")
    for info in (upcoming, ongoing):
        await h.publish(make_event(SessionScheduled(session=info), producer="forum"))
    await h.publish(make_event(SessionCancelled(session=cancelled, reason="Grève", notify_member_ids=[]),
                               producer="forum"))
    sec = held.secretariat

    async def opened(sid: str) -> None:
        await h.rpc(OpenMinutesDraft(actor_id=sec, session_id=sid))

    async def known() -> bool:
        # Scheduled and cancelled sessions reach the service through two consumers: wait for all three.
        for sid in (upcoming.session_id, ongoing.session_id, cancelled.session_id):
            try:
                await opened(sid)
            except RpcError as exc:
                if exc.code == ErrorCode.NOT_FOUND:
                    return False
        return True

    await until(known, 30, "the sessions")
    err = await refused(opened(upcoming.session_id), ErrorCode.CONFLICT, "session_id")
    assert "pas encore eu lieu" in err.error.message
    await refused(opened(ongoing.session_id), ErrorCode.CONFLICT, "session_id")
    err = await refused(opened(cancelled.session_id), ErrorCode.CONFLICT, "session_id")
    assert "annulée" in err.error.message
    await refused(opened("s-unknown"), ErrorCode.NOT_FOUND, "session_id")
    for actor in (held.attendees[0], held.absent, "nobody"):
        await refused(h.rpc(OpenMinutesDraft(actor_id=actor, session_id=held.session_id)), ErrorCode.FORBIDDEN,
                      "actor_id")
    await refused(h.rpc(OpenMinutesDraft.model_construct(actor_id=sec, session_id="")), ErrorCode.INVALID,
                  "session_id")
    for sid in (upcoming.session_id, ongoing.session_id, cancelled.session_id, held.session_id):
        assert await minutes_rows(h, sid) == []  # nothing half-written


async def test_a_stale_tab_never_erases_a_newer_text(h: MinutesHarness) -> None:
    held = await held_session(h)
    sec = held.secretariat
    view = await h.rpc(OpenMinutesDraft(actor_id=sec, session_id=held.session_id))
    tab_a = tab_b = view.revision
    first = await h.rpc(SaveMinutesDraft(actor_id=sec, minutes_id=view.minutes_id, base_revision=tab_a,
                                         markdown=view.markdown + "\nLe débat a porté sur le calendrier.\n"))
    assert first.revision == tab_a + 1 and "calendrier" in first.markdown
    err = await refused(h.rpc(SaveMinutesDraft(actor_id=sec, minutes_id=view.minutes_id, base_revision=tab_b,
                                               markdown="# Autre texte\n")), ErrorCode.CONFLICT, "base_revision")
    assert "rechargez" in err.error.message
    current = await h.rpc(GetMinutes(actor_id=sec, minutes_id=view.minutes_id))
    assert current.markdown == first.markdown and current.revision == first.revision

    # The same text again changes nothing; a later save over the current revision goes through.
    same = await h.rpc(SaveMinutesDraft(actor_id=sec, minutes_id=view.minutes_id, base_revision=first.revision,
                                        markdown=first.markdown))
    assert same.revision == first.revision

    for bad in ("", "   \n\t "):
        await refused(h.rpc(SaveMinutesDraft.model_construct(actor_id=sec, minutes_id=view.minutes_id,
                                                              base_revision=first.revision, markdown=bad)),
                      ErrorCode.INVALID, "markdown")
    await refused(h.rpc(SaveMinutesDraft(actor_id=held.attendees[0], minutes_id=view.minutes_id,
                                         base_revision=first.revision, markdown="# Pirate\n")),
                  ErrorCode.FORBIDDEN, "actor_id")
    await refused(h.rpc(SaveMinutesDraft(actor_id=sec, minutes_id="cr-unknown", base_revision=1, markdown="x")),
                  ErrorCode.NOT_FOUND, "minutes_id")
    final = await h.rpc(GetMinutes(actor_id=sec, minutes_id=view.minutes_id))
    assert final.markdown == first.markdown and final.revision == first.revision


async def test_only_the_secretariat_reads_a_draft(h: MinutesHarness) -> None:
    held = await held_session(h)
    view = await h.rpc(OpenMinutesDraft(actor_id=held.secretariat, session_id=held.session_id))
    for actor in (held.attendees[0], held.absent, None):
        await refused(h.rpc(GetMinutes(actor_id=actor, minutes_id=view.minutes_id)), ErrorCode.FORBIDDEN,
                      "minutes_id")
    await refused(h.rpc(GetMinutes(minutes_id="cr-unknown")), ErrorCode.NOT_FOUND, "minutes_id")


async def test_the_member_facts_follow_the_registry(h: MinutesHarness) -> None:
    held = await held_session(h)
    erased, renamed = held.attendees[0], held.attendees[1]
    later = utcnow()
    profile = make_event(ProfileUpdated(member_id=renamed, full_name="Camille Test", organisation="Collectif Gamma"),
                         producer="registry")
    stale = make_event(ProfileUpdated(member_id=renamed, full_name="Camille Test", organisation="Collectif Ancien"),
                       producer="registry")
    stale.occurred_at = later - timedelta(days=30)  # an older fact arriving late changes nothing
    promoted = f"m-{uuid.uuid4().hex[:8]}"
    for env in (profile, stale, make_event(MemberErased(member_id=erased, public_id="p"), producer="registry"),
                registered_event(promoted), make_event(RoleGranted(member_id=promoted, role=Role.SECRETARIAT),
                                                       producer="registry")):
        await h.publish(env)

    async def applied() -> bool:
        async with h.svc.db.read() as tx:
            e, r, p = (await tx.get(MemberFact, erased), await tx.get(MemberFact, renamed),
                       await tx.get(MemberFact, promoted))
            return bool(e and e.erased and r and r.organisation == "Collectif Gamma" and p
                        and p.role == Role.SECRETARIAT)

    await until(applied, 30, "the registry's events")
    await asyncio.sleep(0.3)  # time for the stale event to (wrongly) apply
    view = await h.rpc(OpenMinutesDraft(actor_id=promoted, session_id=held.session_id))  # the new secretariat
    md = view.markdown or ""
    assert "Organisations représentées : Collectif Gamma et Ville de Lyon." in md
    assert "Association Alpha" not in md and "Collectif Ancien" not in md
    assert "4 membres présents" in md  # an erased member still counts in the attendance of their college
