"""Rendering and sending e-mails: RFC 5322 multipart text + HTML, French, Europe/Paris times."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from shared.clock import PARIS
from shared.settings import Settings

SUBJECTS = {
    "verify_email": "Confirmez votre adresse électronique — Forum ouvert",
    "sign_in": "Votre lien de connexion — Forum ouvert",
    "approved": "Votre inscription au forum ouvert est validée",
    "rejected": "Votre inscription au forum ouvert n'a pas été validée",
}
_env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates" / "mail"),
                   autoescape=select_autoescape(["html"]), undefined=StrictUndefined)


def render(template: str, subject: str | None = None, **ctx: object) -> tuple[str, str, str]:
    """(subject, text, html) of one e-mail; `subject` defaults to the template's fixed one."""
    subject = subject or SUBJECTS[template]
    text = _env.get_template(f"{template}.txt").render(subject=subject, **ctx)
    html = _env.get_template(f"{template}.html").render(subject=subject, **ctx)
    return subject, text, html


def compose(*, settings: Settings, to: str, subject: str, text: str, html: str, message_key: str,
            headers: dict[str, str] | None = None, ics: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(PARIS))
    # Derived from the delivery id, so a receiving system can dedupe too.
    msg["Message-ID"] = make_msgid(idstring=message_key, domain="forum-ouvert.local")
    msg["Auto-Submitted"] = "auto-generated"
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    if ics:
        # multipart/mixed: the alternative text/HTML body, then the calendar file.
        msg.add_attachment(ics.encode(), maintype="text", subtype="calendar", filename="invitation.ics",
                           params={"method": "PUBLISH"})
    return msg


class PermanentFailure(Exception):
    """The SMTP server refused the message for good (5xx): retrying would not help."""


@asynccontextmanager
async def connection(settings: Settings) -> AsyncIterator[aiosmtplib.SMTP]:
    """One SMTP session for a batch of e-mails (connect, EHLO, STARTTLS and AUTH once)."""
    smtp = aiosmtplib.SMTP(hostname=settings.smtp_host, port=settings.smtp_port, timeout=30,
                           start_tls=settings.smtp_starttls, local_hostname="forum-ouvert.local",
                           username=settings.smtp_username or None, password=settings.smtp_password or None)
    await smtp.connect()
    try:
        yield smtp
    finally:
        try:
            await smtp.quit()
        except aiosmtplib.SMTPException:
            smtp.close()


async def send_on(smtp: aiosmtplib.SMTP, msg: EmailMessage) -> None:
    try:
        await smtp.send_message(msg)
    except aiosmtplib.SMTPResponseException as exc:
        if 500 <= exc.code < 600:
            raise PermanentFailure(f"{exc.code} {exc.message}") from exc
        raise
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise PermanentFailure(str(exc)) from exc
