"""The public ledger routes: exact shapes, JSON errors (never the site's HTML error page), OpenAPI."""
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.web.routes import ledger
from shared.contracts.common import ErrorBody, ErrorCode, Request
from shared.contracts.minutes import (
    ConsistencyProof, InclusionProof, LedgerCheckpoint, LedgerEntries, LedgerEntry, LedgerKey,
)
from shared.rpc import RpcError

NOTE = "forum.test/registre\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— forum.test/registre AAAA\n"


class FakeRpc:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.error: ErrorBody | None = None

    async def __call__(self, request: Request[Any], *, timeout: float | None = None) -> Any:
        service, _, op = request.OP.partition(".")
        self.calls.append((service, op, request))
        if self.error:
            raise RpcError(self.error)
        replies = {
            "ledger-checkpoint": lambda: LedgerCheckpoint(note=NOTE, size=1, root="A" * 43 + "="),
            "ledger-key": lambda: LedgerKey(key="forum.test/registre+01020304+AQ==", origin="forum.test/registre"),
            "ledger-entries": lambda: LedgerEntries(entries=[LedgerEntry(index=0, leaf="e30=", record={})]),
            "ledger-inclusion": lambda: InclusionProof(leaf_index=request.index, tree_size=request.size,
                                                       hashes=["AA=="]),
            "ledger-consistency": lambda: ConsistencyProof(first=request.first, second=request.second, hashes=[]),
        }
        return replies[op]()


@pytest.fixture
def fake() -> FakeRpc:
    return FakeRpc()


@pytest.fixture
async def client(fake: FakeRpc):  # noqa: ANN201
    app = FastAPI()
    app.include_router(ledger.router)
    app.state.rpc = fake
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://forum.test") as c:
        yield c


async def test_public_api_shapes(client: httpx.AsyncClient, fake: FakeRpc) -> None:
    r = await client.get("/ledger/checkpoint")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain") and r.text == NOTE
    assert r.headers["access-control-allow-origin"] == "*"
    r = await client.get("/ledger/key")
    assert r.text == "forum.test/registre+01020304+AQ==\n"
    r = await client.get("/ledger/entries", params={"start": 0, "end": 5})
    assert r.json() == {"entries": [{"index": 0, "leaf": "e30=", "record": {}}]}
    assert fake.calls[-1][1:] == ("ledger-entries", fake.calls[-1][2]) and fake.calls[-1][2].end == 5
    r = await client.get("/ledger/proof/inclusion", params={"index": 3, "size": 9})
    assert r.json() == {"leaf_index": 3, "tree_size": 9, "hashes": ["AA=="]}
    r = await client.get("/ledger/proof/consistency", params={"first": 2, "second": 9})
    assert r.json() == {"first": 2, "second": 9, "hashes": []}


@pytest.mark.parametrize("url", [
    "/ledger/entries?start=-1&end=3", "/ledger/entries?start=x&end=3", "/ledger/entries?start=1",
    "/ledger/proof/inclusion?index=1.5&size=3", "/ledger/proof/consistency?first=1&second=-2",
    f"/ledger/proof/inclusion?index=0&size={2**63}",
])
async def test_malformed_parameters_are_422_json(client: httpx.AsyncClient, fake: FakeRpc, url: str) -> None:
    r = await client.get(url)
    assert r.status_code == 422 and isinstance(r.json()["detail"], list)
    assert fake.calls == []


@pytest.mark.parametrize(("code", "status"), [(ErrorCode.INVALID, 400), (ErrorCode.NOT_FOUND, 404),
                                              (ErrorCode.UNAVAILABLE, 503), (ErrorCode.INTERNAL, 500)])
async def test_service_errors_are_json(client: httpx.AsyncClient, fake: FakeRpc, code: ErrorCode, status: int) -> None:
    fake.error = ErrorBody(code=code, message="first (5) doit être inférieur ou égal à second (2)", field="first")
    r = await client.get("/ledger/proof/consistency", params={"first": 5, "second": 2})
    assert r.status_code == status and r.json() == {"detail": fake.error.message}
    if status == 503:
        assert r.headers["retry-after"] == "5"


async def test_no_rpc_client_is_503_json() -> None:
    app = FastAPI()
    app.include_router(ledger.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/ledger/checkpoint")
    assert r.status_code == 503 and "detail" in r.json()


async def test_openapi_documents_the_public_api(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert {"/ledger/checkpoint", "/ledger/key", "/ledger/entries", "/ledger/proof/inclusion",
            "/ledger/proof/consistency"} <= set(paths)
    entries = paths["/ledger/entries"]["get"]
    assert entries["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/LedgerEntries")
    assert {"400", "422", "503"} <= set(entries["responses"])
    assert {"404"} <= set(paths["/ledger/proof/inclusion"]["get"]["responses"])
    assert "text/plain" in paths["/ledger/checkpoint"]["get"]["responses"]["200"]["content"]
    params = {p["name"]: p["schema"] for p in entries["parameters"]}
    assert params["start"]["minimum"] == 0


async def test_errors_stay_json_inside_the_web_front(tmp_path: Path, fake: FakeRpc) -> None:
    """The web front renders HTML error pages for its own routes; the ledger API must keep JSON."""
    from services.web.app import create_app
    from shared.settings import Settings

    app = create_app(Settings(data_dir=tmp_path))
    app.include_router(ledger.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/ledger/checkpoint")  # the lifespan did not run: no RPC client yet
        assert r.status_code == 503 and r.headers["content-type"] == "application/json"
        app.state.web.rpc = fake
        assert (await c.get("/ledger/checkpoint")).text == NOTE
        r = await c.get("/ledger/entries?start=-1&end=2")
        assert r.status_code == 422 and r.headers["content-type"] == "application/json"
        fake.error = ErrorBody(code=ErrorCode.NOT_FOUND, message="no tree of size 9")
        r = await c.get("/ledger/proof/inclusion?index=0&size=9")
        assert r.status_code == 404 and r.json() == {"detail": "no tree of size 9"}
