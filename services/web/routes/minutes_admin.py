"""The secretariat's comptes rendus pages: the list of minutes (drafts too) and of the past sessions
still without any, « Rédiger le compte rendu » (a draft pre-filled by the minutes service), the editor
(Markdown, a preview rendered here with the sanitiser the published versions use, autosave by
/static/js/compte-rendu.js), the review by the session's attendees (until a date), the answers to
their comments, the publication (adopted by a later decision, by a closed vote, or without adoption)
and the corrections (a new version with its reason). And the attendees' side of the review: a member
present at the session reads the draft paragraph by paragraph, comments on one or proposes a new
wording, and reads the secretariat's answers to their own comments.

No work is lost: every refused form comes back with what was typed; a save over a text changed in
another tab is refused by the service (`base_revision`) and the page then shows both texts, the
clerk's own still in the editor.
"""
from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.requests import Request

from forumlib.markdown import render_paragraphs
from forumlib.minutes_doc import Paragraph, split_paragraphs
from shared import clock
from shared.contracts.common import ErrorCode
from shared.contracts.decisions import Eligibility, ListVotes, VoteStatus, VoteView
from shared.contracts.forum import ListSessions, SessionPeriod, SessionStatus
from shared.contracts.minutes import (
    COMMENT_KIND_LABELS, MAX_MINUTES_TEXT, AdoptionKind, AnswerMinutesComment, CommentMinutes, CorrectMinutes,
    GetMinutes,
    ListMinutes, ListMinutesComments, MinutesView, OpenMinutesDraft, OpenMinutesReview, PublishMinutes,
    SaveMinutesDraft,
)
from shared.contracts.registry import GetMember, MemberView
from shared.rpc import RpcClient, RpcError
from services.web.forms import (
    ONCE_FIELD, ROOT, form_token, idempotency_key, local_input, parse_paris, read_form, validate,
)
from services.web.pages import (
    HTTP_STATUS, current_member, is_secretariat, render, require_member, require_secretariat, rpc, rpc_error_page,
)
from services.web.routes._common import fetch, not_found, sentence, service_errors, unknown_session, valid_id
from services.web.routes.minutes import LABELS as PUBLIC_LABELS
from services.web.security import visitor

router = APIRouter(include_in_schema=False)

LIST_BACK = [("/secretariat/comptes-rendus", "Retour aux comptes rendus (secrétariat)")]
LABELS = {"markdown": "Texte du compte rendu", "until": "Fin de la relecture", "adoption": "Adoption",
          "decision_number": "Numéro de la décision qui adopte le compte rendu",
          "vote_id": "Vote qui adopte le compte rendu",
          "reason": "Raison de la correction", "base_revision": "Texte du compte rendu"}
ADOPTION_LABELS = {AdoptionKind.DECISION: "Par une décision d'une séance suivante",
                   AdoptionKind.VOTE: "Par un vote en ligne des membres présents (clos)",
                   AdoptionKind.NONE: "Sans adoption"}
EMPTY_TEXT = "Écrivez le texte du compte rendu : il ne peut pas être vide."
REVIEW_DAYS = 7


async def unknown_minutes(request: Request) -> Response:
    return await not_found(request, "Ce compte rendu", "Compte rendu introuvable", LIST_BACK)


def preview_html(markdown: str) -> Any:
    return render_paragraphs(split_paragraphs(markdown or ""))


def wants_json(request: Request) -> bool:
    """The editor's script saves in the background and reads a JSON answer."""
    return "application/json" in request.headers.get("accept", "")


def _field(name: str | None) -> str:
    return {"base_revision": "markdown", "minutes_id": ROOT, "actor_id": ROOT}.get(name or "", name or ROOT)


# ---------------------------------------------------------------- the list
@router.get("/secretariat/comptes-rendus")
async def admin_list(request: Request) -> Response:
    actor = await require_secretariat(request)
    client = rpc(request)
    listed, past = await asyncio.gather(
        client(ListMinutes(actor_id=actor.member_id, include_unpublished=True, limit=500)),
        client(ListSessions(when=SessionPeriod.PAST, include_cancelled=False, limit=200)))
    with_minutes = {m.session.session_id for m in listed.minutes}
    waiting = [s for s in past.sessions if s.session_id not in with_minutes and s.status == SessionStatus.SCHEDULED]
    return await render(request, "admin_minutes_list.html", minutes=listed.minutes, total=listed.total,
                        waiting=waiting, **PUBLIC_LABELS)


@router.post("/secretariat/comptes-rendus/rediger")
async def open_draft(request: Request) -> Response:
    """« Rédiger le compte rendu »: the draft pre-filled by the service (opening it again finds it)."""
    actor = await require_secretariat(request)
    session_id = (await read_form(request)).get("seance", "").strip()
    if not valid_id(session_id):
        return await unknown_session(request)
    try:
        view = await rpc(request)(OpenMinutesDraft(actor_id=actor.member_id, session_id=session_id))
    except RpcError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            return await unknown_session(request)
        return await rpc_error_page(request, exc, title="Compte rendu impossible à ouvrir",
                                    actions=[(f"/seances/{session_id}", "Revenir à la séance"), *LIST_BACK])
    return RedirectResponse(f"/secretariat/comptes-rendus/{view.minutes_id}", status_code=303)


@router.post("/secretariat/comptes-rendus/apercu")
async def preview(request: Request) -> Response:
    """The live preview: the Markdown typed, rendered and sanitised exactly as a published version."""
    member = await current_member(request)
    if not is_secretariat(member):
        return HTMLResponse("<p>Aperçu indisponible : reconnectez-vous.</p>", status_code=403)
    markdown = (await read_form(request)).get("markdown", "")[:MAX_MINUTES_TEXT]
    return HTMLResponse(str(preview_html(markdown)))


# ---------------------------------------------------------------- the minutes' page
async def _adopting_votes(client: RpcClient, session_id: str) -> list[VoteView]:
    """Closed votes of the session open to its attendees: those that may adopt its minutes."""
    try:
        votes = (await client(ListVotes(session_id=session_id, status=VoteStatus.CLOSED, limit=100))).votes
    except RpcError:
        return []
    return [v for v in votes if v.vote.eligibility == Eligibility.ATTENDEES and v.status == VoteStatus.CLOSED]


async def member_names(client: RpcClient, ids: set[str]) -> dict[str, str]:
    async def one(member_id: str) -> tuple[str, str]:
        try:
            m: MemberView = await client(GetMember(member_id=member_id))
            return member_id, f"{m.full_name} ({m.organisation})" if m.organisation else m.full_name
        except RpcError:
            return member_id, "Membre du forum"
    return dict(await asyncio.gather(*[one(i) for i in sorted(ids)]))


async def admin_page(request: Request, actor: MemberView, minutes_id: str, *, errors: dict[str, str] | None = None,
                     values: dict[str, str] | None = None, status_code: int = 200,
                     conflict: MinutesView | None = None) -> Response:
    client = rpc(request)
    view = await fetch(request, minutes_id, lambda: GetMinutes(minutes_id=minutes_id, actor_id=actor.member_id),
                       unknown_minutes)
    if isinstance(view, Response):
        return view
    comments, votes = await asyncio.gather(
        client(ListMinutesComments(actor_id=actor.member_id, minutes_id=minutes_id)),
        _adopting_votes(client, view.session.session_id))
    names = await member_names(client, {c.author_id for c in comments.comments})
    until = view.review_until or clock.utcnow() + timedelta(days=REVIEW_DAYS)
    shown = {"markdown": view.markdown or "", "base_revision": str(view.revision), "until": local_input(until),
             "adoption": "", "decision_number": "", "vote_id": "", "reason": "", ONCE_FIELD: form_token()}
    shown.update(values or {})
    errors = errors or {}
    labels = {**LABELS, **{f"reason-{c.comment_id}": "Réponse au commentaire" for c in comments.comments}}
    return await render(request, "admin_minutes.html", status_code=status_code, view=view, values=shown,
                        errors=errors, labels=labels, preview=preview_html(shown["markdown"]), conflict=conflict,
                        comments=comments.comments, names=names, adoption_labels=ADOPTION_LABELS,
                        vote_choices=[(v.vote.vote_id, f"{v.vote.question} (clos le {clock.paris_date(v.closed_at)})")
                                      for v in votes],
                        comment_kind_labels=COMMENT_KIND_LABELS, **PUBLIC_LABELS)


@router.get("/secretariat/comptes-rendus/{minutes_id}")
async def editor(request: Request, minutes_id: str) -> Response:
    actor = await require_secretariat(request)
    return await admin_page(request, actor, minutes_id)


async def _refused(request: Request, actor: MemberView, minutes_id: str, exc: RpcError, values: dict[str, str],
                   field_map: dict[str, str] | None = None) -> Response:
    """A service's refusal: the page again with the message beside its field, what was typed kept."""
    if exc.code == ErrorCode.NOT_FOUND and exc.field in (None, "minutes_id"):
        return await unknown_minutes(request)
    errors = service_errors(exc, {})
    if errors is None:
        return await rpc_error_page(request, exc, actions=[(f"/secretariat/comptes-rendus/{minutes_id}",
                                                             "Revenir au compte rendu"), *LIST_BACK])
    name = (field_map or {}).get(exc.field or "", _field(exc.field))
    return await admin_page(request, actor, minutes_id, errors={name: sentence(exc.error.message)}, values=values,
                            status_code=HTTP_STATUS.get(exc.code, 422))


# ---------------------------------------------------------------- saving the draft (form or background)
async def _json_actor(request: Request) -> MemberView | JSONResponse:
    member = await current_member(request)
    if member is None:
        return JSONResponse({"message": "Votre connexion a expiré : votre texte est gardé dans ce navigateur. "
                             "Reconnectez-vous dans un autre onglet, puis rechargez cette page pour le retrouver."},
                            status_code=401)
    if not is_secretariat(member):
        return JSONResponse({"message": "Seul le secrétariat du forum enregistre un compte rendu."}, status_code=403)
    return member


@router.post("/secretariat/comptes-rendus/{minutes_id}/brouillon")
async def save(request: Request, minutes_id: str) -> Response:
    as_json = wants_json(request)
    actor = await _json_actor(request) if as_json else await require_secretariat(request)
    if isinstance(actor, JSONResponse):
        return actor
    form = await read_form(request)
    values = {"markdown": form.get("markdown", ""), "base_revision": form.get("base_revision", "")}
    req, errors = validate(SaveMinutesDraft, {"actor_id": actor.member_id, "minutes_id": minutes_id, **values},
                           limits={"markdown": MAX_MINUTES_TEXT}, messages={"markdown": EMPTY_TEXT})
    if req is None:
        errors = {_field(k): v for k, v in errors.items()}
        if as_json:
            return JSONResponse({"message": next(iter(errors.values()))}, status_code=422)
        return await admin_page(request, actor, minutes_id, errors=errors, values=values, status_code=422)
    client = rpc(request)
    try:
        view = await client(req)
    except RpcError as exc:
        if exc.code == ErrorCode.CONFLICT and exc.field == "base_revision":
            fresh = await client(GetMinutes(minutes_id=minutes_id, actor_id=actor.member_id))
            message = (f"Ce brouillon a été modifié dans un autre onglet ou par une autre personne (révision "
                       f"{fresh.revision}) : rien n'a été enregistré. Votre texte est gardé dans l'éditeur ; "
                       "comparez-le au texte enregistré ailleurs, puis enregistrez-le pour le remplacer.")
            if as_json:
                return JSONResponse({"conflict": True, "message": message, "revision": fresh.revision,
                                     "markdown": fresh.markdown or ""}, status_code=409)
            return await admin_page(request, actor, minutes_id, errors={"markdown": message}, conflict=fresh,
                                    values={**values, "base_revision": str(fresh.revision)}, status_code=409)
        if as_json:
            return JSONResponse({"message": sentence(exc.error.message)}, status_code=HTTP_STATUS.get(exc.code, 500))
        return await _refused(request, actor, minutes_id, exc, values)
    saved_at = clock.paris_hour(view.updated_at)
    if as_json:
        return JSONResponse({"revision": view.revision, "message": f"Brouillon enregistré à {saved_at}."})
    visitor(request).set_flash("success", f"Brouillon enregistré à {saved_at}.")
    return RedirectResponse(f"/secretariat/comptes-rendus/{minutes_id}", status_code=303)


# ---------------------------------------------------------------- review, answers
@router.post("/secretariat/comptes-rendus/{minutes_id}/relecture")
async def open_review(request: Request, minutes_id: str) -> Response:
    actor = await require_secretariat(request)
    if not valid_id(minutes_id):
        return await unknown_minutes(request)
    values = {"until": (await read_form(request)).get("until", "").strip()[:40]}
    try:
        until = parse_paris(values["until"])
    except ValueError as exc:
        return await admin_page(request, actor, minutes_id, errors={"until": str(exc)}, values=values, status_code=422)
    try:
        view = await rpc(request)(OpenMinutesReview(actor_id=actor.member_id, minutes_id=minutes_id, until=until))
    except RpcError as exc:
        return await _refused(request, actor, minutes_id, exc, values)
    visitor(request).set_flash("success", "La relecture est ouverte aux membres présents à la séance jusqu'au "
                               f"{clock.paris_datetime(view.review_until)} (heure de Paris).")
    return RedirectResponse(f"/secretariat/comptes-rendus/{minutes_id}#relecture", status_code=303)


@router.post("/secretariat/comptes-rendus/{minutes_id}/commentaires/{comment_id}")
async def answer(request: Request, minutes_id: str, comment_id: str) -> Response:
    actor = await require_secretariat(request)
    if not valid_id(comment_id):
        return await unknown_minutes(request)
    form = await read_form(request)
    accepted, reason = form.get(f"accepted-{comment_id}", ""), form.get("reason", "").strip()
    key = idempotency_key(form)
    values = {f"accepted-{comment_id}": accepted, f"reason-{comment_id}": reason, f"once-{comment_id}": key or ""}
    errors: dict[str, str] = {}
    if accepted not in ("1", "0"):
        errors[f"accepted-{comment_id}"] = "Choisissez : accepter ou refuser ce commentaire."
    req, model_errors = validate(AnswerMinutesComment, {"actor_id": actor.member_id, "comment_id": comment_id,
                                                        "accepted": accepted == "1", "reason": reason},
                                 limits={"reason": 1000})
    if "reason" in model_errors:
        errors[f"reason-{comment_id}"] = "Donnez en quelques mots la raison de votre réponse (3 caractères au moins)."
    if errors or req is None:
        return await admin_page(request, actor, minutes_id, errors=errors, values=values, status_code=422)
    try:
        done = await rpc(request)(req, idempotency_key=key)
    except RpcError as exc:
        return await _refused(request, actor, minutes_id, exc, values,
                              {"comment_id": f"reason-{comment_id}", "reason": f"reason-{comment_id}"})
    what = "acceptée" if done.accepted else "refusée"
    applied = " Le paragraphe du brouillon est remplacé par la reformulation." if done.applied_revision else ""
    visitor(request).set_flash("success", f"Réponse enregistrée : proposition {what}.{applied}")
    return RedirectResponse(f"/secretariat/comptes-rendus/{minutes_id}#commentaire-{comment_id}", status_code=303)


# ---------------------------------------------------------------- publish, correct
@router.post("/secretariat/comptes-rendus/{minutes_id}/publier")
async def publish(request: Request, minutes_id: str) -> Response:
    actor = await require_secretariat(request)
    form = await read_form(request)
    values = {k: form.get(k, "").strip() for k in ("adoption", "decision_number", "vote_id", "base_revision",
                                                     "request_id")}
    kinds = {k.value for k in AdoptionKind}
    if values["adoption"] not in kinds:
        return await admin_page(request, actor, minutes_id, values=values, status_code=422,
                                errors={"adoption": "Choisissez comment le compte rendu est adopté (ou sans "
                                                    "adoption)."})
    data: dict[str, Any] = {"actor_id": actor.member_id, "minutes_id": minutes_id, "adoption": values["adoption"],
                            "request_id": values["request_id"] or None,
                            "base_revision": values["base_revision"] or None}
    if values["adoption"] == AdoptionKind.DECISION:
        data["decision_number"] = values["decision_number"] or None
    if values["adoption"] == AdoptionKind.VOTE:
        data["vote_id"] = values["vote_id"] or None
    req, errors = validate(PublishMinutes, data, limits={"decision_number": 20, "vote_id": 36, "request_id": 64},
                           messages={"decision_number": "Indiquez le numéro de la décision qui adopte le compte rendu "
                                                        "(par exemple 2025-004).",
                                     "vote_id": "Choisissez le vote qui adopte le compte rendu."})
    if req is None:
        return await admin_page(request, actor, minutes_id, values=values, status_code=422,
                                errors={_field(k): v for k, v in errors.items()})
    try:  # the PDF is rendered before the reply
        view = await rpc(request)(req, timeout=60, idempotency_key=idempotency_key(form))
    except RpcError as exc:
        # The draft shown again is the one stored now: publishing it is a new, informed click.
        values.pop("base_revision")
        return await _refused(request, actor, minutes_id, exc, values, {"base_revision": ROOT})
    last = view.versions[-1]
    visitor(request).set_flash("success", f"Le compte rendu est publié (version {last.version}) : {view.state_label}.")
    return RedirectResponse(f"/comptes-rendus/{minutes_id}", status_code=303)


@router.post("/secretariat/comptes-rendus/{minutes_id}/corriger")
async def correct(request: Request, minutes_id: str) -> Response:
    actor = await require_secretariat(request)
    form = await read_form(request)
    values = {"markdown": form.get("markdown", ""), "reason": form.get("reason", "").strip(),
              "request_id": form.get("request_id", "").strip()}
    req, errors = validate(CorrectMinutes, {"actor_id": actor.member_id, "minutes_id": minutes_id, **values,
                                            "request_id": values["request_id"] or None},
                           limits={"markdown": MAX_MINUTES_TEXT, "reason": 1000, "request_id": 64},
                           messages={"markdown": EMPTY_TEXT,
                                     "reason": "Donnez la raison de la correction (3 caractères au moins) : elle est "
                                               "publiée avec la nouvelle version."})
    if req is None:
        return await admin_page(request, actor, minutes_id, values=values, status_code=422,
                                errors={_field(k): v for k, v in errors.items()})
    try:
        view = await rpc(request)(req, timeout=60, idempotency_key=idempotency_key(form))
    except RpcError as exc:
        return await _refused(request, actor, minutes_id, exc, values)
    visitor(request).set_flash("success", f"La correction est publiée : version {view.versions[-1].version}, avec sa "
                               "raison. Les versions précédentes restent publiques.")
    return RedirectResponse(f"/comptes-rendus/{minutes_id}", status_code=303)


# ---------------------------------------------------------------- the attendees' review
COMMENT_MESSAGES = {"comment": "Écrivez votre remarque sur ce paragraphe.",
                    "rewording": "Écrivez le nouveau texte que vous proposez pour ce paragraphe."}
_ANCHOR = re.compile(r"^p-[0-9a-f]{6,64}(-[0-9]{1,6})?$")


async def review_page(request: Request, member: MemberView, minutes_id: str, *, errors: dict[str, str] | None = None,
                      values: dict[str, str] | None = None, status_code: int = 200) -> Response:
    """The draft in review, paragraph by paragraph, each with its anchor and a form to comment on it or to
    propose a new wording; below, the member's own comments and the secretariat's answers."""
    client = rpc(request)
    view = await fetch(request, minutes_id, lambda: GetMinutes(minutes_id=minutes_id, actor_id=member.member_id),
                       unknown_minutes)
    if isinstance(view, Response):
        return view
    if view.markdown is None:  # published: the public page shows it
        return RedirectResponse(f"/comptes-rendus/{minutes_id}", status_code=303)
    mine = await client(ListMinutesComments(actor_id=member.member_id, minutes_id=minutes_id))
    blocks = [(p, render_paragraphs([Paragraph(anchor=p.anchor, kind=p.kind, markdown=p.markdown)]))
              for p in view.paragraphs]
    return await render(request, "minutes_review.html", status_code=status_code, view=view, blocks=blocks,
                        comments=mine.comments, errors=errors or {}, values=values or {},
                        comment_kind_labels=COMMENT_KIND_LABELS, **PUBLIC_LABELS)


@router.get("/comptes-rendus/{minutes_id}/relecture")
async def review(request: Request, minutes_id: str) -> Response:
    member = await require_member(request)
    return await review_page(request, member, minutes_id)


@router.post("/comptes-rendus/{minutes_id}/relecture")
async def comment(request: Request, minutes_id: str) -> Response:
    member = await require_member(request)
    form = await read_form(request)
    anchor, kind, text = form.get("anchor", "").strip(), form.get("kind", ""), form.get("text", "")
    if not _ANCHOR.match(anchor) or kind not in COMMENT_MESSAGES:
        return await review_page(request, member, minutes_id, status_code=422,
                                 errors={ROOT: "Choisissez le paragraphe à commenter, puis écrivez votre remarque."})
    key = f"{kind}-{anchor}"
    token = idempotency_key(form)
    values = {key: text, f"once-{key}": token or ""}
    req, errors = validate(CommentMinutes, {"actor_id": member.member_id, "minutes_id": minutes_id, "anchor": anchor,
                                            "kind": kind, "text": text},
                           limits={"text": 20_000}, messages={"text": COMMENT_MESSAGES[kind]})
    if req is None:
        return await review_page(request, member, minutes_id, values=values, status_code=422,
                                 errors={key if k == "text" else ROOT: v for k, v in errors.items()})
    try:
        await rpc(request)(req, idempotency_key=token)
    except RpcError as exc:
        if exc.code == ErrorCode.NOT_FOUND and exc.field in (None, "minutes_id"):
            return await unknown_minutes(request)
        if service_errors(exc, {}) is None:
            return await rpc_error_page(request, exc)
        return await review_page(request, member, minutes_id, values=values, status_code=HTTP_STATUS.get(exc.code, 422),
                                 errors={key if exc.field == "text" else ROOT: sentence(exc.error.message)})
    visitor(request).set_flash("success", "Votre proposition est transmise au secrétariat, qui y répondra avec une "
                               "raison ; vous la retrouvez ci-dessous.")
    return RedirectResponse(f"/comptes-rendus/{minutes_id}/relecture#mes-commentaires", status_code=303)
