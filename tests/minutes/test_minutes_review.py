"""Review of the minutes by the session's attendees, against a real nats-server and a real database:
only members present at the session comment, on a paragraph that exists, before the end of the
review; the secretariat answers each comment with a reason its author reads, and an accepted
rewording replaces its paragraph in the draft."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy
from sqlmodel import select

from shared.clock import utcnow
from shared.contracts.common import ErrorCode
from shared.contracts.minutes import (
    AnswerMinutesComment, CommentKind, CommentMinutes, GetMinutes, ListMinutesComments, MinutesState, MinutesView,
    MinutesReviewOpened, OpenMinutesDraft, OpenMinutesReview, SaveMinutesDraft,
)
from shared.outbox import OutboxMessage
from shared.rpc import RpcError
from tests.minutes.harness import HeldSession, MinutesHarness, held_session, until

pytestmark = pytest.mark.integration


async def refused(call, code: ErrorCode, field: str) -> RpcError:  # noqa: ANN001 - an awaitable
    with pytest.raises(RpcError) as caught:
        await call
    assert caught.value.code == code and caught.value.field == field, caught.value.error
    return caught.value


async def in_review(h: MinutesHarness, until_in: timedelta = timedelta(days=7)) -> tuple[HeldSession, MinutesView]:
    held = await held_session(h)
    draft = await h.rpc(OpenMinutesDraft(actor_id=held.secretariat, session_id=held.session_id))
    view = await h.rpc(OpenMinutesReview(actor_id=held.secretariat, minutes_id=draft.minutes_id,
                                         until=utcnow() + until_in))
    return held, view


def anchor_of(view: MinutesView, starts: str) -> str:
    return next(p.anchor for p in view.paragraphs if p.markdown.startswith(starts))


async def test_attendees_comment_and_the_secretariat_answers(h: MinutesHarness) -> None:
    held, view = await in_review(h)
    sec, alice, bob = held.secretariat, held.attendees[0], held.attendees[1]
    assert view.state == MinutesState.REVIEW and view.state_label == "en relecture"

    # An attendee reads the draft during the review, and may comment; someone absent may not.
    seen = await h.rpc(GetMinutes(actor_id=alice, minutes_id=view.minutes_id))
    assert seen.markdown == view.markdown and seen.may_comment and not seen.may_edit
    await refused(h.rpc(GetMinutes(actor_id=held.absent, minutes_id=view.minutes_id)), ErrorCode.FORBIDDEN,
                  "minutes_id")

    debates = anchor_of(view, "_Résumé des échanges")
    present = anchor_of(view, "Organisations représentées")
    remark = await h.rpc(CommentMinutes(actor_id=alice, minutes_id=view.minutes_id, anchor=debates,
                                        kind=CommentKind.COMMENT, text="Il manque l'intervention de la Ville."))
    assert remark.paragraph.startswith("_Résumé des échanges") and remark.accepted is None
    new_text = "Organisations représentées : Association Alpha, Collectif Bêta, Ville de Lyon et des citoyens."
    rewording = await h.rpc(CommentMinutes(actor_id=bob, minutes_id=view.minutes_id, anchor=present,
                                           kind=CommentKind.REWORDING, text=new_text))
    debates_rewording = await h.rpc(CommentMinutes(actor_id=bob, minutes_id=view.minutes_id, anchor=debates,
                                           kind=CommentKind.REWORDING,
                                           text="Les échanges ont porté sur le calendrier."))

    for actor in (held.absent, "nobody"):
        await refused(h.rpc(CommentMinutes(actor_id=actor, minutes_id=view.minutes_id, anchor=debates, text="Non")),
                      ErrorCode.FORBIDDEN, "actor_id")
    await refused(h.rpc(CommentMinutes(actor_id=alice, minutes_id=view.minutes_id, anchor="p-0000000000", text="?")),
                  ErrorCode.NOT_FOUND, "anchor")
    await refused(h.rpc(CommentMinutes.model_construct(actor_id=alice, minutes_id=view.minutes_id, anchor=debates,
                                                       kind=CommentKind.COMMENT, text="  ")),
                  ErrorCode.INVALID, "text")
    await refused(h.rpc(CommentMinutes(actor_id=alice, minutes_id="cr-unknown", anchor=debates, text="?")),
                  ErrorCode.NOT_FOUND, "minutes_id")

    # The secretariat sees every comment; an author sees their own.
    everything = await h.rpc(ListMinutesComments(actor_id=sec, minutes_id=view.minutes_id))
    assert [c.comment_id for c in everything.comments] == [remark.comment_id, rewording.comment_id,
                                                          debates_rewording.comment_id]
    mine = await h.rpc(ListMinutesComments(actor_id=alice, minutes_id=view.minutes_id))
    assert [c.comment_id for c in mine.comments] == [remark.comment_id]
    assert (await h.rpc(ListMinutesComments(actor_id=held.absent, minutes_id=view.minutes_id))).comments == []

    # Answers: a reason is required; only the secretariat answers; once.
    await refused(h.rpc(AnswerMinutesComment.model_construct(actor_id=sec, comment_id=remark.comment_id,
                                                             accepted=False, reason="")),
                  ErrorCode.INVALID, "reason")
    await refused(h.rpc(AnswerMinutesComment(actor_id=alice, comment_id=remark.comment_id, accepted=True,
                                             reason="Je m'approuve")), ErrorCode.FORBIDDEN, "actor_id")
    await refused(h.rpc(AnswerMinutesComment(actor_id=sec, comment_id="c-unknown", accepted=True, reason="Oui bien")),
                  ErrorCode.NOT_FOUND, "comment_id")
    declined = await h.rpc(AnswerMinutesComment(actor_id=sec, comment_id=remark.comment_id, accepted=False,
                                                reason="La Ville n'a pas pris la parole."))
    assert declined.accepted is False and declined.applied_revision is None
    await refused(h.rpc(AnswerMinutesComment(actor_id=sec, comment_id=remark.comment_id, accepted=True,
                                             reason="Finalement oui")), ErrorCode.CONFLICT, "comment_id")
    after_decline = await h.rpc(GetMinutes(actor_id=sec, minutes_id=view.minutes_id))
    assert after_decline.revision == view.revision and after_decline.markdown == view.markdown
    answered = (await h.rpc(ListMinutesComments(actor_id=alice, minutes_id=view.minutes_id))).comments[0]
    assert answered.accepted is False and answered.reason == "La Ville n'a pas pris la parole."

    # Accepting a rewording replaces that paragraph, and only it, in a new revision.
    accepted = await h.rpc(AnswerMinutesComment(actor_id=sec, comment_id=rewording.comment_id, accepted=True,
                                                reason="Plus complet, merci."))
    after = await h.rpc(GetMinutes(actor_id=sec, minutes_id=view.minutes_id))
    assert accepted.applied_revision == after.revision == view.revision + 1
    assert new_text in after.markdown and "Organisations représentées : Association Alpha, Collectif Bêta et" \
        not in after.markdown
    before = [p for p in view.paragraphs if p.anchor != present]
    assert [p for p in after.paragraphs if p.markdown != new_text] == before  # every other anchor survived

    # A rewording of a paragraph changed since cannot be applied blindly.
    changed = after.markdown.replace("_Résumé des échanges à compléter par le secrétariat._", "Débats animés.")
    await h.rpc(SaveMinutesDraft(actor_id=sec, minutes_id=view.minutes_id, base_revision=after.revision,
                                 markdown=changed))
    await refused(h.rpc(AnswerMinutesComment(actor_id=sec, comment_id=debates_rewording.comment_id, accepted=True,
                                             reason="Oui, reprise")), ErrorCode.CONFLICT, "comment_id")
    final = await h.rpc(GetMinutes(actor_id=sec, minutes_id=view.minutes_id))
    assert "Débats animés." in final.markdown and "Les échanges ont porté" not in final.markdown


async def test_comments_close_with_the_review(h: MinutesHarness) -> None:
    held = await held_session(h)
    sec, alice = held.secretariat, held.attendees[0]
    draft = await h.rpc(OpenMinutesDraft(actor_id=sec, session_id=held.session_id))
    anchor = draft.paragraphs[-1].anchor
    # Before the review opens, attendees neither read nor comment the draft.
    await refused(h.rpc(CommentMinutes(actor_id=alice, minutes_id=draft.minutes_id, anchor=anchor, text="Tôt")),
                  ErrorCode.CONFLICT, "minutes_id")
    await refused(h.rpc(OpenMinutesReview(actor_id=sec, minutes_id=draft.minutes_id,
                                          until=utcnow() - timedelta(minutes=1))), ErrorCode.INVALID, "until")
    await refused(h.rpc(OpenMinutesReview.model_construct(actor_id=sec, minutes_id=draft.minutes_id,
                                                          until=datetime(2030, 1, 1, 10))),  # no time zone
                  ErrorCode.INVALID, "until")
    await refused(h.rpc(OpenMinutesReview(actor_id=alice, minutes_id=draft.minutes_id,
                                          until=utcnow() + timedelta(days=1))), ErrorCode.FORBIDDEN, "actor_id")
    review = await h.rpc(OpenMinutesReview(actor_id=sec, minutes_id=draft.minutes_id,
                                           until=utcnow() + timedelta(seconds=1.5)))
    await h.rpc(CommentMinutes(actor_id=alice, minutes_id=draft.minutes_id, anchor=anchor, text="À temps"))
    await asyncio.sleep(max(0.0, (review.review_until - utcnow()).total_seconds()) + 0.2)
    err = await refused(h.rpc(CommentMinutes(actor_id=alice, minutes_id=draft.minutes_id, anchor=anchor,
                                             text="Trop tard")), ErrorCode.EXPIRED, "minutes_id")
    assert "close" in err.error.message
    late = await h.rpc(GetMinutes(actor_id=alice, minutes_id=draft.minutes_id))
    assert late.markdown is not None and not late.may_comment
    comments = await h.rpc(ListMinutesComments(actor_id=sec, minutes_id=draft.minutes_id))
    assert [c.text for c in comments.comments] == ["À temps"]
    # The secretariat may give more time.
    await h.rpc(OpenMinutesReview(actor_id=sec, minutes_id=draft.minutes_id, until=utcnow() + timedelta(days=2)))
    await h.rpc(CommentMinutes(actor_id=alice, minutes_id=draft.minutes_id, anchor=anchor, text="Encore un mot"))


async def review_events(h: MinutesHarness, minutes_id: str) -> list[dict]:
    """The `minutes.review_opened` events of these minutes on the MINUTES stream, oldest first (read by
    an ephemeral consumer: what the notifications service would receive)."""
    sub = await h.js.pull_subscribe(MinutesReviewOpened.TYPE, stream="MINUTES",
                                    config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
    found: list[dict] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(100, timeout=0.5)
            except TimeoutError:
                break
            found += [env for m in msgs if (env := json.loads(m.data))["data"]["minutes_id"] == minutes_id]
    finally:
        await sub.unsubscribe()
    return found


async def test_opening_or_moving_a_review_tells_the_attendees_once(h: MinutesHarness) -> None:
    held = await held_session(h, title="Atelier mobilités")
    sec = held.secretariat
    draft = await h.rpc(OpenMinutesDraft(actor_id=sec, session_id=held.session_id))
    first_until = utcnow() + timedelta(days=7)
    opened = OpenMinutesReview(actor_id=sec, minutes_id=draft.minutes_id, until=first_until)
    await h.rpc(opened)
    await h.rpc(opened)  # a double click: same date, no second notice
    moved_until = first_until + timedelta(days=3)
    await h.rpc(OpenMinutesReview(actor_id=sec, minutes_id=draft.minutes_id, until=moved_until))

    async def relayed() -> bool:
        async with h.svc.db.read() as tx:
            rows = (await tx.exec(select(OutboxMessage).where(OutboxMessage.subject == MinutesReviewOpened.TYPE))).all()
        mine = [r for r in rows if json.loads(r.payload)["data"]["minutes_id"] == draft.minutes_id]
        return len(mine) == 2 and all(r.published_at is not None for r in mine)

    await until(relayed, 30, "the review events relayed")
    events = await review_events(h, draft.minutes_id)
    assert len(events) == 2, events
    first, second = (MinutesReviewOpened.model_validate(e["data"]) for e in events)
    assert {e["type"] for e in events} == {"minutes.review_opened"}
    assert (first.session_id, first.session_title, first.until, first.moved) == (
        held.session_id, "Atelier mobilités", first_until, False)
    assert (second.until, second.moved) == (moved_until, True)
