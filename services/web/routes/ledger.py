"""Public API of the public record (transparency log) — stable: third parties script it.

    GET /ledger/checkpoint                          signed note (C2SP tlog-checkpoint), text/plain
    GET /ledger/key                                 note verifier key, text/plain
    GET /ledger/entries?start=S&end=E               {"entries": [{"index", "leaf", "record"}]}
    GET /ledger/proof/inclusion?index=I&size=N      {"leaf_index", "tree_size", "hashes"}
    GET /ledger/proof/consistency?first=M&second=N  {"first", "second", "hashes"}
    GET /ledger/tile/<L>/<N>[.p/<W>]                C2SP tlog-tiles hash tile, application/octet-stream
    GET /ledger/tile/entries/<N>[.p/<W>]            C2SP tlog-tiles entry bundle, application/octet-stream

`/ledger` is the log's tlog-tiles prefix: `/ledger/checkpoint` is its checkpoint. Full tiles never
change and are served `immutable` for a year (any web server or CDN may cache and mirror them);
partial tiles for a minute. Entry bundles are gzip-compressed for clients that accept it.

Errors are always JSON `{"detail": …}` (never the site's HTML error page), whatever the app's
exception handlers: 422 malformed parameters (missing, not an integer, negative), 400 impossible
request (start >= end, first > second, index >= size), 404 tree size beyond the log, 503 the
minutes service is unavailable. Read-only public data: `Access-Control-Allow-Origin: *`.

Include with `app.include_router(ledger.router)`; the RPC client is taken from
`request.app.state.web.rpc` (the web front) or `request.app.state.rpc` (small apps, tests), or
override `get_rpc` with `app.dependency_overrides`.
"""
from __future__ import annotations

import asyncio
import base64
import zlib
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request

from forumlib.tlog.tiles import Tile, TileError, parse_tile_path
from shared.contracts.common import ErrorBody, ErrorCode
from shared.contracts.minutes import (
    MAX_INDEX, ConsistencyProof, GetCheckpoint, GetConsistencyProof, GetInclusionProof, GetTile, GetVerifierKey,
    InclusionProof, LedgerEntries, ListEntries,
)
from shared.logging import get_logger
from shared.rpc import RpcClient, RpcError

log = get_logger(__name__)

STATUS = {ErrorCode.INVALID: 400, ErrorCode.NOT_FOUND: 404, ErrorCode.UNAVAILABLE: 503,
          ErrorCode.CONFLICT: 409, ErrorCode.FORBIDDEN: 403, ErrorCode.EXPIRED: 410, ErrorCode.INTERNAL: 500}
PUBLIC_HEADERS = {"Access-Control-Allow-Origin": "*"}


class ErrorDetail(BaseModel):
    detail: Any


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorDetail, "description": "Impossible request (e.g. start >= end, first > second)."},
    404: {"model": ErrorDetail, "description": "Tree size beyond the current log."},
    422: {"model": ErrorDetail, "description": "Malformed parameter (missing, not an integer, negative)."},
    503: {"model": ErrorDetail, "description": "The public record is unavailable; retry shortly."},
}


def _error(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers={**PUBLIC_HEADERS, **(headers or {})})


class JsonErrorRoute(APIRoute):
    """Turns every error of these routes into JSON before the app's HTML error handlers see it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except RequestValidationError as exc:
                return _error(422, [{k: v for k, v in e.items() if k in ("loc", "msg", "type")}
                                    for e in exc.errors()])
            except RpcError as exc:
                status = STATUS.get(exc.code, 500)
                if status >= 500:
                    log.warning("ledger query failed", code=str(exc.code), message=exc.error.message)
                return _error(status, exc.error.message, {"Retry-After": "5"} if status == 503 else None)
            except HTTPException as exc:
                return _error(exc.status_code, exc.detail, dict(exc.headers or {}))
            response.headers.update(PUBLIC_HEADERS)
            return response

        return route


router = APIRouter(prefix="/ledger", tags=["Registre public (journal de transparence)"],
                   route_class=JsonErrorRoute, responses={503: ERRORS[503]})


async def get_rpc(request: Request) -> RpcClient:
    """The web front's RPC client (`app.state.web.rpc`), or `app.state.rpc` for small apps (async: no
    thread hop per request, as a plain function dependency would cost)."""
    web = getattr(request.app.state, "web", None)
    client = getattr(web, "rpc", None) if web is not None else getattr(request.app.state, "rpc", None)
    if client is None:
        raise HTTPException(503, "Le registre public est momentanément indisponible "
                                 "(the public record is unavailable).", headers={"Retry-After": "5"})
    return client  # type: ignore[no-any-return]


Rpc = Annotated[RpcClient, Depends(get_rpc)]
Number = dict(ge=0, le=MAX_INDEX)


@router.get("/checkpoint", response_class=PlainTextResponse,
            summary="Dernier point de contrôle signé / latest signed checkpoint",
            responses={200: {"content": {"text/plain": {}},
                             "description": "C2SP tlog-checkpoint signed as a C2SP signed note (Ed25519)."}})
async def checkpoint(rpc: Rpc) -> PlainTextResponse:
    """The latest checkpoint: origin line, tree size, base64 root hash, a blank line and the signature
    line(s). Check it with the verifier key of `GET /ledger/key` obtained independently."""
    cp = await rpc(GetCheckpoint())
    # It changes as the log grows: a mirror may keep it a few seconds, no more (tlog-tiles).
    return PlainTextResponse(cp.note, media_type="text/plain; charset=utf-8",
                             headers={"Cache-Control": "public, max-age=5"})


@router.get("/key", response_class=PlainTextResponse,
            summary="Clé de vérification / note verifier key",
            responses={200: {"content": {"text/plain": {}},
                             "description": "<name>+<key id hex>+<base64(0x01 || Ed25519 public key)>"}})
async def key(rpc: Rpc) -> PlainTextResponse:
    """The note verifier key. An auditor should get it from a source other than this server
    (e.g. the forum's publications) and pass it to `forum-ouvert verify`."""
    k = await rpc(GetVerifierKey())
    return PlainTextResponse(k.key + "\n", media_type="text/plain; charset=utf-8")


@router.get("/entries", response_model=LedgerEntries, responses={400: ERRORS[400], 422: ERRORS[422]},
            summary="Entrées du registre / log entries")
async def entries(rpc: Rpc, start: Annotated[int, Query(**Number, description="First index (inclusive).")],
                  end: Annotated[int, Query(**Number, description="Last index (exclusive).")]) -> LedgerEntries:
    """Entries `start <= index < end`, in order, at most 1000 per call; fewer when the log is
    shorter or the page is full: continue from the last index + 1. `leaf` is the base64 of the exact
    leaf bytes, the RFC 8785 canonical JSON of `record`."""
    page = await rpc(ListEntries(start=start, end=end))
    # Already validated by the RPC client: serialise once, skip FastAPI's second validation pass.
    return Response(page.model_dump_json(), media_type="application/json")  # type: ignore[return-value]


@router.get("/proof/inclusion", response_model=InclusionProof,
            responses={400: ERRORS[400], 404: ERRORS[404], 422: ERRORS[422]},
            summary="Preuve d'inclusion / inclusion proof (RFC 9162)")
async def inclusion(rpc: Rpc, index: Annotated[int, Query(**Number, description="Leaf index.")],
                    size: Annotated[int, Query(**Number, description="Tree size (at most the current size).")]
                    ) -> InclusionProof:
    """RFC 9162 §2.1.3 inclusion proof of leaf `index` in the tree of the first `size` leaves."""
    return await rpc(GetInclusionProof(index=index, size=size))


@router.get("/proof/consistency", response_model=ConsistencyProof,
            responses={400: ERRORS[400], 404: ERRORS[404], 422: ERRORS[422]},
            summary="Preuve de cohérence / consistency proof (RFC 9162)")
async def consistency(rpc: Rpc, first: Annotated[int, Query(**Number, description="Older tree size.")],
                      second: Annotated[int, Query(**Number, description="Newer tree size.")]
                      ) -> ConsistencyProof:
    """RFC 9162 §2.1.4 consistency proof that the tree of `first` leaves is a prefix of the tree of
    `second` leaves (empty when `first` is 0 or equals `second`)."""
    return await rpc(GetConsistencyProof(first=first, second=second))


# ---------------------------------------------------------------- C2SP tlog-tiles
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT_LIVED = "public, max-age=60"
TILE_CACHE_BYTES = 32 * 1024 * 1024
TILE_ERRORS: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}},
          "description": "A hash tile (W x 32 bytes) or an entry bundle (each leaf after its big-endian "
                         "uint16 length), W = 256 unless the path ends in `.p/<W>`."},
    404: {"model": ErrorDetail, "description": "Not a tile path, or a tile the log does not hold (yet)."},
}


AHEAD = 7
"""Full tiles asked for beyond the one requested: readers of tiles mostly read on (a verifier, a
mirror), and one request to the service for eight tiles costs little more than for one."""


class TileSource:
    """Tiles for this process: full ones from a bounded cache (least recently used out past `limit`
    bytes — they never change), else from the minutes service with the next few full tiles of the same
    level, which concurrent requests for them wait for instead of asking again. Entry bundles come gzipped
    from the service and are kept both ways."""

    def __init__(self, limit: int = TILE_CACHE_BYTES) -> None:
        self.limit, self.used = limit, 0
        self._tiles: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._coming: dict[str, asyncio.Future[tuple[bytes, str] | None]] = {}

    async def get(self, t: Tile, rpc: RpcClient) -> tuple[bytes, str]:
        """The tile's bytes and their encoding (`identity` or `gzip`)."""
        if t.full:
            if (found := self._tiles.get(t.path)) is not None:
                self._tiles.move_to_end(t.path)
                return found
            if (coming := self._coming.get(t.path)) is not None:
                got = await asyncio.shield(coming)
                if got is not None:
                    return got
        return await self._fetch(t, rpc)

    async def _fetch(self, t: Tile, rpc: RpcClient) -> tuple[bytes, str]:
        following = [Tile(t.level, t.index + i) for i in range(1, AHEAD + 1)] if t.full else []
        waiting = {x.path: asyncio.get_running_loop().create_future() for x in [t, *following]
                   if x.full and x.path not in self._coming and x.path not in self._tiles}
        self._coming.update(waiting)
        delivered: dict[str, tuple[bytes, str]] = {}
        try:
            reply = await rpc(GetTile(level=t.level, index=t.index, width=t.width, ahead=len(following)))
            data = base64.b64decode(reply.data)
            while len(data) < reply.total:  # a tile larger than one reply
                more = await rpc(GetTile(level=t.level, index=t.index, width=t.width, offset=len(data)))
                if not more.data:
                    raise RpcError(ErrorBody(code=ErrorCode.INTERNAL, message="Tuile incomplète."))
                data += base64.b64decode(more.data)
            delivered[t.path] = self._keep(t, data, reply.encoding)
            for x, more_data in zip(following, reply.ahead, strict=False):
                delivered[x.path] = self._keep(x, base64.b64decode(more_data), reply.encoding)
            return delivered[t.path]
        finally:
            for path, future in waiting.items():
                self._coming.pop(path, None)
                future.set_result(delivered.get(path))  # None: ask on your own

    def _keep(self, t: Tile, data: bytes, encoding: str) -> tuple[bytes, str]:
        if t.full:
            self._tiles[t.path] = (data, encoding)
            self.used += len(data)
            while self.used > self.limit and self._tiles:
                _, (old, _) = self._tiles.popitem(last=False)
                self.used -= len(old)
        return data, encoding


_tiles = TileSource()


def _accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "*") and params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            return True
    return False


tiles = APIRouter(prefix="/tile", route_class=JsonErrorRoute)


@tiles.get("/{path:path}", response_class=Response, responses=TILE_ERRORS,
           summary="Tuiles du journal (C2SP tlog-tiles) / log tiles")
async def tile(path: str, request: Request, rpc: Rpc) -> Response:
    """`tile/<L>/<N>[.p/<W>]`: the Merkle tree hashes at tile level L (256 per full tile);
    `tile/entries/<N>[.p/<W>]`: the leaves, as an entry bundle. `<N>` in zero-padded groups of three
    digits, all but the last prefixed with `x` (1234067 → `x001/x234/067`). See
    https://c2sp.org/tlog-tiles; the checkpoint is `GET /ledger/checkpoint`."""
    try:
        t: Tile = parse_tile_path(path)
    except TileError:
        raise HTTPException(404, f"« tile/{path[:100]} » ne désigne aucune tuile du journal : les chemins sont "
                                 f"tile/<niveau>/<N>[.p/<largeur>] ou tile/entries/<N>[.p/<largeur>] "
                                 f"(not a tlog-tiles path).") from None
    data, encoding = await _tiles.get(t, rpc)
    headers = {"Cache-Control": IMMUTABLE if t.full else SHORT_LIVED}
    if t.entries:
        headers["Vary"] = "Accept-Encoding"
    if encoding == "gzip":
        if _accepts_gzip(request):
            headers["Content-Encoding"] = "gzip"
        else:
            data = zlib.decompress(data, 31)
    return Response(data, media_type="application/octet-stream", headers=headers)


router.include_router(tiles)
