"""The public record as C2SP tlog-tiles, over real HTTP (uvicorn → the ledger routes → NATS → the minutes
service → the database): entry bundles hold the leaves the entries API serves, hash tiles the tree's
hashes (they rebuild the signed root), caching headers say what may be kept, and what is not a tile of
the log is a JSON 404 — never a 500."""
from __future__ import annotations

import asyncio
import base64
import gzip
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from forum_ouvert.launcher import free_port, serve_ledger_api
from forum_ouvert.verify import verify_async
from forumlib.tlog import Frontier, leaf_hash
from forumlib.tlog.tiles import decode_entry_bundle, decode_hash_tile, subtree_root
from services.minutes import store
from shared.contracts.minutes import ListEntries
from tests.minutes.harness import running_minutes
from tests.support import database_urls, drop_schemas, nats_server

pytestmark = pytest.mark.integration
N = 600  # two full bundles and 002.p/88


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    tmp = tmp_path_factory.mktemp("tiles")
    urls = database_urls(tmp)
    try:
        with nats_server() as url:
            async with running_minutes(tmp, url, urls["minutes"]) as h:
                await h.publish_approved(N)
                await h.wait_checkpoint(N, timeout=60)
                async with serve_ledger_api(h.rpc) as base, httpx.AsyncClient(base_url=base) as client:
                    yield h, client, base
    finally:
        drop_schemas(urls)


async def api_leaves(h, start: int, end: int) -> list[bytes]:  # noqa: ANN001
    out: list[bytes] = []
    while start + len(out) < end:
        page = await h.rpc(ListEntries(start=start + len(out), end=end))
        out += [base64.b64decode(e.leaf) for e in page.entries]
    return out


async def test_entry_bundles_hold_the_leaves_gzipped_for_who_accepts_it(served) -> None:  # noqa: ANN001
    h, client, _ = served
    r = await client.get("/ledger/tile/entries/000", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-encoding"] == "gzip" and r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["access-control-allow-origin"] == "*" and "accept-encoding" in r.headers["vary"].lower()
    assert decode_entry_bundle(r.content) == await api_leaves(h, 0, 256)  # (httpx inflated it)
    plain = await client.get("/ledger/tile/entries/000", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == r.content
    raw = await client.get("/ledger/tile/entries/001", headers={"Accept-Encoding": "gzip"})
    async with client.stream("GET", "/ledger/tile/entries/001", headers={"Accept-Encoding": "gzip"}) as s:
        assert gzip.decompress(b"".join([c async for c in s.aiter_raw()])) == raw.content  # really gzip
    partial = await client.get("/ledger/tile/entries/002.p/88")
    assert partial.status_code == 200 and partial.headers["cache-control"] == "public, max-age=60"
    assert decode_entry_bundle(partial.content) == await api_leaves(h, 512, 600)


async def test_hash_tiles_rebuild_the_signed_root(served) -> None:  # noqa: ANN001
    h, client, _ = served
    level0 = []
    for path, width in (("000", 256), ("001", 256), ("002.p/88", 88)):
        r = await client.get(f"/ledger/tile/0/{path}")
        assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
        assert "content-encoding" not in r.headers  # hashes do not compress
        level0.append(decode_hash_tile(r.content, width))
    assert level0[1] == [leaf_hash(leaf) for leaf in await api_leaves(h, 256, 512)]
    level1 = decode_hash_tile((await client.get("/ledger/tile/1/000.p/2")).content, 2)
    assert level1 == [subtree_root(level0[0]), subtree_root(level0[1])]
    frontier = Frontier()
    for th in level1:
        frontier.append_subtree(8, th)
    for lh in level0[2]:
        frontier.append(lh)
    cp = await h.checkpoint()
    assert cp.size == N and frontier.root() == base64.b64decode(cp.root)


async def test_the_checkpoint_is_the_tile_prefix_s_and_short_lived(served) -> None:  # noqa: ANN001
    _, client, _ = served
    r = await client.get("/ledger/checkpoint")
    assert r.status_code == 200 and r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["cache-control"] == "public, max-age=5"


async def test_inside_the_web_front_tiles_stay_cacheable(served, tmp_path: Path) -> None:  # noqa: ANN001
    """The whole web front (its front door sets `no-store` and cookies by default) keeps the tiles'
    caching headers and sets no cookie on them: a CDN may keep them."""
    from services.web.app import create_app
    from shared.settings import Settings

    h, _, _ = served
    app = create_app(Settings(data_dir=tmp_path))
    app.state.web.rpc = h.rpc
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/ledger/tile/entries/001", headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 200 and r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.headers["content-encoding"] == "gzip" and "set-cookie" not in r.headers
        assert decode_entry_bundle(r.content) == await api_leaves(h, 256, 512)
        r = await c.get("/ledger/tile/0/x000/001")
        assert r.status_code == 404 and r.headers["content-type"] == "application/json"


@pytest.mark.parametrize("path", [
    "0/003", "entries/003", "entries/002.p/89", "1/000", "1/000.p/3", "0/x000/001", "64/000", "0/abc", "entries",
    "", "0/002.p/256", "0/002.p/0", "entries/x009/x223/x372/x036/x854/x775/807", "0/" + "x999/" * 8 + "999", "%00",
])
async def test_what_is_not_a_tile_of_the_log_is_a_json_404(served, path: str) -> None:  # noqa: ANN001
    _, client, _ = served
    r = await client.get(f"/ledger/tile/{path}")
    assert r.status_code == 404, (path, r.status_code, r.text)
    detail = r.json()["detail"]
    assert "tuile" in detail and r.headers["access-control-allow-origin"] == "*"


async def test_verify_reads_the_bundles_and_falls_back_for_a_leaf_too_large_for_them(served, tmp_path: Path
                                                                                    ) -> None:  # noqa: ANN001
    h, client, base = served
    key = h.signer.verifier.encode()
    r = await verify_async(base, key, tmp_path / "a.json")
    assert r.ok and r.details["leaves_from"] == {"tiles": N, "api": 0}, r.message
    # A record past the 65,535 bytes a bundle's length prefix can say (e.g. a long decision in emoji).
    async with h.svc.db.transaction() as tx:
        await store.append(tx, [store.Pending("huge-1", "decision.recorded",
                                              {"schema": 1, "type": "decision.recorded", "text": "😀" * 20_000})])
    await h.wait_checkpoint(N + 1)
    refused = await client.get("/ledger/tile/entries/002.p/89")
    assert refused.status_code == 404 and "/ledger/entries" in refused.json()["detail"]
    assert (await client.get("/ledger/tile/0/002.p/89")).status_code == 200  # its hashes are fine
    r = await verify_async(base, key, tmp_path / "a.json")
    assert r.ok and r.previous_size == N and r.details["leaves_from"] == {"tiles": 512, "api": 89}, r.message
    assert json.loads((tmp_path / "a.json").read_text())["size"] == N + 1


@asynccontextmanager
async def mirror(base: str, bundle_000: bytes | None = None) -> AsyncIterator[str]:
    """A mirror of the log at `base` that redirects every request there (a CDN may), except, when given,
    `tile/entries/000`, which it answers with these gzipped bytes."""
    app = FastAPI()

    @app.get("/ledger/{rest:path}")
    async def moved(rest: str, request: Request) -> Response:
        if bundle_000 is not None and rest == "tile/entries/000":
            return Response(bundle_000, media_type="application/octet-stream", headers={"Content-Encoding": "gzip"})
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"{base}/ledger/{rest}{query}", status_code=302)

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        await task


async def test_verify_follows_a_mirror_that_redirects(served, tmp_path: Path) -> None:  # noqa: ANN001
    """Tiles are static: a mirror may answer with redirects to the origin. The verifier's plain
    connections take only 200s and 404s and leave the rest to httpx, which follows."""
    h, _, base = served
    async with mirror(base) as url:
        r = await verify_async(url, h.signer.verifier.encode(), tmp_path / "mirror.json")
    assert r.ok, r.message
    used = r.details["leaves_from"]
    assert used["tiles"] >= 512 and used["tiles"] + used["api"] == r.size, r.message


async def test_a_bundle_that_inflates_past_any_bundle_is_refused(served, tmp_path: Path) -> None:  # noqa: ANN001
    h, _, base = served
    bomb = gzip.compress(bytes(256 * 65_537 + 1), mtime=0)  # 17 KB that inflate to more than 16 MB
    async with mirror(base, bomb) as url:
        r = await verify_async(url, h.signer.verifier.encode(), tmp_path / "bomb.json")
    assert r.problem == "malformed" and r.exit_code == 1 and "larger than an entry bundle" in r.message
