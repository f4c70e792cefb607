"""The plain functions under the mail sender: one-line headers, 8bit-safe bodies, the bytes of a
notice personalised per recipient, and the retry delays."""
from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from services.notifications import mail
from services.notifications.sender import backoff
from shared.settings import Settings


def test_a_title_becomes_one_safe_header_line() -> None:
    assert mail.header_text("Séance\r\nBcc: x@y.fr\t🎉  \u202eעברית\u2028fin") == "Séance Bcc: x@y.fr 🎉 עברית fin"
    long = mail.header_text("mot " * 100, limit=50)
    assert len(long) == 50 and long.endswith("…")


def test_long_lines_are_broken_at_a_space_below_the_smtp_limit() -> None:
    text = "premier paragraphe " * 200 + "\nligne courte"
    out = mail.short_lines(text)
    assert out.replace("\n", " ").split() == text.replace("\n", " ").split()  # same words, same order
    assert max(len(line.encode()) for line in out.split("\n")) <= 900


def test_a_notice_written_once_is_personalised_per_recipient() -> None:
    settings = Settings()
    template = mail.notice_template(
        settings=settings, subject="Compte rendu publié : Plénière 🎉 de l'été", list_id="Forum <minutes.x>",
        text=f"Bonjour\n\nGérer : {mail.MANAGE_MARK}\nQuitter : {mail.UNSUBSCRIBE_MARK}\n",
        html=f'<p><a href="{mail.MANAGE_MARK}">Gérer</a> <a href="{mail.UNSUBSCRIBE_MARK}">Quitter</a></p>')
    one = mail.personalise(template, to="ana@exemple.fr", message_id="<1@forum>", manage_url="https://f/g?t=A",
                           unsubscribe_url="https://f/d?t=A")
    two = mail.personalise(template, to="bo@exemple.fr", message_id="<2@forum>", manage_url="https://f/g?t=B",
                           unsubscribe_url="https://f/d?t=B")
    a, b = (message_from_bytes(x, policy=policy.default) for x in (one, two))
    assert (a["To"], a["Message-ID"], b["To"], b["Message-ID"]) == ("ana@exemple.fr", "<1@forum>", "bo@exemple.fr", "<2@forum>")
    assert a["Subject"] == b["Subject"] == "Compte rendu publié : Plénière 🎉 de l'été"
    assert a["List-Unsubscribe"] == "<https://f/d?t=A>" and a["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Quitter : https://f/d?t=A" in a.get_body(("plain",)).get_content()
    assert 'href="https://f/g?t=B"' in b.get_body(("html",)).get_content()
    assert mail.MANAGE_MARK.encode() not in one and not a.defects


def test_retries_wait_longer_each_time_with_jitter_and_a_ceiling() -> None:
    settings = Settings(mail_retry_base=5, mail_retry_max=60)
    first = [backoff(settings, 1) for _ in range(200)]
    assert 3.75 <= min(first) and max(first) <= 6.25 and len(set(first)) > 100
    assert all(7.5 <= backoff(settings, 2) <= 12.5 for _ in range(50))
    assert all(backoff(settings, 20) <= 75 for _ in range(50))


def _same_but_boundaries_and_date(message: bytes) -> bytes:
    """The message with its Date and its random boundaries replaced by stable names."""
    message = re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: X", message)
    names: dict[bytes, bytes] = {}
    for m in re.finditer(rb"={15}\d{19}==", message):
        names.setdefault(m.group(0), b"B%d" % len(names))
    for boundary, name in names.items():
        message = message.replace(boundary, name)
    return message


def email_message(settings: Settings, subject: str, text: str, html: str, list_id: str | None) -> EmailMessage:
    """The reference: the message through the email package's objects (what `mail` did before)."""
    msg = EmailMessage(policy=mail.SMTP_POLICY)
    msg["From"] = settings.mail_from
    msg["Subject"] = mail.header_text(subject)
    msg["Auto-Submitted"] = "auto-generated"
    if list_id:
        msg["List-Id"] = list_id
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg["Precedence"] = "bulk"
    msg.set_content(mail.short_lines(text), cte="8bit")
    msg.add_alternative(mail.short_lines(html), subtype="html", cte="8bit")
    return msg


def written_by_the_email_package(settings: Settings, to: str, subject: str, text: str, html: str,
                                 message_id: str, ics: str | None, reply_to: str | None) -> bytes:
    """A personal message through the email package's objects."""
    msg = email_message(settings, subject, text, html, None)
    if reply_to:
        msg["Reply-To"] = reply_to
    if ics:
        msg.add_attachment(ics.encode(), maintype="text", subtype="calendar", filename="invitation.ics",
                           params={"method": "PUBLISH"})
    return mail._envelope(to, message_id, None) + bytes(msg)


CALENDAR = "BEGIN:VCALENDAR\r\nSUMMARY:Plénière " + "é" * 400 + "\r\nEND:VCALENDAR\r\n"


@pytest.mark.parametrize("ics", [None, CALENDAR])
@pytest.mark.parametrize("reply_to", [None, "Jo <jo@exemple.fr>", "Élodie Müller <elodie@exemple.fr>"])
@pytest.mark.parametrize("subject", ["Sujet", "Inscription confirmée : Plénière 🎉 de l'été — " * 6])
@pytest.mark.parametrize("text", ["L1\nL2\r\nL3", "mot " * 600, "", "x\n\n\ny\n", "retour\rseul", "« À bientôt »\n"])
def test_a_personal_message_is_written_byte_for_byte_as_the_email_package_writes_it(
        ics: str | None, reply_to: str | None, subject: str, text: str) -> None:
    settings = Settings()
    html = f"<p>{text}</p>"
    fast = mail.compose(settings=settings, to="ana@exemple.fr", subject=subject, text=text, html=html,
                        message_id="<1@forum>", ics=ics, reply_to=reply_to)
    reference = written_by_the_email_package(settings, "ana@exemple.fr", subject, text, html, "<1@forum>", ics,
                                             reply_to)
    assert _same_but_boundaries_and_date(fast) == _same_but_boundaries_and_date(reference)
    parsed = message_from_bytes(fast, policy=policy.default)
    assert parsed["Subject"] == mail.header_text(subject) and parsed["To"] == "ana@exemple.fr"
    if ics:
        [calendar] = list(parsed.iter_attachments())
        assert calendar.get_payload(decode=True) == ics.encode()  # UTF-8, text/calendar's own default


@pytest.mark.parametrize("list_id", ["Forum <minutes.forum-ouvert.local>",
                                     "Comptes rendus du forum ouvert — été 🎉 <cr.x>"])
@pytest.mark.parametrize("text", ["Bonjour\n\nGérer : %%LIEN-GERER%%\n", "mot " * 600])
def test_a_notice_template_is_written_byte_for_byte_as_the_email_package_writes_it(list_id: str, text: str) -> None:
    settings = Settings()
    args = (settings, "Compte rendu publié : Plénière 🎉 de l'été", text, f"<p>{text}</p>")
    fast = mail.notice_template(settings=settings, subject=args[1], text=args[2], html=args[3], list_id=list_id)
    assert _same_but_boundaries_and_date(fast) == _same_but_boundaries_and_date(bytes(email_message(*args, list_id)))


def test_a_boundary_found_in_a_body_is_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([42, 42, 7])  # the first two draws give the boundary the text holds
    monkeypatch.setattr(mail.random, "randrange", lambda n: next(draws))
    text = f"--{'=' * 15}{42:019d}==\nla suite"
    message = mail.compose(settings=Settings(), to="ana@exemple.fr", subject="Sujet", text=text, html="<p>x</p>",
                           message_id="<1@forum>")
    parsed = message_from_bytes(message, policy=policy.default)
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == text + "\n"
    assert f"boundary=\"{'=' * 15}{7:019d}==\"" in message.decode()
