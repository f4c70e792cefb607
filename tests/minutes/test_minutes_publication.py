"""Adoption, publication and correction of the minutes, against a real nats-server and a real
database: a published version is frozen (Markdown, paragraphs, canonical JSON and its SHA-256, HTML,
PDF) and never changes; a repeated command publishes one version; a correction is version n+1 with
its reason, unchanged paragraphs keep their anchors, and the difference reads paragraph by
paragraph; each publication and correction is a leaf of the public record holding the hash."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
from datetime import timedelta

import pytest
from pypdf import PdfReader
from sqlmodel import func, select

from services.minutes import store
from services.minutes.models import DecisionFact, VersionRow
from shared.clock import utcnow
from shared.contracts.common import ErrorCode
from shared.contracts.decisions import DecisionSuperseded, Eligibility
from shared.contracts.envelope import make_event
from shared.contracts.forum import SessionKind, Theme
from shared.contracts.minutes import (
    AdoptionKind, CorrectMinutes, DiffMinutes, GetMinutes, GetMinutesPdf, GetMinutesVersion, ListEntries, ListMinutes,
    MinutesOfDecision, MinutesOfSession, MinutesState, MinutesView, OpenMinutesDraft, OpenMinutesReview,
    PublishMinutes, SaveMinutesDraft,
)
from shared.outbox import OutboxMessage
from shared.rpc import RpcError
from tests.minutes.harness import (
    HeldSession, MinutesHarness, decision_event, held_session, until, vote_closed_event,
)

pytestmark = pytest.mark.integration


async def refused(call, code: ErrorCode, field: str) -> RpcError:  # noqa: ANN001 - an awaitable
    with pytest.raises(RpcError) as caught:
        await call
    assert caught.value.code == code and caught.value.field == field, caught.value.error
    return caught.value


async def drafted(h: MinutesHarness, **kw) -> tuple[HeldSession, MinutesView]:  # noqa: ANN003
    held = await held_session(h, **kw)
    return held, await h.rpc(OpenMinutesDraft(actor_id=held.secretariat, session_id=held.session_id))


async def leaf_of(h: MinutesHarness, event_id: str) -> dict:
    """The public record entry of an event, once appended."""
    async def appended() -> bool:
        async with h.svc.db.read() as tx:
            return bool(await store.locate(tx, [event_id]))

    await until(appended, 30, f"the leaf of {event_id}")
    async with h.svc.db.read() as tx:
        [(_, index, _)] = await store.locate(tx, [event_id])
    return (await h.rpc(ListEntries(start=index, end=index + 1))).entries[0].record


async def versions_in_db(h: MinutesHarness, minutes_id: str) -> int:
    async with h.svc.db.read() as tx:
        return (await tx.exec(select(func.count()).select_from(VersionRow).where(
            VersionRow.minutes_id == minutes_id))).one()


async def test_publishing_freezes_version_one_once(h: MinutesHarness) -> None:
    held, draft = await drafted(h)
    sec = held.secretariat
    publish = PublishMinutes(actor_id=sec, minutes_id=draft.minutes_id, adoption=AdoptionKind.NONE,
                             request_id="clic-1", base_revision=draft.revision)
    # A double click: the same command twice at once, then redelivered, publishes one version.
    views = await asyncio.gather(h.rpc(publish), h.rpc(publish))
    again = await h.rpc(publish)
    assert {len(v.versions) for v in (*views, again)} == {1}
    assert views[0].versions == views[1].versions == again.versions
    # Another click (another request id) is told it is published already.
    await refused(h.rpc(publish.model_copy(update={"request_id": "clic-2"})), ErrorCode.CONFLICT, "minutes_id")
    assert await versions_in_db(h, draft.minutes_id) == 1
    async with h.svc.db.read() as tx:
        events = (await tx.exec(select(OutboxMessage.subject).where(
            OutboxMessage.subject.in_(["minutes.published", "minutes.corrected"])))).all()  # type: ignore[attr-defined]
    assert len([e for e in events if e == "minutes.published"]) >= 1

    published = again
    assert published.state == MinutesState.PUBLISHED and published.state_label == "publié"
    v1 = await h.rpc(GetMinutesVersion(minutes_id=draft.minutes_id))
    assert v1.version == v1.latest_version == 1 and v1.markdown == draft.markdown and v1.reason is None
    assert v1.adoption.kind == AdoptionKind.NONE and not v1.adoption.reviewed
    # The hash is the SHA-256 of the canonical JSON, which holds the paragraphs and their anchors.
    assert hashlib.sha256(v1.canonical_json.encode("utf-8")).hexdigest() == v1.sha256
    doc = json.loads(v1.canonical_json)
    assert doc["meta"]["minutes_id"] == draft.minutes_id and doc["meta"]["version"] == 1
    assert doc["meta"]["session"]["session_id"] == held.session_id and doc["meta"]["reason"] is None
    assert [p["anchor"] for p in doc["paragraphs"]] == [p.anchor for p in v1.paragraphs] == \
        [p.anchor for p in draft.paragraphs]
    for p in v1.paragraphs:
        assert f'id="{p.anchor}"' in v1.html
    # The PDF: stored once, the same bytes every time, with the title and the hash in its text.
    pdf1 = await h.rpc(GetMinutesPdf(minutes_id=draft.minutes_id, version=1))
    pdf2 = await h.rpc(GetMinutesPdf(minutes_id=draft.minutes_id))
    raw = base64.b64decode(pdf1.pdf)
    assert raw.startswith(b"%PDF") and pdf1.pdf == pdf2.pdf and pdf1.sha256 == v1.sha256
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(raw)).pages)
    assert "Plénière de printemps" in text and v1.sha256 in text.replace("\n", "")

    # The public fact: a leaf holding the hash, not the text.
    record = await leaf_of(h, v1.event_id)
    assert record["type"] == "minutes.published"
    assert record["data"] == {
        "minutes_id": draft.minutes_id, "session_id": held.session_id, "version": 1, "sha256": v1.sha256,
        "published_at": record["data"]["published_at"], "reason": None,
        "adoption": {"kind": "none", "decision_id": None, "decision_number": None, "vote_id": None,
                     "reviewed": False}}
    assert "Ordre du jour" not in json.dumps(record)

    # Published minutes no longer change as a draft, and everyone reads them.
    await refused(h.rpc(SaveMinutesDraft(actor_id=sec, minutes_id=draft.minutes_id, base_revision=published.revision,
                                         markdown="# Réécrit\n")), ErrorCode.CONFLICT, "minutes_id")
    await refused(h.rpc(OpenMinutesReview(actor_id=sec, minutes_id=draft.minutes_id,
                                          until=utcnow() + timedelta(days=1))), ErrorCode.CONFLICT, "minutes_id")
    public = await h.rpc(GetMinutes(minutes_id=draft.minutes_id))
    assert public.markdown is None and public.versions == published.versions and not public.may_edit
    status = await h.rpc(MinutesOfSession(session_id=held.session_id))
    assert (status.state, status.state_label, status.latest_version) == (MinutesState.PUBLISHED, "publié", 1)
    # The decision page links to the paragraph that records the decision.
    d = held.decision.data.decision
    where = await h.rpc(MinutesOfDecision(decision_id=d.decision_id))
    assert (where.minutes_id, where.version) == (draft.minutes_id, 1)
    cited = next(p for p in v1.paragraphs if p.anchor == where.anchor)
    assert f"Décision n° {d.number}" in cited.markdown
    assert (await h.rpc(MinutesOfDecision(decision_id="d-unknown"))).minutes_id is None


async def test_a_draft_changed_since_it_was_read_is_not_published(h: MinutesHarness) -> None:
    held, draft = await drafted(h)
    sec = held.secretariat
    saved = await h.rpc(SaveMinutesDraft(actor_id=sec, minutes_id=draft.minutes_id, base_revision=draft.revision,
                                         markdown=draft.markdown + "\nAjout d'un autre onglet.\n"))
    await refused(h.rpc(PublishMinutes(actor_id=sec, minutes_id=draft.minutes_id, adoption=AdoptionKind.NONE,
                                       base_revision=draft.revision)), ErrorCode.CONFLICT, "base_revision")
    await refused(h.rpc(PublishMinutes(actor_id=held.attendees[0], minutes_id=draft.minutes_id,
                                       adoption=AdoptionKind.NONE)), ErrorCode.FORBIDDEN, "actor_id")
    await refused(h.rpc(PublishMinutes(actor_id=sec, minutes_id="cr-unknown", adoption=AdoptionKind.NONE)),
                  ErrorCode.NOT_FOUND, "minutes_id")
    await refused(h.rpc(GetMinutesVersion(minutes_id=draft.minutes_id)), ErrorCode.NOT_FOUND, "version")
    await refused(h.rpc(GetMinutesPdf(minutes_id=draft.minutes_id, version=1)), ErrorCode.NOT_FOUND, "version")
    assert await versions_in_db(h, draft.minutes_id) == 0
    view = await h.rpc(PublishMinutes(actor_id=sec, minutes_id=draft.minutes_id, adoption=AdoptionKind.NONE,
                                      base_revision=saved.revision))
    assert "Ajout d'un autre onglet." in (await h.rpc(GetMinutesVersion(minutes_id=view.minutes_id))).markdown


async def test_adoption_by_a_later_decision_or_by_the_attendees_vote(h: MinutesHarness) -> None:
    start = utcnow() - timedelta(days=20)
    held, draft = await drafted(h, starts_at=start)
    sec = held.secretariat
    later = await held_session(h, starts_at=start + timedelta(days=10), title="Plénière d'été")
    earlier = await held_session(h, starts_at=start - timedelta(days=10), title="Plénière d'hiver")

    def by_decision(number: str) -> PublishMinutes:
        return PublishMinutes(actor_id=sec, minutes_id=draft.minutes_id, adoption=AdoptionKind.DECISION,
                              decision_number=number)

    err = await refused(h.rpc(by_decision(held.decision.data.decision.number)), ErrorCode.CONFLICT,
                        "decision_number")
    assert "postérieure" in err.error.message
    await refused(h.rpc(by_decision(earlier.decision.data.decision.number)), ErrorCode.CONFLICT, "decision_number")
    await refused(h.rpc(by_decision("1999-999")), ErrorCode.NOT_FOUND, "decision_number")
    await refused(h.rpc(PublishMinutes.model_construct(actor_id=sec, minutes_id=draft.minutes_id,
                                                       adoption=AdoptionKind.DECISION, decision_number="douze")),
                  ErrorCode.INVALID, "decision_number")
    await refused(h.rpc(PublishMinutes.model_construct(actor_id=sec, minutes_id=draft.minutes_id,
                                                       adoption=AdoptionKind.DECISION)),
                  ErrorCode.INVALID, "decision_number")
    # A vote of another session, or open to every member rather than the attendees, does not adopt them.
    await refused(h.rpc(PublishMinutes(actor_id=sec, minutes_id=draft.minutes_id, adoption=AdoptionKind.VOTE,
                                       vote_id=later.vote.data.vote.vote_id)), ErrorCode.CONFLICT, "vote_id")
    await refused(h.rpc(PublishMinutes(actor_id=sec, minutes_id=draft.minutes_id, adoption=AdoptionKind.VOTE,
                                       vote_id="v-unknown")), ErrorCode.NOT_FOUND, "vote_id")
    assert await versions_in_db(h, draft.minutes_id) == 0

    await h.rpc(OpenMinutesReview(actor_id=sec, minutes_id=draft.minutes_id, until=utcnow() + timedelta(days=1)))
    number = later.decision.data.decision.number
    view = await h.rpc(by_decision(number))
    assert view.state == MinutesState.ADOPTED and view.state_label == "adopté"
    v1 = await h.rpc(GetMinutesVersion(minutes_id=draft.minutes_id, version=1))
    assert v1.adoption.kind == AdoptionKind.DECISION and v1.adoption.decision_number == number
    assert v1.adoption.decision_id == later.decision.data.decision.decision_id and v1.adoption.reviewed
    assert json.loads(v1.canonical_json)["meta"]["adoption"]["decision_number"] == number

    # By a vote among the attendees of the session.
    voted, vdraft = await drafted(h)
    wrong = vote_closed_event(f"v-all-{voted.session_id}", session_id=voted.session_id,
                              eligibility=Eligibility.APPROVED_MEMBERS)
    await h.publish(wrong)
    await leaf_of(h, str(wrong.event_id))
    await refused(h.rpc(PublishMinutes(actor_id=voted.secretariat, minutes_id=vdraft.minutes_id,
                                       adoption=AdoptionKind.VOTE, vote_id=wrong.data.vote.vote_id)),
                  ErrorCode.CONFLICT, "vote_id")
    view = await h.rpc(PublishMinutes(actor_id=voted.secretariat, minutes_id=vdraft.minutes_id,
                                      adoption=AdoptionKind.VOTE, vote_id=voted.vote.data.vote.vote_id))
    assert view.state == MinutesState.ADOPTED and view.versions[0].adoption.vote_id == voted.vote.data.vote.vote_id


async def test_a_correction_is_a_new_version_with_its_reason(h: MinutesHarness) -> None:
    held, draft = await drafted(h)
    sec = held.secretariat
    await h.rpc(PublishMinutes(actor_id=sec, minutes_id=draft.minutes_id, adoption=AdoptionKind.NONE))
    v1 = await h.rpc(GetMinutesVersion(minutes_id=draft.minutes_id))
    pdf1 = (await h.rpc(GetMinutesPdf(minutes_id=draft.minutes_id, version=1))).pdf
    corrected_text = v1.markdown.replace("_Résumé des échanges à compléter par le secrétariat._",
                                         "Les échanges ont porté sur le calendrier de l'engagement 5.")
    corrected_text += "\nUn point divers a été ajouté en fin de séance.\n"

    def correct(markdown: str, reason: str, request_id: str | None = None) -> CorrectMinutes:
        return CorrectMinutes.model_construct(actor_id=sec, minutes_id=draft.minutes_id, markdown=markdown,
                                              reason=reason, request_id=request_id)

    await refused(h.rpc(correct(corrected_text, "")), ErrorCode.INVALID, "reason")
    await refused(h.rpc(correct(corrected_text, "  ")), ErrorCode.INVALID, "reason")
    await refused(h.rpc(correct(v1.markdown, "Aucune raison")), ErrorCode.INVALID, "markdown")
    await refused(h.rpc(correct(v1.markdown.replace("\n\n## Ordre", "\n\n\n## Ordre"), "Espaces")),
                  ErrorCode.INVALID, "markdown")
    await refused(h.rpc(correct("", "Texte vide")), ErrorCode.INVALID, "markdown")
    await refused(h.rpc(CorrectMinutes(actor_id=held.attendees[0], minutes_id=draft.minutes_id,
                                       markdown=corrected_text, reason="Je corrige")), ErrorCode.FORBIDDEN, "actor_id")
    assert await versions_in_db(h, draft.minutes_id) == 1

    reason = "Résumé des débats complété après relecture."
    views = await asyncio.gather(*[h.rpc(correct(corrected_text, reason, "corr-1")) for _ in range(2)])
    assert [len(v.versions) for v in views] == [2, 2] and await versions_in_db(h, draft.minutes_id) == 2
    assert views[0].state == MinutesState.CORRECTED and views[0].state_label == "corrigé"

    v2 = await h.rpc(GetMinutesVersion(minutes_id=draft.minutes_id))
    assert (v2.version, v2.latest_version, v2.reason) == (2, 2, reason)
    assert v2.markdown == corrected_text.strip() and v2.sha256 != v1.sha256
    assert hashlib.sha256(v2.canonical_json.encode()).hexdigest() == v2.sha256
    assert json.loads(v2.canonical_json)["meta"]["reason"] == reason
    assert [(s.version, s.reason) for s in v2.versions] == [(1, None), (2, reason)]
    # Version 1 is untouched: same text, same hash, same PDF bytes.
    again = await h.rpc(GetMinutesVersion(minutes_id=draft.minutes_id, version=1))
    assert (again.markdown, again.sha256, again.canonical_json, again.html) == (v1.markdown, v1.sha256,
                                                                               v1.canonical_json, v1.html)
    assert (await h.rpc(GetMinutesPdf(minutes_id=draft.minutes_id, version=1))).pdf == pdf1
    # Unchanged paragraphs keep their anchors: citations of version 1 still land in version 2.
    old = {p.anchor: p.markdown for p in v1.paragraphs}
    new = {p.anchor: p.markdown for p in v2.paragraphs}
    kept = [a for a in old if a in new]
    assert len(kept) == len(old) - 1 and all(old[a] == new[a] for a in kept)

    diff = await h.rpc(DiffMinutes(minutes_id=draft.minutes_id, from_version=1, to_version=2))
    kinds = [c.kind for c in diff.changes]
    assert kinds.count("changed") == 1 and kinds.count("added") == 1 and kinds.count("removed") == 0
    changed = next(c for c in diff.changes if c.kind == "changed")
    assert "Résumé des échanges" in changed.old.markdown and "calendrier de l'engagement 5" in changed.new.markdown
    await refused(h.rpc(DiffMinutes(minutes_id=draft.minutes_id, from_version=1, to_version=3)),
                  ErrorCode.NOT_FOUND, "to_version")
    await refused(h.rpc(DiffMinutes(minutes_id=draft.minutes_id, from_version=2, to_version=2)),
                  ErrorCode.INVALID, "to_version")
    await refused(h.rpc(GetMinutesVersion(minutes_id=draft.minutes_id, version=3)), ErrorCode.NOT_FOUND, "version")
    await refused(h.rpc(GetMinutesVersion.model_construct(minutes_id=draft.minutes_id, version=0)),
                  ErrorCode.INVALID, "version")

    record = await leaf_of(h, v2.event_id)
    assert record["type"] == "minutes.corrected"
    assert (record["data"]["version"], record["data"]["sha256"], record["data"]["reason"]) == (2, v2.sha256, reason)
    status = await h.rpc(MinutesOfSession(session_id=held.session_id))
    assert (status.state_label, status.latest_version) == ("corrigé", 2)
    # A correction of something not published is refused.
    other, odraft = await drafted(h)
    await refused(h.rpc(CorrectMinutes(actor_id=other.secretariat, minutes_id=odraft.minutes_id,
                                       markdown="# Nouveau\n", reason="Correction")), ErrorCode.CONFLICT, "minutes_id")


async def test_the_list_shows_published_minutes_newest_first(h: MinutesHarness) -> None:
    base = utcnow() - timedelta(days=400)
    group, gdraft = await drafted(h, starts_at=base, kind=SessionKind.WORKING_GROUP, theme=Theme.JUSTICE,
                                  title="Groupe justice")
    plenary, pdraft = await drafted(h, starts_at=base + timedelta(days=30), title="Plénière de clôture")
    unpublished, udraft = await drafted(h, starts_at=base + timedelta(days=60), title="Plénière en cours")
    for held, draft in ((group, gdraft), (plenary, pdraft)):
        await h.rpc(PublishMinutes(actor_id=held.secretariat, minutes_id=draft.minutes_id, adoption=AdoptionKind.NONE))

    listed = await h.rpc(ListMinutes(limit=500))
    ids = [m.minutes_id for m in listed.minutes]
    assert udraft.minutes_id not in ids and listed.total == len(ids)
    assert ids.index(pdraft.minutes_id) < ids.index(gdraft.minutes_id)
    starts = [m.session.starts_at for m in listed.minutes]
    assert starts == sorted(starts, reverse=True)
    entry = next(m for m in listed.minutes if m.minutes_id == gdraft.minutes_id)
    assert (entry.state_label, entry.latest_version, entry.adoption.kind) == ("publié", 1, AdoptionKind.NONE)
    only_group = await h.rpc(ListMinutes(kind=SessionKind.WORKING_GROUP, theme=Theme.JUSTICE))
    assert gdraft.minutes_id in [m.minutes_id for m in only_group.minutes]
    assert all(m.session.kind == SessionKind.WORKING_GROUP for m in only_group.minutes)
    year = base.year
    by_year = await h.rpc(ListMinutes(year=year, limit=500))
    assert all(m.session.starts_at.year in (year, year + 1) for m in by_year.minutes)  # Paris vs UTC edges
    assert (await h.rpc(ListMinutes(year=2001))).minutes == []
    # Drafts only to the secretariat.
    drafts = await h.rpc(ListMinutes(actor_id=unpublished.secretariat, include_unpublished=True, limit=500))
    assert udraft.minutes_id in [m.minutes_id for m in drafts.minutes]
    await refused(h.rpc(ListMinutes(actor_id=unpublished.attendees[0], include_unpublished=True)),
                  ErrorCode.FORBIDDEN, "actor_id")


async def test_a_superseded_decision_is_said_so_in_the_draft(h: MinutesHarness) -> None:
    held = await held_session(h, with_facts=False)
    old = held.decision.data.decision
    fix = decision_event(f"d-fix-{held.session_id}", number="2026-999", session_id=held.session_id,
                         supersedes=old.decision_id, title="Publication corrigée")
    superseded = make_event(DecisionSuperseded(decision_id=old.decision_id, superseded_by=fix.data.decision.decision_id,
                                               superseded_at=utcnow()), producer="forum")
    # The supersession may be read before the decision it concerns: it waits for it.
    for env in (superseded, held.decision, fix):
        await h.publish(env)
    await leaf_of(h, str(fix.event_id))

    async def noted() -> bool:
        async with h.svc.db.read() as tx:
            row = await tx.get(DecisionFact, old.decision_id)
            return row is not None and row.superseded_by == fix.data.decision.decision_id

    await until(noted, 30, "the supersession")
    md = (await h.rpc(OpenMinutesDraft(actor_id=held.secretariat, session_id=held.session_id))).markdown or ""
    assert "Remplacée depuis par la décision n° 2026-999." in md and "Décision n° 2026-999 — Publication corrigée" in md
