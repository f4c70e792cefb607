"""Readers for `bench/pages.py`: N concurrent closed-loop clients GET a page for a fixed time.

The client is a minimal HTTP/1.1 keep-alive GET over asyncio streams, one connection per reader: on
a 2-core machine the load generator shares the CPU with the servers it measures, and this costs about
a tenth of what httpx costs per request (the figures of every page and of the floor pay the same). It
reads `Content-Length` and chunked bodies, reconnects when the server closes, and counts anything but
the expected status as an error.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class HttpError(Exception):
    pass


KEEPALIVE_EXPIRY = 4.0  # seconds: uvicorn closes a connection idle for 5 s; reopen before it does


class Connection:
    """One keep-alive HTTP/1.1 connection to host:port, reopened when it has been idle for a while (as a
    browser's would be) or when the server closed it between two requests."""

    def __init__(self, host: str, port: int, headers: dict[str, str] | None = None) -> None:
        self.host, self.port = host, port
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.head = f"Host: {host}:{port}\r\nAccept: text/html\r\nUser-Agent: bench-pages\r\n{extra}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = 0.0

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is not None and time.monotonic() - self.used > KEEPALIVE_EXPIRY:
            await self.close()
        reused = self.writer is not None
        try:
            return await self._get(path)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if not reused or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                raise
            await self.close()  # closed by the server as we reused it: the request never reached it
            return await self._get(path)

    async def _get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\n{self.head}".encode())
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            body = b"".join(p[:-2] for p in parts)
        else:
            raise HttpError("response without a length")
        self.used = time.monotonic()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body


@dataclass
class PageResult:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    bytes_: int = 0
    answered: int = 0  # every answer, warm-up included (what the CPU readings cover)

    def error(self, kind: str, text: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if len(self.error_samples) < 3:
            self.error_samples.append(text[:300])


async def read_page(url_host: str, port: int, name: str, paths: Callable[[random.Random], str], *, readers: int,
                    seconds: float, warmup: float, headers: dict[str, str] | None = None,
                    expect: int = 200, timeout: float = 60.0, seed: int = 1, think: float = 0.0) -> PageResult:
    """`readers` clients GET `paths(rng)` for `warmup` + `seconds`, back to back (`think` 0: the load the
    servers can take), or each pausing a random time of mean `think` seconds between two pages, as people
    reading them do; latencies of the requests sent during the measured `seconds` are kept (those in
    flight at the end are awaited)."""
    out = PageResult(name)
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds

    async def reader(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        conn = Connection(url_host, port, headers)
        try:
            if think:
                await asyncio.sleep(rng.uniform(0, think))  # readers do not all arrive at once
            while (t0 := time.perf_counter()) < stop_at:
                path = paths(rng)
                try:
                    status, body = await asyncio.wait_for(conn.get(path), timeout)
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, HttpError,
                        TimeoutError, ValueError) as exc:
                    await conn.close()
                    if t0 >= measure_from:
                        out.error(type(exc).__name__, f"{path}: {type(exc).__name__}: {exc}")
                    continue
                t1 = time.perf_counter()
                out.answered += 1
                if t0 >= measure_from:
                    if status == expect:
                        out.latencies.append(t1 - t0)
                        out.bytes_ += len(body)
                    else:
                        out.error(f"HTTP {status}", f"{path}: HTTP {status}: {body[:200]!r}")
                if think:  # during the warm-up too: readers arrive at the pace they will keep (and stop on time)
                    await asyncio.sleep(min(rng.expovariate(1 / think), max(0.0, stop_at - time.perf_counter())))
        finally:
            await conn.close()

    await asyncio.gather(*(reader(k) for k in range(readers)))
    out.seconds = max(time.perf_counter() - measure_from, 1e-9)
    return out


async def fetch_once(host: str, port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = Connection(host, port, headers)
    try:
        return await conn.get(path)
    finally:
        await conn.close()
