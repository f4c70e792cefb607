"""The PDF of a published version: the same bytes every time it is rendered (here and in a fresh
process), A4, in French with the Paris date, the version, the status and the full SHA-256 of the
canonical document in its text; and nothing fetched while rendering, whatever the body names."""
from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from forumlib.markdown import render_paragraphs
from forumlib.minutes_doc import canonical_document, document_sha256, split_paragraphs
from services.minutes.pdf import render_pdf

ROOT = Path(__file__).resolve().parents[2]
MINUTES = """# Ouverture

L'assemblée plénière s'ouvre à 14 h 05 ; le quorum est atteint.

## Décisions

| Décision | Résultat |
|---|---|
| Engagement 5 | adopté |

- Collège des acteurs publics : 4
- Collège de la société civile : 6

> « Le forum rend compte de ses activités. »
"""
SUMMER = datetime(2030, 7, 14, 12, 5, tzinfo=UTC)   # 14 h 05 in Paris (UTC+2)
WINTER = datetime(2031, 1, 15, 12, 5, tzinfo=UTC)   # 13 h 05 in Paris (UTC+1)
A4_POINTS = (595.28, 841.89)


def inputs(**changes: Any) -> dict[str, Any]:
    paragraphs = split_paragraphs(MINUTES)
    meta = {"title": "Séance plénière du 14 juillet 2030", "version": 1}
    values: dict[str, Any] = {
        "title": "Séance plénière du 14 juillet 2030",
        "session_label": "Séance plénière — lundi 14 juillet 2030, CESE, Paris",
        "version": 1,
        "published_at": SUMMER,
        "sha256": document_sha256(canonical_document(meta, paragraphs)),
        "body_html": str(render_paragraphs(paragraphs)),
        "status_label": "publié",
    }
    values.update(changes)
    return values


def text_of(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture(scope="module")
def first() -> bytes:
    return render_pdf(**inputs())


def test_the_same_inputs_give_the_same_bytes(first: bytes) -> None:
    assert first.startswith(b"%PDF-")
    assert render_pdf(**inputs()) == first


def test_a_fresh_process_gives_the_same_bytes(first: bytes, tmp_path: Path) -> None:
    # what matters in practice: the same version rendered again later, by another process
    out = tmp_path / "again.pdf"
    script = ("import sys; from pathlib import Path; from tests.minutes.test_pdf import inputs; "
              "from services.minutes.pdf import render_pdf; Path(sys.argv[1]).write_bytes(render_pdf(**inputs()))")
    subprocess.run([sys.executable, "-c", script, str(out)], cwd=ROOT, check=True, timeout=120)
    assert out.read_bytes() == first


def test_text_holds_title_hash_version_status_and_french_date(first: bytes) -> None:
    values = inputs()
    text = text_of(first)
    assert values["title"] in text
    assert values["sha256"] in text  # in full, on one line
    assert "Version 1" in text and "publié" in text
    assert "14/07/2030 à 14:05" in text  # Paris summer time
    assert "L'assemblée plénière s'ouvre" in text and "Engagement 5" in text


def test_winter_date_and_a_corrected_version() -> None:
    pdf = render_pdf(**inputs(version=2, status_label="corrigé", published_at=WINTER))
    text = text_of(pdf)
    assert "15/01/2031 à 13:05" in text
    assert "Version 2" in text and "corrigé" in text


def test_the_hash_in_the_pdf_is_the_hash_of_the_canonical_json() -> None:
    paragraphs = split_paragraphs(MINUTES)
    canonical = canonical_document({"minutes_id": "m-1", "version": 3}, paragraphs)
    digest = hashlib.sha256(canonical).hexdigest()
    pdf = render_pdf(**inputs(sha256=document_sha256(canonical), version=3, status_label="adopté"))
    assert digest in text_of(pdf)


def test_every_page_footer_carries_the_hash() -> None:
    long_body = str(render_paragraphs(split_paragraphs("\n\n".join(f"Paragraphe {i}. " * 20 for i in range(80)))))
    values = inputs(body_html=long_body)
    pages = PdfReader(io.BytesIO(render_pdf(**values))).pages
    assert len(pages) > 1
    assert all(values["sha256"] in page.extract_text() for page in pages)


def test_a4_french_and_dated_metadata(first: bytes) -> None:
    reader = PdfReader(io.BytesIO(first))
    box = reader.pages[0].mediabox
    assert (round(float(box.width), 2), round(float(box.height), 2)) == A4_POINTS
    assert reader.trailer["/Root"]["/Lang"] == "fr"
    assert reader.metadata is not None and reader.metadata.title == inputs()["title"]
    # dated by the publication, never by the moment of rendering
    assert reader.metadata["/CreationDate"] == reader.metadata["/ModDate"] == "D:20300714120500Z"
    file_id = reader.trailer["/ID"][0]
    assert (file_id if isinstance(file_id, str) else bytes(file_id).decode()) == inputs()["sha256"][:32]


def test_versions_differ_in_bytes(first: bytes) -> None:
    other = render_pdf(**inputs(sha256="0" * 64))
    assert other != first


def test_text_inputs_are_escaped() -> None:
    pdf = render_pdf(**inputs(title="<b>Séance</b> & <script>x</script>", status_label="publié"))
    assert "<b>Séance</b> & <script>x</script>" in text_of(pdf)


@pytest.mark.parametrize("bad", ["", "abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65, "0" * 63 + "\n"])
def test_a_malformed_hash_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="sha256"):
        render_pdf(**inputs(sha256=bad))


# ================================================================ nothing is fetched
class _Counting(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.end_headers()
        self.wfile.write(b"body { color: red }")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Counting.hits = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_nothing_is_fetched_even_if_the_body_asks(server: str, tmp_path: Path) -> None:
    local = tmp_path / "secret.css"
    local.write_text("body { color: red }")
    body = (f'<p>Texte.</p><img src="{server}/image.png" alt="">'
            f'<link rel="stylesheet" href="{server}/style.css">'
            f'<style>@import url("{server}/import.css"); @font-face {{ font-family: X; src: url("{server}/f.woff2") }}'
            f'</style><object data="{server}/object"></object><img src="file://{local}">'
            f'<div style="background: url({server}/bg.png)">x</div>')
    pdf = render_pdf(**inputs(body_html=body))
    assert _Counting.hits == []
    assert "Texte." in text_of(pdf)
