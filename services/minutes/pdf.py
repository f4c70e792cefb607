"""The PDF of one published version of the minutes, made with WeasyPrint (HTML and CSS Paged Media:
the same sanitised HTML as the web page, so the two never say different things).

The PDF is an archive people download and compare, so rendering the same version again must give the
same bytes: its dates are the publication date (never "now"), its file identifier is taken from the
document's hash, and nothing is fetched while rendering (no network, no local file: a reference in
the body is dropped, not followed), so nothing outside the inputs can change the result. Fonts are
the machine's own (DejaVu, installed with the system packages).

The cover states the version, the status and the publication date in Paris time, and the SHA-256 of
the canonical document in full, which is also in every page's footer: whoever holds a printed page
can check it against the public record.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, NoReturn

from markupsafe import Markup, escape
from weasyprint import CSS, HTML
from weasyprint.urls import URLFetcher

from shared.clock import as_utc, paris_datetime

SHA256_HEX = re.compile(r"[0-9a-f]{64}")

STYLE = """
@page {
  size: A4;
  margin: 22mm 20mm 26mm 20mm;
  @bottom-left { content: element(footer); width: 80%; }
  @bottom-right { content: "Page " counter(page) " / " counter(pages);
                  font: 8pt "DejaVu Sans", sans-serif; color: #555; }
}
html { font: 10.5pt/1.45 "DejaVu Sans", sans-serif; color: #161616; }
h1 { font-size: 18pt; margin: 0 0 4pt; }
h2 { font-size: 14pt; margin: 16pt 0 6pt; }
h3 { font-size: 12pt; margin: 12pt 0 4pt; }
h4, h5, h6 { font-size: 10.5pt; margin: 10pt 0 4pt; }
code, pre { font-family: "DejaVu Sans Mono", monospace; font-size: 9pt; }
pre { white-space: pre-wrap; background: #f2f2f2; padding: 6pt; }
blockquote { margin: 0 0 0 12pt; padding-left: 8pt; border-left: 2pt solid #999; }
table { border-collapse: collapse; margin: 6pt 0; }
th, td { border: 0.5pt solid #888; padding: 2pt 5pt; text-align: left; vertical-align: top; }
a { color: #000091; }
.cr-kind { text-transform: uppercase; letter-spacing: 0.08em; font-size: 9pt; color: #555; margin: 0; }
.cr-session { margin: 0 0 10pt; }
.cr-facts { border-top: 1pt solid #000091; border-bottom: 1pt solid #000091; padding: 6pt 0; margin: 0 0 14pt; }
.cr-facts p { margin: 0; }
.cr-hash { font-family: "DejaVu Sans Mono", monospace; font-size: 8pt; }
.cr-footer { position: running(footer); font-size: 7pt; color: #555; }
.cr-footer .cr-hash { font-size: 7pt; }
.cr-para { break-inside: auto; }
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="fr">
<head>
<meta charset="utf-8">
<title>{title}</title>
<meta name="author" content="Forum ouvert">
<meta name="description" content="{session_label}, version {version} ({status})">
<meta name="dcterms.created" content="{w3c_date}">
<meta name="dcterms.modified" content="{w3c_date}">
</head>
<body>
<p class="cr-footer">{title} — version {version} ({status}) — SHA-256 <span class="cr-hash">{sha256}</span></p>
<header>
<p class="cr-kind">Compte rendu</p>
<h1>{title}</h1>
<p class="cr-session">{session_label}</p>
<div class="cr-facts">
<p>Statut : {status}</p>
<p>Version {version}, publiée le {published} (heure de Paris)</p>
<p>Empreinte SHA-256 du document canonique :</p>
<p class="cr-hash">{sha256}</p>
</div>
</header>
<main>
{body}
</main>
</body>
</html>
"""


class _NoFetching(URLFetcher):
    """Refuses every URL: the minutes are rendered from their inputs alone (an image or a stylesheet
    named in the body would make the PDF depend on a server, and could reach the local network)."""

    def fetch(self, url: str, headers: Any = None) -> NoReturn:
        raise ValueError(f"nothing is fetched while rendering the minutes: {url[:80]}")


def render_pdf(*, title: str, session_label: str, version: int, published_at: datetime, sha256: str,
               body_html: str, status_label: str) -> bytes:
    """A4 PDF of one version. ``body_html`` must already be sanitised (``render_paragraphs``);
    ``status_label`` is « publié », « adopté » or « corrigé »."""
    if not SHA256_HEX.fullmatch(sha256):
        raise ValueError("sha256 must be 64 lowercase hexadecimal characters")
    published = as_utc(published_at)
    html = TEMPLATE.format(
        title=escape(title), session_label=escape(session_label), version=int(version),
        status=escape(status_label), published=escape(paris_datetime(published)), sha256=sha256,
        w3c_date=published.strftime("%Y-%m-%dT%H:%M:%SZ"), body=Markup(body_html),  # noqa: S704 - sanitised upstream
    )
    fetcher = _NoFetching()
    document = HTML(string=html, url_fetcher=fetcher, media_type="print").render(
        stylesheets=[CSS(string=STYLE, url_fetcher=fetcher)])
    # Without an identifier of our own the file would carry none (some readers then make one up);
    # taken from the hash, it is the same on every rendering of this version and differs between versions.
    return document.write_pdf(pdf_identifier=sha256[:32].encode("ascii"), pdf_tags=True)
