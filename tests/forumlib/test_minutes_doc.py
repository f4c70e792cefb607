"""The minutes as a document: blocks cut by the Markdown parser, anchors that survive later versions
(a citation link keeps working), duplicates told apart, the RFC 8785 canonical form and its hash, and
the block-by-block difference between two versions."""
from __future__ import annotations

import hashlib
import json
import re
from types import MappingProxyType

import pytest

from forumlib.minutes_doc import (
    KINDS, Paragraph, ParagraphChange, anchor_base, canonical_document, diff_paragraphs, document_sha256,
    split_paragraphs,
)

MINUTES = """# Séance plénière du 14 juillet 2030

## Présents

- Collège des acteurs publics : 4
- Collège de la société civile : 6
  - dont 2 associations
- Collège citoyen : 5

L'assemblée ouvre la séance à 14 h 05.
Le quorum est atteint.

> « Le forum rend compte de ses activités. »

| Décision | Résultat |
|---|---|
| Engagement 5 | adopté |

```
vote: 12 pour, 1 contre
```

---

1. Premier point
2. Second point

Adopté à l'unanimité.
"""

ANCHOR = re.compile(r"p-[0-9a-f]{10}(-[0-9]+)?")


def kinds(paragraphs: list[Paragraph]) -> list[str]:
    return [p.kind for p in paragraphs]


# ================================================================ blocks
def test_blocks_follow_the_markdown_structure() -> None:
    paragraphs = split_paragraphs(MINUTES)
    assert kinds(paragraphs) == ["heading", "heading", "list", "paragraph", "quote", "table", "code", "rule",
                                 "list", "paragraph"]
    assert set(kinds(paragraphs)) == set(KINDS)
    assert paragraphs[0].markdown == "# Séance plénière du 14 juillet 2030"
    # a nested list is one block, and so are the two lines of one paragraph
    assert paragraphs[2].markdown.splitlines()[-2:] == ["  - dont 2 associations", "- Collège citoyen : 5"]
    assert paragraphs[3].markdown == "L'assemblée ouvre la séance à 14 h 05.\nLe quorum est atteint."
    assert all(ANCHOR.fullmatch(p.anchor) for p in paragraphs)


def test_blank_lines_inside_a_fence_or_a_loose_list_do_not_cut_it() -> None:
    # what a regex on blank lines would get wrong
    text = ("```\nligne 1\n\n\nligne 2\n```\n\n"
            "- un\n\n- deux\n\n  suite de deux\n\n    dans deux aussi\n\n"
            "Fin.\n\n    code indenté\n")
    paragraphs = split_paragraphs(text)
    assert kinds(paragraphs) == ["code", "list", "paragraph", "code"]
    assert paragraphs[0].markdown == "```\nligne 1\n\n\nligne 2\n```"
    assert paragraphs[1].markdown == "- un\n\n- deux\n\n  suite de deux\n\n    dans deux aussi"
    assert paragraphs[3].markdown == "    code indenté"  # its indent is what makes it code


def test_setext_headings_and_indented_code_are_recognised() -> None:
    assert kinds(split_paragraphs("Titre\n=====\n\nSous-titre\n---\n\n    x = 1\n")) == ["heading", "heading", "code"]


def test_edges_are_normalised_and_line_endings_too() -> None:
    paragraphs = split_paragraphs("\r\n\r\n  Un texte.   \r\n\r\n\r\nDeux.\t\r\n")
    assert [p.markdown for p in paragraphs] == ["  Un texte.", "Deux."]
    assert split_paragraphs("Un texte.\n\nDeux.") == [Paragraph(p.anchor, p.kind, p.markdown.strip())
                                                      for p in paragraphs]


def test_empty_text_has_no_block() -> None:
    assert split_paragraphs("") == []
    assert split_paragraphs(" \n\n\t\n") == []


def test_reference_definitions_are_kept_with_a_block() -> None:
    # markdown-it-py makes no token of them, but they are text of the minutes and must not vanish
    text = "[cese]: https://www.lecese.fr\n\nVoir le [CESE][cese].\n\n[ogp]: https://www.opengovpartnership.org\n"
    paragraphs = split_paragraphs(text)
    joined = "\n\n".join(p.markdown for p in paragraphs)
    assert "[cese]: https://www.lecese.fr" in joined and "[ogp]: https://www.opengovpartnership.org" in joined
    assert kinds(paragraphs) == ["paragraph"]


# ================================================================ anchors
def test_anchor_is_the_hash_of_the_collapsed_text() -> None:
    [p] = split_paragraphs("Le quorum   est\natteint.")
    expected = hashlib.sha256("Le quorum est atteint.".encode()).hexdigest()[:10]
    assert p.anchor == f"p-{expected}" == anchor_base(p.markdown)


def test_an_unchanged_paragraph_keeps_its_anchor_in_the_next_version() -> None:
    v1 = split_paragraphs(MINUTES)
    v2_text = MINUTES.replace("Le quorum est atteint.", "Le quorum est largement atteint.")
    v2_text = v2_text.replace("## Présents\n", "## Ordre du jour\n\nApprobation du compte rendu.\n\n## Présents\n")
    v2_text = v2_text.replace("Adopté à l'unanimité.", "Adopté à l'unanimité.\n\nLa séance est levée.")
    v2 = split_paragraphs(v2_text)
    old = {p.markdown: p.anchor for p in v1}
    new = {p.markdown: p.anchor for p in v2}
    unchanged = set(old) & set(new)
    assert len(unchanged) == len(v1) - 1  # all but the reworded paragraph
    assert all(old[text] == new[text] for text in unchanged)
    reworded = next(p for p in v1 if "quorum" in p.markdown)
    assert reworded.anchor not in {p.anchor for p in v2}


def test_inserting_before_does_not_move_anchors() -> None:
    v1 = split_paragraphs("Premier.\n\nSecond.\n\nTroisième.")
    v2 = split_paragraphs("Préambule ajouté.\n\n# Un titre\n\nPremier.\n\nSecond.\n\nTroisième.")
    assert [p.anchor for p in v2[2:]] == [p.anchor for p in v1]


def test_rewrapping_a_line_keeps_the_anchor() -> None:
    [a] = split_paragraphs("Le quorum est atteint.")
    [b] = split_paragraphs("Le quorum\nest   atteint.")
    assert a.anchor == b.anchor


def test_repeated_paragraphs_get_distinct_anchors_counted_from_the_top() -> None:
    paragraphs = split_paragraphs("Adopté.\n\nAutre.\n\nAdopté.\n\nAdopté.")
    base = anchor_base("Adopté.")
    assert [p.anchor for p in paragraphs] == [base, anchor_base("Autre."), f"{base}-2", f"{base}-3"]
    assert len({p.anchor for p in paragraphs}) == len(paragraphs)


# ================================================================ canonical form
def test_canonical_document_is_jcs() -> None:
    paragraphs = split_paragraphs("# Titre\n\nTexte « accentué ».")
    meta = {"version": 2, "title": "Plénière", "session_id": "s-1", "published_at": "2030-07-14T12:05:00Z"}
    canonical = canonical_document(meta, paragraphs)
    text = canonical.decode("utf-8")
    assert "accentué" in text  # UTF-8 itself, not \u escapes
    assert ": " not in text and ", " not in text.replace("« accentué »", "")  # no insignificant spaces
    assert text.startswith('{"meta":{"published_at":"2030-07-14T12:05:00Z","session_id":"s-1",'
                           '"title":"Plénière","version":2},"paragraphs":[{"anchor":')
    decoded = json.loads(canonical)
    assert decoded["paragraphs"] == [{"anchor": p.anchor, "kind": p.kind, "markdown": p.markdown}
                                     for p in paragraphs]
    # the same as a sorted, compact json.dumps for this plain data
    assert canonical == json.dumps(decoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_canonical_bytes_do_not_depend_on_key_order_or_mapping_type() -> None:
    paragraphs = split_paragraphs("Un.\n\nDeux.")
    a = canonical_document({"b": [1, 2], "a": {"y": None, "x": True}}, paragraphs)
    b = canonical_document(MappingProxyType({"a": MappingProxyType({"x": True, "y": None}), "b": (1, 2)}),
                           tuple(paragraphs))
    assert a == b


def test_document_hash_is_sha256_of_the_canonical_bytes() -> None:
    canonical = canonical_document({"version": 1}, split_paragraphs(MINUTES))
    digest = document_sha256(canonical)
    assert digest == hashlib.sha256(canonical).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)


def test_a_changed_paragraph_changes_the_hash() -> None:
    one = document_sha256(canonical_document({"version": 1}, split_paragraphs("Un.\n\nDeux.")))
    two = document_sha256(canonical_document({"version": 1}, split_paragraphs("Un.\n\nDeux !")))
    assert one != two


# ================================================================ differences
def _summary(changes: list[ParagraphChange]) -> list[tuple[str, str | None, str | None]]:
    return [(c.kind, c.old.markdown if c.old else None, c.new.markdown if c.new else None) for c in changes]


def test_identical_versions_are_all_same() -> None:
    v = split_paragraphs(MINUTES)
    changes = diff_paragraphs(v, split_paragraphs(MINUTES))
    assert {c.kind for c in changes} == {"same"} and len(changes) == len(v)


def test_insert_delete_and_change_in_document_order() -> None:
    old = split_paragraphs("A.\n\nB.\n\nC.\n\nD.")
    new = split_paragraphs("Zéro.\n\nA.\n\nC bis.\n\nD.\n\nE.")
    assert _summary(diff_paragraphs(old, new)) == [
        ("added", None, "Zéro."),
        ("same", "A.", "A."),
        ("changed", "B.", "C bis."),
        ("removed", "C.", None),
        ("same", "D.", "D."),
        ("added", None, "E."),
    ]


def test_a_longer_replacement_pairs_then_adds() -> None:
    old = split_paragraphs("A.\n\nB.\n\nZ.")
    new = split_paragraphs("A.\n\nB1.\n\nB2.\n\nB3.\n\nZ.")
    assert [c.kind for c in diff_paragraphs(old, new)] == ["same", "changed", "added", "added", "same"]


def test_everything_removed_or_added() -> None:
    v = split_paragraphs("A.\n\nB.")
    assert [c.kind for c in diff_paragraphs(v, [])] == ["removed", "removed"]
    assert [c.kind for c in diff_paragraphs([], v)] == ["added", "added"]
    assert diff_paragraphs([], []) == []


def test_same_anchor_but_different_source_is_shown_as_changed() -> None:
    [a] = split_paragraphs("Le quorum est atteint.")
    [b] = split_paragraphs("Le quorum\nest atteint.")
    [change] = diff_paragraphs([a], [b])
    assert change.kind == "changed" and change.old == a and change.new == b


@pytest.mark.parametrize("kind", ["same", "changed"])
def test_changes_carry_both_sides_when_they_exist(kind: str) -> None:
    old = split_paragraphs("Un.\n\nDeux.")
    new = split_paragraphs("Un.\n\nDeux." if kind == "same" else "Un.\n\nTrois.")
    change = diff_paragraphs(old, new)[1]
    assert change.kind == kind and change.old is not None and change.new is not None
