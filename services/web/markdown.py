"""Markdown for the texts the secretariat writes (decisions): rendered, then sanitised.

Two locks: markdown-it-py runs with raw HTML *off* (an HTML block or tag is shown as text), and
nh3 (ammonia) then keeps only a short list of tags and attributes, and links whose scheme is
http, https or mailto (a `javascript:` or `data:` link loses its href). Headings are shifted two
levels down (`#` → `<h3>`) so that a decision's text never breaks the page's heading order.
"""
from __future__ import annotations

from markdown_it import MarkdownIt
from markupsafe import Markup
import nh3

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li", "a",
    "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "del", "s",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"scope"}}
URL_SCHEMES = {"http", "https", "mailto"}
HEADING_SHIFT = 2

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"])


def _shift_headings(tokens: list) -> None:  # type: ignore[type-arg]
    for t in tokens:
        if t.type in ("heading_open", "heading_close"):
            t.tag = f"h{min(6, int(t.tag[1]) + HEADING_SHIFT)}"


def render_markdown(text: str | None) -> Markup:
    """Safe HTML for a Markdown text (empty for None)."""
    if not text:
        return Markup("")
    env: dict = {}  # type: ignore[type-arg]
    tokens = _md.parse(text, env)
    _shift_headings(tokens)
    html = _md.renderer.render(tokens, _md.options, env)
    clean = nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes=URL_SCHEMES,
                      link_rel="noopener noreferrer nofollow", strip_comments=True)
    return Markup(clean)  # noqa: S704 - sanitised by nh3 just above
