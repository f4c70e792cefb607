"""`/static/js/preuve.js` in headless Chromium, against the web front served by uvicorn with the fake
forum of `test_web_record` (a real in-memory ledger, a real signed checkpoint): the browser verifies
the inclusion proof with WebCrypto (SHA-256, Ed25519) and sets `data-verification="ok"`; it waits
for a record not yet in the log (or not yet under a signed checkpoint), and says "failed" with why
for an altered leaf, another key, or a leaf that is not the record shown."""
from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from forumlib.tlog import record_leaf_bytes
from services.minutes.records import public_json
from tests.web.test_web_record import FakeForum, Ledger, decision, voted

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
OK = '#preuve-inclusion[data-verification="ok"]'
DONE = '#preuve-inclusion:not([data-verification="pending"])'


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[str, FakeForum]]:
    import uvicorn

    from services.web.app import create_app
    from shared.settings import Settings

    forum = FakeForum()
    app = create_app(Settings(secret_key="k" * 40, data_dir=tmp_path))
    app.state.web.rpc = forum
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", forum
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="module")
async def chromium():  # noqa: ANN201
    """Launched once for the module; each test gets a page in a context of its own (cookies, storage)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM}")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        await browser.close()


@pytest.fixture
async def page(chromium):  # noqa: ANN001, ANN201
    context = await chromium.new_context()
    yield await context.new_page()
    await context.close()


async def _state(page, selector: str = DONE) -> tuple[str | None, str]:  # noqa: ANN001
    await page.wait_for_selector(selector, timeout=20_000)
    return (await page.get_attribute("#preuve-inclusion", "data-verification"),
            await page.inner_text("#preuve-navigateur"))


async def test_browser_verifies_decision_and_record_proofs(site, page) -> None:  # noqa: ANN001
    base, forum = site
    d = forum.add(decision(1))
    v = forum.add(voted())
    forum.ledger.sign()
    for path in (f"/decisions/{d.decision.decision_id}", f"/decisions/{v.decision.decision_id}", "/registre/0",
                 f"/registre/{forum.located[v.event_id]}"):
        await page.goto(base + path)
        state, text = await _state(page)
        assert state == "ok", (path, text)
        assert "Preuve vérifiée" in text


async def test_browser_waits_for_the_record_then_verifies(site, page) -> None:  # noqa: ANN001
    base, forum = site
    forum.ledger.sign()
    late = forum.add(decision(2))  # in the log, not yet under a signed checkpoint
    await page.goto(base + f"/decisions/{late.decision.decision_id}")
    await page.wait_for_function("document.querySelector('#preuve-navigateur [data-role=status]')"
                                 ".textContent.includes('en cours')", timeout=10_000)
    forum.ledger.sign()
    assert (await _state(page, OK))[0] == "ok"

    missing = forum.add(decision(3), in_log=False)  # not even appended yet
    await page.goto(base + f"/decisions/{missing.decision.decision_id}")
    await asyncio.sleep(1.0)
    assert await page.get_attribute("#preuve-inclusion", "data-verification") == "pending"
    forum.located[missing.event_id] = forum.ledger.append("decision.recorded", missing.event_id,
                                                          {"decision": public_json(missing.decision)})
    forum.ledger.sign()
    state, text = await _state(page, OK)
    assert state == "ok" and f"n° {forum.located[missing.event_id]}" in text


async def test_browser_rejects_altered_leaf_other_key_and_wrong_record(site, page) -> None:  # noqa: ANN001
    base, forum = site
    d = forum.add(decision(1))
    forum.ledger.sign()
    url = base + f"/decisions/{d.decision.decision_id}"

    async def altered(route) -> None:  # noqa: ANN001
        resp = await route.fetch()
        body = await resp.json()
        record = body["entries"][0]["record"]
        record["data"]["decision"]["title"] = "Un autre titre"
        body["entries"][0].update(record=record, leaf=base64.b64encode(record_leaf_bytes(record)).decode())
        await route.fulfill(response=resp, body=json.dumps(body))

    await page.route("**/ledger/entries*", altered)
    await page.goto(url)
    state, text = await _state(page)
    assert state == "failed" and "racine signée" in text
    await page.unroute("**/ledger/entries*")

    other = Ledger().key
    await page.route("**/ledger/key", lambda route: route.fulfill(status=200, body=other, content_type="text/plain"))
    await page.goto(url)
    state, text = await _state(page)
    assert state == "failed" and "pas signé par la clé" in text
    await page.unroute("**/ledger/key")

    wrong = dict(forum.ledger.entry(0).model_dump(), index=forum.located[d.event_id])
    await page.route("**/ledger/entries*", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps({"entries": [wrong]})))
    await page.goto(url)
    state, text = await _state(page)
    assert state == "failed" and "pas l'enregistrement affiché" in text


AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"


async def test_pages_have_no_serious_accessibility_violation(site, page) -> None:  # noqa: ANN001
    if not AXE.exists():
        pytest.skip("axe-core missing: run `npm ci` at the root of the repository")
    base, forum = site
    d = forum.add(decision(1, text="# Titre\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n[lien](https://exemple.fr)"))
    v = forum.add(voted())
    forum.ledger.sign()
    for path in ("/decisions", f"/decisions/{d.decision.decision_id}", f"/decisions/{v.decision.decision_id}",
                 "/registre", "/registre/1", "/registre/verifier", "/decisions/inconnue"):
        await page.goto(base + path)
        if 'id="preuve-inclusion"' in await page.content():
            await _state(page)
        await page.evaluate(AXE.read_text() + "\n;true")
        result = await page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        bad = [f"{x['id']} ({x['impact']}): {x['help']} — {[n['target'] for n in x['nodes']][:3]}"
               for x in result["violations"] if x["impact"] in ("serious", "critical")]
        assert not bad, f"accessibility violations on {path}:\n" + "\n".join(bad)
