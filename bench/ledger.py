"""Benchmark of the public record: `python -m bench.ledger [--quick]` (or `bash bench/run.sh ledger`).

What it measures, in one run, on one machine, each figure beside the floor it is built on:

1. raw SHA-256 of this machine (hashlib): 65-byte node hashes per second — the floor of every Merkle
   figure below;
2. **append through the real consumer**: a backlog of `registry.member.approved` events waits in
   JetStream (a real nats-server), then the minutes service starts (its own process, `forum-ouvert serve
   minutes`) and its batch consumer drains it — one transaction per fetched batch: inbox rows, leaves,
   nodes, head — while its checkpoint signer signs. Measured from the first leaf to the last (the
   service's start-up left out), with the service's CPU time per event and, with py-spy, where that CPU
   goes. Beside it, in the same run:
   - `store.append` alone, in transactions of the consumer's batch size (no NATS: the database floor);
   - an empty batch consumer (inbox rows only) draining the same backlog, in its own process on its own
     nats-server (the consumer machinery's floor); and, for reference, the one-event-per-transaction
     consumer every other service uses;
   - the idle latency of one event → the signed checkpoint covering it;
3. the log is filled with `store.append` (5,000-leaf transactions) to 100,000 leaves (20,000 with
   --quick); proof latency there, in the store and end to end over HTTP (the ledger API in its own
   process → NATS → the service → the database); `forum-ouvert verify` of the whole log through the
   entries API and through the C2SP tlog-tiles entry bundles;
4. the log is filled to 1,000,000 leaves (100,000 with --quick); proofs again, and `verify` of all of
   them through the tiles, in its own process (as an auditor would run it), with its CPU profile.

Database: SQLite file (default) or PostgreSQL with `--database-url postgresql://…` (or
FORUM_BENCH_DATABASE_URL; a scratch schema, dropped at the end). Figures, never assertions (shared
machines): the load average is printed at the start and the end. A full run on PostgreSQL takes a few
minutes on a quiet 2-CPU machine (filling a million leaves is most of it); --quick about a minute.

One file, longer than most modules, on purpose: the phases read top to bottom in the order they run, and
it depends on no test code.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.stats import fmt, latency_summary, table

ROOT = Path(__file__).resolve().parent.parent
QUICK = {"backlog": 10_000, "one_by_one": 500, "sizes": (20_000, 100_000), "samples": 100}
FULL = {"backlog": 20_000, "one_by_one": 2_000, "sizes": (100_000, 1_000_000), "samples": 200}
BATCH = 500  # the ledger consumers' batch size (services/minutes/service.py)
SUBJECT, STREAM = "registry.member.approved", "REGISTRY"


# ---------------------------------------------------------------- raw SHA-256
def sha256_rate(seconds: float = 1.0) -> dict[str, float]:
    block = b"\x01" + os.urandom(64)
    n, t0 = 0, time.perf_counter()
    h = hashlib.sha256
    while time.perf_counter() - t0 < seconds:
        for _ in range(10_000):
            h(block).digest()
        n += 10_000
    return {"node_hashes_per_s": n / (time.perf_counter() - t0)}


# ---------------------------------------------------------------- infrastructure
def nats_server():  # noqa: ANN201 - the launcher's context manager
    from forum_ouvert.launcher import throwaway_nats

    return throwaway_nats("bench-ledger-nats-")


@contextmanager
def database(url: str | None, tmp: Path) -> Iterator[str]:
    if not url:
        yield f"sqlite+aiosqlite:///{tmp / 'minutes.db'}"
        return
    import psycopg

    plain = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)
    schema = f"bench_ledger_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in plain else "?"
    try:
        yield plain.replace("postgresql://", "postgresql+psycopg://", 1) + f"{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def approved_bodies(n: int) -> list[tuple[str, bytes]]:
    """(event id, JSON body) of `n` member-approved events, as the registry's outbox relay publishes them."""
    from shared.contracts.envelope import make_event
    from shared.contracts.registry import College, MemberApproved

    out = []
    for _ in range(n):
        e = make_event(MemberApproved(member_id=str(uuid.uuid4()), public_id=uuid.uuid4().hex[:16],
                                      college=College.CITIZEN), producer="registry")
        out.append((str(e.event_id), e.model_dump_json().encode()))
    return out


async def publish_backlog(nats_url: str, n: int) -> None:
    """`n` events into the stream (declared as any service would), before anyone consumes them."""
    import nats

    from shared.streams import ensure_streams

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream(timeout=30)
        await ensure_streams(js)
        bodies = approved_bodies(n)
        for i in range(0, n, 1000):
            await asyncio.gather(*[js.publish(SUBJECT, b, headers={"Nats-Msg-Id": eid}) for eid, b in bodies[i:i + 1000]])
    finally:
        await nc.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Process:
    """A child process of the benchmark (a service, the ledger API, a floor consumer), stopped at exit."""

    def __init__(self, args: list[str], env: dict[str, str], name: str) -> None:
        self.name = name
        self.log = Path(tempfile.mkstemp(prefix=f"bench-ledger-{name}-", suffix=".log")[1])
        self.proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                                     stdout=subprocess.PIPE, stderr=self.log.open("wb"), text=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def readline(self, timeout: float = 60.0) -> str:
        """Its next line of standard output (the ledger API prints its address)."""
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
        if not sel.select(timeout):
            raise TimeoutError(f"{self.name} printed nothing in {timeout} s; see {self.log}")
        return self.proc.stdout.readline().strip()  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.returncode not in (0, -signal.SIGINT, 130, None):
            print(f"({self.name} exited {self.proc.returncode}; its log: {self.log})", file=sys.stderr)
        else:
            self.log.unlink(missing_ok=True)


def service_env(nats_url: str, db_url: str, data_dir: Path) -> dict[str, str]:
    return {"FORUM_NATS_URL": nats_url, "FORUM_DATABASE_URL": db_url, "FORUM_DATA_DIR": str(data_dir),
            "FORUM_LOG_LEVEL": "WARNING", "FORUM_LEDGER_CHECKPOINT_INTERVAL": "0.5",
            "FORUM_LEDGER_CHECKPOINT_POLL": "1.0"}


class Profile:
    """py-spy on one process for a phase (skipped when py-spy is not installed): a raw profile summarised
    by bench.profile_summary."""

    def __init__(self, pid: int, name: str, out_dir: Path, enabled: bool) -> None:
        binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.path = out_dir / f"profile-{name}.txt"
        self.proc = None
        if enabled and Path(binary).exists():
            self.proc = subprocess.Popen([binary, "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
                                          "--output", str(self.path), "--nonblocking"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> str | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None
        if not self.path.exists():
            return None
        from bench.profile_summary import summarise

        return summarise(self.path, 12)


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str, every: float = 0.005) -> None:
    deadline = time.perf_counter() + timeout
    while not await check():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what}: not reached in {timeout} s")
        await asyncio.sleep(every)


@dataclass
class Ledger:
    """The bench's own view of the minutes database (reads, and the store.append floor)."""

    db: Any
    records: list[Any] = field(default_factory=list)

    async def size(self) -> int:
        from services.minutes import store

        async with self.db.read() as tx:
            return (await store.read_head(tx)).size

    async def signed_size(self) -> int:
        from services.minutes import store

        async with self.db.read() as tx:
            cp = await store.latest_checkpoint(tx)
        return -1 if cp is None else cp.tree_size


# ---------------------------------------------------------------- 2. append through the consumer, and its floors
async def drain(watch: Callable[[], Awaitable[int]], n: int, pid: int,
                profile: Callable[[], Profile] | None = None, timeout: float = 600) -> dict[str, Any]:
    """From the first item `watch()` sees to the `n`-th: rate, and CPU seconds of process `pid` per item
    (its start-up left out); `profile` starts a py-spy on it at the first item."""
    t0 = time.perf_counter()
    while (first := await watch()) == 0:
        if time.perf_counter() - t0 > 120:
            raise TimeoutError("the consumer never started")
        await asyncio.sleep(0.002)
    t1, c1 = time.perf_counter(), cpu_seconds(pid)
    spy = profile() if profile else None
    await until(lambda: _reached(watch, n), timeout, f"{n} items")
    t2, c2 = time.perf_counter(), cpu_seconds(pid)
    summary = spy.stop() if spy else None
    return {"items": n - first, "seconds": t2 - t1, "per_s": (n - first) / (t2 - t1),
            "cpu_us_per_item": (c2 - c1) / (n - first) * 1e6, "startup_s": t1 - t0, "profile": summary}


async def _reached(watch: Callable[[], Awaitable[int]], n: int) -> bool:
    return await watch() >= n


FLOOR_CONSUMER = """
import asyncio, os
from shared.contracts.registry import MemberApproved
from shared.service import ServiceDef, consumer
from shared.settings import Settings

async def nothing(events, uow):  # an empty handler: the consumer's own work only (inbox rows, acks)
    pass

batch = os.environ["BENCH_BATCH"] == "1"
c = consumer(nothing, event=MemberApproved, batch=batch, batch_size=int(os.environ["BENCH_BATCH_SIZE"]))
asyncio.run(ServiceDef("benchfloor", title="floor", consumers=[c]).build(Settings()).app.run())
"""


async def floor_consumer(db_url: str, tmp: Path, n: int, batch: bool) -> dict[str, Any]:
    """An empty consumer in its own process, on its own nats-server, draining a backlog of `n` events."""
    import nats

    with nats_server() as url:
        await publish_backlog(url, n)
        nc = await nats.connect(url)
        js = nc.jetstream(timeout=30)
        durable = "benchfloor--registry-member-approved"

        async def acked() -> int:
            try:
                info = await js.consumer_info(STREAM, durable)
            except Exception:  # noqa: BLE001 - not created yet
                return 0
            return int(info.ack_floor.stream_seq or 0)

        proc = Process([sys.executable, "-c", FLOOR_CONSUMER],
                       {**service_env(url, db_url, tmp), "BENCH_BATCH": "1" if batch else "0",
                        "BENCH_BATCH_SIZE": str(BATCH)}, "floor-consumer")
        try:
            return await drain(acked, n, proc.pid)
        finally:
            proc.stop()
            await nc.close()


async def store_append_floor(ledger: Ledger, n: int, chunk: int) -> dict[str, Any]:
    """`store.append` alone, in transactions of `chunk` records (as the consumer's batches)."""
    from services.minutes import store

    batches = [fresh_records(chunk) for _ in range(n // chunk)]
    t0, c0 = time.perf_counter(), time.process_time()
    for items in batches:
        async with ledger.db.transaction() as tx:
            await store.append(tx, items)
    seconds = time.perf_counter() - t0
    return {"leaves": n, "seconds": seconds, "per_s": n / seconds,
            "cpu_us_per_item": (time.process_time() - c0) / n * 1e6}


def fresh_records(n: int) -> list[Any]:
    from services.minutes import store
    from services.minutes.records import make_record

    now = datetime.now(UTC)
    colleges = ["public_actor", "civil_society", "citizen"]
    out = []
    for i in range(n):
        eid = str(uuid.uuid4())
        out.append(store.Pending(eid, "member.approved", make_record(
            "member.approved", eid, now, {"public_id": uuid.uuid4().hex[:16], "college": colleges[i % 3]})))
    return out


async def single_event_latency(nats_url: str, ledger: Ledger, samples: int = 5) -> dict[str, Any]:
    """One event published to an idle service → the signed checkpoint covering it."""
    import nats

    nc = await nats.connect(nats_url)
    js = nc.jetstream(timeout=30)
    lat = []
    try:
        for _ in range(samples):
            await asyncio.sleep(0.7)  # past the checkpoint interval: the path, not the rate limit
            size = await ledger.size()
            (eid, body), = approved_bodies(1)
            t0 = time.perf_counter()
            await js.publish(SUBJECT, body, headers={"Nats-Msg-Id": eid})
            await until(lambda: _reached(ledger.signed_size, size + 1), 30, "a checkpoint")
            lat.append(time.perf_counter() - t0)
    finally:
        await nc.close()
    return latency_summary(lat)


# ---------------------------------------------------------------- 3-4. fill, proofs, verify
async def fill(ledger: Ledger, target: int, chunk: int = 5000) -> dict[str, Any]:
    from services.minutes import store

    size = await ledger.size()
    start, t0 = size, time.perf_counter()
    if size >= target:
        return {"leaves": 0, "seconds": 0.0, "per_s": None}
    while size < target:
        items = fresh_records(min(chunk, target - size))
        async with ledger.db.transaction() as tx:
            await store.append(tx, items)
        size += len(items)
    seconds = time.perf_counter() - t0
    await until(lambda: _reached(ledger.signed_size, target), 120, f"a checkpoint of {target}", every=0.05)
    return {"leaves": target - start, "seconds": seconds, "per_s": (target - start) / seconds}


async def timed(samples: int, op: Callable[[], Awaitable[Any]]) -> dict[str, float | None]:
    lat = []
    for _ in range(samples):
        t0 = time.perf_counter()
        await op()
        lat.append(time.perf_counter() - t0)
    return latency_summary(lat)


async def proof_latency(ledger: Ledger, base: str, size: int, samples: int) -> dict[str, Any]:
    from services.minutes import store

    rng = random.Random(size)
    out: dict[str, Any] = {"size": size}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        async def store_inclusion() -> None:
            async with ledger.db.read() as tx:
                await store.prove_inclusion(tx, rng.randrange(size), size)

        async def store_consistency() -> None:
            async with ledger.db.read() as tx:
                await store.prove_consistency(tx, rng.randrange(1, size), size)

        async def http_inclusion() -> None:
            r = await client.get("/ledger/proof/inclusion", params={"index": rng.randrange(size), "size": size})
            r.raise_for_status()

        async def http_consistency() -> None:
            r = await client.get("/ledger/proof/consistency", params={"first": rng.randrange(1, size), "second": size})
            r.raise_for_status()

        await http_inclusion()  # warm up connections and caches
        out["inclusion_store"] = await timed(samples, store_inclusion)
        out["consistency_store"] = await timed(samples, store_consistency)
        out["inclusion_http"] = await timed(samples, http_inclusion)
        out["consistency_http"] = await timed(samples, http_consistency)
        r = await client.get("/ledger/proof/inclusion", params={"index": size // 3, "size": size})
        out["inclusion_hashes"] = len(r.json()["hashes"])
    return out


def verify_in_subprocess(base: str, key: str, state: Path, via: str, profile_dir: Path | None,
                         servers: dict[str, int] | None = None) -> dict[str, Any]:
    """`forum-ouvert verify` as an auditor runs it: its own process (under py-spy when asked). With the
    CPU seconds it used, and those the `servers` (name -> pid) used meanwhile."""
    code = ("import json, sys, time; from pathlib import Path; from forum_ouvert.verify import verify; "
            "r = verify(sys.argv[1], sys.argv[2], Path(sys.argv[3]), via=sys.argv[4]).as_dict(); "
            "r['cpu_s'] = time.process_time(); print(json.dumps(r))")
    args = [sys.executable, "-c", code, base, key, str(state), via]
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = profile_dir / f"profile-verify-{via}.txt" if profile_dir and Path(spy).exists() else None
    if out:
        # --gil: the thread running Python (its HTTP threads mostly wait on sockets)
        args = [spy, "record", "--rate", "200", "--format", "raw", "--gil", "--output", str(out), "--", *args]
    before = {name: cpu_seconds(pid) for name, pid in (servers or {}).items()}
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t0
    used = {name: cpu_seconds(pid) - before[name] for name, pid in (servers or {}).items()}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"verify failed: {proc.stderr[-2000:]}")
    result = json.loads(lines[-1])
    if not result["ok"]:
        raise RuntimeError(f"verify failed: {result['message']}")
    summary = None
    if out and out.exists():
        from bench.profile_summary import summarise

        summary = summarise(out, 12)
    return {"entries": result["entries_checked"], "seconds": result["seconds"], "wall_s": wall,
            "leaves_from": result["details"].get("leaves_from"), "profile": summary,
            "cpu_s": {"verify": result["cpu_s"], **used}}


LEDGER_API = """
import asyncio, sys
from faststream.nats import NatsBroker
from forum_ouvert.launcher import serve_ledger_api
from shared.rpc import RpcClient

async def main():
    async with NatsBroker(sys.argv[1]) as broker:
        async with serve_ledger_api(RpcClient(broker, timeout=30)) as base:
            print(base, flush=True)
            await asyncio.Event().wait()

try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
"""


@asynccontextmanager
async def ledger_api(nats_url: str) -> AsyncIterator[tuple[str, int]]:
    """The web front's ledger routes (`/ledger/*`, tiles included) in their own process: (address, pid)."""
    proc = Process([sys.executable, "-c", LEDGER_API, nats_url], {"FORUM_LOG_LEVEL": "WARNING"}, "ledger-api")
    try:
        base = await asyncio.to_thread(proc.readline)
        yield base, proc.pid
    finally:
        proc.stop()


async def verifier_key(base: str) -> str:
    """`GET /ledger/key`, once the service answers."""
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(300):
            r = await client.get(f"{base}/ledger/key")
            if r.status_code == 200:
                return r.text.strip()
            await asyncio.sleep(0.1)
    raise TimeoutError(f"GET /ledger/key: {r.status_code} {r.text[:200]}")


# ---------------------------------------------------------------- run
async def run(quick: bool, database_url: str | None, profile: bool) -> dict[str, Any]:
    from shared.db import Database
    from shared.migrations import upgrade

    cfg = QUICK if quick else FULL
    small, big = cfg["sizes"]
    backlog = cfg["backlog"]
    results: dict[str, Any] = {"quick": quick, "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                                           "loadavg_start": os.getloadavg()}}
    print("SHA-256…", flush=True)
    results["sha256"] = sha256_rate()
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp_name, nats_server() as nats_url, \
            database(database_url, Path(tmp_name)) as db_url:
        tmp = Path(tmp_name)
        results["database"] = "postgresql" if db_url.startswith("postgresql") else "sqlite"
        await asyncio.to_thread(upgrade, "minutes", db_url)
        ledger = Ledger(Database(db_url, pool_size=4))
        try:
            print(f"floor: empty batch consumer draining {backlog:,} events…", flush=True)
            results["floor_batch"] = await floor_consumer(db_url, tmp, backlog, batch=True)
            print(f"floor: one-event-per-transaction consumer ({cfg['one_by_one']:,} events)…", flush=True)
            results["floor_one"] = await floor_consumer(db_url, tmp, cfg["one_by_one"], batch=False)
            print(f"append through the minutes service's consumer: a backlog of {backlog:,} events…", flush=True)
            await publish_backlog(nats_url, backlog)
            service = Process([sys.executable, "-m", "forum_ouvert.cli", "serve", "minutes"],
                              service_env(nats_url, db_url, tmp), "minutes")
            try:
                results["append"] = await drain(ledger.size, backlog, service.pid,
                                                lambda: Profile(service.pid, "minutes-drain", tmp, profile))
                await until(lambda: _reached(ledger.signed_size, backlog), 60, "the checkpoint of the backlog")
                print(f"floor: store.append alone, {backlog:,} leaves in transactions of {BATCH}…", flush=True)
                results["floor_store"] = await store_append_floor(ledger, backlog, BATCH)
                print("one event -> checkpoint, idle…", flush=True)
                results["single"] = await single_event_latency(nats_url, ledger)
                async with ledger_api(nats_url) as (base, api_pid):
                    key = await verifier_key(base)
                    servers = {"ledger API": api_pid, "minutes service": service.pid}
                    print(f"fill to {small:,} leaves with store.append…", flush=True)
                    results["fill_small"] = await fill(ledger, small)
                    print(f"proofs at {small:,}…", flush=True)
                    results["proofs_small"] = await proof_latency(ledger, base, small, cfg["samples"])
                    print(f"verify {small:,} leaves via the entries API, then via tiles…", flush=True)
                    results["verify_api"] = await asyncio.to_thread(
                        verify_in_subprocess, base, key, tmp / "state-api.json", "api", None, servers)
                    results["verify_tiles_small"] = await asyncio.to_thread(
                        verify_in_subprocess, base, key, tmp / "state-tiles-small.json", "tiles", None, servers)
                    print(f"fill to {big:,} leaves with store.append…", flush=True)
                    results["fill_big"] = await fill(ledger, big)
                    print(f"proofs at {big:,}…", flush=True)
                    results["proofs_big"] = await proof_latency(ledger, base, big, cfg["samples"])
                    print(f"verify {big:,} leaves via tiles…", flush=True)
                    spies = {name: Profile(pid, f"{name.replace(' ', '-')}-verify", tmp, profile)
                             for name, pid in servers.items()}
                    results["verify_tiles"] = await asyncio.to_thread(
                        verify_in_subprocess, base, key, tmp / "state-tiles.json", "tiles", tmp if profile else None,
                        servers)
                    results["verify_tiles"]["server_profiles"] = {name: spy.stop() for name, spy in spies.items()}
            finally:
                service.stop()
        finally:
            await ledger.db.dispose()
    results["machine"]["loadavg_end"] = os.getloadavg()
    return results


def report(r: dict[str, Any]) -> str:
    def lat(d: dict[str, Any]) -> str:
        return f"p50 {fmt(d['p50_ms'], digits=2)} / p95 {fmt(d['p95_ms'], digits=2)} ms"

    def load(key: str) -> str:
        return " / ".join(f"{x:.1f}" for x in r["machine"][key])

    a, fs, fb, fo = r["append"], r["floor_store"], r["floor_batch"], r["floor_one"]
    rows: list[tuple[str, str | None]] = [
        (f"machine: {r['machine']['cpus']} CPUs, Python {r['machine']['python']}, database {r['database']}, "
         f"load average (1/5/15 min) {load('loadavg_start')} -> {load('loadavg_end')}", None),
        ("raw SHA-256 (hashlib), 65-byte node hashes", fmt(r["sha256"]["node_hashes_per_s"], "hashes/s", 0)),
        (f"append through the minutes service's consumer: a backlog of {a['items']:,} events drained", None),
        ("  leaves/s (first leaf -> last; start-up excluded)", fmt(a["per_s"], "leaves/s", 0)),
        ("  service CPU per leaf (its rate per CPU second)", f"{a['cpu_us_per_item']:,.0f} us "
         f"({1e6 / a['cpu_us_per_item']:,.0f} leaves/s)"),
        (f"  floor: store.append alone, transactions of {BATCH}", fmt(fs["per_s"], "leaves/s", 0)
         + f" ({a['per_s'] / fs['per_s']:.0%})"),
        ("  floor: empty batch consumer, same backlog", fmt(fb["per_s"], "events/s", 0)
         + f" ({a['per_s'] / fb['per_s']:.0%}; {fb['cpu_us_per_item']:,.0f} us CPU/event: "
           f"{1e6 / fb['cpu_us_per_item']:,.0f}/CPU s)"),
        ("  (one-event-per-transaction consumer, empty handler)", fmt(fo["per_s"], "events/s", 0)),
        ("  one event -> checkpoint, idle (5 samples)", lat(r["single"])),
    ]
    for key, vkey in (("proofs_small", "verify_tiles_small"), ("proofs_big", "verify_tiles")):
        p = r[key]
        fill_ = r["fill_small" if key == "proofs_small" else "fill_big"]
        rows += [(f"fill to {p['size']:,} leaves with store.append (5,000-leaf transactions)",
                  fmt(fill_["per_s"], "leaves/s", 0)),
                 (f"proofs at {p['size']:,} leaves ({p['inclusion_hashes']} hashes per inclusion proof)", None),
                 ("  inclusion, store (1 query + hashing)", lat(p["inclusion_store"])),
                 ("  consistency, store", lat(p["consistency_store"])),
                 ("  inclusion, HTTP -> NATS -> service -> DB", lat(p["inclusion_http"])),
                 ("  consistency, HTTP -> NATS -> service -> DB", lat(p["consistency_http"]))]
        verifies = [("entries API", r["verify_api"])] if key == "proofs_small" else []
        for how, v in [*verifies, ("tlog-tiles entry bundles", r[vkey])]:
            rows += [(f"verify {v['entries']:,} leaves via {how} (own process)",
                      f"{v['seconds']:.2f} s ({v['entries'] / v['seconds']:,.0f} leaves/s)"),
                     ("  CPU seconds meanwhile: " + ", ".join(v["cpu_s"]), " / ".join(
                         f"{x:.2f}" for x in v["cpu_s"].values()) + " s")]
    out = table(rows, title="Forum ouvert — public record (transparency log) benchmark")
    v = r["verify_tiles"]
    for name, summary in (("minutes service while draining the backlog", a.get("profile")),
                          (f"verify of {v['entries']:,} leaves via tiles", v.get("profile")),
                          *((f"{server} meanwhile", p) for server, p in (v.get("server_profiles") or {}).items())):
        if summary:
            out += f"\nCPU profile (py-spy) — {name}:\n{summary}\n"
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes (20k/100k leaves, a 10,000-event backlog)")
    p.add_argument("--database-url", default=os.environ.get("FORUM_BENCH_DATABASE_URL"),
                   help="PostgreSQL URL (a scratch schema is used); default: a SQLite file")
    p.add_argument("--no-profile", action="store_true", help="skip the py-spy CPU profiles")
    p.add_argument("--json", type=Path, help="also write the raw figures to this file")
    args = p.parse_args(argv)
    os.environ.setdefault("FORUM_LOG_LEVEL", "WARNING")
    t0 = time.perf_counter()
    results = asyncio.run(run(args.quick, args.database_url, not args.no_profile))
    results["total_s"] = time.perf_counter() - t0
    print(report(results))
    print(f"total {results['total_s']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
