"""Benchmark of a notice's fan-out: `python -m bench.fanout [--subscribers 20000] [--db auto|sqlite|postgresql]`.

One publication to every confirmed subscriber of a topic, against a local SMTP sink, beside the
floor measured in the same run on the same sink:

- **sink**: aiosmtpd in a process of its own (so it does not take the measured process's CPU). It
  accepts every message as fast as it can and keeps the count, the distinct Message-IDs and the time
  (CLOCK_MONOTONIC, shared by every process of this machine) of the first and the last accepted message.
  The benchmark asks it for these over a pipe (`python -m bench.fanout sink --port P`).
- **floor**: this process sends `--floor-messages` (default: as many as subscribers) simple pre-built
  messages (one text part, no template, no database) with aiosmtplib over `mail_connections`
  pooled connections — the same number the service uses — straight to the sink. Messages/s = count ÷
  (last accepted − start, connections opened included, as the service opens its own).
- **system**: the notifications service as its own process (`python -m forum_ouvert.cli serve
  notifications`, product defaults, INFO logs to a file) on its own nats-server and database
  (PostgreSQL when reachable, in a fresh schema dropped at the end, else a SQLite file: the first line
  says which). `--subscribers` confirmed subscribers of « minutes » are bulk-inserted into its
  database (not measured), spread over `--domains` destination domains, with one secretariat member.
  The service learns of a session from a `SessionScheduled` event; then the trigger: one
  `MinutesPublished` event published to JetStream, as the minutes service would. From that moment to
  the last message accepted by the sink is the **fan-out time**; subscribers ÷ that time is
  **messages/s**. Every message must reach the sink once: distinct Message-IDs are counted there.
  The notifications process's RSS is sampled every 200 ms (peak) and the CPU seconds of every process
  involved (service, sink, nats-server, PostgreSQL backends) are read before and after.

`--profile` runs the service under cProfile (which slows it down: compare profiled runs only with
each other) and prints where its CPU went. Figures, never assertions (shared machines); every wait is
bounded (`--timeout`, `--stall-timeout`).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from bench.stats import fmt, table

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
TOPIC = "minutes"


# ================================================================ the SMTP sink (its own process)
class _Counting:
    """aiosmtpd handler: accept everything, remember the Message-IDs and when the last one arrived."""

    MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]*>)", re.I | re.M)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.ids: set[bytes] = set()
        self.without_id = 0
        self.first: float | None = None
        self.last: float | None = None
        self.cpu0 = time.process_time()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001, N802 - aiosmtpd hook
        now = time.monotonic()
        content = envelope.original_content or envelope.content
        head = content[: content.find(b"\r\n\r\n") + 2]
        m = self.MESSAGE_ID.search(head)
        if m:
            self.ids.add(m.group(1))
        else:
            self.without_id += 1
        self.count += 1
        self.first = self.first or now
        self.last = now
        return "250 OK"

    def stats(self) -> dict[str, Any]:
        return {"count": self.count, "distinct_ids": len(self.ids), "without_id": self.without_id,
                "first": self.first, "last": self.last, "cpu": time.process_time() - self.cpu0}


async def _sink(port: int) -> None:
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    handler = _Counting()
    server = await loop.create_server(lambda: SMTP(handler, hostname="bench-sink", ident="bench-sink"),
                                      "127.0.0.1", port)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    while line := (await reader.readline()).strip():  # EOF (the benchmark went away) stops the sink
        if line == b"reset":
            handler.reset()
            print("ok", flush=True)
        elif line == b"stats":
            print(json.dumps(handler.stats()), flush=True)
        elif line == b"quit":
            break
    server.close()


class Sink:
    """The sink process, seen from the benchmark."""

    def __init__(self) -> None:
        from forum_ouvert.launcher import free_port

        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.fanout", "sink", "--port", str(self.port)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=str(ROOT), text=True)
        if self._line() != "ready":
            raise RuntimeError("the SMTP sink did not start")

    def _line(self) -> str:
        assert self.proc.stdout
        return self.proc.stdout.readline().strip()

    def _ask(self, what: str) -> str:
        assert self.proc.stdin
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()
        return self._line()

    def reset(self) -> None:
        self._ask("reset")

    def stats(self) -> dict[str, Any]:
        return json.loads(self._ask("stats"))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ask("quit")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def wait_for_sink(sink: Sink, target: int, timeout: float, stall: float, poll: float = 0.25) -> dict[str, Any]:
    """Until the sink accepted `target` messages, or nothing arrived for `stall` s, or `timeout` s passed."""
    deadline = time.monotonic() + timeout
    seen, moved = -1, time.monotonic()
    while True:
        s = await asyncio.to_thread(sink.stats)
        if s["count"] != seen:
            seen, moved = s["count"], time.monotonic()
        if s["count"] >= target:
            return s
        if time.monotonic() > deadline or time.monotonic() - moved > stall:
            s["stopped_early"] = True
            return s
        await asyncio.sleep(poll)


# ================================================================ the floor
FLOOR_FROM = "ne-pas-repondre@forum-ouvert.local"


def floor_message(i: int, domain: str, size: int = 3900) -> tuple[str, bytes]:
    """(recipient, bytes) of a simple one-part message of about a notice's size, serialised beforehand
    (the service also hands aiosmtplib bytes)."""
    from email import policy

    to = f"plancher-{i:06d}@{domain}"
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = f"Forum ouvert <{FLOOR_FROM}>"
    msg["To"] = to
    msg["Subject"] = "Compte rendu publié : Plénière de printemps"
    msg["Date"] = format_datetime(datetime.now().astimezone())
    msg["Message-ID"] = f"<floor-{i}-{uuid.uuid4().hex[:8]}@forum-ouvert.local>"
    line = "Le compte rendu de la séance plénière de printemps est publié sur le forum ouvert.\n"
    msg.set_content(line * (size // len(line)), cte="8bit")
    return to, msg.as_bytes()


async def floor(port: int, messages: int, connections: int, sink: Sink, timeout: float) -> dict[str, Any]:
    import aiosmtplib

    prebuilt = [floor_message(i, f"fai-{i % 10}.example") for i in range(messages)]
    sink.reset()
    next_i = 0
    errors: list[str] = []

    async def connection() -> None:
        nonlocal next_i
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30, start_tls=False)
        await smtp.connect()
        try:
            while next_i < messages:
                i = next_i
                next_i += 1
                to, data = prebuilt[i]
                try:
                    await smtp.sendmail(FLOOR_FROM, [to], data, mail_options=["BODY=8BITMIME"])
                except aiosmtplib.SMTPException as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            await smtp.quit()

    t0, cpu0 = time.monotonic(), time.process_time()
    await asyncio.wait_for(asyncio.gather(*(connection() for _ in range(connections))), timeout)
    client_seconds, client_cpu = time.monotonic() - t0, time.process_time() - cpu0
    s = await wait_for_sink(sink, messages, timeout=30, stall=10)
    seconds = (s["last"] or t0) - t0
    return {"messages": messages, "connections": connections, "accepted": s["count"],
            "distinct_ids": s["distinct_ids"], "seconds": seconds, "client_seconds": client_seconds,
            "per_second": s["count"] / seconds if seconds > 0 else None, "errors": len(errors),
            "first_error": errors[0] if errors else None, "sink_cpu": s["cpu"], "client_cpu": client_cpu}


# ================================================================ the database
@dataclass
class Database:
    kind: str  # "postgresql" | "sqlite"
    url: str   # the service's FORUM_DATABASE_URL
    shown: str
    port: int | None = None  # a local PostgreSQL's port: its backends' CPU is counted


def _reachable(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=2).close()
        return True
    except Exception:  # noqa: BLE001 - not reachable: SQLite then
        return False


@contextlib.contextmanager
def database(wanted: str, url: str | None, tmp: Path, pg_settings: list[str] | None = None) -> Iterator[Database]:
    """A fresh PostgreSQL schema (dropped at the end), or a SQLite file in `tmp`. `pg_settings`
    ("name=value") are set on the service's PostgreSQL connections (an experiment: planner settings…)."""
    import psycopg
    from sqlalchemy.engine import make_url

    base = url or os.environ.get("FORUM_BENCH_DATABASE_URL") or os.environ.get("FORUM_TEST_DATABASE_URL") or DEFAULT_PG
    plain = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", base)
    if wanted == "sqlite" or (wanted == "auto" and not _reachable(plain)):
        path = tmp / "notifications.db"
        yield Database("sqlite", f"sqlite+aiosqlite:///{path}", f"SQLite file {path}")
        return
    schema = f"bench_fanout_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in plain else "?"
    u = make_url(plain)
    local = u.host in (None, "", "127.0.0.1", "localhost", "::1")
    shown = re.sub(r"://([^:@/]+):[^@/]*@", r"://\1:***@", plain)
    extra = "".join(f"%20-c{x.replace('=', '%3D')}" for x in pg_settings or [])
    try:
        yield Database("postgresql", plain.replace("postgresql://", "postgresql+psycopg://", 1)
                       + f"{sep}options=-csearch_path%3D{schema}{extra}",
                       f"PostgreSQL {shown}, schema {schema}" + (f", with {' '.join(pg_settings)}" if pg_settings else ""),
                       (u.port or 5432) if local else None)
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def sync_engine(db: Database) -> Any:
    from sqlalchemy import create_engine

    return create_engine(db.url.replace("sqlite+aiosqlite://", "sqlite://", 1))


def seed(db: Database, subscribers: int, domains: int) -> dict[str, Any]:
    """Confirmed subscribers of TOPIC, spread over `domains` destination domains, and a secretariat
    member; bulk inserts, outside the measurement."""
    from sqlalchemy import insert

    from services.notifications.models import Recipient, Subscriber, SubscriberTopic
    from shared.clock import utcnow

    t0 = time.perf_counter()
    now = utcnow()
    engine = sync_engine(db)
    with engine.begin() as conn:
        for start in range(0, subscribers, 5000):
            rows = []
            for i in range(start, min(start + 5000, subscribers)):
                rows.append({"id": str(uuid.uuid4()), "email": f"abonne-{i:06d}@fai-{i % domains}.example",
                             "status": "confirmed", "created_at": now - timedelta(days=30),
                             "requested_at": now - timedelta(days=30), "confirmed_at": now - timedelta(days=29),
                             "unsubscribed_at": None, "link_nonce": uuid.uuid4().hex[:12],
                             "confirm_window_start": now - timedelta(days=30), "confirm_requests": 1,
                             "hard_failures": 0})
            conn.execute(insert(Subscriber.__table__), rows)  # type: ignore[attr-defined]
            conn.execute(insert(SubscriberTopic.__table__),  # type: ignore[attr-defined]
                         [{"subscriber_id": r["id"], "topic": TOPIC} for r in rows])
        conn.execute(insert(Recipient.__table__).values(  # type: ignore[attr-defined]
            member_id=str(uuid.uuid4()), email="secretariat@forum-ouvert.example", full_name="Secrétariat",
            approved=True, secretariat=True, updated_at=now))
    if db.kind == "postgresql":  # fresh statistics for the subscribers, as a live forum has them
        with engine.begin() as conn:
            for t in ("subscriber", "subscriber_topic", "recipient"):
                conn.exec_driver_sql(f"ANALYZE {t}")
    engine.dispose()
    return {"seconds": time.perf_counter() - t0}


def query(db: Database, sql: str, **params: Any) -> list[Any]:
    from sqlalchemy import text

    engine = sync_engine(db)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()


# ================================================================ the service and its events
def service_env(nats_url: str, db: Database, data_dir: Path, smtp_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"FORUM_NATS_URL": nats_url, "FORUM_DATABASE_URL": db.url, "FORUM_DATA_DIR": str(data_dir),
                "FORUM_SMTP_HOST": "127.0.0.1", "FORUM_SMTP_PORT": str(smtp_port),
                "FORUM_PUBLIC_URL": "http://127.0.0.1:8000", "FORUM_WEB_HOST": "127.0.0.1",
                "PYTHONUNBUFFERED": "1"})
    return env


async def healthy(nats_url: str, timeout: float = 60) -> None:
    import nats

    nc = await nats.connect(nats_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = await nc.request("rpc.notifications.health", b"{}", timeout=1)
                if json.loads(msg.data).get("data", {}).get("status") == "ok":
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the notifications service did not become healthy")
            await asyncio.sleep(0.2)
    finally:
        await nc.close()


def session_event() -> tuple[Any, str]:
    from shared.clock import utcnow
    from shared.contracts.envelope import make_event
    from shared.contracts.forum import SessionInfo, SessionKind, SessionScheduled, SessionStatus, Theme

    sid = f"s-{uuid.uuid4().hex[:12]}"
    end = utcnow() - timedelta(days=7)
    start = end - timedelta(hours=2)
    info = SessionInfo(
        session_id=sid, revision=0, status=SessionStatus.SCHEDULED, title="Plénière de printemps",
        kind=SessionKind.PLENARY, theme=Theme.OPEN_DATA, description="Point d'étape du plan d'action.",
        starts_at=start, ends_at=end, place="CESE, Paris", online_url=None, capacity=80,
        rsvp_opens_at=start - timedelta(days=10), rsvp_closes_at=start - timedelta(days=1),
        agenda=["Ouverture", "Engagement 5"], updated_at=start - timedelta(days=20))
    return make_event(SessionScheduled(session=info), producer="forum"), sid


def minutes_event(session_id: str) -> Any:
    import hashlib

    from shared.clock import utcnow
    from shared.contracts.envelope import make_event
    from shared.contracts.minutes import Adoption, AdoptionKind, MinutesPublished

    return make_event(MinutesPublished(minutes_id=f"m-{uuid.uuid4().hex[:12]}", session_id=session_id, version=1,
                                       sha256=hashlib.sha256(b"bench").hexdigest(), published_at=utcnow(),
                                       adoption=Adoption(kind=AdoptionKind.NONE)), producer="minutes")


async def publish(nats_url: str, event: Any) -> None:
    import nats

    from shared.streams import ensure_streams

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream(timeout=30)
        await ensure_streams(js)
        await js.publish(event.type, event.model_dump_json().encode(), timeout=30,
                         headers={"Nats-Msg-Id": str(event.event_id)})
    finally:
        await nc.close()


async def until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.1)


# ================================================================ the system run
async def system(args: argparse.Namespace, sink: Sink, db: Database, nats_url: str, data_dir: Path,
                 profile_to: Path | None) -> dict[str, Any]:
    from bench.memory import POSTGRES, ResourceSampler

    log_path = data_dir / "notifications.log"
    argv = [sys.executable, "-m", "forum_ouvert.cli", "serve", "notifications"]
    if profile_to:
        argv[1:1] = ["-m", "cProfile", "-o", str(profile_to)]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, env=service_env(nats_url, db, data_dir, sink.port), stdout=log,
                                stderr=subprocess.STDOUT, cwd=str(ROOT), start_new_session=True)
    r: dict[str, Any] = {"log": str(log_path)}
    try:
        await healthy(nats_url)
        session, sid = session_event()
        await publish(nats_url, session)
        await until(lambda: query(db, "SELECT count(*) FROM notice_session WHERE session_id = :s", s=sid)[0][0] == 1,
                    30, "the service did not learn of the session")
        event = minutes_event(sid)
        nats_pid = _nats_pid(nats_url)
        sampler = ResourceSampler({"notifications": proc.pid, "sink": sink.proc.pid,
                                   **({"nats-server": nats_pid} if nats_pid else {})},
                                  interval=0.2, include_self=False, postgres_port=db.port)
        sampler.start()
        try:
            await asyncio.sleep(0.5)  # the session's own notice (no subscriber of sessions) has been handled
            sink.reset()
            cpu0, machine0 = sampler.cpu_snapshot(), ResourceSampler.machine_cpu()
            sampler.phase("fanout")
            t0 = time.monotonic()
            await publish(nats_url, event)
            s = await wait_for_sink(sink, args.subscribers, timeout=args.timeout, stall=args.stall_timeout)
            waited = time.monotonic() - t0
            cpu = ResourceSampler.cpu_delta(cpu0, sampler.cpu_snapshot())
            machine1 = ResourceSampler.machine_cpu()
        finally:
            sampler.stop()
        seconds = (s["last"] - t0) if s["last"] else None
        r.update({
            "accepted": s["count"], "distinct_ids": s["distinct_ids"], "without_id": s["without_id"],
            "stopped_early": s.get("stopped_early", False), "seconds": seconds,
            "first_after": (s["first"] - t0) if s["first"] else None, "waited": waited,
            "per_second": s["count"] / seconds if seconds else None,
            "peak_rss_mib": sampler.peaks_mib("fanout").get("notifications"),
            "peak_rss_mib_all": sampler.peaks_mib("fanout"),
            "cpu_seconds": cpu, "postgres_name": POSTGRES,
            "machine_busy": machine1[0] - machine0[0], "machine_total": machine1[1] - machine0[1],
        })
        await asyncio.sleep(0.5)  # the last outcomes are committed just after the server's reply
        r["states"] = dict(query(db, "SELECT status, count(*) FROM delivery WHERE notice_id IS NOT NULL "
                                     "GROUP BY status"))
        r["resent"] = query(db, "SELECT count(*) FROM delivery WHERE resent")[0][0]
        span = query(db, "SELECT min(created_at), max(created_at), min(sent_at), max(sent_at) FROM delivery "
                         "WHERE notice_id IS NOT NULL")[0]
        first, last = (datetime.fromisoformat(x) if isinstance(x, str) else x for x in span[:2])  # SQLite: text
        r["queued_span"] = (last - first).total_seconds() if first and last else None
        if db.kind == "postgresql":
            r["index_scans"] = pg_index_scans(db)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # graceful: cProfile writes its file on the way out
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    r["log_tail"] = _problems(log_path)
    return r


def pg_index_scans(db: Database) -> dict[str, int]:
    """Scans of the delivery table's indexes: the sender's claim query uses `ix_delivery_due` once per
    bookkeeper transaction, so messages ÷ those scans is the mean group-commit size."""
    schema = db.url.split("csearch_path%3D", 1)[1].split("%20", 1)[0]
    rows = query(db, "SELECT indexrelname, idx_scan FROM pg_stat_user_indexes WHERE schemaname = :s "
                     "AND relname = 'delivery'", s=schema)
    seq = query(db, "SELECT seq_scan FROM pg_stat_user_tables WHERE schemaname = :s AND relname = 'delivery'",
                s=schema)
    return {**{name: n for name, n in rows}, "seq_scan": seq[0][0] if seq else 0}


def _nats_pid(nats_url: str) -> int | None:
    import psutil

    port = nats_url.rsplit(":", 1)[1]
    for p in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmd = p.info["cmdline"] or []
            if "nats-server" in (p.info["name"] or "") and port in cmd:
                return p.pid
    return None


def _problems(log_path: Path) -> list[str]:
    lines = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
    # FastStream's supervisor logs a pull fetch that timed out while the stream was idle: not a problem.
    noise = re.compile(r"raised an exception, retrying|Traceback|^\s|TimeoutError$|FASTSTREAM_SUPERVISOR")
    return [x[:240] for x in lines if re.search(r"WARNING|ERROR|CRITICAL", x) and not noise.search(x)][:8]


# ================================================================ profile
def profile_summary(path: Path, top: int = 30) -> str:
    """Self time by package, then the project's and the mail path's functions by cumulative time."""
    st = pstats.Stats(str(path))
    by_pkg: dict[str, float] = {}
    total = 0.0
    for (file, _, _), (_, _, tt, _, _) in st.stats.items():  # type: ignore[attr-defined]
        total += tt
        key = _package(file)
        by_pkg[key] = by_pkg.get(key, 0.0) + tt
    out = [f"cProfile of the notifications process: {total:.1f} s of profiled time (self), by package:"]
    out += [f"  {tt * 100 / total:5.1f}%  {tt:6.2f} s  {pkg}" for pkg, tt in
            sorted(by_pkg.items(), key=lambda kv: -kv[1])[:15]]
    buf = io.StringIO()
    pstats.Stats(str(path), stream=buf).sort_stats("cumulative").print_stats(
        r"services/notifications|shared/(db|outbox|service|worker)|email/(message|generator|policy|_header)"
        r"|aiosmtplib/(smtp|esmtp)|itsdangerous/(url_safe|timed)|sqlalchemy/(orm/session|engine/base)",
        top)
    out.append("cumulative time of selected functions (project, email, aiosmtplib, itsdangerous, SQLAlchemy):")
    keep = False
    for line in buf.getvalue().splitlines():
        if line.strip().startswith("ncalls"):
            keep = True
        if keep and line.strip():
            out.append("  " + line.strip()[:200])
    return "\n".join(out)


def _package(file: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", "/lib/python3.12/"):
        if marker in file:
            return file.split(marker, 1)[1].split("/")[0].removesuffix(".py")
    for p in ("services/", "shared/", "forumlib/", "forum_ouvert/"):
        if p in file:
            return p + file.split(p, 1)[1].split("/")[0].removesuffix(".py")
    return file if file.startswith("<") else Path(file).name


# ================================================================ run and report
async def run(args: argparse.Namespace) -> dict[str, Any]:
    from forum_ouvert.launcher import throwaway_nats
    from shared.migrations import upgrade
    from shared.settings import Settings

    connections = Settings().mail_connections  # what the service will use (same environment)
    r: dict[str, Any] = {"subscribers": args.subscribers, "domains": args.domains, "connections": connections,
                         "cpus": os.cpu_count(), "python": sys.version.split()[0], "load_start": os.getloadavg()[0]}
    data_dir = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    sink = Sink()
    try:
        with throwaway_nats("bench-fanout-nats-") as nats_url, database(args.db, args.database_url, data_dir,
                                                                          args.pg_setting) as db:
            r["database"], r["database_shown"] = db.kind, db.shown
            print(f"database: {db.shown}", flush=True)
            print(f"floor: {args.floor_messages:,} pre-built messages over {connections} aiosmtplib connections "
                  f"to the sink…", flush=True)
            r["floor"] = await floor(sink.port, args.floor_messages, connections, sink, args.timeout)
            print(f"  {fmt(r['floor']['per_second'])} messages/s", flush=True)
            await asyncio.to_thread(upgrade, "notifications", db.url)
            r["seed"] = await asyncio.to_thread(seed, db, args.subscribers, args.domains)
            print(f"seeded {args.subscribers:,} confirmed subscribers of « {TOPIC} » in "
                  f"{r['seed']['seconds']:.1f} s; starting the notifications service"
                  f"{' under cProfile' if args.profile else ''}, then one MinutesPublished…", flush=True)
            prof = (args.results_dir / f"fanout-{time.strftime('%Y%m%dT%H%M%S')}.prof") if args.profile else None
            if prof:
                args.results_dir.mkdir(parents=True, exist_ok=True)
            r["system"] = await system(args, sink, db, nats_url, data_dir, prof)
            if prof and prof.exists():
                r["profile"] = str(prof)
    finally:
        sink.close()
        if args.keep_data:
            print(f"data kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    r["load_end"] = os.getloadavg()[0]
    return r


def report(r: dict[str, Any]) -> str:
    f, s = r["floor"], r["system"]
    ratio = s["per_second"] / f["per_second"] if s.get("per_second") and f.get("per_second") else None
    sent = s.get("states", {}).get("sent", 0)
    cpu = s.get("cpu_seconds", {})
    claims = s.get("index_scans", {}).get("ix_delivery_due")
    rows: list[tuple[str, str | None]] = [
        (f"machine: {r['cpus']} CPUs, Python {r['python']}, load average {r['load_start']:.1f} -> {r['load_end']:.1f}",
         None),
        (f"database: {r['database']}; {r['subscribers']:,} subscribers over {r['domains']} domains; "
         f"{r['connections']} SMTP connections", None),
        ("floor: aiosmtplib, pre-built messages, straight to the sink", None),
        ("  messages accepted (distinct Message-IDs)", f"{f['accepted']:,} ({f['distinct_ids']:,})"),
        ("  time", fmt(f["seconds"], "s", 2)),
        ("  messages/s", fmt(f["per_second"])),
        ("  CPU of the sending client per message", fmt(f["client_cpu"] * 1000 / max(f["accepted"], 1), "ms", 2)),
        ("system: one MinutesPublished -> notifications service -> sink", None),
        ("  messages accepted (distinct Message-IDs)", f"{s['accepted']:,} ({s['distinct_ids']:,})"
         + (" INCOMPLETE" if s["stopped_early"] else "")),
        ("  first message accepted after", fmt(s["first_after"], "s", 2)),
        ("  fan-out time (event -> last message accepted)", fmt(s["seconds"], "s", 2)),
        ("  messages/s", fmt(s["per_second"])),
        ("  deliveries queued by the fan-out job within", fmt(s.get("queued_span"), "s", 2)),
        ("  delivery log", ", ".join(f"{k} {v:,}" for k, v in sorted(s.get("states", {}).items()))
         + (f"; re-sent {s['resent']}" if s.get("resent") else "")),
        ("  peak RSS of the notifications process", fmt(s["peak_rss_mib"], "MiB")),
        ("  CPU of the notifications process per message",
         fmt(cpu.get("notifications", 0) * 1000 / max(s["accepted"], 1), "ms", 2)),
        *([("  sender transactions (claim queries) / mean group commit",
            f"{claims:,} / {s['accepted'] / claims:.1f} messages")] if claims else []),
        ("ratio system / floor (messages/s)", f"{ratio * 100:.0f} %" if ratio else "n/a"),
        ("CPU seconds during the fan-out", None),
        *[(f"  {name}", fmt(v, "s", 1)) for name, v in sorted(cpu.items(), key=lambda kv: -kv[1])],
        ("  whole machine (busy / available)", f"{s['machine_busy']:.1f} / {s['machine_total']:.1f} s"),
    ]
    out = table(rows, title="Forum ouvert — notifications: fan-out of one publication")
    problems = []
    if s["distinct_ids"] != r["subscribers"] or sent != r["subscribers"]:
        problems.append(f"expected {r['subscribers']:,} distinct Message-IDs and as many `sent`: "
                        f"got {s['distinct_ids']:,} and {sent:,}")
    if s["accepted"] != s["distinct_ids"]:
        problems.append(f"{s['accepted'] - s['distinct_ids']} messages accepted twice")
    if s.get("log_tail"):
        problems.append("warnings/errors in the service's log:\n    " + "\n    ".join(s["log_tail"]))
    return out + ("\n" + "\n".join(problems) if problems else "")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    sk = sub.add_parser("sink", help="the SMTP sink (started by the benchmark)")
    sk.add_argument("--port", type=int, required=True)
    ap.add_argument("--subscribers", type=int, default=20_000, help="confirmed subscribers (default 20000)")
    ap.add_argument("--floor-messages", type=int, help="messages of the floor (default: as many as subscribers)")
    ap.add_argument("--domains", type=int, default=10, help="destination domains the subscribers are spread over")
    ap.add_argument("--db", choices=("auto", "sqlite", "postgresql"), default="auto",
                    help="auto: PostgreSQL if reachable (FORUM_BENCH_DATABASE_URL, FORUM_TEST_DATABASE_URL or "
                         f"{DEFAULT_PG}), else SQLite")
    ap.add_argument("--database-url", help="PostgreSQL server to use (a scratch schema is created and dropped)")
    ap.add_argument("--pg-setting", action="append", metavar="NAME=VALUE",
                    help="a PostgreSQL setting for the service's connections, e.g. enable_bitmapscan=off (repeatable)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds the fan-out may take at most")
    ap.add_argument("--stall-timeout", type=float, default=60, help="stop when nothing arrives for this long")
    ap.add_argument("--profile", action="store_true", help="run the service under cProfile and summarise")
    ap.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--keep-data", action="store_true", help="keep the data folder (service log, SQLite file)")
    args = ap.parse_args(argv)
    if args.cmd == "sink":
        asyncio.run(_sink(args.port))
        return
    args.floor_messages = args.floor_messages or args.subscribers

    def on_sigterm(*_: object) -> None:
        raise KeyboardInterrupt("SIGTERM")  # so that the service, the sink and the scratch schema are cleaned up

    signal.signal(signal.SIGTERM, on_sigterm)
    t0 = time.perf_counter()
    r = asyncio.run(run(args))
    print(report(r))
    if r.get("profile"):
        print(profile_summary(Path(r["profile"])))
        print(f"profile: {r['profile']} (python -m pstats)")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"fanout-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(r, indent=2, default=str))
    print(f"total {time.perf_counter() - t0:.0f} s; results in {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
