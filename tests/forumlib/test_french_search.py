"""forumlib.french_search: French words normalised the same way for both databases, queries read into
words, phrases, OR and excluded words whatever is typed, and excerpts cut and marked as plain text."""
from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from forumlib.french_search import (
    MAX_QUERY_CHARS, PLACEHOLDER, excerpt, index_terms, index_words, mark, plain_text, read_query, term, unaccent,
)


def stem(word: str) -> str | None:
    return term(word).stem


def test_accents_case_and_french_stems() -> None:
    assert unaccent("Assemblée Œuvre cœur") == "Assemblee OEuvre coeur"
    assert stem("assemblee") == stem("Assemblée") == stem("ASSEMBLÉES") == stem("assemblées")
    assert stem("élu") == stem("élus") == stem("élue") == stem("élues") == stem("ELUS")
    assert stem("rendu") == stem("rendus") and stem("compte") == stem("comptes")
    assert stem("citoyen") == stem("citoyennes") and stem("décision") == stem("decisions")
    assert stem("le") is None and stem("été") is None and stem("Ete") is None and stem("l") is None
    assert term("Élus").word == "élu"  # what PostgreSQL analyses: plural folded, accents kept


def test_index_texts() -> None:
    text = "L'Assemblée des élus — compte-rendu n° 2026-007."
    assert index_words(text) == "l assemblée des élu compte rendu n 2026 007"
    terms = index_terms(text).split(" ")
    assert terms[0] == PLACEHOLDER and terms[1] == stem("assemblee") and terms[-2:] == ["2026", "007"]


def test_plain_text_keeps_what_is_read() -> None:
    md = ("# Titre\n\nLe [forum](/decisions/abc) **adopte** la `publication`.\n\n- un\n- deux\n\n"
          "| a | b |\n|---|---|\n| c | d |")
    assert plain_text(md) == "Titre\nLe forum adopte la publication.\nun\ndeux\na b\nc d"


def test_queries() -> None:
    q = read_query('"conseil de quartier" élus OR élues -vote NOT budget')
    assert q.fts5() == f'(("conseil {PLACEHOLDER} quarti") AND ("elu" OR "elu")) NOT ("vot" OR "budget")'
    assert q.tsquery() == "((('conseil' <2> 'quartier')) & (('élu') | ('élues'))) & !(('vote') | ('budget'))"
    assert q.typed == ("conseil de quartier", "élus ou élues")
    assert read_query("l'assemblée").fts5() == f'(("{stem("assemblée")}"))'
    assert read_query("compte-rendu").tsquery() == "(('compte' <1> 'rendu'))"
    assert read_query("2026-007").fts5() == '(("2026 007"))'


def test_what_cannot_be_searched_says_why() -> None:
    assert read_query("").problem == read_query("  \t").problem == "Saisissez un ou plusieurs mots à rechercher."
    assert "ni lettre ni chiffre" in (read_query("* - ( ) && |").problem or "")
    assert "que des mots de liaison" in (read_query("AND").problem or "")  # letters, but nothing to search
    assert "que des mots de liaison" in (read_query("* - ( ) AND OR").problem or "")
    assert read_query("le").problem == ("Le mot « le » est trop courant pour être recherché seul : ajoutez un mot "
                                        "plus précis.")
    assert "« de », « la »" in (read_query("de la").problem or "")
    assert "exclure" in (read_query("-vote").problem or "")
    long = read_query("élu " * 2000)
    assert long.truncated and len(long.text) <= MAX_QUERY_CHARS and long.problem is None


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_any_text_reads_into_safe_expressions(typed: str) -> None:
    q = read_query(typed)
    if q.problem:
        assert not q.groups
        return
    assert re.fullmatch(r'[ \w"()\ue000]+', q.fts5()) and q.fts5().count('"') % 2 == 0
    assert re.fullmatch(r"[ \w'()&|!<>]+", q.tsquery()) and q.tsquery().count("'") % 2 == 0


def test_excerpt_marks_the_words_found_in_plain_pieces() -> None:
    text = ("Ouverture de la séance. " * 30 + "L'Assemblée des élus a voté. <b>Les élues</b> aussi. "
            + "Questions diverses. " * 30)
    pieces = excerpt(text, read_query("assemblee élu").stems)
    assert [p for p, m in pieces if m] == ["Assemblée", "élus", "élues"]
    joined = "".join(p for p, _ in pieces)
    assert joined.startswith("… ") and joined.endswith(" …") and "<b>Les" in joined  # escaping is the reader's
    assert len(joined) < 300
    # No match: the beginning. Nothing at all: nothing.
    assert excerpt("Un texte court.", frozenset({"zzz"})) == [("Un texte court.", False)]
    assert excerpt("", frozenset()) == []
    assert mark("Compte rendu : Assemblée", read_query("assemblee").stems) == [
        ("Compte rendu : ", False), ("Assemblée", True)]
