"""The minutes (comptes rendus) as a document: Markdown cut into blocks that can be cited, a canonical
form whose hash goes into the public record, and a block-by-block difference between two versions.

A citation link points at a block through its anchor, so an anchor depends only on the block's text:
a block left untouched keeps its anchor when others are inserted, removed or rewritten around it, in
every later version. Whitespace is collapsed before hashing so that re-wrapping a line is not a new
paragraph.

The blocks come from markdown-it-py's own parse (the same parser that renders them), so a list, a
table or a fenced code block holding blank lines stays one block, exactly as the reader sees it.
"""
from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rfc8785

from forumlib.markdown import parse

ANCHOR_PREFIX = "p-"
ANCHOR_HEX = 10  # 40 bits: no two blocks of one document share them by chance

KINDS = ("heading", "paragraph", "list", "quote", "code", "table", "rule")
_KIND_OF_TOKEN = {
    "heading_open": "heading",
    "paragraph_open": "paragraph",
    "bullet_list_open": "list",
    "ordered_list_open": "list",
    "blockquote_open": "quote",
    "fence": "code",
    "code_block": "code",
    "table_open": "table",
    "hr": "rule",
}


@dataclass(frozen=True)
class Paragraph:
    anchor: str      # stable id usable in a URL fragment, e.g. "p-3f9a1c2b7d"
    kind: str        # one of KINDS
    markdown: str    # the block's Markdown source, whitespace-normalised at its edges


@dataclass(frozen=True)
class ParagraphChange:
    kind: str                 # "same" | "added" | "removed" | "changed"
    old: Paragraph | None
    new: Paragraph | None


def normalised_text(markdown: str) -> str:
    """The text an anchor is made from: every run of whitespace is one space."""
    return " ".join(markdown.split())


def anchor_base(markdown: str) -> str:
    digest = hashlib.sha256(normalised_text(markdown).encode("utf-8")).hexdigest()
    return ANCHOR_PREFIX + digest[:ANCHOR_HEX]


def split_paragraphs(markdown: str) -> list[Paragraph]:
    """The top-level blocks of a Markdown text, in order, each with its anchor.

    A repeated block (« Adopté à l'unanimité. » twice) gets ``-2``, ``-3``… after its anchor, counted
    from the top, so every anchor of a document is distinct.
    """
    lines = markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    starts: list[tuple[str, int]] = []  # (kind, first line) of each top-level block
    for token in parse("\n".join(lines)):
        if token.level == 0 and token.nesting >= 0 and token.map:
            starts.append((_KIND_OF_TOKEN.get(token.type, "paragraph"), token.map[0]))
    blocks = _with_gaps(starts, lines)
    seen: dict[str, int] = {}
    out: list[Paragraph] = []
    for kind, text in blocks:
        base = anchor_base(text)
        seen[base] = seen.get(base, 0) + 1
        anchor = base if seen[base] == 1 else f"{base}-{seen[base]}"
        out.append(Paragraph(anchor=anchor, kind=kind, markdown=text))
    return out


def _with_gaps(starts: list[tuple[str, int]], lines: list[str]) -> list[tuple[str, str]]:
    """Each block's source, from its first line to the next block's, so no line of the text is lost.

    Between blocks, markdown-it-py leaves out only blank lines and link reference definitions
    (``[site]: https://…``). A definition is part of the text, so it must reach the canonical document
    and the rendering: it goes with the block before it (the one after, at the very top).
    """
    if not starts:
        text = _trim("\n".join(lines))
        return [("paragraph", text)] if text else []
    firsts = [0] + [line for _, line in starts[1:]]
    ends = [line for _, line in starts[1:]] + [len(lines)]
    return [(kind, _trim("\n".join(lines[a:b]))) for (kind, _), a, b in zip(starts, firsts, ends)]


def _trim(text: str) -> str:
    """Blank lines around a block and spaces at its end go; the first line's indent stays, since it can
    make the block an indented code block or set a list's nesting."""
    kept = text.split("\n")
    while kept and not kept[0].strip():
        kept.pop(0)
    return "\n".join(kept).rstrip()


def canonical_document(meta: Mapping[str, Any], paragraphs: Sequence[Paragraph]) -> bytes:
    """RFC 8785 (JCS) bytes of ``{"meta": meta, "paragraphs": [...]}``: sorted keys, no spaces, one
    spelling of every number and string, so anyone re-serialising the JSON gets the same hash.

    ``meta`` holds JSON values only (strings, numbers, booleans, null, lists, mappings): a date is
    given as its ISO 8601 text."""
    document = {
        "meta": _plain(meta),
        "paragraphs": [{"anchor": p.anchor, "kind": p.kind, "markdown": p.markdown} for p in paragraphs],
    }
    return rfc8785.dumps(document)


def _plain(value: Any) -> Any:
    # rfc8785 serialises dict and list only; a mapping proxy or a tuple of the caller is the same JSON.
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def document_sha256(canonical: bytes) -> str:
    return hashlib.sha256(canonical).hexdigest()


def diff_paragraphs(old: Sequence[Paragraph], new: Sequence[Paragraph]) -> list[ParagraphChange]:
    """Block-by-block difference between two versions, in document order.

    Blocks are matched by anchor, i.e. by text. Where a run of old blocks gives way to a run of new
    ones at the same place, they are paired one to one as « changed » (a rewording), and what one run
    has more is « removed » or « added ». A block whose anchor survived but whose source differs in
    whitespace or kind only (a line re-wrapped, an indent) is « changed » too: the page never hides a
    difference of the source.
    """
    matcher = difflib.SequenceMatcher(None, [p.anchor for p in old], [p.anchor for p in new], autojunk=False)
    changes: list[ParagraphChange] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for a, b in zip(old[i1:i2], new[j1:j2]):
                same = a.markdown == b.markdown and a.kind == b.kind
                changes.append(ParagraphChange("same" if same else "changed", a, b))
            continue
        gone, came = old[i1:i2], new[j1:j2]
        for k in range(max(len(gone), len(came))):
            a = gone[k] if k < len(gone) else None
            b = came[k] if k < len(came) else None
            kind = "changed" if a and b else "removed" if a else "added"
            changes.append(ParagraphChange(kind, a, b))
    return changes
