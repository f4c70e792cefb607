"""A cheap HTTP/1.1 load generator in a process of its own: prepared requests, each sent exactly once,
over C kept-alive connections in a closed loop (a connection sends its next request once it has the
answer to the previous one).

Why not httpx: on a 2-core machine its per-request CPU would cap the client before the server and take
cores from the server under test. Here a request is pre-serialised bytes and a response is parsed only
as far as its status line, Content-Length/chunked framing and the few headers asked for.

    gen = LoadProcess(requests, ports=[8000, 8001], clients=50)
    await gen.ready()      # process started, connections open: take CPU snapshots, start profilers
    result = await gen.run()

Connections are spread over `ports` round-robin (connection k talks to ports[k % len(ports)]), so the
requests are spread over several web fronts in the same proportion. A connection the server closed
while it was idle is reopened *before* the next request is written; a request whose connection fails
after it was written is an error (status 0), never re-sent: every request is sent exactly once.

Times are `time.perf_counter()` values, which on Linux is CLOCK_MONOTONIC, shared by every process on
the machine: the orchestrator can compare them with its own.
"""
from __future__ import annotations

import asyncio
import html
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stats import latency_summary

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Prepared:
    """One request. `headers` must not hold Host or Content-Length (added here)."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def serialise(self) -> tuple[bytes, bytes]:
        """(request line, the rest after the Host header): the Host depends on the connection's port."""
        line = f"{self.method} {self.path} HTTP/1.1\r\n".encode("latin-1")
        head = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        rest = (head + f"Content-Length: {len(self.body)}\r\n\r\n").encode("latin-1") + self.body
        return line, rest


MAIL_DOMAINS = 8


def member_address(tag: str, i: int) -> str:
    """The i-th benchmark address, spread over MAIL_DOMAINS domains as a forum's members' are: the mail
    sender serves one domain with `FORUM_MAIL_DOMAIN_CONNECTIONS` (4) connections at most, so one domain
    for all would measure that politeness limit rather than the pipeline."""
    return f"{tag}-{i}@d{i % MAIL_DOMAINS}.example.org"


def form_post(path: str, fields: dict[str, str], cookie: str = "", headers: dict[str, str] | None = None) -> Prepared:
    from urllib.parse import urlencode

    h = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    if cookie:
        h["Cookie"] = cookie
    return Prepared("POST", path, h, urlencode(fields).encode())


@dataclass
class LoadResult:
    """Per request (in the order given): status (0: no answer), latency, send and answer times, the
    captured headers, and whether the body held one of the markers."""

    status: list[int]
    latency: list[float]
    sent_at: list[float]
    answered_at: list[float]
    headers: list[dict[str, str]]
    marked: list[bool]
    connection: list[int]
    errors: list[str]           # a few error texts (connection failures, bodies of 4xx/5xx)
    started_at: float            # perf_counter when the first request could go
    finished_at: float           # ... when the last answer came
    cpu_seconds: float           # the generator process's own CPU during the run
    reconnects: int
    clients: int
    ports: list[int]

    @property
    def seconds(self) -> float:
        return self.finished_at - self.started_at

    def statuses(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.status:
            out[str(s)] = out.get(str(s), 0) + 1
        return out

    def latency_summary(self, only: list[int] | None = None) -> dict[str, float | None]:
        idx = range(len(self.status)) if only is None else only
        return latency_summary([self.latency[i] for i in idx if self.status[i]])


def gist(body: str, limit: int = 240) -> str:
    """The gist of an error page: its title and the start of <main>, without tags."""
    title = re.search(r"<title>(.*?)</title>", body, re.S | re.I)
    main = body[body.find("<main"):] if "<main" in body else body
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main)).strip()
    head = html.unescape(title.group(1).strip()) + " | " if title else ""
    return (head + html.unescape(text))[:limit]


# ---------------------------------------------------------------- the child process
class _Conn:
    def __init__(self, port: int) -> None:
        self.port = port
        self.host = f"Host: 127.0.0.1:{port}\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    def usable(self) -> bool:
        return self.reader is not None and self.writer is not None and not self.reader.at_eof() \
            and not self.writer.is_closing()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _read_response(reader: asyncio.StreamReader, capture: tuple[str, ...], markers: tuple[bytes, ...],
                         keep_body: bool) -> tuple[int, dict[str, str], bool, bytes, bool]:
    """(status, captured headers, marker found, body if kept or an error, server closes after it)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0][9:12])
    length, chunked, close, got = 0, False, False, {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        key = name.strip().lower()
        if key == "content-length":
            length = int(value)
        elif key == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif key == "connection":
            close = "close" in value.lower()
        if key in capture:
            v = value.strip()
            got[key] = f"{got[key]}\n{v}" if key in got else v
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers from our servers
                break
            parts.append(await reader.readexactly(size + 2))
        body = b"".join(p[:-2] for p in parts)
    else:
        body = await reader.readexactly(length) if length else b""
    marked = any(m in body for m in markers)
    return status, got, marked, (body if keep_body or status >= 400 else b""), close


async def _run(requests: list[Prepared], ports: list[int], clients: int, capture: tuple[str, ...],
               markers: tuple[bytes, ...], timeout: float, pipe: Any) -> dict[str, Any]:
    n = len(requests)
    wire = [r.serialise() for r in requests]
    status = [0] * n
    latency = [0.0] * n
    sent_at = [0.0] * n
    answered_at = [0.0] * n
    headers: list[dict[str, str]] = [{} for _ in range(n)]
    marked = [False] * n
    on_conn = [-1] * n
    errors: list[str] = []
    reconnects = 0
    conns = [_Conn(ports[k % len(ports)]) for k in range(min(clients, max(1, n)))]
    await asyncio.gather(*[c.open() for c in conns])
    pipe.send(("ready", None))
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "go"
    cpu0 = time.process_time()
    started = time.perf_counter()
    next_i = 0

    async def loop(k: int) -> None:
        nonlocal next_i, reconnects
        c = conns[k]
        while next_i < n:
            i = next_i
            next_i += 1
            if not c.usable():  # closed by the server while idle: nothing of request i was written yet
                c.close()
                await c.open()
                reconnects += 1
            line, rest = wire[i]
            on_conn[i] = k
            t0 = time.perf_counter()
            sent_at[i] = t0
            try:
                assert c.writer is not None and c.reader is not None
                c.writer.write(line + c.host + rest)
                async with asyncio.timeout(timeout):
                    st, got, mark, body, close = await _read_response(c.reader, capture, markers, False)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as exc:
                answered_at[i] = time.perf_counter()
                latency[i] = answered_at[i] - t0
                if len(errors) < 20:
                    errors.append(f"#{i} {requests[i].method} {requests[i].path}: {type(exc).__name__}: {exc}")
                c.close()
                continue
            t1 = time.perf_counter()
            status[i], headers[i], marked[i] = st, got, mark
            latency[i], answered_at[i] = t1 - t0, t1
            if st >= 400 and len(errors) < 20:
                errors.append(f"#{i} {requests[i].method} {requests[i].path}: HTTP {st}: "
                              f"{gist(body.decode('utf-8', 'replace'))}")
            if close:
                c.close()

    await asyncio.gather(*[loop(k) for k in range(len(conns))])
    finished = time.perf_counter()
    cpu = time.process_time() - cpu0
    for c in conns:
        c.close()
    return {"status": status, "latency": latency, "sent_at": sent_at, "answered_at": answered_at,
            "headers": headers, "marked": marked, "connection": on_conn, "errors": errors,
            "started_at": started, "finished_at": finished, "cpu_seconds": cpu, "reconnects": reconnects,
            "clients": len(conns), "ports": list(ports)}


def _child() -> None:
    """`python -m bench.load`: the job comes pickled on stdin; "R" on stdout once connected; one byte on
    stdin says go; the result goes back pickled on stdout."""
    import pickle
    import sys

    job = pickle.load(sys.stdin.buffer)

    class Pipe:
        def send(self, _msg: object) -> None:
            sys.stdout.buffer.write(b"R")
            sys.stdout.buffer.flush()

        def recv(self) -> bytes:
            return sys.stdin.buffer.read(1)

    try:
        out: tuple[str, Any] = ("done", asyncio.run(_run(**job, pipe=Pipe())))
    except BaseException as exc:  # noqa: BLE001 - the parent must hear about it, not hang
        out = ("failed", f"{type(exc).__name__}: {exc}")
    pickle.dump(out, sys.stdout.buffer)
    sys.stdout.buffer.flush()


# ---------------------------------------------------------------- the parent's handle
class LoadProcess:
    """The generator's process (`python -m bench.load`). `ready()` once (connections open), then `run()`."""

    def __init__(self, requests: list[Prepared], ports: list[int], clients: int, *,
                 capture: tuple[str, ...] = ("location",), markers: tuple[bytes, ...] = (),
                 timeout: float = 120.0) -> None:
        self.job = {"requests": requests, "ports": list(ports), "clients": clients,
                    "capture": tuple(h.lower() for h in capture), "markers": tuple(markers), "timeout": timeout}
        self.clients = clients
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def ready(self) -> None:
        import pickle

        self.process = subprocess.Popen([sys.executable, "-m", "bench.load"], cwd=REPO, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE)
        assert self.process.stdin is not None and self.process.stdout is not None
        data = pickle.dumps(self.job)
        stdin, stdout = self.process.stdin, self.process.stdout

        def send_and_wait() -> bytes:
            stdin.write(data)
            stdin.flush()
            return stdout.read(1)

        if await asyncio.to_thread(send_and_wait) != b"R":
            await self._result()  # raises with the child's error

    async def _result(self) -> dict[str, Any]:
        import pickle

        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout

        def read() -> Any:
            try:
                return pickle.load(stdout)
            except EOFError:
                return ("failed", f"exited with code {self.process.wait()}")  # type: ignore[union-attr]

        kind, payload = await asyncio.to_thread(read)
        if kind != "done":
            raise RuntimeError(f"load generator failed: {payload}")
        return payload

    async def run(self) -> LoadResult:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(b"G")
        self.process.stdin.flush()
        try:
            out = await self._result()
        finally:
            await asyncio.to_thread(self.process.wait, 10)
        return LoadResult(**out)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


async def run_load(requests: list[Prepared], ports: list[int], clients: int, **kw: Any) -> LoadResult:
    gen = LoadProcess(requests, ports, clients, **kw)
    try:
        await gen.ready()
        return await gen.run()
    finally:
        gen.kill()


if __name__ == "__main__":
    _child()
