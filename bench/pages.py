"""Pages under load: the public lists and a decision's page, with years of data, 50 readers at once.

    .venv/bin/python -m bench.pages                 # or: bash bench/run.sh pages
    FORUM_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python -m bench.pages
    .venv/bin/python -m bench.pages --seconds 5 --pages decisions,decision   # a quick look at two pages

1. A private stack (forum_ouvert.launcher.Stack: its own nats-server, every service, the web front, the
   mail catcher) on fresh PostgreSQL schemas (FORUM_BENCH_DATABASE_URL, else FORUM_TEST_DATABASE_URL;
   dropped at the end) or, without either, SQLite files.
2. Before the services start, the migrated databases are seeded by bulk INSERTs (bench/pages_seed.py):
   20,000 members, 2,000 sessions, 10,000 decisions by default, with what the minutes service's
   projections and the public record hold for them. A secretariat account signs in by e-mailed link,
   as anyone would, for its members list.
3. For each page, `--readers` closed-loop clients (a minimal keep-alive HTTP/1.1 client, bench/pages_load.py)
   GET it for `--warmup` + `--seconds`; p50/p95/p99, requests/s and the CPU each process spent per
   request are printed beside the floor measured in the same run (bench/pages_floor.py: FastAPI → one
   NATS request → one indexed SELECT of 20 decisions → a small HTML list) and the web front's cheapest
   page (`/charte`: a template, no request to any service).
4. Then a second, shorter pass with py-spy attached to web, forum, minutes and registry (not during the
   measured pass: the profiler takes CPU from the servers) and a summary of where each spent its CPU
   (bench/profile_summary.py). `--no-profile` skips it.

Figures, never assertions; the goal is p95 ≤ 100 ms per page with 50 readers. On a machine shared
with other work the figures are lower than the software can do: the load average is printed.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.memory import POSTGRES, ResourceSampler  # noqa: E402
from bench.pages_load import PageResult, fetch_once, read_page  # noqa: E402
from bench.pages_seed import Seeded, Volumes, seed  # noqa: E402
from bench.profile_summary import summarise  # noqa: E402
from bench.stats import fmt, latency_summary  # noqa: E402

RESULTS_DIR = REPO / "bench" / "results"
SECRETARIAT = "secretariat@bench-pages.example.org"
GOAL_P95_MS = 100.0
PROFILED = ("web", "forum", "minutes", "registry")
CSRF = re.compile(r"name=\"csrf_token\" value=\"([^\"]+)\"")


# ---------------------------------------------------------------- databases
@dataclass
class Databases:
    kind: str
    urls: dict[str, str] | None
    plain: str | None = None  # the PostgreSQL server, for the schemas
    port: int | None = None

    def drop(self) -> None:
        if self.kind != "postgresql" or not self.urls:
            return
        import psycopg

        with psycopg.connect(self.plain, autocommit=True) as conn:
            for url in self.urls.values():
                conn.execute(f'DROP SCHEMA IF EXISTS "{url.rsplit("%3D", 1)[-1]}" CASCADE')


def databases(wanted: str, label: str) -> Databases:
    """A fresh PostgreSQL schema per service, or (None) the stack's own SQLite files."""
    from shared.settings import SERVICES

    url = os.environ.get("FORUM_BENCH_DATABASE_URL") or os.environ.get("FORUM_TEST_DATABASE_URL")
    if wanted == "postgresql" and not url:
        raise SystemExit("--db postgresql needs FORUM_BENCH_DATABASE_URL, "
                         "e.g. postgresql://postgres@127.0.0.1:5432/test")
    if wanted == "sqlite" or not url:
        return Databases("sqlite", None)
    import psycopg
    from sqlalchemy.engine import make_url

    plain = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)
    u = make_url(plain)
    local = u.host in (None, "", "127.0.0.1", "localhost", "::1")
    urls = {}
    sep = "&" if "?" in plain else "?"
    with psycopg.connect(plain, autocommit=True) as conn:
        for s in SERVICES:
            schema = f"b_{label}_{s}"
            conn.execute(f'CREATE SCHEMA "{schema}"')
            urls[s] = (plain.replace("postgresql://", "postgresql+psycopg://", 1)
                       + f"{sep}options=-csearch_path%3D{schema}")
    return Databases("postgresql", urls, plain, (u.port or 5432) if local else None)


# ---------------------------------------------------------------- the secretariat's cookie
def _sign_in_link(mail_dir: Path, to: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(mail_dir.glob("*.eml")):
            msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            if to in str(msg["To"]):
                body = msg.get_body(preferencelist=("plain",))
                m = re.search(r"https?://\S*/connexion/lien\?token=[\w.~-]+", body.get_content() if body else "")
                if m:
                    return m.group(0)
        time.sleep(0.2)
    raise TimeoutError(f"no sign-in e-mail for {to} in {mail_dir}")


def secretariat_cookie(web_url: str, mail_dir: Path) -> str:
    """Sign in as the secretariat the way a person does (form, e-mailed link, button); the cookie."""
    import httpx

    with httpx.Client(base_url=web_url, timeout=30, follow_redirects=False) as http:
        token = CSRF.search(http.get("/connexion").text)
        assert token, "no CSRF token on /connexion"
        http.post("/connexion", data={"email": SECRETARIAT, "csrf_token": token.group(1)}).raise_for_status()
        link = _sign_in_link(mail_dir, SECRETARIAT).split("/connexion/", 1)[1]
        page = http.get(f"/connexion/{link}")
        token = CSRF.search(page.text)
        assert token, "no CSRF token on the sign-in link's page"
        done = http.post("/connexion/lien", data={"token": link.split("token=", 1)[1], "csrf_token": token.group(1)})
        assert done.status_code == 303, f"sign-in refused: HTTP {done.status_code}"
        http.get("/espace").raise_for_status()  # shows (and drops) the welcome message: a steady cookie
        return f"forum_session={http.cookies['forum_session']}"


def wait_checkpoint(stack: Any, leaves: int, timeout: float = 120) -> None:
    """Until the signer has signed the seeded tree (the decision pages prove their leaf against it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            status, note = asyncio.run(fetch_once("127.0.0.1", stack.web_port, "/ledger/checkpoint"))
            if status == 200 and int(note.decode().split("\n")[1]) >= leaves:  # origin, then size
                return
        time.sleep(0.5)
    raise TimeoutError(f"no checkpoint of {leaves} leaves after {timeout:.0f}s")


# ---------------------------------------------------------------- the pages
@dataclass
class Page:
    name: str
    what: str
    paths: Callable[[Any], str]
    port: str = "web"  # or "floor"
    signed_in: bool = False


def pages(seeded: Seeded, v: Volumes) -> list[Page]:
    ids = seeded.decision_ids
    last = max(1, -(-v.decisions // 20))
    return [
        Page("floor", "floor: FastAPI → NATS → 1 SELECT", lambda r: "/floor", port="floor"),
        Page("charte", "web front, no RPC: /charte", lambda r: "/charte"),
        Page("sessions", "/seances (upcoming)", lambda r: "/seances"),
        Page("sessions-past", "/seances/passees", lambda r: "/seances/passees"),
        Page("decisions", "/decisions", lambda r: "/decisions"),
        Page("decisions-last", f"/decisions?page={last} (last)", lambda r: f"/decisions?page={last}"),
        Page("decision", "/decisions/{id} (any of them)", lambda r: f"/decisions/{r.choice(ids)}"),
        Page("votes", "/votes", lambda r: "/votes"),
        Page("minutes", "/comptes-rendus", lambda r: "/comptes-rendus"),
        Page("record", "/registre", lambda r: "/registre"),
        Page("members", "/secretariat/membres (pending)", lambda r: "/secretariat/membres", signed_in=True),
        Page("members-all", "/secretariat/membres?statut=all", lambda r: "/secretariat/membres?statut=all",
             signed_in=True),
    ]


@contextlib.contextmanager
def floor_processes(nats_url: str, forum_url: str, log_dir: Path):  # noqa: ANN201
    """The floor's web process and responder, started beside the stack; yields (port, pids)."""
    from forum_ouvert.launcher import free_port, port_open

    port = free_port()
    procs = {}
    for role, extra in (("responder", ["--database-url", forum_url]), ("web", ["--port", str(port)])):
        out = open(log_dir / f"floor-{role}.log", "ab")  # noqa: SIM115 - closed below
        procs[f"floor-{role}"] = (subprocess.Popen(
            [sys.executable, "-m", "bench.pages_floor", role, "--nats", nats_url, *extra], cwd=REPO,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True), out)
    try:
        deadline = time.monotonic() + 30
        while not port_open(port):
            if time.monotonic() > deadline:
                raise TimeoutError("the floor's web process did not start")
            time.sleep(0.1)
        yield port, {n: p.pid for n, (p, _) in procs.items()}
    finally:
        for p, out in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            out.close()


def measure(args: argparse.Namespace, todo: list[Page], ports: dict[str, int], cookie: str,
            sampler: ResourceSampler) -> dict[str, Any]:
    out = {}
    for page in todo:
        print(f"  {page.what}: {args.readers} readers, {args.warmup:g} + {args.seconds:g} s…", flush=True)
        before = sampler.cpu_snapshot()
        busy0, _ = ResourceSampler.machine_cpu()
        res: PageResult = asyncio.run(read_page(
            "127.0.0.1", ports[page.port], page.name, page.paths, readers=args.readers, seconds=args.seconds,
            warmup=args.warmup, headers={"Cookie": cookie} if page.signed_in else None, think=args.think))
        cpu = ResourceSampler.cpu_delta(before, sampler.cpu_snapshot())
        busy1, _ = ResourceSampler.machine_cpu()
        n = len(res.latencies)
        out[page.name] = {
            "what": page.what, "requests": n, "per_second": n / res.seconds, "latency": latency_summary(res.latencies),
            "errors": res.errors, "error_samples": res.error_samples, "kb_per_page": res.bytes_ / 1024 / max(1, n),
            # the CPU readings cover the warm-up too: per answer in both
            "cpu_ms_per_request": {k: round(v * 1000 / max(1, res.answered), 2) for k, v in cpu.items() if v > 0},
            "machine_cpu_busy_s": round(busy1 - busy0, 1)}
    return out


def profile_pass(args: argparse.Namespace, todo: list[Page], ports: dict[str, int], cookie: str,
                 pids: dict[str, int], out_dir: Path, stamp: str) -> dict[str, str]:
    """Every page again for `--profile-seconds`, with py-spy on the services; one profile per process."""
    binary = shutil.which(args.py_spy) or (args.py_spy if Path(args.py_spy).exists() else None)
    if not binary:
        print(f"py-spy not found ({args.py_spy}): no profile (pip install py-spy)")
        return {}
    out_dir.mkdir(parents=True, exist_ok=True)
    spies, files = {}, {}
    for name in PROFILED:
        files[name] = str(out_dir / f"pages-profile-{stamp}-{name}.txt")
        spies[name] = subprocess.Popen([binary, "record", "--pid", str(pids[name]), "--rate", "100", "--format", "raw",
                                        "--subprocesses", "--nonblocking", "--output", files[name]],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)
    try:
        for page in todo:
            if page.port == "web":
                asyncio.run(read_page("127.0.0.1", ports["web"], page.name, page.paths, readers=args.readers,
                                      seconds=args.profile_seconds, warmup=0,
                                      headers={"Cookie": cookie} if page.signed_in else None))
    finally:
        for p in spies.values():
            p.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        for name, p in spies.items():
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if not Path(files[name]).exists():
                err = p.stderr.read().decode(errors="replace")[:300] if p.stderr else ""
                print(f"py-spy on {name}: no profile ({err})")
                files.pop(name)
    return files


# ---------------------------------------------------------------- report
COLUMNS = (("front", ("web", "floor-web")), ("forum", ("forum",)), ("minutes", ("minutes",)),
           ("registry", ("registry",)), ("floor-db", ("floor-responder",)), ("pg", (POSTGRES,)),
           ("client", ("bench-client",)))


def report(res: dict[str, Any]) -> str:
    """One line per page: throughput, latency, p95 against the floor's, CPU per answer per process."""
    env, measured = res["environment"], res["pages"]
    fp95 = ((measured.get("floor") or {}).get("latency") or {}).get("p95_ms")
    head = (f"{'page':<34} {'req/s':>7} {'p50':>6} {'p95':>6} {'p99':>6} {'max':>6} {'p95/floor':>9} {'err':>4}  "
            + " ".join(f"{c:>8}" for c, _ in COLUMNS) + "  goal p95 <= 100 ms")
    line = "-" * len(head)
    out = [line, "Forum ouvert — pages under load", line,
           f"{env['readers']} readers per page" + (f" (each pausing {env['think']:g} s on average between pages)"
                                                    if env.get("think") else " (back to back)")
           + f", {env['seconds']:g} s each; anonymous pages kept {env.get('page_cache_seconds', 0):g} s by the web front"
           f"; database {env['database']}, {env['cpus']} CPUs; "
           f"load average before {env['load_before']}, after {env.get('load_after', '?')}",
           *textwrap.wrap(f"seeded: {env['seeded']}", len(head)),
           "latency in ms; CPU in ms per answer, by process (the CPU of the whole machine is shared: see the load "
           "average)", line, head]
    for name, r in measured.items():
        lat, cpu = r["latency"], r["cpu_ms_per_request"]
        p95 = lat["p95_ms"]
        goal = "" if name in ("floor", "charte") or p95 is None else ("ok" if p95 <= GOAL_P95_MS else "over")
        cells = [f"{r['per_second']:7.1f}", *(f"{fmt(lat[k], '', 0):>6}" for k in ("p50_ms", "p95_ms", "p99_ms",
                                                                                    "max_ms")),
                 f"{(p95 / fp95 if fp95 and p95 else 0):9.1f}", f"{sum(r['errors'].values()):4d}"]
        cpus = " ".join(f"{sum(cpu.get(k, 0.0) for k in keys):8.1f}" for _, keys in COLUMNS)
        out.append(f"{r['what'][:34]:<34} {' '.join(cells)}  {cpus}  {goal}")
    out.append(line)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pages", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", type=int, default=20_000)
    p.add_argument("--sessions", type=int, default=2_000)
    p.add_argument("--decisions", type=int, default=10_000)
    p.add_argument("--readers", type=int, default=50, help="concurrent readers per page (default 50)")
    p.add_argument("--seconds", type=float, default=10, help="measured seconds per page (default 10)")
    p.add_argument("--warmup", type=float, default=2, help="seconds per page before measuring (default 2)")
    p.add_argument("--think", type=float, default=0.0,
                   help="mean seconds each reader pauses between two pages (default 0: back to back, the "
                        "saturation load; 1 = 50 readers asking about 50 pages/s)")
    p.add_argument("--pages", default="", help="comma-separated names (default all; the floor always runs): "
                   "charte,sessions,sessions-past,decisions,decisions-last,decision,votes,minutes,record,members,"
                   "members-all")
    p.add_argument("--db", choices=("auto", "sqlite", "postgresql"), default="auto")
    p.add_argument("--page-cache-seconds", type=float, default=None,
                   help="the web front's FORUM_PAGE_CACHE_SECONDS (default: the product's, 1 s); 0 makes every "
                        "anonymous page anew, to measure what making one costs")
    p.add_argument("--no-profile", action="store_true", help="skip the py-spy pass")
    p.add_argument("--profile-seconds", type=float, default=4, help="seconds per page in the py-spy pass")
    p.add_argument("--py-spy", default="py-spy", help="path to py-spy (pip install py-spy)")
    p.add_argument("--keep-data", action="store_true")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    if shutil.which(args.py_spy) is None and (Path(sys.executable).parent / "py-spy").exists():
        args.py_spy = str(Path(sys.executable).parent / "py-spy")

    from forum_ouvert.cli import _create_secretariat
    from forum_ouvert.launcher import MAILCATCHER, WEB, Stack

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    data_dir = Path(tempfile.mkdtemp(prefix="forum-bench-pages-"))
    v = Volumes(args.members, args.sessions, args.decisions)
    db = databases(args.db, f"pages{uuid.uuid4().hex[:6]}")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt("SIGTERM")))
    env = {} if args.page_cache_seconds is None else {"FORUM_PAGE_CACHE_SECONDS": str(args.page_cache_seconds)}
    stack = Stack(data_dir, database_urls=db.urls, log_dir=data_dir / "logs", env=env)
    results: dict[str, Any] = {"started_at": stamp, "argv": sys.argv[1:] if argv is None else argv}
    print(f"database: {db.kind}; data in {data_dir}", flush=True)
    sampler = None
    try:
        stack.start_nats()
        stack.migrate()
        print(f"seeding {v.members:,} members, {v.sessions:,} sessions, {v.decisions:,} decisions…", flush=True)
        t = time.perf_counter()
        seeded = seed(stack.database_urls, v)
        asyncio.run(_create_secretariat(SECRETARIAT, "Secrétariat du forum", stack.database_urls["registry"]))
        steps = ", ".join(f"{k} {s:.1f} s" for k, s in seeded.seconds.items())
        print(f"seeded in {time.perf_counter() - t:.1f} s: {steps}", flush=True)
        stack.start_service(MAILCATCHER)
        for s in stack.services:
            stack.start_service(s)
        stack.start_service(WEB)
        stack.wait_ready(120)
        wait_checkpoint(stack, seeded.counts["ledger leaves"])
        cookie = secretariat_cookie(stack.web_url, stack.mail_dir)
        wanted = {x.strip() for x in args.pages.split(",") if x.strip()}
        todo = [pg for pg in pages(seeded, v) if not wanted or pg.name in wanted or pg.name == "floor"]
        with floor_processes(stack.nats_url, stack.database_urls["forum"], data_dir / "logs") as (floor_port, fpids):
            pids = {n: pr.pid for n, pr in stack.procs.items()} | fpids
            sampler = ResourceSampler(pids, interval=0.5, postgres_port=db.port)
            sampler.start()
            results["environment"] = {
                "database": db.kind, "cpus": os.cpu_count(), "readers": args.readers, "seconds": args.seconds,
                "think": args.think, "page_cache_seconds": 1.0 if args.page_cache_seconds is None
                else args.page_cache_seconds,
                "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                "seeded": ", ".join(f"{k} {n:,}" for k, n in seeded.counts.items())}
            ports = {"web": stack.web_port, "floor": floor_port}
            print("measuring:", flush=True)
            results["pages"] = measure(args, todo, ports, cookie, sampler)
            results["environment"]["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
            if not args.no_profile:
                print(f"profiling ({args.profile_seconds:g} s per page, py-spy on {', '.join(PROFILED)})…", flush=True)
                results["profiles"] = profile_pass(args, todo, ports, cookie, pids, args.results_dir, stamp)
    finally:
        if sampler:
            sampler.stop()
        stack.stop()
        with contextlib.suppress(Exception):
            db.drop()
        if any(r["errors"] for r in results.get("pages", {}).values()) or "pages" not in results:
            with contextlib.suppress(Exception):  # the evidence of a bad run
                shutil.copytree(data_dir / "logs", args.results_dir / f"pages-logs-{stamp}")
                print(f"the services' logs are kept in {args.results_dir / f'pages-logs-{stamp}'}")
        if not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(report(results))
    for name, r in results["pages"].items():
        for sample in r["error_samples"]:
            print(f"  error on {name}: {sample}")
    for name, path in results.get("profiles", {}).items():
        print(f"\n--- where {name} spends its CPU (py-spy pass)")
        print(summarise(Path(path), top=12))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"pages-{stamp}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {out}" + (f"; data kept in {data_dir}" if args.keep_data else ""))
    return 0 if all(not r["errors"] for r in results["pages"].values()) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: the stack was stopped", file=sys.stderr)
        sys.exit(130)
