"""French text for full-text search: what a word is, how it is normalised, what a typed query means,
and the excerpt that shows where a document matched. Pure: no database here.

One definition of a word serves both databases. Texts are cut into words here (letters and digits;
everything else separates), so PostgreSQL's parser only ever sees plain words separated by spaces and
SQLite's FTS5 only ever sees the terms computed here: hyphens, apostrophes, numbers such as « 2026-007 »,
addresses in links, all read the same on both.

Normalising a word: lower case; a plural in -us/-is/-as/-os loses its s (Snowball keeps it: « élus »
would not find « élu »); then, for SQLite and for highlighting, accents off and the French Snowball stem
(« Assemblées » → « assemble », « élue » → « elu »). PostgreSQL gets the lower-cased, folded word and
applies its own `forum_fr` configuration (unaccent, then the same Snowball algorithm).

Stop words (« le », « de », « été »…) are never searched alone. In a phrase each stands for one word:
FTS5 indexes every stop word as one placeholder term (any stop word fits), PostgreSQL keeps their
positions (any word fits); so « conseil de quartier » also finds « conseil du quartier » on both.

A query is never handed to a database as typed: it is read here into words, « phrases », OR, and
-excluded words (AND, ET, NOT, SAUF are understood too; every other sign is a separator), and the
FTS5 MATCH expression and the PostgreSQL tsquery are written from the normalised words alone.
"""
from __future__ import annotations

import re
import threading
import unicodedata
from bisect import bisect_left
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import snowballstemmer

from forumlib.markdown import parse

MAX_QUERY_CHARS = 256
"""Characters of a query that are read (the rest is dropped, and the answer says so)."""

MAX_QUERY_PHRASES = 16
"""Words or phrases read from one query."""

MAX_WORD = 40
"""Longer runs of letters are cut to this length (they are not words, and must not cost much)."""

PLACEHOLDER = "\ue000"
"""The FTS5 term every stop word is indexed as: a private-use character, never part of a word here
(it is not alphanumeric), and a token character for FTS5's unicode61 tokenizer."""

# PostgreSQL's french.stop (the Snowball list), plus below their forms without accents, since a word is
# compared with and without its accents.
_STOP = """au aux avec ce ces dans de des du elle en et eux il je la le leur lui ma mais me même mes moi mon ne nos
notre nous on ou par pas pour qu que qui sa se ses son sur ta te tes toi ton tu un une vos votre vous c d j l à m n s
t y été étée étées étés étant étante étants étantes suis es est sommes êtes sont serai seras sera serons serez seront
serais serait serions seriez seraient étais était étions étiez étaient fus fut fûmes fûtes furent sois soit soyons
soyez soient fusse fusses fût fussions fussiez fussent ayant ayante ayantes ayants eu eue eues eus ai as avons avez
ont aurai auras aura aurons aurez auront aurais aurait aurions auriez auraient avais avait avions aviez avaient eut
eûmes eûtes eurent aie aies ait ayons ayez aient eusse eusses eût eussions eussiez eussent""".split()

WORD = re.compile(r"[^\W_]+")
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss"})
_PLURAL_S = ("us", "is", "as", "os")
_local = threading.local()
_SPACES = re.compile(r"\s+")
_TRAILING = re.compile(r"[^\w\s]*")


def unaccent(text: str) -> str:
    """« Assemblée » → « Assemblee », « cœur » → « coeur »."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


STOP_WORDS = frozenset(_STOP) | frozenset(unaccent(w) for w in _STOP)


def _stemmer() -> Any:
    # Snowball stemmers keep state while they work: one per thread.
    s = getattr(_local, "stemmer", None)
    if s is None:
        s = _local.stemmer = snowballstemmer.stemmer("french")
    return s


@dataclass(frozen=True)
class Term:
    """One word, normalised. `word`: lower case, plural folded (what PostgreSQL analyses); `stem`: the
    unaccented Snowball stem (the FTS5 term, and what highlighting compares), None for a stop word."""

    word: str
    stem: str | None


@lru_cache(maxsize=200_000)
def term(word: str) -> Term:
    """The normalised form of one word (a run of letters and digits, any case)."""
    w = "".join(c for c in word[:MAX_WORD].lower() if c.isalnum())
    plain = "".join(c for c in unaccent(w) if c.isalnum())
    if not plain or w in STOP_WORDS or plain in STOP_WORDS:
        return Term(w, None)
    if len(plain) > 3 and plain.endswith(_PLURAL_S):
        w, plain = w[:-1], plain[:-1]
    return Term(w, _stemmer().stemWord(plain))


def words(text: str) -> list[str]:
    return WORD.findall(text)


def index_words(text: str) -> str:
    """The text as PostgreSQL indexes it: its words, lower case, plurals folded, one space apart."""
    return " ".join(term(w).word for w in WORD.findall(text))


def index_terms(text: str) -> str:
    """The text as FTS5 indexes it: one stem per word, the placeholder for each stop word."""
    return " ".join(term(w).stem or PLACEHOLDER for w in WORD.findall(text))


# ---------------------------------------------------------------- Markdown to text
_BREAKS = {"paragraph_close", "heading_close", "list_item_close", "tr_close", "blockquote_close"}


def plain_text(markdown: str) -> str:
    """What a reader reads in a Markdown text: the words of links, not their addresses; no markup.
    One line per block."""
    out: list[str] = []
    for t in parse(markdown):
        if t.type == "inline":
            for c in t.children or []:
                if c.type in ("text", "code_inline"):
                    out.append(c.content)
                elif c.type in ("softbreak", "hardbreak"):
                    out.append(" ")
        elif t.type in ("fence", "code_block"):
            out.append(t.content.strip() + "\n")
        elif t.type in ("th_close", "td_close"):
            out.append(" ")
        elif t.type in _BREAKS:
            out.append("\n")
    lines = (" ".join(line.split()) for line in "".join(out).splitlines())
    return "\n".join(line for line in lines if line)


# ---------------------------------------------------------------- what a query means
Phrase = tuple[Term, ...]
"""Words that must follow each other (stop words inside stand for any one word; never at either end)."""


@dataclass(frozen=True)
class Query:
    """A typed query, read. Every group must match; a group matches when one of its phrases does; no
    excluded phrase may match. `problem`: why there is nothing to search, in French (then no group)."""

    text: str
    groups: tuple[tuple[Phrase, ...], ...] = ()
    excluded: tuple[Phrase, ...] = ()
    truncated: bool = False
    problem: str | None = None
    typed: tuple[str, ...] = field(default=())  # the words searched for, as typed

    @property
    def stems(self) -> frozenset[str]:
        """The stems to highlight (those of the words searched for, not of the excluded ones)."""
        return frozenset(t.stem for g in self.groups for p in g for t in p if t.stem)

    def fts5(self) -> str:
        """The FTS5 MATCH expression: quoted stems and operators only (a stem has no quote in it)."""
        def phrase(p: Phrase) -> str:
            return '"' + " ".join(t.stem or PLACEHOLDER for t in p) + '"'

        def any_of(ps: tuple[Phrase, ...]) -> str:
            return "(" + " OR ".join(phrase(p) for p in ps) + ")"

        expr = "(" + " AND ".join(any_of(g) for g in self.groups) + ")"
        return f"{expr} NOT {any_of(self.excluded)}" if self.excluded else expr

    def tsquery(self) -> str:
        """The PostgreSQL `to_tsquery` text: quoted words, `&`, `|`, `!` and `<n>` only; `forum_fr`
        normalises each word as it did when indexing."""
        def phrase(p: Phrase) -> str:
            out, gap = [], 0
            for t in p:
                if t.stem is None:
                    gap += 1
                    continue
                if out:
                    out.append(f"<{gap + 1}>")
                out.append("'" + t.word.replace("\\", "").replace("'", "") + "'")
                gap = 0
            return "(" + " ".join(out) + ")"

        def any_of(ps: tuple[Phrase, ...]) -> str:
            return "(" + " | ".join(phrase(p) for p in ps) + ")"

        expr = " & ".join(any_of(g) for g in self.groups)
        return f"({expr}) & !{any_of(self.excluded)}" if self.excluded else expr


_PIECE = re.compile(r'([-!]?)"([^"]*)"?|([^\s"]+)')
_OR = {"OR", "OU", "|", "||"}
_AND = {"AND", "ET", "&", "&&", "+"}
_NOT = {"NOT", "SAUF"}

EMPTY = "Saisissez un ou plusieurs mots à rechercher."
NO_WORD = "Votre recherche ne contient ni lettre ni chiffre : saisissez un ou plusieurs mots."
ONLY_OPERATORS = ("Votre recherche ne contient que des mots de liaison (ET, OU, SAUF…) : ajoutez un mot à "
                  "rechercher.")
ONLY_EXCLUDED = ("Indiquez au moins un mot à rechercher : une recherche ne peut pas seulement exclure des mots "
                 "(le signe « - » devant un mot l'exclut).")


def _only_stop_words(typed: list[str]) -> str:
    distinct = list(dict.fromkeys(w.lower() for w in typed))
    shown = ", ".join(f"« {w} »" for w in distinct[:5]) + (" …" if len(distinct) > 5 else "")
    return (f"Les mots {shown} sont trop courants pour être recherchés seuls : ajoutez un mot plus précis."
            if len(distinct) > 1 else f"Le mot {shown} est trop courant pour être recherché seul : ajoutez un mot "
            "plus précis.")


def _phrase(raw_words: list[str]) -> tuple[Phrase, list[str]]:
    terms = [term(w) for w in raw_words]
    while terms and terms[0].stem is None:
        terms.pop(0)
    while terms and terms[-1].stem is None:
        terms.pop()
    return tuple(terms), raw_words


def _cut(text: str) -> tuple[str, bool]:
    text = " ".join(text.split())
    if len(text) <= MAX_QUERY_CHARS:
        return text, False
    cut = text[:MAX_QUERY_CHARS]
    space = cut.rfind(" ")
    return (cut[:space] if space > MAX_QUERY_CHARS // 2 else cut), True


def read_query(typed: str) -> Query:
    """What a person typed, read as a query. Never fails: anything unusable is a separator, and a query
    with nothing left to search says why in `problem`."""
    text, truncated = _cut(typed or "")
    if not text:
        return Query(text, problem=EMPTY)
    groups: list[list[Phrase]] = []
    excluded: list[Phrase] = []
    shown: list[str] = []       # the words searched for, as typed
    stop_only: list[str] = []   # words typed that are all stop words
    join_or = negate_next = False
    operators = False  # an operator was typed (the query was not just signs)
    for m in _PIECE.finditer(text):
        neg, quoted, bare = m.group(1), m.group(2), m.group(3)
        if bare is not None:
            if bare in _OR | _AND | _NOT:
                operators = operators or bare.isalpha()
                if bare in _OR:
                    join_or = bool(groups)
                elif bare in _NOT:
                    negate_next = True
                continue
            if bare[0] in "-!" and len(bare) > 1:
                neg, bare = bare[0], bare[1:]
        phrase, raw = _phrase(words(quoted if quoted is not None else bare or ""))
        negated, negate_next = bool(neg) or negate_next, False
        if not phrase:  # nothing but stop words or signs: skipped (an OR before it still joins)
            stop_only += raw
            continue
        if len(groups) + len(excluded) >= MAX_QUERY_PHRASES:
            truncated = True
            break
        if negated:
            excluded.append(phrase)
        elif join_or:
            groups[-1].append(phrase)
            shown[-1] += " ou " + " ".join(raw)
        else:
            groups.append([phrase])
            shown.append(" ".join(raw))
        join_or = False
    if not groups:
        problem = (ONLY_EXCLUDED if excluded else _only_stop_words(stop_only) if stop_only
                   else ONLY_OPERATORS if operators else NO_WORD)
        return Query(text, truncated=truncated, problem=problem)
    return Query(text, tuple(tuple(g) for g in groups), tuple(excluded), truncated, typed=tuple(shown))


# ---------------------------------------------------------------- excerpts
Segment = tuple[str, bool]
"""A piece of an excerpt, and whether it is a word that matched."""


_VARIANTS = {"a": "aàâäáãå", "c": "cç", "e": "eéèêë", "i": "iîïíì", "o": "oôöóòõ", "u": "uùûüú", "y": "yÿý", "n": "nñ"}


@lru_cache(maxsize=256)
def _candidates(stems: frozenset[str]) -> re.Pattern[str]:
    """Words that may have one of these stems: those beginning as the stem does (Snowball only changes
    endings), whatever their accents and case. Each candidate is then normalised to be sure."""
    def start(stem: str) -> str:
        out = "".join(f"[{re.escape(_VARIANTS[c])}]" if c in _VARIANTS else re.escape(c) for c in stem[:4])
        return out.replace("[oôöóòõ][eéèêë]", "(?:[oô][eé]|œ)").replace("[aàâäáãå][eéèêë]", "(?:ae|æ)")

    if not stems:
        return re.compile(r"(?!)")
    # No look-behind: it would keep the engine from skipping ahead to the first letters (checked by the caller).
    return re.compile("(?:" + "|".join(sorted({start(st) for st in stems})) + r")[^\W_]*", re.IGNORECASE)


def excerpt(text: str, stems: frozenset[str], size: int = 240) -> list[Segment]:
    """About `size` characters of `text` (whole words) where most of the searched words are found (its
    beginning when none is), the matching words marked. Plain text pieces: whoever shows them escapes
    them. Only the words that begin as a searched stem does are normalised: a long text costs little."""
    hits = [(m.start(), m.end(), st) for m in _candidates(stems).finditer(text)
            if not (m.start() and text[m.start() - 1].isalnum()) and (st := term(m.group()).stem) in stems]
    lo = 0
    if hits:
        starts = [h[0] for h in hits]
        best = 0
        for h in starts[:200]:  # a window starting a little before a match: the one with most distinct stems
            a = max(0, h - size // 6)
            n = len({st for _, _, st in hits[bisect_left(starts, a):bisect_left(starts, a + size)]})
            if n > best:
                best, lo = n, a
                if n == len(stems):
                    break
    first = WORD.search(text, lo)
    if first is not None and first.start() == lo > 0 and text[lo - 1].isalnum():
        first = WORD.search(text, first.end())  # not from the middle of a word
    if first is None:
        return [(_SPACES.sub(" ", text[:size]).strip(), False)] if text.strip() else []
    start = first.start()
    end = start
    for m in WORD.finditer(text, start):  # whole words up to the window's end (at least one)
        if m.end() > start + size and end > start:
            break
        end = m.end()
    end = _TRAILING.match(text, end).end()  # « court. » keeps its full stop
    out: list[Segment] = [("… ", False)] if start > 0 else []
    pos = start
    for s, e, _ in hits:
        if start <= s and e <= end:
            out += [(text[pos:s], False), (text[s:e], True)]
            pos = e
    out.append((text[pos:end], False))
    if WORD.search(text, end):
        out.append((" …", False))
    merged: list[Segment] = []
    for piece, match in out:
        piece = _SPACES.sub(" ", piece)
        if not piece:
            continue
        if merged and not match and not merged[-1][1]:
            merged[-1] = (merged[-1][0] + piece, False)
        else:
            merged.append((piece, match))
    return merged


def mark(text: str, stems: frozenset[str]) -> list[Segment]:
    """The whole of a short text (a title), its matching words marked."""
    out: list[Segment] = []
    pos = 0
    for m in WORD.finditer(text):
        if term(m.group()).stem in stems:
            out += [(text[pos:m.start()], False), (m.group(), True)]
            pos = m.end()
    out.append((text[pos:], False))
    return [(piece, match) for piece, match in out if piece]
