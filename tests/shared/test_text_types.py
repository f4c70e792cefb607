"""Text typed by people (names, titles, descriptions) and numbers typed in forms: what the request
contracts accept and refuse, with the French message the web front shows. The services validate their
requests with the same contracts, so they refuse what the web front refuses."""
from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import TypeAdapter, ValidationError

from services.web.forms import whole_number, whole_number_or_none
from shared.contracts.common import MultiLine, PersonName, SingleLine, text_problem
from shared.contracts.decisions import OpenVote, RecordDecision
from shared.contracts.forum import CreateSession
from shared.contracts.minutes import SaveMinutesDraft
from shared.contracts.notifications import SaveAnnouncement
from shared.contracts.registry import Register, UpdateProfile
from shared.validation import field_errors

NAME = TypeAdapter(PersonName)
TITLE = TypeAdapter(Annotated[str, SingleLine(min_length=3, max_length=200)])
PROSE = TypeAdapter(Annotated[str, MultiLine(min_length=1, max_length=5000)])


def message(adapter: TypeAdapter, value: object) -> str:  # type: ignore[type-arg]
    """The French phrase a service replies with (the web front adds the capital and the full stop)."""
    with pytest.raises(ValidationError) as caught:
        adapter.validate_python(value)
    return field_errors(caught.value)["__root__"]


# ---------------------------------------------------------------- one line: names, titles
@pytest.mark.parametrize("value", [
    "Camille Dupont", "Zoë Ødegaard-Łukasiewicz", "محمد عبد الله", "שרה לוי", "李小龍", "Jean\u00a0Dupont",
    "N'Golo Kanté", "Mehrdad\u200cZadeh",  # a zero-width non-joiner belongs inside Persian names
    "👩\u200d👩\u200d👧 Famille",  # emoji sequences use the zero-width joiner
])
def test_names_people_have_are_accepted(value: str) -> None:
    assert NAME.validate_python(value) == value


@pytest.mark.parametrize("value", [
    "Camille\nDupont", "Camille\r\nDupont", "Camille\rDupont", "Camille\u2028Dupont", "Camille\x85Dupont",
    "Camille\x0bDupont",
])
def test_single_line_refuses_line_breaks(value: str) -> None:
    assert message(NAME, value) == "ce champ tient sur une seule ligne : retirez les retours à la ligne"


@pytest.mark.parametrize("value", ["Cam\x00ille", "Camille\x1b[31m", "Camille\x7f", "Cam\tille", "Camille\x9b"])
def test_single_line_refuses_control_characters(value: str) -> None:
    assert message(NAME, value) == "ce champ contient un caractère de contrôle invisible : retirez-le"


@pytest.mark.parametrize("control", ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067",
                                     "\u2068", "\u2069", "\u200e", "\u200f", "\u061c"])
def test_single_line_refuses_bidi_controls(control: str) -> None:
    assert message(NAME, f"Jean{control}gnp.exe").startswith("ce champ contient un caractère qui inverse le sens")


@pytest.mark.parametrize("value", ["\u200b\u200b\u200b", "\u200c\u200d\u2060", "\ufeff\ufeff", "\u3164\u3164",
                                   "\u2800\u2800", "\u00ad\u00ad", " \u200b \u200b ", "\ufe0f\ufe0f\ufe0f"])
def test_only_invisible_characters_are_refused(value: str) -> None:
    assert message(NAME, value) == "ce champ ne contient que des caractères invisibles : écrivez un texte"


def test_text_is_normalised_to_nfc_and_stripped() -> None:
    decomposed = "  Ame\u0301lie Lefe\u0300vre  "
    assert NAME.validate_python(decomposed) == "Amélie Lefèvre"  # one spelling, whatever the keyboard sent
    # lengths are counted on the normalised text: 120 « é » typed as e + accent fit in 120 characters
    assert NAME.validate_python("e\u0301" * 120) == "é" * 120


def test_lengths_keep_their_french_messages() -> None:
    assert message(NAME, "N" * 121) == "Ce champ ne doit pas dépasser 120 caractères."
    assert message(NAME, "x") == "Ce champ doit contenir au moins 2 caractères."
    assert message(TITLE, "x" * 10_000) == "Ce champ ne doit pas dépasser 200 caractères."


def test_json_schema_keeps_the_lengths() -> None:
    assert TITLE.json_schema() == {"type": "string", "minLength": 3, "maxLength": 200}


# ---------------------------------------------------------------- several lines: descriptions, Markdown
def test_multi_line_keeps_line_breaks_and_tabs() -> None:
    text = "Ordre du jour :\r\n\r\n- accueil ;\n- bilan\t(10 min).\n\nמשפט בעברית\u200f."
    assert PROSE.validate_python(text) == text


@pytest.mark.parametrize("value, expected", [
    ("Texte\x00", "ce champ contient un caractère de contrôle invisible : retirez-le"),
    ("Texte\x0c suite", "ce champ contient un caractère de contrôle invisible : retirez-le"),
    ("Texte\u2028suite", "ce champ contient un caractère de contrôle invisible : retirez-le"),
    ("Voir \u202eexe.txt", "ce champ contient un caractère qui inverse le sens d'écriture (contrôle "
                            "bidirectionnel) : retirez-le"),
    ("Voir \u2067isolé\u2069", "ce champ contient un caractère qui inverse le sens d'écriture (contrôle "
                               "bidirectionnel) : retirez-le"),
    ("\u200b\n\u200b", "ce champ ne contient que des caractères invisibles : écrivez un texte"),
])
def test_multi_line_refuses_other_controls(value: str, expected: str) -> None:
    assert message(PROSE, value) == expected


def test_text_problem_says_nothing_of_ordinary_text() -> None:
    assert text_problem("", multiline=False) is None
    assert text_problem("Séance plénière n° 3 — « bilan »", multiline=False) is None


# ---------------------------------------------------------------- the request contracts use them
def errors_of(model: type, data: dict[str, object]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return field_errors(caught.value)


def test_request_contracts_refuse_hostile_names() -> None:
    base = {"email": "camille@example.org", "college": "citizen", "charter_accepted": True}
    assert "full_name" in errors_of(Register, {**base, "full_name": "Camille\nDupont"})
    assert "organisation" in errors_of(Register, {**base, "full_name": "Camille", "organisation": "\u200b\u200b"})
    assert "full_name" in errors_of(UpdateProfile, {"actor_id": "a", "full_name": "Evil\u202eenoD"})
    session = {"actor_id": "a", "kind": "plenary", "starts_at": "2031-01-01T10:00Z", "ends_at": "2031-01-01T12:00Z",
               "place": "CESE", "capacity": 10, "rsvp_opens_at": "2030-12-01T10:00Z",
               "rsvp_closes_at": "2030-12-31T10:00Z"}
    assert "title" in errors_of(CreateSession, {**session, "title": "Séance\r\nplénière"})
    assert "agenda.1" in errors_of(CreateSession, {**session, "title": "Séance", "agenda": ["Accueil", "\u2066x"]})
    assert "description" in errors_of(CreateSession, {**session, "title": "Séance", "description": "a\x00b"})
    assert CreateSession.model_validate({**session, "title": "Séance", "description": "Ligne 1\nLigne 2"})
    decision = {"actor_id": "a", "session_id": "s", "agenda_position": 1, "text": "Texte", "outcome": "adopted",
                "method": "consensus"}
    assert "title" in errors_of(RecordDecision, {**decision, "title": "\u200b\u200b\u200b"})
    vote = {"actor_id": "a", "session_id": "s", "agenda_position": 1, "question": "Question ?",
            "opens_at": "2031-01-01T10:00Z", "closes_at": "2031-01-02T10:00Z"}
    assert "options.0" in errors_of(OpenVote, {**vote, "options": ["Oui\u202e", "Non"]})
    assert "markdown" in errors_of(SaveMinutesDraft, {"actor_id": "a", "minutes_id": "m", "base_revision": 0,
                                                      "markdown": "# Titre\n\x1b[2J"})
    assert "title" in errors_of(SaveAnnouncement, {"actor_id": "a", "title": "Objet\nBcc: x@example.org",
                                                   "body": "Texte"})


# ---------------------------------------------------------------- numbers typed in forms
@pytest.mark.parametrize("raw", ["²", "٣", "１２", "-1", "+5", "1_000", "12.0", "1e3", "NaN", "", " ", "0x10"])
def test_whole_numbers_are_ascii_digits_only(raw: str) -> None:
    assert whole_number_or_none(raw, maximum=10**6) is None
    with pytest.raises(ValueError, match=r"^Saisissez un nombre entier \(chiffres 0 à 9\)\.$"):
        whole_number(raw, maximum=10**6)


def test_whole_numbers_within_bounds() -> None:
    assert whole_number(" 42 ", maximum=100) == 42
    assert whole_number("0007", maximum=100) == 7
    assert whole_number("0" * 5000 + "1", maximum=100) == 1  # more digits than int() reads, all but one zeros
    for raw in ("101", "9" * 5000, "9223372036854775808"):
        with pytest.raises(ValueError, match="^Saisissez un nombre entre 1 et 100.$"):
            whole_number(raw, minimum=1, maximum=100)
    with pytest.raises(ValueError, match="^Saisissez un nombre entre 0 et 100 000.$"):
        whole_number("100001", maximum=100_000)
