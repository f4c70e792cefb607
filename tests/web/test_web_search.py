"""Search through the web front, against the running forum (every service a real process, real NATS, the
real database): `/recherche` finds sessions, decisions and published minutes without accents and by
their stems, marks the words found in an excerpt whose text is escaped, filters by type with counts,
pages through many results, never shows a draft; the header's search box leads there; and anything
typed — quotes, signs, scripts, 5,000 characters — gives a page with results or a French sentence,
never an error page.

Each test searches for words of its own (made up), so the other tests' documents never match.
"""
from __future__ import annotations

import asyncio
import html
import random
import re
import string
import time
from urllib.parse import quote

import httpx
import pytest

from shared.contracts.common import ErrorCode
from shared.contracts.minutes import AdoptionKind, OpenMinutesDraft, PublishMinutes, SaveMinutesDraft
from shared.rpc import RpcClient, RpcError
from tests.web.test_web_bad_input import h1, text
from tests.web.test_web_decisions_admin import decision_form, decision_id, past_session
from tests.web.test_web_sessions import WebMember, admin, create_session, crowd  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


def made_up() -> str:
    return "zq" + "".join(random.choices(string.ascii_lowercase, k=9))


def hits(r: httpx.Response) -> list[str]:
    """The addresses of the results, in order."""
    return re.findall(r'<li class="fr-mb-4w" id="resultat-\d+">.*?<h2[^>]*><a href="([^"]+)">', r.text, re.S)


def marks(r: httpx.Response) -> list[str]:
    return [html.unescape(m) for m in re.findall(r"<mark>(.*?)</mark>", r.text, re.S)]


def message(r: httpx.Response) -> str:
    m = re.search(r'id="recherche-message"[^>]*>\s*<p>(.*?)</p>', r.text, re.S)
    return html.unescape(m.group(1)) if m else ""


def count_line(r: httpx.Response) -> str:
    m = re.search(r'id="recherche-nombre">(.*?)</p>', r.text, re.S)
    return " ".join(html.unescape(m.group(1)).split()) if m else ""


async def search(client: httpx.AsyncClient | WebMember, q: str, **params: str) -> httpx.Response:
    r = await client.get("/recherche", params={"q": q, **params})
    assert r.status_code == 200, (q, r.status_code, text(r)[:300])
    return r


async def until_found(client: WebMember, q: str, url: str, timeout: float = 30) -> httpx.Response:
    """Sessions and decisions reach the index through events: ask again until the result shows."""
    deadline = time.monotonic() + timeout
    while True:
        r = await search(client, q)
        if url in hits(r):
            return r
        assert time.monotonic() < deadline, f"{url} never found for {q!r}: {count_line(r) or message(r)}"
        await asyncio.sleep(0.3)


async def draft_of(rpc: RpcClient, secretariat: str, sid: str) -> str:
    """Open the minutes' draft once the minutes service knows the session (its id)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return (await rpc(OpenMinutesDraft(actor_id=secretariat, session_id=sid))).minutes_id
        except RpcError as exc:
            if exc.code != ErrorCode.NOT_FOUND or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


async def test_search_sessions_decisions_and_minutes(admin: WebMember, rpc: RpcClient, secretariat: str) -> None:
    tag, secret = made_up(), made_up()
    sid = await past_session(admin, title=f"Assemblée plénière {tag}",
                             description="Les élues et les élus des collectivités présentent leurs engagements.")
    r = await until_found(admin, f"assemblee {tag}", f"/seances/{sid}")
    assert "Assemblée" in marks(r) and count_line(r) == f"1 résultat pour « assemblee {tag} »."
    assert h1(r) == "Rechercher" and 'value="assemblee ' in r.text  # the query stays in the box
    # Stems: « élu » finds « élus » and « élues ».
    r = await search(admin, f"élu {tag}")
    assert hits(r) == [f"/seances/{sid}"] and {"élues", "élus"} <= set(marks(r))

    did = decision_id(await admin.post(f"/secretariat/decisions/nouvelle?seance={sid}", decision_form(
        title=f"Budget participatif {tag}", method="consensus", outcome="adopted",
        text="Le forum **recommande** un budget participatif dans chaque quartier.")))
    r = await until_found(admin, f"quartiers {tag}", f"/decisions/{did}")
    assert hits(r) == [f"/decisions/{did}"]

    # Minutes: a draft is never found; published, they are. Their text is escaped, only <mark> is markup.
    mid = await draft_of(rpc, secretariat, sid)
    body = (f"# Compte rendu {tag}\n\nL'Assemblée a entendu les élus. <script>alert('{secret}')</script> "
            f"<b>gras</b> & « guillemets » {secret}.")
    view = await rpc(OpenMinutesDraft(actor_id=secretariat, session_id=sid))
    await rpc(SaveMinutesDraft(actor_id=secretariat, minutes_id=mid, markdown=body, base_revision=view.revision))
    r = await search(admin, secret)
    assert hits(r) == [] and count_line(r) == f"Aucun résultat pour « {secret} »."
    await rpc(PublishMinutes(actor_id=secretariat, minutes_id=mid, adoption=AdoptionKind.NONE))
    r = await search(admin, secret)
    assert hits(r) == [f"/comptes-rendus/{mid}"]
    assert "<script>alert" not in r.text and "<b>gras</b>" not in r.text
    assert "&lt;script&gt;alert(" in r.text and "&lt;b&gt;gras&lt;/b&gt;" in r.text
    assert set(marks(r)) == {secret}

    # Filters by type, with counts; an unknown type reads as « all ».
    r = await search(admin, tag)
    assert set(hits(r)) == {f"/seances/{sid}", f"/decisions/{did}", f"/comptes-rendus/{mid}"}
    filters = " ".join(text(httpx.Response(200, text=m)) for m in re.findall(
        r'id="recherche-filtres">(.*?)</nav>', r.text, re.S))
    assert "Tout (3)" in filters and "Comptes rendus (1)" in filters and "Décisions (1)" in filters \
        and "Séances (1)" in filters
    assert re.search(r'aria-current="true" href="/recherche\?q=[^"]*">Tout \(3\)', r.text)
    for slug, url in (("comptes-rendus", f"/comptes-rendus/{mid}"), ("decisions", f"/decisions/{did}"),
                      ("seances", f"/seances/{sid}")):
        only = await search(admin, tag, type=slug)
        assert hits(only) == [url], slug
        assert f'aria-current="true" href="/recherche?q={tag}&amp;type={slug}"' in only.text
    assert len(hits(await search(admin, tag, type="nimporte"))) == 3
    none = await search(admin, f"{tag} {made_up()}", type="decisions")
    assert "Aucun résultat" in count_line(none) and "Vérifiez l'orthographe" in text(none)


async def test_pages_of_results(admin: WebMember) -> None:
    tag = made_up()
    sids = [await create_session(admin, title=f"Atelier {i} {tag}") for i in range(12)]
    deadline = time.monotonic() + 30  # the sessions reach the index through events
    while "12 résultats" not in count_line(r := await search(admin, tag)):
        assert time.monotonic() < deadline, count_line(r)
        await asyncio.sleep(0.3)
    assert count_line(r) == f"12 résultats pour « {tag} », page 1 sur 2."
    assert len(hits(r)) == 10 and 'class="fr-pagination"' in r.text
    assert f'href="/recherche?q={tag}&amp;page=2"' in r.text
    second = await search(admin, tag, page="2")
    assert len(hits(second)) == 2 and not set(hits(r)) & set(hits(second))
    assert set(hits(r)) | set(hits(second)) == {f"/seances/{s}" for s in sids}
    assert re.search(r'<ol class="fr-raw-list" id="resultats" start="11">', second.text)
    beyond = await search(admin, tag, page="9")
    assert hits(beyond) == [] and "revenir à la première page" in text(beyond)
    for page in ("0", "-1", "abc", "1.5", "99999999999", ""):
        assert len(hits(await search(admin, tag, page=page))) == 10, page


HOSTILE = [
    '"', "'", "l'assemblée", "compte-rendu", "-", "*", "AND", "OR", "NOT", "a AND", "( )", "((élu", "élu)",
    "NEAR(élu vote)", "title:élu", "élu:*", "élu & !vote", "élu <-> vote", "\\", "%", "' OR 1=1 --",
    "'; DROP TABLE minutes_search; --", "<script>alert(1)</script>", "&lt;b&gt;", "{{ 7*7 }}", "{% raw %}", "😀",
    "日本語", "le la de", "-élu", "\u200b", "é" * 5000, "x" * 5000, "élu " * 1250,
]


async def test_anything_typed_gets_a_page(forum, admin: WebMember) -> None:  # noqa: ANN001 - the Stack fixture
    async with httpx.AsyncClient(base_url=forum.web_url, timeout=30) as anyone:
        for q in HOSTILE:
            r = await search(anyone, q)
            assert h1(r) == "Rechercher", q
            assert message(r) or count_line(r), q
            assert "<script>alert(1)" not in r.text, q
        assert message(await search(anyone, "")) == "Saisissez un ou plusieurs mots à rechercher."
        assert message(await search(anyone, "   ")) == "Saisissez un ou plusieurs mots à rechercher."
        assert "trop courants" in message(await search(anyone, "le la de"))
        assert "exclure" in message(await search(anyone, "-élu"))
        assert "ni lettre ni chiffre" in message(await search(anyone, "* ( ) -"))
        long = await search(anyone, "é" * 5000)
        assert "seuls ses 256 premiers caractères" in text(long)
        # The page without a query: the form, no message.
        r = await anyone.get("/recherche")
        assert r.status_code == 200 and not message(r) and 'id="recherche-q"' in r.text
        # Odd addresses: repeated or unknown parameters, a bare query string.
        for address in ("/recherche?q=a&q=élu", "/recherche?type=", "/recherche?q=%FF%FE", "/recherche?q=%00",
                        "/recherche?page=2", "/recherche?q=" + quote("l'assemblée") + "&type=seances&page=x"):
            r = await anyone.get(address)
            assert r.status_code == 200, address
        # The box of the header, on every page, leads here.
        home = await anyone.get("/")
        assert re.search(r'<form class="fr-search-bar" id="recherche-entete-barre" role="search" '
                         r'aria-label="Recherche sur le site" method="get" action="/recherche">', home.text)
        assert '<label class="fr-label" for="recherche-entete-q">' in home.text
        assert 'aria-controls="recherche-entete"' in home.text  # the small screens' button
