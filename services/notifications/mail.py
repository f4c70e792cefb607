"""Rendering and composing e-mails: RFC 5322 multipart text + HTML in French, Europe/Paris times,
headers that no title can break, and the SMTP connection they leave on."""
from __future__ import annotations

import binascii
import random
import re
import sys
import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from email import policy
from email.utils import format_datetime, parseaddr
from functools import lru_cache
from pathlib import Path

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from shared.clock import PARIS
from shared.settings import Settings

SUBJECTS = {
    "verify_email": "Confirmez votre adresse électronique — Forum ouvert",
    "sign_in": "Votre lien de connexion — Forum ouvert",
    "already_registered": "Vous avez déjà un compte au forum ouvert",
    "approved": "Votre inscription au forum ouvert est validée",
    "rejected": "Votre inscription au forum ouvert n'a pas été validée",
    "subscription_confirm": "Confirmez votre abonnement — Forum ouvert",
    "subscription_known": "Votre abonnement au forum ouvert",
    "manage_link": "Gérer votre abonnement — Forum ouvert",
}
_env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates" / "mail"),
                   autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                   auto_reload=False)  # shipped with the code: no file date to check at every e-mail

# Bidirectional overrides and isolates can make a subject read differently from what it says.
_BIDI_CONTROLS = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"), None)


def header_text(value: str, limit: int = 250) -> str:
    """A title as one header line: every line break, tab or control character becomes a space, bidi
    overrides are dropped, and it is cut at `limit` characters. Non-ASCII (accents, emoji,
    right-to-left scripts) is kept: the email package encodes it (RFC 2047)."""
    value = value.translate(_BIDI_CONTROLS)
    value = "".join(" " if unicodedata.category(c)[0] in "CZ" and c != " " else c for c in value)
    value = re.sub(r" {2,}", " ", value).strip()
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def render(template: str, subject: str | None = None, *, footer: list[tuple[str, str]] | None = None,
           **ctx: object) -> tuple[str, str, str]:
    """(subject, text, html) of one e-mail; `subject` defaults to the template's fixed one. `footer`:
    (label, url) links shown under every message (preferences, unsubscribe)."""
    subject = header_text(subject or SUBJECTS[template])
    text = _env.get_template(f"{template}.txt").render(subject=subject, **ctx)
    html = _env.get_template(f"{template}.html").render(subject=subject, footer=footer or [], **ctx)
    if footer:
        text = text.rstrip("\n") + "\n\n-- \n" + "\n".join(f"{label} : {url}" for label, url in footer) + "\n"
    return subject, text, html


def sender_domain(settings: Settings) -> str:
    """The domain of the From address: the right-hand side of every Message-ID we make."""
    return _domain_of_from(settings.mail_from)


@lru_cache(maxsize=8)
def _domain_of_from(mail_from: str) -> str:
    return parseaddr(mail_from)[1].rpartition("@")[2] or "forum-ouvert.local"


def message_id(delivery_id: str, settings: Settings) -> str:
    """Stable: derived from the delivery, so a message sent again after a crash has the same one and
    the receiving system can recognise it."""
    return f"<{delivery_id}@{sender_domain(settings)}>"


# policy.SMTP (CRLF), with headers folded at 998 rather than 78 characters: Python 3.11's folder drops
# the space before a non-ASCII word when it splits a long encoded subject (CPython gh-144156).
SMTP_POLICY = policy.SMTP.clone(max_line_length=998)
MANAGE_MARK = "%%LIEN-GERER%%"        # in a notice's rendered text and HTML: the subscriber's own links
UNSUBSCRIBE_MARK = "%%LIEN-DESABONNER%%"


def short_lines(text: str, limit: int = 900) -> str:
    """Lines of at most `limit` characters, broken at a space (in HTML too, where a line break is a
    space), so the body can travel as 8bit without quoted-printable: SMTP allows 998 octets a line."""
    out = []
    for line in text.split("\n"):
        while len(line.encode()) > limit and (cut := line.rfind(" ", 1, 200)) > 0:  # 200 chars < 900 octets
            out.append(line[:cut])
            line = line[cut + 1:]
        out.append(line)
    return "\n".join(out)


def _envelope(to: str, message_id: str, unsubscribe_url: str | None) -> bytes:
    """The headers that differ for each recipient, first in the message."""
    head = f"To: {to}\r\nDate: {format_datetime(datetime.now(PARIS))}\r\nMessage-ID: {message_id}\r\n"
    if unsubscribe_url:
        head += f"List-Unsubscribe: <{unsubscribe_url}>\r\n"
    return head.encode()


def compose(*, settings: Settings, to: str, subject: str, text: str, html: str, message_id: str,
            ics: str | None = None, reply_to: str | None = None) -> bytes:
    """A personal message (its bodies rendered for this recipient), ready for SMTP. `reply_to`: where an
    answer goes (a contact message's sender), when not to the From address."""
    return _envelope(to, message_id, None) + _written(settings, subject, text, html, reply_to=reply_to, ics=ics)


def _written(settings: Settings, subject: str, text: str, html: str, *, list_id: str | None = None,
             reply_to: str | None = None, ics: str | None = None) -> bytes:
    """The message after its per-recipient headers: multipart text + HTML, then the calendar file if any.

    Written directly, part by part, as the email package writes it (headers folded by its SMTP policy,
    8bit bodies, the calendar file in base64): the package's message objects cost a millisecond a message,
    a quarter of the mail service's CPU. tests/notifications/test_message_parts.py checks the bytes
    against the package's."""
    text_part = _part(b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: 8bit\r\n',
                      _crlf_body(short_lines(text)))
    html_part = _part(b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: 8bit\r\n'
                      b"MIME-Version: 1.0\r\n", _crlf_body(short_lines(html)))
    head = _cached_header("From", settings.mail_from) + _subject_header(subject)
    head += b"Auto-Submitted: auto-generated\r\n"
    if list_id:
        # RFC 8058: a POST with « List-Unsubscribe=One-Click » to the List-Unsubscribe URL unsubscribes.
        head += (_header("List-Id", list_id)
                 + b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nPrecedence: bulk\r\n")
    head += b"MIME-Version: 1.0\r\n"
    reply = _header("Reply-To", reply_to) if reply_to else b""
    alternative = _multipart("alternative", [text_part, html_part])
    if not ics:
        kind, body = alternative
        return head + kind + reply + b"\r\n" + body
    calendar = _part(b"Content-Transfer-Encoding: base64\r\n"
                     b'Content-Disposition: attachment; filename="invitation.ics"\r\n'
                     b'Content-Type: text/calendar; method="PUBLISH"\r\nMIME-Version: 1.0\r\n',
                     _base64_lines(ics.encode()))
    kind, body = _multipart("mixed", [alternative[0] + b"\r\n" + alternative[1], calendar])
    return head + reply + kind + b"\r\n" + body


def _header(name: str, value: str) -> bytes:
    """`Name: value` as the email package writes it: parsed, then folded and RFC 2047-encoded."""
    return SMTP_POLICY.fold_binary(name, SMTP_POLICY.header_store_parse(name, value)[1])


@lru_cache(maxsize=8)
def _cached_header(name: str, value: str) -> bytes:
    return _header(name, value)


@lru_cache(maxsize=256)
def _subject_header(subject: str) -> bytes:
    """Most messages share their subject with many others (every address check, every copy of a notice):
    folded once each."""
    return _header("Subject", header_text(subject))


def _crlf_body(text: str) -> bytes:
    """A text body as the email package stores an 8bit one: its lines, each ended by CRLF."""
    return b"\r\n".join(text.encode().splitlines()) + b"\r\n"


def _base64_lines(data: bytes) -> bytes:
    """Base64 in lines as long as the policy allows, as the email package cuts them."""
    step = SMTP_POLICY.max_line_length // 4 * 3
    return b"".join(binascii.b2a_base64(data[i:i + step]).replace(b"\n", b"\r\n") for i in range(0, len(data), step))


def _part(headers: bytes, body: bytes) -> bytes:
    return headers + b"\r\n" + body


def _multipart(subtype: str, parts: list[bytes]) -> tuple[bytes, bytes]:
    """(its Content-Type header, its body), with a boundary found in none of the parts (the email
    package's own check misses one on a CRLF line)."""
    while True:
        boundary = ("=" * 15 + f"{random.randrange(sys.maxsize):019d}" + "==").encode()
        if not any(boundary in p for p in parts):
            break
    body = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts) + b"--" + boundary + b"--\r\n"
    return b"Content-Type: multipart/" + subtype.encode() + b'; boundary="' + boundary + b'"\r\n', body


def notice_template(*, settings: Settings, subject: str, text: str, html: str, list_id: str) -> bytes:
    """A notice's message written once for all its recipients: `personalise` adds each one's headers
    and links, in microseconds."""
    return _written(settings, subject, text, html, list_id=list_id)


def personalise(template: bytes, *, to: str, message_id: str, manage_url: str, unsubscribe_url: str) -> bytes:
    return _envelope(to, message_id, unsubscribe_url) + template.replace(
        MANAGE_MARK.encode(), manage_url.encode()).replace(UNSUBSCRIBE_MARK.encode(), unsubscribe_url.encode())


class PermanentFailure(Exception):
    """The SMTP server refused the message for good (5xx): retrying would not help."""


class TemporaryFailure(Exception):
    """4xx, a dropped connection or a timeout: the message did not leave; try again later.
    `code` is the SMTP reply code when there was one (421: the destination asks us to slow down)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def smtp_client(settings: Settings) -> aiosmtplib.SMTP:
    """Implicit TLS (`smtp_tls`) or a required STARTTLS (`smtp_starttls`), never an opportunistic one: a
    relay that stops offering STARTTLS must fail, not receive credentials in clear. AUTH when a user name
    is set; certificates are always checked (against `smtp_ca_file` when given)."""
    password = settings.smtp_password.get_secret_value()
    return aiosmtplib.SMTP(hostname=settings.smtp_host, port=settings.smtp_port, timeout=settings.mail_send_timeout,
                           use_tls=settings.smtp_tls, start_tls=settings.smtp_starttls and not settings.smtp_tls,
                           cert_bundle=str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
                           local_hostname=sender_domain(settings),
                           username=settings.smtp_username or None,
                           password=password if settings.smtp_username else None)


@asynccontextmanager
async def connection(settings: Settings) -> AsyncIterator[aiosmtplib.SMTP]:
    """One SMTP session (connect, EHLO, STARTTLS and AUTH once) for several messages."""
    smtp = smtp_client(settings)
    await smtp.connect()
    try:
        yield smtp
    finally:
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            smtp.close()


def envelope_sender(settings: Settings) -> str:
    return parseaddr(settings.mail_from)[1]


async def send_on(smtp: aiosmtplib.SMTP, sender: str, to: str, data: bytes) -> str:
    """Send one message on an open connection; returns the server's reply (e.g. « 250 OK queued as … »)."""
    options = [] if to.isascii() else ["SMTPUTF8"]
    if smtp.supports_extension("8bitmime"):
        options.append("BODY=8BITMIME")
    try:
        errors, reply = await smtp.sendmail(sender, [to], data, mail_options=options)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        refusal = exc.recipients[0] if exc.recipients else None
        if refusal is not None and not 500 <= refusal.code < 600:
            raise TemporaryFailure(f"{refusal.code} {refusal.message}", refusal.code) from exc
        raise PermanentFailure(f"{refusal.code} {refusal.message}" if refusal else str(exc)) from exc
    except aiosmtplib.SMTPResponseException as exc:
        if 500 <= exc.code < 600:
            raise PermanentFailure(f"{exc.code} {exc.message}") from exc
        raise TemporaryFailure(f"{exc.code} {exc.message}", exc.code) from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise TemporaryFailure(f"{type(exc).__name__}: {exc}") from exc
    return reply if reply[:3].isdigit() else f"250 {reply}".strip()
