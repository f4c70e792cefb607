"""Local mode only: the e-mails caught by the local mail catcher, so a newcomer can follow the links.

Absent (404) unless settings.local_mode. A message's HTML part is served on its own address with a
CSP of its own (no script, inline styles allowed, sandboxed) and shown in a sandboxed iframe: the
site's own strict CSP stays untouched.
"""
from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup, escape
from starlette.requests import Request

from forum_ouvert.mailcatcher import read_message, read_messages
from services.web.pages import render, web

router = APIRouter(prefix="/dev", include_in_schema=False)
MAX_LISTED = 200
_URL = re.compile(r"https?://[^\s<>\"']+")
MAIL_FRAME_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; "
                  "base-uri 'none'; form-action 'none'; sandbox")


def _local_only(request: Request) -> None:
    if not web(request).settings.local_mode:
        raise HTTPException(status_code=404)


def _summary(message_id: str, msg: EmailMessage) -> dict[str, object]:
    try:
        date = parsedate_to_datetime(str(msg["Date"])) if msg["Date"] else None
    except (TypeError, ValueError):
        date = None
    return {"id": message_id, "date": date, "to": str(msg["To"] or ""), "sender": str(msg["From"] or ""),
            "subject": str(msg["Subject"] or "(sans objet)")}


def _message(request: Request, message_id: str) -> EmailMessage:
    _local_only(request)
    msg = read_message(web(request).settings.mail_folder, message_id) if len(message_id) <= 64 else None
    if msg is None:
        raise HTTPException(status_code=404)
    return msg


def linkify(text: str) -> Markup:
    """Escape the text, then turn its web addresses into links."""
    escaped = str(escape(text))
    return Markup(_URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped))


@router.get("/mail")
async def mail_list(request: Request) -> Response:
    _local_only(request)
    messages = [_summary(i, m) for i, m in read_messages(web(request).settings.mail_folder)[:MAX_LISTED]]
    return await render(request, "dev_mail_list.html", messages=messages)


@router.get("/mail/{message_id}")
async def mail_show(request: Request, message_id: str) -> Response:
    msg = _message(request, message_id)
    text_part = msg.get_body(preferencelist=("plain",))
    html_part = msg.get_body(preferencelist=("html",))
    text = text_part.get_content() if text_part is not None else ""
    return await render(request, "dev_mail_show.html", mail=_summary(message_id, msg), text=linkify(text),
                        has_html=html_part is not None)


@router.get("/mail/{message_id}/html")
async def mail_html(request: Request, message_id: str) -> Response:
    msg = _message(request, message_id)
    part = msg.get_body(preferencelist=("html",))
    if part is None:
        raise HTTPException(status_code=404)
    return HTMLResponse(part.get_content(), headers={
        "Content-Security-Policy": MAIL_FRAME_CSP, "X-Frame-Options": "SAMEORIGIN"})
