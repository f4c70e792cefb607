"""Benchmark of the public record: `python -m bench.ledger [--quick]`.

What it measures, in one run, on one machine:

1. raw SHA-256 of this machine (hashlib): 65-byte node hashes per second and bulk MB/s — the
   floor every Merkle figure below is compared with;
2. append rate through the real path: `registry.member.approved` events published to JetStream on
   a real nats-server → the minutes service's durable consumer (one transaction per fetched batch: inbox
   rows + leaves + nodes + head) → a signed checkpoint covering all of them (leaves/s, "events in →
   checkpoint"); the idle latency of one event → the checkpoint covering it; and, for comparison,
   the same consumer paths with an empty handler (inbox rows only) on the same database: the batch
   consumer the public record uses, and the one-event-per-transaction consumer of every other service;
3. the log is then filled to the first size (100,000; 10,000 with --quick) with the service's own
   `store.append` in 5,000-leaf transactions (bypassing NATS: records, leaves, nodes, head as the
   consumer writes them) — its rate is printed too;
4. inclusion and consistency proof latency at that size: in the store (one DB query + hashing) and
   end to end over HTTP (uvicorn → the ledger routes → NATS request/reply → the service → DB);
5. `verify` of the whole log over HTTP, in a separate process (as an auditor would run it);
6. the tree is extended to the second size (1,000,000; 100,000 with --quick) by writing
   **only `ledger_node` rows and the head directly in bulk** (synthetic leaf hashes, no entries:
   proofs never read entries), and proof latency is measured again.

Database: SQLite file (default) or PostgreSQL with `--database-url postgresql://…` (a scratch
schema, dropped at the end). Bounded: the default run takes about 4-6 minutes on a busy 2-CPU
machine, `--quick` about 1-2. Figures, never assertions (shared machines).

One file, longer than most modules, on purpose: the phases read top to bottom in the order they run,
and it starts the minutes service in-process itself (`running_minutes`; the public ledger routes come
from `forum_ouvert.launcher.serve_ledger_api`), so the benchmark depends on no test code.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.stats import fmt, latency_summary, table

QUICK = {"events": 500, "baseline": 300, "sizes": (10_000, 100_000), "samples": 100}
FULL = {"events": 2000, "baseline": 1000, "sizes": (100_000, 1_000_000), "samples": 200}


# ---------------------------------------------------------------- raw SHA-256
def sha256_rate(seconds: float = 1.0) -> dict[str, float]:
    block = b"\x01" + os.urandom(64)
    n, t0 = 0, time.perf_counter()
    h = hashlib.sha256
    while time.perf_counter() - t0 < seconds:
        for _ in range(10_000):
            h(block).digest()
        n += 10_000
    per_s = n / (time.perf_counter() - t0)
    big = os.urandom(1 << 20)
    m, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds / 2:
        h(big).digest()
        m += 1
    return {"node_hashes_per_s": per_s, "mb_per_s": m / (time.perf_counter() - t0)}


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


def approved_event() -> Any:
    from shared.contracts.envelope import make_event
    from shared.contracts.registry import College, MemberApproved

    return make_event(MemberApproved(member_id=str(uuid.uuid4()), public_id=uuid.uuid4().hex[:16],
                                     college=College.CITIZEN), producer="registry")


async def publish(js: Any, envs: list[Any]) -> None:
    await asyncio.gather(*[js.publish(e.type, e.model_dump_json().encode(), timeout=30,
                                      headers={"Nats-Msg-Id": str(e.event_id)}) for e in envs])


@dataclass
class Minutes:
    """The minutes service running in this event loop, and a JetStream client to feed it."""

    svc: Any
    js: Any
    rpc: Any

    async def size(self) -> int:
        from services.minutes import store

        async with self.svc.db.read() as tx:
            return (await store.read_head(tx)).size

    async def signed_size(self) -> int:
        from services.minutes import store

        async with self.svc.db.read() as tx:
            cp = await store.latest_checkpoint(tx)
        return -1 if cp is None else cp.tree_size

    async def wait(self, measure: Callable[[], Awaitable[int]], n: int, timeout: float = 30.0) -> None:
        """Until `measure()` (`size` or `signed_size`) reaches `n`."""
        deadline = time.perf_counter() + timeout
        while await measure() < n:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{measure.__name__} did not reach {n} in {timeout} s")
            await asyncio.sleep(0.01)


@asynccontextmanager
async def running_minutes(data_dir: Path, nats_url: str, db_url: str) -> AsyncIterator[Minutes]:
    import nats
    from faststream import TestApp
    from faststream.nats import NatsBroker

    from services.minutes.service import SERVICE
    from shared.rpc import RpcClient
    from shared.settings import Settings

    svc = SERVICE.build(Settings(nats_url=nats_url, database_url=db_url, data_dir=data_dir, log_level="WARNING",
                                 ledger_checkpoint_interval=0.5, ledger_checkpoint_poll=1.0))
    async with TestApp(svc.app), NatsBroker(nats_url) as broker:
        nc = await nats.connect(nats_url)
        try:
            yield Minutes(svc, nc.jetstream(timeout=30), RpcClient(broker, timeout=30))
        finally:
            await nc.close()


async def timed(samples: int, op: Callable[[], Awaitable[Any]]) -> dict[str, float | None]:
    lat = []
    for _ in range(samples):
        t0 = time.perf_counter()
        await op()
        lat.append(time.perf_counter() - t0)
    return latency_summary(lat)


# ---------------------------------------------------------------- phases
async def baseline_consumer(db_url: str, tmp: Path, events: int, batch: bool = False) -> dict[str, Any]:
    """A consumer with an empty handler (inbox rows only), on its own nats-server: the ceiling the
    backbone puts on any consumer here, to compare the append rate with. `batch`: the path the
    public record uses (one transaction per fetch); otherwise one transaction per event, what every
    other consumer uses."""
    import nats
    from faststream import TestApp

    from shared.contracts.registry import MemberApproved
    from shared.service import ServiceDef, consumer
    from shared.settings import Settings

    seen: list[int] = []

    async def noop(events: Any, uow: Any) -> None:  # a list of events when batch, else one event
        seen.append(len(events) if batch else 1)

    with nats_server() as url:
        svc = ServiceDef("benchnoop", title="baseline", consumers=[consumer(noop, event=MemberApproved, batch=batch)]
                         ).build(Settings(nats_url=url, database_url=db_url, data_dir=tmp, log_level="WARNING"))
        async with TestApp(svc.app):
            nc = await nats.connect(url)
            js = nc.jetstream(timeout=30)
            envs = [approved_event() for _ in range(events)]
            t0 = time.perf_counter()
            await publish(js, envs)
            while sum(seen) < events:
                await asyncio.sleep(0.01)
            seconds = time.perf_counter() - t0
            await nc.close()
    return {"events": events, "seconds": seconds, "events_per_s": events / seconds}


async def append_through_consumer(h: Minutes, events: int) -> dict[str, Any]:
    envs = [approved_event() for _ in range(events)]
    start_size = await h.size()
    t0 = time.perf_counter()
    for i in range(0, len(envs), 500):
        await publish(h.js, envs[i:i + 500])
    published = time.perf_counter() - t0
    await h.wait(h.size, start_size + events, timeout=600)
    appended = time.perf_counter() - t0
    await h.wait(h.signed_size, start_size + events, timeout=60)
    checkpointed = time.perf_counter() - t0
    # Idle latency: one event -> the checkpoint covering it.
    single = []
    for _ in range(5):
        await asyncio.sleep(0.7)  # past the checkpoint interval: measures the path, not the rate limit
        size = await h.size()
        t1 = time.perf_counter()
        await publish(h.js, [approved_event()])
        await h.wait(h.signed_size, size + 1)
        single.append(time.perf_counter() - t1)
    return {"events": events, "publish_s": published, "appended_s": appended, "checkpoint_s": checkpointed,
            "leaves_per_s": events / checkpointed, "single_event_to_checkpoint": latency_summary(single)}


async def fill_with_store_append(h: Minutes, target: int, chunk: int = 5000) -> dict[str, Any]:
    from datetime import UTC, datetime

    from services.minutes import store
    from services.minutes.checkpoints import CHECKPOINT_SIGNER
    from services.minutes.records import make_record

    size = await h.size()
    t0 = time.perf_counter()
    now = datetime.now(UTC)
    colleges = ["public_actor", "civil_society", "citizen"]
    while size < target:
        n = min(chunk, target - size)
        items = []
        for i in range(n):
            eid = str(uuid.uuid4())
            rec = make_record("member.approved", eid, now,
                              {"public_id": uuid.uuid4().hex[:16], "college": colleges[(size + i) % 3]})
            items.append(store.Pending(eid, "member.approved", rec))
        async with h.svc.db.transaction() as tx:
            await store.append(tx, items)
        h.svc.wake(CHECKPOINT_SIGNER)
        size += n
    seconds = time.perf_counter() - t0
    await h.wait(h.signed_size, target, timeout=120)
    return {"leaves": target, "seconds": seconds, "leaves_per_s": target / seconds if seconds else None}


async def extend_nodes_only(h: Minutes, target: int, chunk: int = 50_000) -> dict[str, Any]:
    """Grow the tree to `target` leaves writing only ledger_node rows and the head (no entries)."""
    from sqlalchemy import update

    from forumlib.tlog import Frontier, leaf_hash, subtree_ids
    from services.minutes import store
    from services.minutes.models import HeadRow

    t0 = time.perf_counter()
    async with h.svc.db.read() as tx:
        head = await store.read_head(tx)
        frontier = Frontier.load(await store.reader_for(tx, subtree_ids(0, head.size)), head.size)
    pg = not h.svc.db.sqlite
    rows_total = 0
    while frontier.size < target:
        rows: list[tuple[int, int, bytes]] = []
        for i in range(frontier.size, min(frontier.size + chunk, target)):
            rows.extend((lv, ix, hh) for (lv, ix), hh in frontier.append(leaf_hash(b"bench-%d" % i)))
        rows_total += len(rows)
        async with h.svc.db.transaction() as tx:
            if pg:
                conn = await tx.connection()
                raw = (await conn.get_raw_connection()).driver_connection
                async with raw.cursor() as cur:
                    async with cur.copy("COPY ledger_node (level, idx, hash) FROM STDIN") as copy:
                        for r in rows:
                            await copy.write_row(r)
            else:
                conn = await tx.connection()
                await conn.exec_driver_sql("INSERT INTO ledger_node (level, idx, hash) VALUES (?, ?, ?)", rows)
            await tx.exec(update(HeadRow.__table__).where(HeadRow.__table__.c.id == store.HEAD_ID)
                         .values(tree_size=frontier.size, root=frontier.root(),
                                 frontier=b"".join(hh for _, hh in frontier.nodes)))
    return {"leaves": target, "node_rows_written": rows_total, "seconds": time.perf_counter() - t0}


async def proof_latency(h: Minutes, base: str, size: int, samples: int) -> dict[str, Any]:
    from services.minutes import store

    rng = random.Random(size)
    out: dict[str, Any] = {"size": size}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        async def store_inclusion() -> None:
            async with h.svc.db.read() as tx:
                await store.prove_inclusion(tx, rng.randrange(size), size)

        async def store_consistency() -> None:
            async with h.svc.db.read() as tx:
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


def verify_in_subprocess(base: str, key: str, state: Path) -> dict[str, Any]:
    code = ("import json, sys; from pathlib import Path; from forum_ouvert.verify import verify; "
            "r = verify(sys.argv[1], sys.argv[2], Path(sys.argv[3])); print(json.dumps(r.as_dict()))")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, base, key, str(state)], capture_output=True, text=True,
                          timeout=600, cwd=Path(__file__).resolve().parent.parent,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"verify failed: {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if not result["ok"]:
        raise RuntimeError(f"verify failed: {result['message']}")
    return {"entries": result["entries_checked"], "seconds": result["seconds"], "wall_s": wall}


# ---------------------------------------------------------------- run
async def run(quick: bool, database_url: str | None) -> dict[str, Any]:
    from services.minutes.keys import signer

    cfg = QUICK if quick else FULL
    small, big = cfg["sizes"]
    results: dict[str, Any] = {"quick": quick, "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                                           "loadavg_start": os.getloadavg()[0]}}
    print("SHA-256…", flush=True)
    results["sha256"] = sha256_rate()
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp, nats_server() as nats_url, \
            database(database_url, Path(tmp)) as db_url:
        results["database"] = "postgresql" if db_url.startswith("postgresql") else "sqlite"
        from forum_ouvert.launcher import serve_ledger_api
        from shared.migrations import upgrade

        await asyncio.to_thread(upgrade, "minutes", db_url)
        print(f"baseline: empty consumer ({cfg['baseline']} events)…", flush=True)
        results["baseline"] = await baseline_consumer(db_url, Path(tmp), cfg["baseline"])
        results["baseline_batch"] = await baseline_consumer(db_url, Path(tmp), cfg["baseline"], batch=True)
        async with running_minutes(Path(tmp), nats_url, db_url) as h:
            async with serve_ledger_api(h.rpc) as base:
                print(f"append through the consumer ({cfg['events']} events)…", flush=True)
                results["append"] = await append_through_consumer(h, cfg["events"])
                print(f"fill to {small:,} leaves with store.append…", flush=True)
                results["fill_small"] = await fill_with_store_append(h, small)
                print(f"proofs at {small:,}…", flush=True)
                results["proofs_small"] = await proof_latency(h, base, small, cfg["samples"])
                print(f"verify {small:,} leaves…", flush=True)
                key = signer(h.svc.settings).verifier.encode()
                results["verify"] = await asyncio.to_thread(verify_in_subprocess, base, key, Path(tmp) / "state.json")
                print(f"extend the tree to {big:,} leaves (nodes only)…", flush=True)
                results["fill_big"] = await extend_nodes_only(h, big)
                print(f"proofs at {big:,}…", flush=True)
                results["proofs_big"] = await proof_latency(h, base, big, cfg["samples"])
    results["machine"]["loadavg_end"] = os.getloadavg()[0]
    return results


def report(r: dict[str, Any]) -> str:
    def lat(d: dict[str, Any]) -> str:
        return f"p50 {fmt(d['p50_ms'], digits=2)} / p95 {fmt(d['p95_ms'], digits=2)} ms"

    a, v = r["append"], r["verify"]
    rows: list[tuple[str, str | None]] = [
        (f"machine: {r['machine']['cpus']} CPUs, Python {r['machine']['python']}, database {r['database']}, "
         f"load average {r['machine']['loadavg_start']:.1f} -> {r['machine']['loadavg_end']:.1f}", None),
        ("raw SHA-256 (hashlib), 65-byte node hashes", fmt(r["sha256"]["node_hashes_per_s"], "hashes/s", 0)),
        ("raw SHA-256 (hashlib), 1 MiB blocks", fmt(r["sha256"]["mb_per_s"], "MiB/s", 0)),
        (f"append via NATS consumer: {a['events']:,} events in -> signed checkpoint", None),
        ("  rate (events in -> checkpoint covering all)", fmt(a["leaves_per_s"], "leaves/s", 0)),
        ("  publish / last leaf / checkpoint (s)",
         f"{a['publish_s']:.2f} / {a['appended_s']:.2f} / {a['checkpoint_s']:.2f}"),
        ("  one event -> checkpoint, idle (5 samples)", lat(a["single_event_to_checkpoint"])),
        (f"  baseline: batch consumer, empty handler ({r['baseline_batch']['events']:,} events)",
         fmt(r["baseline_batch"]["events_per_s"], "events/s", 0)),
        (f"  baseline: one-event-per-transaction consumer, empty handler ({r['baseline']['events']:,})",
         fmt(r["baseline"]["events_per_s"], "events/s", 0)),
        (f"store.append, 5,000-leaf transactions, to {r['fill_small']['leaves']:,}",
         fmt(r["fill_small"]["leaves_per_s"], "leaves/s", 0)),
    ]
    for key in ("proofs_small", "proofs_big"):
        p = r[key]
        rows += [(f"proofs at {p['size']:,} leaves ({p['inclusion_hashes']} hashes per inclusion proof)", None),
                 ("  inclusion, store (1 query + hashing)", lat(p["inclusion_store"])),
                 ("  consistency, store", lat(p["consistency_store"])),
                 ("  inclusion, HTTP -> NATS -> service -> DB", lat(p["inclusion_http"])),
                 ("  consistency, HTTP -> NATS -> service -> DB", lat(p["consistency_http"]))]
        if key == "proofs_small":
            rows += [(f"verify {v['entries']:,} leaves over HTTP (separate process)",
                      f"{v['seconds']:.2f} s ({v['entries'] / v['seconds']:,.0f} leaves/s; wall {v['wall_s']:.2f} s)"),
                     (f"bulk ledger_node fill to {r['fill_big']['leaves']:,} leaves (nodes only, no entries)",
                      f"{r['fill_big']['node_rows_written']:,} rows in {r['fill_big']['seconds']:.1f} s")]
    return table(rows, title="Forum ouvert — public record (transparency log) benchmark")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes (10k/100k leaves, 1,000 events)")
    p.add_argument("--database-url", default=os.environ.get("FORUM_BENCH_DATABASE_URL"),
                   help="PostgreSQL URL (a scratch schema is used); default: a SQLite file")
    p.add_argument("--json", type=Path, help="also write the raw figures to this file")
    args = p.parse_args(argv)
    os.environ.setdefault("FORUM_LOG_LEVEL", "WARNING")
    t0 = time.perf_counter()
    results = asyncio.run(run(args.quick, args.database_url))
    results["total_s"] = time.perf_counter() - t0
    print(report(results))
    print(f"total {results['total_s']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
