"""Public API of the public record (transparency log) — stable: third parties script it.

    GET /ledger/checkpoint                          signed note (C2SP tlog-checkpoint), text/plain
    GET /ledger/key                                 note verifier key, text/plain
    GET /ledger/entries?start=S&end=E               {"entries": [{"index", "leaf", "record"}]}
    GET /ledger/proof/inclusion?index=I&size=N      {"leaf_index", "tree_size", "hashes"}
    GET /ledger/proof/consistency?first=M&second=N  {"first", "second", "hashes"}

Errors are always JSON `{"detail": …}` (never the site's HTML error page), whatever the app's
exception handlers: 422 malformed parameters (missing, not an integer, negative), 400 impossible
request (start >= end, first > second, index >= size), 404 tree size beyond the log, 503 the
minutes service is unavailable. Read-only public data: `Access-Control-Allow-Origin: *`.

Include with `app.include_router(ledger.router)`; the RPC client is taken from
`request.app.state.web.rpc` (the web front) or `request.app.state.rpc` (small apps, tests), or
override `get_rpc` with `app.dependency_overrides`.
"""
from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request

from shared.contracts.common import ErrorCode
from shared.contracts.minutes import (
    MAX_INDEX, ConsistencyProof, GetCheckpoint, GetConsistencyProof, GetInclusionProof, GetVerifierKey,
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


def get_rpc(request: Request) -> RpcClient:
    """The web front's RPC client (`app.state.web.rpc`), or `app.state.rpc` for small apps."""
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
    return PlainTextResponse(cp.note, media_type="text/plain; charset=utf-8")


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
