"""Registrations per second, end to end, beside the raw limits measured in the same run.

    bash bench/run.sh [--n 2000] [--concurrency 50] [--via http|rpc] [--db auto|sqlite|postgresql]

What happens (see bench/README.md for how to read the figures):
1. A whole stack is started (forum_ouvert.launcher.Stack): nats-server, registry, forum, minutes,
   notifications, mail catcher and, with `--via http`, the web front. Databases: PostgreSQL
   schemas when FORUM_BENCH_DATABASE_URL (or FORUM_TEST_DATABASE_URL) is set, else SQLite files.
2. `--concurrency` virtual clients register `--n` new members between them, as fast as they can.
   `--via http`: each client is one httpx.AsyncClient that GETs /inscription once (session cookie
   + CSRF token), then POSTs the form for each of its registrations. `--via rpc`: the clients call
   `rpc.registry.register` over NATS directly (no web front), as the web front would.
3. Meanwhile `rpc.notifications.delivery-counts` is polled: a registration is "consumed" once
   notifications has stored the verification e-mail for it (any status), "sent" once the mail
   catcher has accepted that e-mail over SMTP.
4. Then, on the same nats-server and database server: the raw JetStream acked-publish rate, the
   raw NATS request/reply rate and the raw single-row transaction rate (bench/raw.py).
5. RSS (children included) of every process is sampled every 100 ms; CPU time is read at the
   phase boundaries. A table goes to stdout, the full results to bench/results/*.json.

Long on purpose: a benchmark stands alone (no imports from tests/), so it carries its own stack
start-up, raw-floor measurements and report."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # bench/ lives in the checkout, not in the installed package
    sys.path.insert(0, str(REPO))

import nats  # noqa: E402

from bench import raw  # noqa: E402
from bench.databases import DatabaseChoice, choose_database  # noqa: E402
from bench.floor import registration_floor  # noqa: E402
from bench.load import LoadProcess, form_post, member_address  # noqa: E402
from bench.memory import ResourceSampler  # noqa: E402
from bench.profiling import Profilers, find_py_spy  # noqa: E402
from bench.stats import fmt, latency_summary, rate, table  # noqa: E402

RESULTS_DIR = REPO / "bench" / "results"
COLLEGES = ("public_actor", "civil_society", "citizen")
CSRF_INPUT = re.compile(r"<input\b[^>]*\bname=[\"']csrf_token[\"'][^>]*>", re.I)
VALUE_ATTR = re.compile(r"\bvalue=[\"']([^\"']*)[\"']", re.I)


# ---------------------------------------------------------------- the virtual clients
@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    accepted: int = 0
    errors: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    finished_at: float | None = None
    samples: dict[str, list[str]] = field(default_factory=dict)
    client_cpu_seconds: float | None = None  # the load generator's own CPU (--via http)

    def count(self, status: str) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def error(self, kind: str, text: str) -> None:
        self.errors.append(text)
        kept = self.samples.setdefault(kind, [])
        if len(kept) < 5:  # a few of each kind, for the report
            kept.append(text)


def registration_form(run: str, i: int) -> dict[str, str]:
    return {"full_name": f"Participante Bench {i}", "email": member_address(f"bench-{run}", i),
            "organisation": "Banc d'essai" if i % 3 else "", "college": COLLEGES[i % 3]}


class HttpDriver:
    """--via http: bench/load.py in a process of its own (httpx would cost the client more CPU than the
    server spends). `concurrency` visitors each GET /inscription once (session cookie + CSRF token); then
    `concurrency` kept-alive connections POST the forms, registration i with visitor i % concurrency's
    cookie and token, each connection waiting for its answer before sending the next (closed loop)."""

    markers = (b"fr-error-text", b"fr-alert--error")  # a 200 that shows the form again with its errors

    def __init__(self, base_url: str, port: int, concurrency: int, charter_value: str) -> None:
        self.base_url = base_url
        self.port = port
        self.concurrency = concurrency
        self.charter_value = charter_value
        self.visitors: list[tuple[str, str]] = []  # (Cookie header, csrf token)
        self.gen: LoadProcess | None = None
        self.first = 0

    async def prepare(self) -> None:
        import httpx

        async def one(_k: int) -> tuple[str, str]:
            async with httpx.AsyncClient(base_url=self.base_url, timeout=60) as http:
                r = await http.get("/inscription")
                r.raise_for_status()
                tag = CSRF_INPUT.search(r.text)
                value = VALUE_ATTR.search(tag.group(0)) if tag else None
                if not value:
                    raise RuntimeError("no csrf_token input in GET /inscription")
                return "; ".join(f"{k}={v}" for k, v in http.cookies.items()), html.unescape(value.group(1))

        gate = asyncio.Semaphore(20)

        async def gated(k: int) -> tuple[str, str]:
            async with gate:
                return await one(k)

        self.visitors = list(await asyncio.gather(*[gated(k) for k in range(self.concurrency)]))

    async def ready(self, run: str, first: int, count: int, concurrency: int, max_seconds: float) -> None:
        """Start the generator with its requests and let it open its connections."""
        reqs = []
        for i in range(first, first + count):
            cookie, token = self.visitors[i % len(self.visitors)]
            reqs.append(form_post("/inscription", registration_form(run, i) | {
                "charter_accepted": self.charter_value, "csrf_token": token}, cookie=cookie))
        self.first = first
        self.gen = LoadProcess(reqs, [self.port], concurrency, markers=self.markers, timeout=max_seconds)
        await self.gen.ready()

    async def go(self, outcome: Outcome) -> Outcome:
        assert self.gen is not None
        try:
            res = await self.gen.run()
        finally:
            self.gen.kill()
        for k, status in enumerate(res.status):
            i = self.first + k
            if status == 0:
                outcome.count("no answer")
                outcome.error("no answer", f"#{i}: no answer (connection failed or timed out)")
                continue
            outcome.latencies.append(res.latency[k])
            outcome.count(str(status))
            if status >= 400:
                outcome.error(f"HTTP {status}", f"#{i}: HTTP {status}")
            elif status == 200 and res.marked[k]:
                problem = "HTTP 200 with the form shown again with errors"  # a rejected registration
                outcome.error(problem, f"#{i}: {problem}")
            else:
                outcome.accepted += 1
        outcome.errors += [e for e in res.errors if e not in outcome.errors][:5]
        outcome.finished_at = res.finished_at  # perf_counter: the same clock in every process
        outcome.client_cpu_seconds = res.cpu_seconds
        return outcome

    async def close(self) -> None:
        if self.gen is not None:
            self.gen.kill()


class RpcDriver:
    """The clients share one NATS connection and call rpc.registry.register, as the web front does."""

    def __init__(self, nats_url: str, timeout: float) -> None:
        from faststream.nats import NatsBroker

        self.broker = NatsBroker(nats_url, name="bench-rpc-client")
        self.timeout = timeout
        self.client: Any = None

    async def prepare(self) -> None:
        from shared.rpc import RpcClient

        await self.broker.connect()
        self.client = RpcClient(self.broker, timeout=self.timeout)

    async def register(self, k: int, run: str, i: int, outcome: Outcome) -> None:
        from shared.contracts.registry import Register
        from shared.rpc import RpcError

        req = Register(**registration_form(run, i), charter_accepted=True)
        t = time.perf_counter()
        try:
            await self.client(req)
        except RpcError as exc:
            outcome.latencies.append(time.perf_counter() - t)
            outcome.count(str(exc.code))
            outcome.error(str(exc.code), f"#{i}: {exc.code}: {exc}")
            return
        except Exception as exc:  # noqa: BLE001
            outcome.count(type(exc).__name__)
            outcome.error(type(exc).__name__, f"#{i}: {type(exc).__name__}: {exc}")
            return
        outcome.latencies.append(time.perf_counter() - t)
        outcome.count("ok")
        outcome.accepted += 1

    async def ready(self, run: str, first: int, count: int, concurrency: int, max_seconds: float) -> None:
        self._job = (run, first, count, concurrency, max_seconds)

    async def go(self, outcome: Outcome) -> Outcome:
        return await drive(self, *self._job, outcome=outcome)

    async def close(self) -> None:
        await self.broker.stop()


async def drive(driver: RpcDriver, run: str, first: int, count: int, concurrency: int,
                max_seconds: float, outcome: Outcome | None = None) -> Outcome:
    """`concurrency` clients share registrations first..first+count-1; each waits for its reply."""
    outcome = outcome or Outcome()
    next_i = first
    deadline = time.monotonic() + max_seconds

    async def client(k: int) -> None:
        nonlocal next_i
        while next_i < first + count and time.monotonic() < deadline:
            i = next_i
            next_i += 1
            await driver.register(k, run, i, outcome)

    await asyncio.gather(*[client(k) for k in range(concurrency)])
    outcome.finished_at = time.perf_counter()
    return outcome


# ---------------------------------------------------------------- watching notifications
class DeliveryWatch:
    """Polls rpc.notifications.delivery-counts: deliveries by status (one per consumed verification event)."""

    def __init__(self, nats_url: str) -> None:
        self.nats_url = nats_url
        self.nc: Any = None

    async def __aenter__(self) -> DeliveryWatch:
        self.nc = await nats.connect(self.nats_url, name="bench-watch", max_reconnect_attempts=5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.nc.close()

    async def counts(self) -> dict[str, int]:
        from shared.contracts.notifications import DeliveryCounts, GetDeliveryCounts

        msg = await self.nc.request(GetDeliveryCounts.subject(), GetDeliveryCounts().model_dump_json().encode(),
                                    timeout=10)
        reply = json.loads(msg.data)
        if not reply.get("ok"):
            raise RuntimeError(f"delivery-counts failed: {reply.get('error')}")
        return dict(DeliveryCounts.model_validate(reply["data"]).by_status)

    async def wait(self, base: dict[str, int], goal: Any, t0: float, poll: float, max_seconds: float,
                   timeline: list[dict[str, Any]] | None = None, stall_seconds: float = 60,
                   settle_seconds: float = 10, alive: Any = None) -> Completion:
        """Poll until every registration was consumed and its e-mail sent; times relative to t0.

        `goal()` is re-read each poll: None while the clients run, then (accepted, attempted). A
        registration the client saw fail (e.g. the web front's RPC timeout) may still have been
        committed by registry, so "all consumed" means: `attempted` consumed, or at least `accepted`
        and no more for `settle_seconds` (the time of the last increase then counts). "All sent"
        means as many e-mails sent as registrations consumed. Gives up after `max_seconds`, after
        `stall_seconds` without any progress, or when `alive()` raises (a process died)."""
        c = Completion()
        deadline = time.monotonic() + max_seconds
        progress, progress_at = (-1, -1), time.monotonic()
        consumed_changed = sent_changed = 0.0
        while time.monotonic() < deadline:
            if alive is not None:
                alive()
            try:
                c.last = await self.counts()
            except Exception as exc:  # noqa: BLE001 - a busy service may miss one poll; try again
                if time.monotonic() - progress_at > stall_seconds:
                    print(f"delivery-counts keeps failing: {exc}", file=sys.stderr)
                    break
                await asyncio.sleep(poll)
                continue
            now = time.perf_counter() - t0
            consumed = sum(c.last.values()) - sum(base.values())
            sent = c.last.get("sent", 0) - base.get("sent", 0)
            if timeline is not None:
                timeline.append({"t": round(now, 3), "consumed": consumed, "sent": sent})
            if consumed != progress[0]:
                consumed_changed = now
            if sent != progress[1]:
                sent_changed = now
            if (consumed, sent) != progress:
                progress, progress_at = (consumed, sent), time.monotonic()
            c.consumed, c.sent = consumed, sent
            g = goal()
            if g is not None:
                accepted, attempted = g
                if c.t_consumed is None:
                    if consumed >= attempted:
                        c.t_consumed, c.n_consumed = now, consumed
                    elif consumed >= accepted and now - consumed_changed >= settle_seconds:
                        c.t_consumed, c.n_consumed = consumed_changed, consumed
                if c.t_consumed is not None and c.t_sent is None and sent >= c.n_consumed:
                    c.t_sent, c.n_sent = (now if sent_changed == now else sent_changed), sent
                if c.t_consumed is not None and c.t_sent is not None:
                    break
                if time.monotonic() - progress_at > stall_seconds:
                    print(f"no progress for {stall_seconds:.0f}s ({consumed} consumed, {sent} sent, "
                          f"{accepted} accepted): giving up", file=sys.stderr)
                    break
            await asyncio.sleep(poll)
        return c


@dataclass
class Completion:
    t_consumed: float | None = None  # seconds from the first request until all were consumed
    n_consumed: int = 0
    t_sent: float | None = None
    n_sent: int = 0
    consumed: int = 0  # at the last poll
    sent: int = 0
    last: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------- the run
async def run_benchmark(stack: Any, args: argparse.Namespace, db: DatabaseChoice, sampler: ResourceSampler,
                        profilers: Profilers) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    results: dict[str, Any] = {}
    if args.via == "http":
        driver: HttpDriver | RpcDriver = HttpDriver(stack.web_url, stack.web_port, args.concurrency,
                                                    args.charter_value)
    else:
        driver = RpcDriver(stack.nats_url, timeout=args.rpc_timeout)
    async with DeliveryWatch(stack.nats_url) as watch:
        await driver.prepare()
        try:
            # -- warm-up: connections, pools, caches; all the way through notifications
            if args.warmup:
                base = await watch.counts()
                t = time.perf_counter()
                await driver.ready(run, 0, args.warmup, min(args.concurrency, args.warmup), 60)
                w = await driver.go(Outcome())
                await watch.wait(base, lambda: (w.accepted, args.warmup), t, 0.2, 120,
                                 stall_seconds=args.stall_timeout, settle_seconds=3, alive=stack._check_alive)
                if w.errors:
                    print(f"warm-up errors ({len(w.errors)}): {w.errors[:3]}", file=sys.stderr)
                results["warmup"] = {"n": args.warmup, "accepted": w.accepted, "errors": len(w.errors)}
            await asyncio.sleep(1.0)  # let the warm-up's tail (relay marks, SMTP) settle

            # -- the measured phase
            base = await watch.counts()
            await driver.ready(run, args.warmup, args.n, args.concurrency, args.drain_timeout)
            sampler.phase("registrations")
            cpu0, machine0 = sampler.cpu_snapshot(), sampler.machine_cpu()
            profilers.start({n: p.pid for n, p in stack.procs.items() if n in args.profile_procs},
                            args.drain_timeout + 120)
            timeline: list[dict[str, Any]] = []
            outcome = Outcome()
            t0 = time.perf_counter()
            clients = asyncio.create_task(driver.go(outcome))
            # until every client has its answer the goal is unknown (errors do not produce e-mails)
            waiting = asyncio.create_task(watch.wait(
                base, lambda: (outcome.accepted, args.n) if outcome.finished_at else None, t0, args.poll,
                args.drain_timeout, timeline, stall_seconds=args.stall_timeout, settle_seconds=args.settle,
                alive=stack._check_alive))
            try:
                await clients
            except BaseException:
                waiting.cancel()
                raise
            t_http = (outcome.finished_at or time.perf_counter()) - t0
            done = await waiting
            cpu1, machine1 = sampler.cpu_snapshot(), sampler.machine_cpu()
            wall = time.perf_counter() - t0
            profilers.stop()
            sampler.phase("after")
        finally:
            profilers.stop()  # no-op when already stopped
            await driver.close()

        results["registrations"] = {
            "via": args.via, "n": args.n, "concurrency": args.concurrency, "accepted": outcome.accepted,
            "errors": len(outcome.errors), "error_samples": [e for v in outcome.samples.values() for e in v],
            "statuses": outcome.statuses,
            "http_seconds": t_http, "consumed_seconds": done.t_consumed, "sent_seconds": done.t_sent,
            "wall_seconds": wall, "consumed": done.n_consumed if done.t_consumed else done.consumed,
            "sent": done.n_sent if done.t_sent else done.sent, "delivery_counts_after": done.last,
            "accepted_per_second": rate(outcome.accepted, t_http),
            "end_to_end_per_second": rate(done.n_consumed, done.t_consumed) if done.t_consumed else None,
            "sent_per_second": rate(done.n_sent, done.t_sent) if done.t_sent else None,
            "latency": latency_summary(outcome.latencies),
            "poll_interval_s": args.poll, "timeline": timeline,
        }
        phase_seconds = wall
        results["cpu_seconds"] = sampler.cpu_delta(cpu0, cpu1)
        if outcome.client_cpu_seconds is not None:
            results["cpu_seconds"]["load generator"] = round(outcome.client_cpu_seconds, 2)
        results["cpu_phase_seconds"] = phase_seconds
        results["machine_cpu_busy_seconds"] = round(machine1[0] - machine0[0], 2)
        results["machine_cpu_total_seconds"] = round(machine1[1] - machine0[1], 2)
        if profilers.outputs:
            results["profiles"] = profilers.outputs

    # -- the floor: the bare pipeline, same servers, same generator, same concurrency
    if db.kind == "postgresql" and not args.skip_floor:
        print("the floor (bare pipeline)…", file=sys.stderr, flush=True)
        sampler.phase("floor")
        assert db.base_url is not None
        results["floor"] = await registration_floor(
            stack.nats_url, db.base_url, stack.smtp_port, n=args.floor_n or args.n, clients=args.concurrency,
            warmup=args.warmup, log_dir=stack.data_dir / "logs", postgres_port=db.port, poll=args.poll,
            stall=args.stall_timeout, profilers=profilers if profilers.binary else None,
            timeout=args.drain_timeout, sink_pid=stack.procs["mailcatcher"].pid)
    elif not args.skip_floor:
        results["floor_skipped"] = "the floor runs on PostgreSQL only (FORUM_BENCH_DATABASE_URL)"

    # -- the raw limits, same nats-server, same database server
    if not args.skip_raw:
        sampler.phase("raw")
        print("raw JetStream acked publish…", file=sys.stderr, flush=True)
        js = await raw.jetstream_publish(stack.nats_url, args.raw_messages, args.raw_size, args.concurrency)
        print("raw request/reply…", file=sys.stderr, flush=True)
        rr = await raw.request_reply(stack.nats_url, args.raw_requests, 200, args.concurrency)
        print("raw database transactions…", file=sys.stderr, flush=True)
        dbr = await raw.db_transactions(db.kind, postgres_url=db.base_url,
                                        sqlite_path=stack.data_dir / "bench-raw.db",
                                        transactions=args.raw_db_tx, concurrency=args.concurrency)
        serial = await raw.db_transactions(db.kind, postgres_url=db.base_url,
                                           sqlite_path=stack.data_dir / "bench-raw.db",
                                           transactions=max(100, args.raw_db_tx // 5), concurrency=1,
                                           max_seconds=60)
        results["raw"] = {"jetstream_publish": js.as_dict(), "request_reply": rr.as_dict(), "db_tx": dbr.as_dict(),
                          "db_tx_one_connection": serial.as_dict()}
        sampler.phase("end")
    return results


def environment(args: argparse.Namespace, db: DatabaseChoice, stack: Any) -> dict[str, Any]:
    from importlib.metadata import version
    import psutil

    from shared.settings import Settings

    s = Settings()
    server = ""
    with contextlib.suppress(Exception):
        from forum_ouvert.launcher import nats_server_binary

        server = subprocess.run([nats_server_binary(), "--version"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
    return {
        "host": platform.node(), "cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(), "faststream": version("faststream"), "nats_py": version("nats-py"), "nats_server": server,
        "database": db.kind, "database_description": db.description,
        "settings": {"rpc_workers": s.rpc_workers, "rpc_timeout": s.rpc_timeout,
                     "outbox_poll_interval": s.outbox_poll_interval, "log_level": args.log_level or s.log_level},
        "data_dir": str(stack.data_dir),
    }


# ---------------------------------------------------------------- output
def report(res: dict[str, Any], peaks: dict[str, float], peaks_run: dict[str, float], names: list[str]) -> str:
    env, reg = res["environment"], res["registrations"]
    rows: list[tuple[str, str | None]] = []
    add = rows.append
    add((f"Registrations via {reg['via'].upper()} — database {env['database']}, "
         f"{env['cpus']} CPUs, nats-server {env['nats_server'] or '?'}", None))
    add(("registrations (N)", fmt(reg["n"])))
    add(("concurrent clients", fmt(reg["concurrency"])))
    add(("accepted", fmt(reg["accepted"])))
    add(("errors (must be 0)", fmt(reg["errors"])))
    add(("consumed by notifications / e-mails sent", f"{fmt(reg['consumed'])} / {fmt(reg['sent'])}"))
    add(("wall time until all e-mails sent", fmt(reg["sent_seconds"] or reg["wall_seconds"], "s", 2)))
    add(("  all requests answered after", fmt(reg["http_seconds"], "s", 2)))
    add(("  all consumed by notifications after", fmt(reg["consumed_seconds"], "s", 2)))
    add(("registrations/s accepted (HTTP)" if reg["via"] == "http" else "registrations/s accepted (RPC)",
         fmt(reg["accepted_per_second"], "/s")))
    add(("registrations/s end to end (consumed)", fmt(reg["end_to_end_per_second"], "/s")))
    add(("e-mails sent/s (through SMTP)", fmt(reg["sent_per_second"], "/s")))
    lat = reg["latency"]
    add(("request latency p50 / p95 / p99 / max",
         " / ".join(fmt(lat[k], "", 0) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")) + " ms"))
    if "raw" in res:
        r = res["raw"]
        js, rr, dbr = r["jetstream_publish"], r["request_reply"], r["db_tx"]
        add(("Raw limits, same run", None))
        add((f"raw JetStream acked publish/s ({js['concurrency']} publishers)",
             fmt(js["per_second"], "/s") + (" (capped)" if js["capped"] else "")))
        add(("ratio end-to-end / raw JetStream",
             fmt(res["ratios"]["end_to_end_over_jetstream"], "", 4)
             + (f"  (1 : {1 / res['ratios']['end_to_end_over_jetstream']:,.0f})"
                if res["ratios"]["end_to_end_over_jetstream"] else "")))
        add(("raw NATS request/reply round trips/s", fmt(rr["per_second"], "/s")))
        add((f"raw DB INSERT+COMMIT tx/s ({env['database']}, {dbr['concurrency']} conns)", fmt(dbr["per_second"], "/s")))
        add(("ratio end-to-end / raw DB tx", fmt(res["ratios"]["end_to_end_over_db_tx"], "", 4)))
        one = r.get("db_tx_one_connection") or {}
        add(("raw DB INSERT+COMMIT tx/s, one connection (serial)", fmt(one.get("per_second"), "/s")))
        for what, x in (("JetStream", js), ("request/reply", rr), ("DB", dbr), ("DB serial", one)):
            if not x:
                continue
            if x["error"] or x["errors"]:
                add((f"  raw {what} errors (see below)", fmt(x["errors"])))
            if what != "DB serial" and x["concurrency"] != res["registrations"]["concurrency"]:
                add((f"  raw {what}: concurrency actually used", fmt(x["concurrency"])))
    fl = res.get("floor")
    if fl:
        add((f"Floor, same run: HTTP form -> NATS request -> one transaction (member + outbox) -> relay -> "
             f"JetStream -> consumer -> one transaction -> SMTP, {fl['clients']} connections", None))
        add(("floor registrations (N) / accepted / e-mails sent", f"{fl['n']} / {fl['accepted']} / {fl['sent']}"))
        add(("floor registrations/s accepted (HTTP)", fmt(fl["accepted_per_second"], "/s")))
        add(("floor e-mails sent/s (end to end)", fmt(fl["sent_per_second"], "/s")))
        flat = fl["latency"]
        add(("floor request latency p50 / p95 / p99 / max",
             " / ".join(fmt(flat[k], "", 0) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")) + " ms"))
        if reg["sent_per_second"] and fl["sent_per_second"]:
            add(("RATIO product / floor, e-mails sent/s (end to end)",
                 f"{reg['sent_per_second'] / fl['sent_per_second']:.1%}"
                 + (" (product without the web front)" if reg["via"] == "rpc" else "")))
        if reg["accepted_per_second"] and fl["accepted_per_second"]:
            add(("ratio product / floor, accepted/s", f"{reg['accepted_per_second'] / fl['accepted_per_second']:.1%}"))
        add(("floor CPU per registration, all processes", f"{fl['cpu_ms_per_item_total']:.2f} ms"))
        for name, sec in sorted(fl["cpu_seconds"].items(), key=lambda kv: -kv[1]):
            add((f"  {name}", f"cpu {sec:6.2f} s = {fl['cpu_ms_per_item'][name]:5.2f} ms/reg"))
    elif res.get("floor_skipped"):
        add(("floor", res["floor_skipped"]))
    add(("Peak RSS (MiB, children incl.) during registrations / whole run; CPU used during registrations", None))
    cpu = res["cpu_seconds"]
    per = max(1, reg["consumed"] or reg["accepted"])  # registrations processed during the phase
    for name in [*names, *(n for n in cpu if n not in names)]:
        add((f"  {name}", f"{fmt(peaks_run.get(name), '', 1):>7} / {fmt(peaks.get(name), '', 1):>7} MiB"
                          f"   cpu {cpu.get(name, 0):6.1f} s = {cpu.get(name, 0) * 1000 / per:5.1f} ms/reg"))
    total_cpu = sum(cpu.values())
    add(("  CPU per registration, all processes above", f"{total_cpu * 1000 / per:.1f} ms"))
    busy, avail = res["machine_cpu_busy_seconds"], res["machine_cpu_total_seconds"]
    add(("  CPU s during registrations: this run / whole machine / available",
         f"{total_cpu:.1f} / {busy:.1f} / {avail:.1f} s"))
    add(("  load average at start (other work on the machine)",
         " ".join(f"{x:.2f}" for x in env["load_avg_at_start"])))
    return table(rows, title="Forum ouvert — registrations benchmark")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bash bench/run.sh", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000, help="registrations in the measured phase (default 2000)")
    p.add_argument("--concurrency", type=int, default=50, help="concurrent virtual clients (default 50)")
    p.add_argument("--via", choices=("http", "rpc"), default="http",
                   help="http: POST /inscription on the web front (default); rpc: NATS request to registry")
    p.add_argument("--db", choices=("auto", "sqlite", "postgresql"), default="auto",
                   help="auto: PostgreSQL if FORUM_BENCH_DATABASE_URL or FORUM_TEST_DATABASE_URL is set, else SQLite")
    p.add_argument("--warmup", type=int, default=50, help="registrations before the measured phase (default 50)")
    p.add_argument("--raw-messages", type=int, default=20_000, help="raw JetStream publishes (default 20000)")
    p.add_argument("--raw-size", type=int, default=500, help="raw JetStream message size in bytes (default 500)")
    p.add_argument("--raw-requests", type=int, default=10_000, help="raw request/reply round trips (default 10000)")
    p.add_argument("--raw-db-tx", type=int, default=5_000, help="raw DB transactions (default 5000)")
    p.add_argument("--skip-raw", action="store_true", help="do not measure the raw limits")
    p.add_argument("--skip-floor", action="store_true", help="do not measure the floor (the bare pipeline)")
    p.add_argument("--floor-n", type=int, default=None, help="registrations through the floor (default: --n)")
    p.add_argument("--poll", type=float, default=0.5, help="seconds between delivery-count polls (default 0.5)")
    p.add_argument("--drain-timeout", type=float, default=900,
                   help="give up on the measured phase after this many seconds (default 900)")
    p.add_argument("--stall-timeout", type=float, default=60,
                   help="give up when nothing was consumed or sent for this many seconds (default 60)")
    p.add_argument("--settle", type=float, default=10,
                   help="with errors, all is consumed once nothing more was for this many seconds (default 10)")
    p.add_argument("--rpc-timeout", type=float, default=30, help="--via rpc: seconds to wait for each reply")
    p.add_argument("--charter-value", default="on", help="value posted for the charter checkbox (default on)")
    p.add_argument("--log-level", default=None, help="FORUM_LOG_LEVEL for the services (default: theirs, INFO)")
    p.add_argument("--profile", nargs="?", const="py-spy", default=None, metavar="PY_SPY",
                   help="record py-spy profiles of the measured phase (optional path to the py-spy binary)")
    p.add_argument("--profile-format", choices=("flamegraph", "speedscope", "raw"), default="raw",
                   help="raw (default): collapsed stacks, summarised per process at the end; or a file to open")
    p.add_argument("--profile-idle", action="store_true",
                   help="wall-clock profiles: also sample waiting threads, one stack per thread (py-spy --idle --threads)")
    p.add_argument("--profile-procs", default="web,registry,notifications",
                   help="comma-separated processes to profile (default web,registry,notifications)")
    p.add_argument("--data-dir", type=Path, default=None, help="where the stack keeps its data (default: a temp dir)")
    p.add_argument("--keep-data", action="store_true", help="keep the data dir (logs, SQLite files, mail)")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    if args.n < 1 or args.concurrency < 1:
        p.error("--n and --concurrency must be positive")
    args.profile_procs = [x.strip() for x in args.profile_procs.split(",") if x.strip()]

    from forum_ouvert.launcher import Stack

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    own_dir = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="forum-bench-")) if own_dir else args.data_dir
    label = f"bench_{uuid.uuid4().hex[:6]}"
    db = choose_database(args.db, data_dir, label)
    profiler_bin = None
    if args.profile:
        profiler_bin = find_py_spy(args.profile)
    env = {"FORUM_RATE_LIMIT_PER_MINUTE": "1000000"}
    if args.log_level:
        env["FORUM_LOG_LEVEL"] = args.log_level
    print(f"database: {db.description}", flush=True)
    print(f"starting the stack ({'with' if args.via == 'http' else 'without'} the web front) in {data_dir}…",
          flush=True)
    stack = Stack(data_dir, database_urls=db.urls, env=env, log_dir=data_dir / "logs", web=args.via == "http")
    def on_sigterm(*_: object) -> None:
        raise KeyboardInterrupt("SIGTERM")  # so that the finally below stops the stack

    signal.signal(signal.SIGTERM, on_sigterm)
    results: dict[str, Any] = {"started_at": stamp, "argv": sys.argv[1:] if argv is None else argv}
    sampler: ResourceSampler | None = None
    profilers: Profilers | None = None
    try:
        t = time.perf_counter()
        try:
            stack.start()
        except BaseException:
            _print_log_tails(data_dir / "logs")
            raise
        print(f"stack ready in {time.perf_counter() - t:.1f}s: {stack.web_url if args.via == 'http' else stack.nats_url}"
              f"; {args.warmup} warm-up then {args.n} registrations by {args.concurrency} clients…", flush=True)
        results["environment"] = environment(args, db, stack)
        sampler = ResourceSampler({n: p.pid for n, p in stack.procs.items()}, interval=0.1,
                                  postgres_port=db.port)
        sampler.start()
        profilers = Profilers(profiler_bin, args.results_dir, args.profile_format, stamp, args.profile_idle)
        results.update(asyncio.run(run_benchmark(stack, args, db, sampler, profilers)))
    finally:
        if sampler:
            sampler.stop()
        stack.stop()
        with contextlib.suppress(Exception):
            db.cleanup()
        with contextlib.suppress(Exception):
            results["log_summary"] = summarise_logs(data_dir / "logs")
        reg_ = results.get("registrations") or {}
        if not reg_ or reg_.get("errors") or reg_.get("consumed_seconds") is None:
            with contextlib.suppress(Exception):  # keep the evidence of a bad run
                kept = args.results_dir / f"logs-{stamp}"
                shutil.copytree(data_dir / "logs", kept)
                results["logs_kept"] = str(kept)
        if own_dir and not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
    assert sampler is not None
    e2e = results["registrations"]["end_to_end_per_second"]
    raw_r = results.get("raw", {})
    js_rate = raw_r.get("jetstream_publish", {}).get("per_second")
    db_rate = raw_r.get("db_tx", {}).get("per_second")
    results["ratios"] = {"end_to_end_over_jetstream": e2e / js_rate if e2e and js_rate else None,
                         "end_to_end_over_db_tx": e2e / db_rate if e2e and db_rate else None}
    results["peak_rss_mib"] = sampler.peaks_mib()
    results["peak_rss_mib_registrations"] = sampler.peaks_mib("registrations")
    results["rss_samples"] = sampler.samples
    print(report(results, results["peak_rss_mib"], results["peak_rss_mib_registrations"], sampler.names()))
    reg = results["registrations"]
    if reg["errors"]:
        print(f"\n{reg['errors']} errors; statuses {reg['statuses']}; first ones:")
        for e in reg["error_samples"][:15]:
            print("  " + e[:240])
    if results.get("log_summary"):
        print("\nwarnings/errors in the services' logs:")
        for name, x in results["log_summary"].items():
            counts = ", ".join(f"{n} {lvl}" for lvl, n in x["counts"].items())
            top = "; ".join(f"{m} ×{n}" for m, n in list(x["top"].items())[:3])
            print(f"  {name}: {counts} — {top}"[:300])
    if results.get("logs_kept"):
        print(f"logs of this run kept in {results['logs_kept']}")
    for what, x in results.get("raw", {}).items():
        if x.get("error"):
            print(f"raw {what}: {x['error']}")
    if reg["consumed_seconds"] is None or reg["sent_seconds"] is None:
        print(f"\nINCOMPLETE: only {reg['consumed']} consumed / {reg['sent']} sent of {reg['accepted']} accepted "
              f"within {args.drain_timeout:.0f}s")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"registrations-{stamp}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {out}")
    if results.get("profiles"):
        print("profiles: " + ", ".join(results["profiles"].values()))
    if profilers is not None:
        for name, text in profilers.summaries().items():
            print(f"\n== profile: {name}\n{text}")
    if own_dir and args.keep_data:
        print(f"data kept in {data_dir}")
    return 0 if not reg["errors"] and reg["consumed_seconds"] is not None else 1


ANSI = re.compile(r"\x1b\[[0-9;]*m")
STRUCTLOG_LEVEL = re.compile(r"\[(warning|error|critical)\s*\]\s+(.+?)(?:\s{2,}|$)", re.I)
KEY_VALUE = re.compile(r"\s+[A-Za-z_][A-Za-z0-9_]*=")  # structlog's key=value pairs after the message
STDLIB_LEVEL = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b\s+-\s+(.{0,160})")


def summarise_logs(log_dir: Path) -> dict[str, dict[str, Any]]:
    """Per process: how many warning/error lines, and the most frequent messages (retries show here)."""
    out: dict[str, dict[str, Any]] = {}
    for f in sorted(log_dir.glob("*.log")):
        counts: dict[str, int] = {}
        messages: dict[str, int] = {}
        with f.open(errors="replace") as fh:
            for line in fh:
                line = ANSI.sub("", line)
                m = STRUCTLOG_LEVEL.search(line) or STDLIB_LEVEL.search(line)
                if not m:
                    if "Traceback" in line:
                        counts["traceback"] = counts.get("traceback", 0) + 1
                    continue
                level = m.group(1).lower()
                msg = re.sub(r"Task-\d+", "Task-N", KEY_VALUE.split(m.group(2))[0].lstrip(" |-").strip())
                counts[level] = counts.get(level, 0) + 1
                key = f"{level}: {msg[:80]}"
                messages[key] = messages.get(key, 0) + 1
        if counts:
            top = sorted(messages.items(), key=lambda kv: -kv[1])[:5]
            out[f.stem] = {"counts": counts, "top": dict(top)}
    return out


def _print_log_tails(log_dir: Path, lines: int = 15) -> None:
    for f in sorted(log_dir.glob("*.log")):
        tail = f.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- {f.name} (last {len(tail)} lines)", file=sys.stderr)
        for line in tail:
            print("  " + line, file=sys.stderr)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: the stack was stopped", file=sys.stderr)
        sys.exit(130)
