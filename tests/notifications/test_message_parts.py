"""The plain functions under the mail sender: one-line headers, 8bit-safe bodies, the bytes of a
notice personalised per recipient, and the retry delays."""
from __future__ import annotations

from email import message_from_bytes, policy

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
