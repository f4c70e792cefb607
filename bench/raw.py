"""The raw limits the registrations are compared with, measured on the same servers in the same run.

- JetStream acked publish: `js.publish()` of fixed-size messages to a throwaway FILE stream
  `BENCH_RAW` (`benchraw.>`), each with its own `Nats-Msg-Id` (as the outbox relay does), by N
  concurrent publishers on one connection, each awaiting its PubAck before the next publish.
- NATS request/reply round trip: N concurrent requesters against an echo responder running in a
  separate process (as the web front and the services are).
- Database: single-row INSERT + COMMIT transactions from N concurrent connections in a scratch
  table (psycopg async on PostgreSQL, in a scratch schema; aiosqlite on SQLite, in a scratch file
  with the services' pragmas and their process-wide write lock).

Every loop is bounded in count and in time (`max_seconds`); a capped run reports what it did.
`python -m bench.raw echo --url nats://... --subject s --seconds 300` is the echo responder.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nats

from bench.stats import latency_summary, rate

RAW_STREAM = "BENCH_RAW"
RAW_SUBJECTS = "benchraw.>"
ECHO_SUBJECT = "benchraw-rpc.echo"  # outside every stream, or the stream would answer with a PubAck


@dataclass
class RawResult:
    what: str
    concurrency: int
    target: int
    done: int = 0
    errors: int = 0
    seconds: float = 0.0
    per_second: float | None = None
    capped: bool = False
    latency: dict[str, float | None] = field(default_factory=dict)
    notes: str = ""
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _drive(result: RawResult, op: Callable[[int], Awaitable[None]], max_seconds: float) -> RawResult:
    """Run `op(i)` for i in 0..target-1 on `concurrency` workers; record latencies and errors."""
    next_i = 0
    latencies: list[float] = []
    first_error: list[str] = []
    deadline = time.monotonic() + max_seconds

    async def worker() -> None:
        nonlocal next_i
        while next_i < result.target:
            if time.monotonic() > deadline:
                result.capped = True
                return
            i = next_i
            next_i += 1
            t = time.perf_counter()
            try:
                await op(i)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                result.errors += 1
                if not first_error:
                    first_error.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(result.concurrency)])
    result.seconds = time.perf_counter() - t0
    result.done = len(latencies)
    result.per_second = rate(result.done, result.seconds)
    result.latency = latency_summary(latencies)
    if first_error:
        result.error = first_error[0]
    return result


# ---------------------------------------------------------------- JetStream
async def jetstream_publish(nats_url: str, messages: int = 20_000, size: int = 500, concurrency: int = 50,
                            warmup: int = 500, max_seconds: float = 120) -> RawResult:
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    result = RawResult("jetstream acked publish", concurrency, messages,
                       notes=f"{size}-byte messages, FILE stream {RAW_STREAM}, Nats-Msg-Id on each, one connection")
    nc = await nats.connect(nats_url, name="bench-raw-js", max_reconnect_attempts=2)
    try:
        js = nc.jetstream(timeout=10)
        try:
            await js.delete_stream(RAW_STREAM)
        except NotFoundError:
            pass
        await js.add_stream(StreamConfig(name=RAW_STREAM, subjects=[RAW_SUBJECTS], retention=RetentionPolicy.LIMITS,
                                         storage=StorageType.FILE, num_replicas=1, duplicate_window=120,
                                         max_age=3600))
        payload = os.urandom(size // 2 + 1).hex()[:size].encode()
        run = uuid.uuid4().hex[:8]

        async def publish(i: int, prefix: str) -> None:
            ack = await js.publish(f"benchraw.{i % 64}", payload, stream=RAW_STREAM, timeout=10,
                                   headers={"Nats-Msg-Id": f"{prefix}-{run}-{i}"})
            if ack.duplicate:
                raise RuntimeError("unexpected duplicate ack")

        warm = RawResult("warmup", concurrency, warmup)
        await _drive(warm, lambda i: publish(i, "w"), max_seconds=30)
        await _drive(result, lambda i: publish(i, "m"), max_seconds)
        try:
            info = await js.stream_info(RAW_STREAM)
            result.notes += f"; stream then held {info.state.messages} messages, {info.state.bytes / 1e6:.1f} MB"
        finally:
            await js.delete_stream(RAW_STREAM)
    except Exception as exc:  # noqa: BLE001 - report, don't lose the rest of the run
        result.error = result.error or f"{type(exc).__name__}: {exc}"
    finally:
        await nc.close()
    return result


# ---------------------------------------------------------------- request/reply
async def _echo(nats_url: str, subject: str, seconds: float) -> None:
    nc = await nats.connect(nats_url, name="bench-echo", max_reconnect_attempts=2)

    async def reply(msg: Any) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(subject, queue="bench-echo", cb=reply)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.sleep(seconds)  # bounded: the responder never outlives its run
    await nc.drain()


async def request_reply(nats_url: str, requests: int = 10_000, size: int = 200, concurrency: int = 50,
                        max_seconds: float = 120) -> RawResult:
    result = RawResult("nats request/reply round trip", concurrency, requests,
                       notes=f"{size}-byte payload, echo responder in its own process")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.raw", "echo", "--url", nats_url, "--subject", ECHO_SUBJECT,
         "--seconds", str(int(max_seconds + 60))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(Path(__file__).resolve().parents[1]))
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout=30)  # type: ignore[union-attr]
        if line.strip() != b"ready":
            raise RuntimeError(f"echo responder did not start: {line!r} {proc.stderr.read()[:500]!r}")  # type: ignore[union-attr]
        nc = await nats.connect(nats_url, name="bench-raw-rpc", max_reconnect_attempts=2)
        try:
            payload = os.urandom(size // 2 + 1).hex()[:size].encode()

            async def call(_: int) -> None:
                msg = await nc.request(ECHO_SUBJECT, payload, timeout=10)
                if len(msg.data) != len(payload):
                    raise RuntimeError("bad echo")

            await _drive(RawResult("warmup", concurrency, 500), call, max_seconds=30)
            await _drive(result, call, max_seconds)
        finally:
            await nc.close()
    except Exception as exc:  # noqa: BLE001 - report, don't lose the rest of the run
        result.error = result.error or f"{type(exc).__name__}: {exc}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return result


# ---------------------------------------------------------------- database
async def db_transactions(kind: str, *, postgres_url: str | None = None, sqlite_path: Path | None = None,
                          transactions: int = 5_000, concurrency: int = 50, max_seconds: float = 120) -> RawResult:
    if kind == "postgresql":
        assert postgres_url
        return await _pg_transactions(postgres_url, transactions, concurrency, max_seconds)
    assert sqlite_path
    return await _sqlite_transactions(sqlite_path, transactions, concurrency, max_seconds)


async def _pg_transactions(url: str, transactions: int, concurrency: int, max_seconds: float) -> RawResult:
    import psycopg

    result = RawResult("db single-row INSERT+COMMIT", concurrency, transactions,
                       notes=f"PostgreSQL, psycopg async, {concurrency} connections, scratch schema")
    plain = url.replace("postgresql+psycopg://", "postgresql://").split("?")[0]
    schema = f"bench_raw_{uuid.uuid4().hex[:8]}"
    conns: list[psycopg.AsyncConnection[Any]] = []
    admin = await psycopg.AsyncConnection.connect(plain, autocommit=True)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        await admin.execute(f'CREATE TABLE "{schema}".rows (id bigserial PRIMARY KEY, payload text NOT NULL, '
                            f"created_at timestamptz NOT NULL DEFAULT now())")
        for _ in range(concurrency):  # the server may be shared (max_connections): use what it grants
            try:
                conns.append(await psycopg.AsyncConnection.connect(plain))
            except psycopg.OperationalError as exc:
                if not conns or "too many" not in str(exc):
                    raise
                result.notes += f"; only {len(conns)} connections granted by the server ({exc})".rstrip()
                result.concurrency = len(conns)
                break
        free: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
        for c in conns:
            free.put_nowait(c)
        insert = f'INSERT INTO "{schema}".rows (payload) VALUES (%s)'

        async def tx(i: int) -> None:
            conn = await free.get()
            try:
                await conn.execute(insert, (f"row {i} " + "x" * 200,))
                await conn.commit()
            except Exception:
                await conn.rollback()
                raise
            finally:
                free.put_nowait(conn)

        await _drive(RawResult("warmup", concurrency, 200), tx, max_seconds=30)
        await _drive(result, tx, max_seconds)
    except Exception as exc:  # noqa: BLE001 - e.g. too many connections: report it
        result.error = result.error or f"{type(exc).__name__}: {exc}"
    finally:
        for c in conns:
            await c.close()
        try:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await admin.close()
    return result


async def _sqlite_transactions(path: Path, transactions: int, concurrency: int, max_seconds: float) -> RawResult:
    import aiosqlite

    result = RawResult("db single-row INSERT+COMMIT", concurrency, transactions,
                       notes=f"SQLite WAL synchronous=NORMAL, aiosqlite, {concurrency} connections "
                             f"serialised by one asyncio lock (as shared/db.py does)")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conns: list[aiosqlite.Connection] = []
    lock = asyncio.Lock()
    try:
        for _ in range(concurrency):
            c = await aiosqlite.connect(path, timeout=30)
            for pragma in ("journal_mode=WAL", "busy_timeout=30000", "synchronous=NORMAL"):
                await c.execute(f"PRAGMA {pragma}")
            conns.append(c)
        await conns[0].execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, payload TEXT NOT NULL, "
                               "created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)")
        await conns[0].commit()
        free: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        for c in conns:
            free.put_nowait(c)

        async def tx(i: int) -> None:
            conn = await free.get()
            try:
                async with lock:
                    await conn.execute("INSERT INTO rows (payload) VALUES (?)", (f"row {i} " + "x" * 200,))
                    await conn.commit()
            finally:
                free.put_nowait(conn)

        await _drive(RawResult("warmup", concurrency, 200), tx, max_seconds=30)
        await _drive(result, tx, max_seconds)
    except Exception as exc:  # noqa: BLE001 - report it
        result.error = result.error or f"{type(exc).__name__}: {exc}"
    finally:
        for c in conns:
            await c.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return result


# ---------------------------------------------------------------- CLI (the echo responder)
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.raw")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("echo", help="request/reply echo responder (used by the benchmark)")
    e.add_argument("--url", required=True)
    e.add_argument("--subject", default=ECHO_SUBJECT)
    e.add_argument("--seconds", type=float, default=300)
    args = p.parse_args(argv)
    if not args.url.startswith(("nats://127.0.0.1", "nats://localhost")):
        raise SystemExit("the echo responder only talks to a local nats-server")
    asyncio.run(_echo(args.url, args.subject, args.seconds))


if __name__ == "__main__":
    main()
