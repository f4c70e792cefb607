"""The floors: the bare pipelines under the RSVP rush and the registrations, run on the same NATS server
and the same PostgreSQL as the product (in a scratch schema, dropped after), driven by the same load
generator (bench/load.py) with the same concurrency. The processes are in bench/floor_services.py.

    await rsvp_floor(nats_url, pg_url, members=600, seats=150, clients=200)
    await registration_floor(nats_url, pg_url, smtp_port, n=2000, clients=50)

Each returns a dict: throughput, latency percentiles, correctness, and CPU seconds per process (the
floor's processes, their PostgreSQL backends and the load generator), as the product's benchmarks do.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats

from bench.databases import plain_url
from bench.load import LoadProcess, LoadResult, form_post, member_address, run_load
from bench.memory import ResourceSampler
from bench.rush_check import check_rush
from bench.stats import rate

REPO = Path(__file__).resolve().parents[1]
LOAD = "load generator"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class FloorProcesses:
    """The floor's processes (each logs to `log_dir/<name>.log`) and its scratch schema."""

    nats_url: str
    pg_url: str
    log_dir: Path
    prefix: str = field(default_factory=lambda: f"floor{uuid.uuid4().hex[:8]}")
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def schema(self) -> str:
        return f"t_{self.prefix}"

    def create_schema(self, ddl: str) -> None:
        import psycopg

        with psycopg.connect(plain_url(self.pg_url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{self.schema}"')
            conn.execute(f'SET search_path TO "{self.schema}"')
            conn.execute(ddl)

    def drop_schema(self) -> None:
        import psycopg

        with psycopg.connect(plain_url(self.pg_url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    def spawn(self, name: str, *args: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = os.open(self.log_dir / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "bench.floor_services", *args, "--nats", self.nats_url, "--prefix", self.prefix],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        finally:
            os.close(out)

    def db_args(self) -> list[str]:
        return ["--pg", plain_url(self.pg_url), "--schema", self.schema]

    async def wait_ready(self, roles: list[str], web_port: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        nc = await nats.connect(self.nats_url, name="floor-orchestrator")
        try:
            for role in roles:
                while True:
                    self.check_alive()
                    try:
                        await nc.request(f"{self.prefix}.ping.{role}", b"{}", timeout=0.5)
                        break
                    except Exception:  # noqa: BLE001 - not up yet
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"floor {role} not ready after {timeout:.0f} s") from None
                        await asyncio.sleep(0.1)
        finally:
            await nc.close()
        while True:
            self.check_alive()
            with contextlib.suppress(OSError):
                _, w = await asyncio.open_connection("127.0.0.1", web_port)
                w.close()
                return
            if time.monotonic() > deadline:
                raise TimeoutError("floor web front not ready")
            await asyncio.sleep(0.1)

    def check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-1500:]
                raise RuntimeError(f"floor process {name} exited with code {p.returncode}:\n{tail}")

    def stop(self) -> None:
        for p in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs.clear()


def cpu_table(sampler: ResourceSampler, before: dict[str, Any], after: dict[str, Any], load: LoadResult,
              count: int) -> dict[str, Any]:
    cpu = {k: v for k, v in sampler.cpu_delta(before, after).items() if k != "bench-client"}
    cpu[LOAD] = round(load.cpu_seconds, 2)
    return {"cpu_seconds": cpu, "cpu_ms_per_item": {k: round(v * 1000 / max(1, count), 2) for k, v in cpu.items()},
            "cpu_ms_per_item_total": round(sum(cpu.values()) * 1000 / max(1, count), 2)}


# ---------------------------------------------------------------- RSVP
def rsvp_request(session_id: str, member: str, csrf: str) -> Any:
    return form_post(f"/seances/{session_id}/reponse", {"csrf_token": csrf, "answer": "attend"},
                     cookie=f"floor_member={member}; floor_csrf={csrf}")


def floor_position(location: str | None) -> int | None:
    if not location or "position=" not in location:
        return None
    value = location.rsplit("position=", 1)[1]
    return int(value) if value.isdigit() else None


async def rsvp_floor(nats_url: str, pg_url: str, *, members: int, seats: int, clients: int, warmup: int = 50,
                     log_dir: Path, postgres_port: int | None = 5432, profilers: Any = None,
                     timeout: float = 120) -> dict[str, Any]:
    """HTTP form + cookie -> NATS request -> one transaction under the session row's lock -> 303."""
    from bench.floor_services import RSVP_SCHEMA

    fp = FloorProcesses(nats_url, pg_url, log_dir)
    fp.create_schema(RSVP_SCHEMA)
    port = _free_port()
    try:
        fp.spawn("floor-web", "web", "--kind", "rsvp", "--port", str(port))
        fp.spawn("floor-rsvp", "rsvp", *fp.db_args())
        await fp.wait_ready(["rsvp"], port)
        people = [(str(uuid.uuid4()), secrets.token_urlsafe(32)) for _ in range(members)]
        rush_id, warm_id = str(uuid.uuid4()), str(uuid.uuid4())
        import psycopg

        with psycopg.connect(plain_url(pg_url), autocommit=True, options=f"-csearch_path={fp.schema}") as conn:
            conn.execute("INSERT INTO floor_session (id, capacity) VALUES (%s, %s), (%s, %s)",
                         (rush_id, seats, warm_id, max(1, warmup // 2)))
        if warmup:
            await run_load([rsvp_request(warm_id, m, c) for m, c in people[:warmup]], [port], min(clients, warmup),
                           timeout=timeout)
        sampler = ResourceSampler({n: p.pid for n, p in fp.procs.items()}, interval=0.2, include_self=False,
                                  postgres_port=postgres_port)
        sampler.start()
        gen = LoadProcess([rsvp_request(rush_id, m, c) for m, c in people], [port], clients, timeout=timeout)
        try:
            await gen.ready()
            cpu0 = sampler.cpu_snapshot()
            if profilers:
                profilers.start({n: p.pid for n, p in fp.procs.items()}, timeout * 2, tag="floor")
            res = await gen.run()
            cpu1 = sampler.cpu_snapshot()
        finally:
            if profilers:
                profilers.stop()
            sampler.stop()
            gen.kill()
        rss = sampler.current_mib()
        with psycopg.connect(plain_url(pg_url), autocommit=True, options=f"-csearch_path={fp.schema}") as conn:
            rows = [tuple(r) for r in conn.execute(
                "SELECT member_id, state, waitlist_seq FROM floor_rsvp WHERE session_id = %s", (rush_id,))]
    finally:
        fp.stop()
        with contextlib.suppress(Exception):
            fp.drop_schema()
    ok = [res.status[i] == 303 for i in range(members)]
    check = check_rush(members=[m for m, _ in people], answered=ok, sent_at=res.sent_at, answered_at=res.answered_at,
                       rows=rows, seats=seats,
                       told_positions=[floor_position(h.get("location")) for h in res.headers])
    return {"what": "floor", "members": members, "seats": seats, "clients": res.clients,
            "answered": sum(ok), "statuses": res.statuses(), "errors": res.errors[:10],
            "seconds": res.seconds, "per_second": rate(sum(ok), res.seconds), "latency": res.latency_summary(),
            "check": check, **cpu_table(sampler, cpu0, cpu1, res, sum(ok)), "rss_mib_end": rss,
            "reconnects": res.reconnects}


# ---------------------------------------------------------------- registrations
COLLEGES = ("public_actor", "civil_society", "citizen")


def registration_fields(run: str, i: int) -> dict[str, str]:
    return {"full_name": f"Participante Plancher {i}", "email": member_address(f"floor-{run}", i),
            "organisation": "Banc d'essai" if i % 3 else "", "college": COLLEGES[i % 3]}


async def _sent(nc: Any, prefix: str) -> int:
    msg = await nc.request(f"{prefix}.count", b"{}", timeout=5)
    return int(json.loads(msg.data)["sent"])


async def _until_sent(nc: Any, prefix: str, goal: int, t0: float, poll: float, stall: float,
                      alive: Any) -> tuple[float | None, int]:
    last, last_change = -1, time.monotonic()
    while True:
        alive()
        n = await _sent(nc, prefix)
        now = time.perf_counter()
        if n >= goal:
            return now - t0, n
        if n != last:
            last, last_change = n, time.monotonic()
        elif time.monotonic() - last_change > stall:
            return None, n
        await asyncio.sleep(poll)


async def registration_floor(nats_url: str, pg_url: str, smtp_port: int, *, n: int, clients: int, warmup: int = 50,
                             log_dir: Path, postgres_port: int | None = 5432, poll: float = 0.5,
                             stall: float = 60, profilers: Any = None, timeout: float = 120,
                             sink_pid: int | None = None) -> dict[str, Any]:
    """HTTP form -> NATS request -> one transaction (member + outbox) -> reply; relay -> JetStream ->
    consumer -> one transaction -> SMTP to the same sink; timed until the sink accepted every e-mail.
    `sink_pid`: the SMTP sink's process, whose CPU is then counted as the product's is."""
    from bench.floor_services import REGISTRATION_SCHEMA

    fp = FloorProcesses(nats_url, pg_url, log_dir)
    stream = f"FLOOR_{fp.prefix.upper()}"
    fp.create_schema(REGISTRATION_SCHEMA)
    nc = await nats.connect(nats_url, name="floor-registration-orchestrator")
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[f"{fp.prefix}.registered"])
    port = _free_port()
    run = uuid.uuid4().hex[:8]
    try:
        fp.spawn("floor-web", "web", "--kind", "registration", "--port", str(port))
        fp.spawn("floor-registry", "registry", *fp.db_args())
        fp.spawn("floor-mailer", "mailer", *fp.db_args(), "--smtp-port", str(smtp_port), "--stream", stream)
        await fp.wait_ready(["registry", "mailer"], port)
        tokens = [secrets.token_urlsafe(32) for _ in range(clients)]

        def request(i: int) -> Any:
            tok = tokens[i % clients]
            return form_post("/inscription", registration_fields(run, i) | {"charter_accepted": "on", "csrf_token": tok},
                             cookie=f"floor_csrf={tok}")

        if warmup:
            w = await run_load([request(i) for i in range(warmup)], [port], min(clients, warmup), timeout=timeout)
            await _until_sent(nc, fp.prefix, sum(s == 303 for s in w.status), time.perf_counter(), 0.2, stall,
                              fp.check_alive)
        base = await _sent(nc, fp.prefix)
        pids = {n_: p.pid for n_, p in fp.procs.items()} | ({"mail sink": sink_pid} if sink_pid else {})
        sampler = ResourceSampler(pids, interval=0.2, include_self=False, postgres_port=postgres_port)
        sampler.start()
        gen = LoadProcess([request(warmup + i) for i in range(n)], [port], clients, timeout=timeout)
        try:
            await gen.ready()
            cpu0 = sampler.cpu_snapshot()
            if profilers:
                profilers.start({n_: p.pid for n_, p in fp.procs.items()}, timeout * 4, tag="floor")
            t0 = time.perf_counter()
            task = asyncio.create_task(gen.run())
            res = await task
            accepted = sum(s == 303 for s in res.status)
            t_sent, sent = await _until_sent(nc, fp.prefix, base + accepted, t0, poll, stall, fp.check_alive)
            cpu1 = sampler.cpu_snapshot()
        finally:
            if profilers:
                profilers.stop()
            sampler.stop()
            gen.kill()
        rss = sampler.current_mib()
    finally:
        fp.stop()
        with contextlib.suppress(Exception):
            await js.delete_stream(stream)
        await nc.close()
        with contextlib.suppress(Exception):
            fp.drop_schema()
    sent -= base
    return {"what": "floor", "n": n, "clients": res.clients, "accepted": accepted, "statuses": res.statuses(),
            "errors": res.errors[:10], "http_seconds": res.seconds, "sent_seconds": t_sent, "sent": sent,
            "accepted_per_second": rate(accepted, res.seconds),
            "sent_per_second": rate(sent, t_sent) if t_sent else None, "latency": res.latency_summary(),
            **cpu_table(sampler, cpu0, cpu1, res, sent or accepted), "rss_mib_end": rss}
