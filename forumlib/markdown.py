"""Markdown for the texts the secretariat writes (decisions, minutes): rendered, then sanitised.

Two locks: markdown-it-py runs with raw HTML *off* (an HTML block or tag is shown as text), and
nh3 (ammonia) then keeps only a short list of tags and attributes, and links whose scheme is
http, https or mailto (a `javascript:` or `data:` link loses its href). Either lock alone keeps
script out; both are kept so that a slip in one (a parser option turned on, a new Markdown rule) is
not yet a hole.

Headings are shifted down so that a text never breaks the heading order of the page around it: a
decision's text sits under the page's h2 (`#` → `<h3>`), the minutes under the page's h1 (`#` → `<h2>`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup, escape

if TYPE_CHECKING:
    from forumlib.minutes_doc import Paragraph

BASE_TAGS = {
    "p", "br", "hr", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li", "a",
    "table", "thead", "tbody", "tr", "th", "td", "del", "s",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"scope"}}
URL_SCHEMES = {"http", "https", "mailto"}
HEADING_SHIFT = 2            # a decision's text, under the page's h2
PARAGRAPHS_HEADING_SHIFT = 1  # the minutes, under the page's h1
PARAGRAPH_CLASS = "cr-para"

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"])


def parse(text: str, env: dict[str, Any] | None = None) -> list[Token]:
    """markdown-it-py tokens of a text, with the options every rendering here uses (so cutting a text
    into blocks and rendering them never disagree on where a block ends)."""
    return _md.parse(text, {} if env is None else env)


def sanitise(html: str, *, heading_shift: int = HEADING_SHIFT) -> Markup:
    """Keep only the tags and attributes Markdown produces, and links to the web or an address.

    Heading levels above the shift are dropped too: a text must not be able to make a heading
    that outranks the page's own."""
    tags = BASE_TAGS | {f"h{n}" for n in range(1 + heading_shift, 7)}
    clean = nh3.clean(html, tags=tags, attributes=ALLOWED_ATTRIBUTES, url_schemes=URL_SCHEMES,
                      link_rel="noopener noreferrer nofollow", strip_comments=True)
    return Markup(clean)  # noqa: S704 - sanitised by nh3 just above


def _render(text: str, env: dict[str, Any], heading_shift: int) -> Markup:
    tokens = _md.parse(text, env)
    for t in tokens:
        if t.type in ("heading_open", "heading_close"):
            t.tag = f"h{min(6, int(t.tag[1]) + heading_shift)}"
    return sanitise(_md.renderer.render(tokens, _md.options, env), heading_shift=heading_shift)


def render_markdown(text: str | None, *, heading_shift: int = HEADING_SHIFT) -> Markup:
    """Safe HTML for a Markdown text (empty for None)."""
    if not text:
        return Markup("")
    return _render(text, {}, heading_shift)


def render_paragraphs(paragraphs: Sequence[Paragraph], *,
                      heading_shift: int = PARAGRAPHS_HEADING_SHIFT) -> Markup:
    """Safe HTML of the minutes' blocks, each in ``<div class="cr-para" id="{anchor}">`` so that a
    link to ``#{anchor}`` lands on it.

    Each block is rendered alone, but with the link reference definitions of the whole text, so a
    ``[site][ref]`` in one block still finds its ``[ref]: https://…`` written in another.
    """
    references: dict[str, Any] = {}
    parse("\n\n".join(p.markdown for p in paragraphs), references)
    parts = []
    for p in paragraphs:
        env = {"references": dict(references.get("references", {}))}
        body = _render(p.markdown, env, heading_shift)
        # The wrapper is added after sanitising (nh3 would drop the id); the anchor is escaped in case
        # a stored document was tampered with.
        parts.append(Markup('<div class="{}" id="{}">{}</div>').format(PARAGRAPH_CLASS, escape(p.anchor), body))
    return Markup("\n").join(parts)
