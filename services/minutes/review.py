"""Review: the secretariat gives the draft to the session's attendees until a date; they comment on a
paragraph (by its anchor) or propose a new text for it; the secretariat accepts or declines each with
a word of reason, which the author reads. Accepting a rewording replaces that paragraph in the draft
(a new revision).

Locks: every change takes the minutes row (a comment too, so that it is checked against the draft
and the review date as they stand when it is written).
"""
from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import col, select

from forumlib.minutes_doc import Paragraph, split_paragraphs
from services.minutes.models import CommentRow, MinutesRow, MinutesStatus
from services.minutes.queries import find_minutes, is_attendee, is_secretariat, minutes_view, require_secretariat
from shared.clock import paris_datetime, utcnow
from shared.contracts.minutes import (
    AnswerMinutesComment, CommentKind, CommentList, CommentMinutes, CommentView, ListMinutesComments,
    MinutesReviewOpened, MinutesView, OpenMinutesReview,
)
from shared.errors import Conflict, Expired, Forbidden, Invalid, NotFound
from shared.service import HandlerContext


def comment_view(c: CommentRow) -> CommentView:
    return CommentView(comment_id=c.id, minutes_id=c.minutes_id, author_id=c.author_id, anchor=c.anchor,
                       kind=CommentKind(c.kind), text=c.text, paragraph=c.paragraph, created_at=c.created_at,
                       accepted=c.accepted, reason=c.reason, answered_at=c.answered_at,
                       applied_revision=c.applied_revision)


def replace_paragraph(paragraphs: Sequence[Paragraph], anchor: str, markdown: str) -> str:
    """The draft with the paragraph `anchor` replaced. The paragraphs cover every line of the text
    (only blank lines between them are left out), so joining them again loses nothing."""
    return "\n\n".join(markdown.strip() if p.anchor == anchor else p.markdown for p in paragraphs) + "\n"


async def open_minutes_review(req: OpenMinutesReview, ctx: HandlerContext) -> MinutesView:
    """Secretariat opens the draft to the attendees' review until `until` (or moves that date). Opening
    it, or moving the date, emits `MinutesReviewOpened` so the attendees are mailed; the same date
    again (a double click) mails no one."""
    now = utcnow()
    if req.until <= now:
        raise Invalid("La date de fin de relecture doit être dans le futur.", field="until")
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        tx = uow.tx
        await require_secretariat(tx, req.actor_id)
        doc = await find_minutes(tx, req.minutes_id, lock=True)
        if doc.status == MinutesStatus.PUBLISHED:
            raise Conflict("Ce compte rendu est déjà publié : sa relecture est close.", field="minutes_id")
        was_open = doc.status == MinutesStatus.REVIEW
        changed = not was_open or doc.review_until != req.until  # a repeated request mails no one again
        doc.status, doc.review_until, doc.reviewed = MinutesStatus.REVIEW, req.until, True
        doc.updated_by, doc.updated_at = req.actor_id, now
        tx.add(doc)
        await tx.flush()
        view = await minutes_view(tx, doc, req.actor_id, now)
        if changed:
            uow.emit(MinutesReviewOpened(minutes_id=doc.id, session_id=doc.session_id, until=req.until,
                                         session_title=view.session.title, moved=was_open))
    return view


def _check_open_for_comments(doc: MinutesRow, now_is_before_until: bool) -> None:
    if doc.status != MinutesStatus.REVIEW:
        raise Conflict("Ce compte rendu n'est pas ouvert à la relecture.", field="minutes_id")
    if not now_is_before_until:
        raise Expired(f"La relecture de ce compte rendu est close depuis le {paris_datetime(doc.review_until)}.",
                      field="minutes_id")


async def comment_minutes(req: CommentMinutes, ctx: HandlerContext) -> CommentView:
    """An attendee of the session comments on a paragraph of the draft in review, or proposes a new text
    for it, before the end of the review."""
    now = utcnow()
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        tx = uow.tx
        doc = await find_minutes(tx, req.minutes_id, lock=True)
        if not await is_attendee(tx, doc.session_id, req.actor_id):
            raise Forbidden("Seuls les membres présents à la séance relisent son compte rendu.", field="actor_id")
        _check_open_for_comments(doc, doc.review_until is not None and now < doc.review_until)
        paragraph = next((p for p in split_paragraphs(doc.markdown) if p.anchor == req.anchor), None)
        if paragraph is None:
            raise NotFound("Ce paragraphe n'existe pas (ou plus) dans le brouillon : rechargez-le.", field="anchor")
        if req.kind == CommentKind.REWORDING and req.text == paragraph.markdown:
            raise Invalid("La reformulation proposée est identique au paragraphe.", field="text")
        c = CommentRow(minutes_id=doc.id, author_id=req.actor_id, anchor=paragraph.anchor, kind=req.kind.value,
                       text=req.text, paragraph=paragraph.markdown, draft_revision=doc.revision, created_at=now)
        tx.add(c)
        await tx.flush()
        view = comment_view(c)
    return view


async def answer_minutes_comment(req: AnswerMinutesComment, ctx: HandlerContext) -> CommentView:
    """Secretariat accepts or declines a comment, with a reason for its author. An accepted rewording
    replaces the paragraph in the draft, as long as that paragraph has not changed since."""
    now = utcnow()
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        tx = uow.tx
        await require_secretariat(tx, req.actor_id)
        minutes_id = (await tx.exec(select(CommentRow.minutes_id).where(CommentRow.id == req.comment_id))).first()
        if minutes_id is None:
            raise NotFound("Commentaire inconnu.", field="comment_id")
        doc = await find_minutes(tx, minutes_id, lock=True)  # the minutes first, then the comment
        c = (await tx.exec(select(CommentRow).where(CommentRow.id == req.comment_id).with_for_update())).one()
        if c.accepted is not None:
            raise Conflict("Ce commentaire a déjà reçu une réponse.", field="comment_id")
        if req.accepted and c.kind == CommentKind.REWORDING:
            if doc.status == MinutesStatus.PUBLISHED:
                raise Conflict("Ce compte rendu est publié : une reformulation ne peut plus y être reprise.",
                               field="comment_id")
            paragraphs = split_paragraphs(doc.markdown)
            if all(p.anchor != c.anchor for p in paragraphs):
                raise Conflict("Le paragraphe concerné a changé depuis la proposition : reprenez-la à la main dans "
                               "le brouillon.", field="comment_id")
            doc.markdown = replace_paragraph(paragraphs, c.anchor, c.text)
            doc.revision += 1
            doc.updated_by, doc.updated_at = req.actor_id, now
            tx.add(doc)
            c.applied_revision = doc.revision
        c.accepted, c.reason, c.answered_by, c.answered_at = req.accepted, req.reason, req.actor_id, now
        tx.add(c)
        await tx.flush()
        view = comment_view(c)
    return view


async def list_minutes_comments(req: ListMinutesComments, ctx: HandlerContext) -> CommentList:
    """The comments on the minutes: all of them to the secretariat, their own to anybody else (with the
    answers they got)."""
    async with ctx.db.read() as tx:
        doc = await find_minutes(tx, req.minutes_id)
        stmt = select(CommentRow).where(CommentRow.minutes_id == doc.id)
        if not await is_secretariat(tx, req.actor_id):
            stmt = stmt.where(CommentRow.author_id == req.actor_id)
        rows = (await tx.exec(stmt.order_by(col(CommentRow.created_at), col(CommentRow.id)))).all()
    return CommentList(comments=[comment_view(c) for c in rows])
