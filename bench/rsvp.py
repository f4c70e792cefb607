"""The RSVP rush, the forum's hardest moment (a popular session opens its RSVPs): N approved members, each
signed in on the web front with their own cookie, press « Je participe » on a session of S seats, through
C concurrent HTTP connections — beside the bare pipeline under it (bench/floor.py), measured in the same
run on the same NATS server and PostgreSQL, driven by the same load generator (bench/load.py) with the
same concurrency.

    bash bench/run.sh rsvp --members 600 --seats 150 --clients 200
    FORUM_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test bash bench/run.sh rsvp
    bash bench/run.sh rsvp --forum-instances 2 --web-instances 2     # and the rush with two of each
    bash bench/run.sh rsvp --profile                                 # py-spy summaries per process

Phases: members are made for real (bench/people.py: about 20-40 members/s, not measured); a warm-up rush
on a session of its own; then rush 1, the floor, rush 2 (for the memory check: no growth with requests
served), and with --forum-instances/--web-instances, a rush with that many processes (connections spread
over the web fronts' ports, RPCs over the services' queue group). Every rush is on a fresh session, and is
checked: 0 overbooking, every answer has its row, distinct tickets, arrival order (bench/rush_check.py),
and the waitlist position each member was told. Between phases the stack is left to finish the rush's
tail (the outbox, the consumers, the e-mails) until its processes are idle; that CPU is counted too.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.databases import DatabaseChoice, choose_database  # noqa: E402
from bench.floor import LOAD, rsvp_floor  # noqa: E402
from bench.load import LoadProcess, LoadResult, form_post  # noqa: E402
from bench.memory import POSTGRES, ResourceSampler  # noqa: E402
from bench.people import Member, People, forum_rows, session_data, wait_approved  # noqa: E402
from bench.profiling import Profilers, find_py_spy  # noqa: E402
from bench.rush_check import check_rush  # noqa: E402
from bench.stats import fmt, rate  # noqa: E402

RESULTS_DIR = REPO / "bench" / "results"
POSITION = re.compile(r"en position (\d+)")


# ---------------------------------------------------------------- one rush on the product
def answer_request(session_id: str, m: Member) -> Any:
    """What the session page's « Je participe » form posts (with its one-time request_id)."""
    return form_post(f"/seances/{session_id}/reponse",
                     {"csrf_token": m.csrf, "request_id": str(uuid.uuid4()), "answer": "attend"},
                     cookie=m.cookie_header)


def told_position(set_cookie: str | None) -> int | None:
    """The waitlist position in the flash message the answer's cookie carries."""
    if not set_cookie:
        return None
    try:
        value = set_cookie.split(";", 1)[0].split("=", 1)[1]
        flash = session_data(value).get("flash") or ["", ""]
    except (ValueError, IndexError, KeyError):
        return None
    m = POSITION.search(str(flash[1]))
    return int(m.group(1)) if m else None


async def jetstream_backlog(nats_url: str) -> int:
    """Messages waiting in, or delivered and not yet acked by, every durable consumer of every stream."""
    import nats

    nc = await nats.connect(nats_url, name="bench-backlog")
    try:
        js = nc.jetstream()
        total = 0
        for stream in await js.streams_info():
            for c in await js.consumers_info(stream.config.name):
                total += (c.num_pending or 0) + (c.num_ack_pending or 0)
        return total
    finally:
        await nc.close()


async def settle(stack: Any, sampler: ResourceSampler, quiet_cores: float = 0.3, quiet_for: float = 2.0,
                 max_seconds: float = 300) -> float:
    """Wait until the rush's tail is done — every JetStream consumer caught up (outbox relays published,
    consumers acked) and the stack's processes together under `quiet_cores` of CPU (idle services poll a
    little; the mail sender's work shows here) for `quiet_for` seconds. Returns the seconds waited."""
    t0 = time.monotonic()
    quiet_since = None
    last, backlog = sampler.cpu_snapshot(), -1
    while time.monotonic() - t0 < max_seconds:
        await asyncio.sleep(0.5)
        now = sampler.cpu_snapshot()
        used = sum(v for k, v in sampler.cpu_delta(last, now).items() if k != "bench-client")
        last = now
        backlog = await jetstream_backlog(stack.nats_url)
        if backlog == 0 and used < quiet_cores * 0.5:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= quiet_for:
                return time.monotonic() - t0
        else:
            quiet_since = None
    print(f"  (the stack was still busy after {max_seconds:.0f} s: {backlog} events not yet consumed)",
          file=sys.stderr)
    return time.monotonic() - t0


async def product_rush(stack: Any, sampler: ResourceSampler, people: list[Member], session_id: str, seats: int,
                       clients: int, ports: list[int], timeout: float, profilers: Profilers | None = None,
                       profile_procs: list[str] | None = None, tag: str = "") -> dict[str, Any]:
    gen = LoadProcess([answer_request(session_id, m) for m in people], ports, clients,
                      capture=("location", "set-cookie"), timeout=timeout)
    try:
        await gen.ready()
        cpu0, machine0 = sampler.cpu_snapshot(), sampler.machine_cpu()
        if profilers:
            profilers.start({n: p.pid for n, p in stack.procs.items() if n.split("-")[0] in (profile_procs or [])},
                            timeout * 2, tag=tag)
        res = await gen.run()
        cpu1, machine1 = sampler.cpu_snapshot(), sampler.machine_cpu()
        rss_end = sampler.current_mib()
    finally:
        if profilers:
            profilers.stop()
        gen.kill()
    tail = await settle(stack, sampler, max_seconds=timeout * 5)
    cpu2 = sampler.cpu_snapshot()
    rows = await asyncio.to_thread(forum_rows, stack.database_urls["forum"], session_id)
    ok = [res.status[i] == 303 and res.headers[i].get("location") == f"/seances/{session_id}"
          for i in range(len(people))]
    check = check_rush(members=[m.member_id for m in people], answered=ok, sent_at=res.sent_at,
                       answered_at=res.answered_at, rows=rows, seats=seats,
                       told_positions=[told_position(h.get("set-cookie")) for h in res.headers])
    n_ok = sum(ok)
    return {"what": "product", "members": len(people), "seats": seats, "clients": res.clients, "web_ports": ports,
            "answered": n_ok, "statuses": res.statuses(), "errors": res.errors[:10], "seconds": res.seconds,
            "per_second": rate(n_ok, res.seconds), "latency": res.latency_summary(), "check": check,
            **cpu_figures(sampler, cpu0, cpu1, cpu2, res, n_ok), "tail_seconds": round(tail, 1),
            "machine_cpu_busy_seconds": round(machine1[0] - machine0[0], 2),
            "machine_cpu_total_seconds": round(machine1[1] - machine0[1], 2),
            "rss_mib_end": rss_end, "rss_mib_settled": sampler.current_mib(), "reconnects": res.reconnects}


def cpu_figures(sampler: ResourceSampler, cpu0: dict[str, Any], cpu1: dict[str, Any], cpu2: dict[str, Any],
                res: LoadResult, n: int) -> dict[str, Any]:
    rush = {k: v for k, v in sampler.cpu_delta(cpu0, cpu1).items() if k != "bench-client"}
    whole = {k: v for k, v in sampler.cpu_delta(cpu0, cpu2).items() if k != "bench-client"}
    rush[LOAD] = whole[LOAD] = round(res.cpu_seconds, 2)
    per = max(1, n)
    return {"cpu_seconds": rush, "cpu_seconds_with_tail": whole,
            "cpu_ms_per_item": {k: round(v * 1000 / per, 2) for k, v in rush.items()},
            "cpu_ms_per_item_with_tail": {k: round(v * 1000 / per, 2) for k, v in whole.items()},
            "cpu_ms_per_item_total": round(sum(rush.values()) * 1000 / per, 2),
            "cpu_ms_per_item_total_with_tail": round(sum(whole.values()) * 1000 / per, 2)}


# ---------------------------------------------------------------- the run
async def run(args: argparse.Namespace, stack: Any, db: DatabaseChoice, sampler: ResourceSampler,
              profilers: Profilers | None, results: dict[str, Any]) -> None:
    forum_db = stack.database_urls["forum"]
    async with People(stack, concurrency=args.setup_concurrency) as maker:
        t = time.perf_counter()
        await maker.sign_in_secretariat()
        people = await maker.members(args.members)
        await wait_approved(forum_db, [m.member_id for m in people])
        results["setup_seconds"] = round(time.perf_counter() - t, 1)
        print(f"{len(people)} approved members signed in ({results['setup_seconds']:.0f} s)", flush=True)
        rushes = 2 + (1 if args.forum_instances > 1 or args.web_instances > 1 else 0)
        sessions = [await maker.create_session(args.seats) for _ in range(rushes)]
        warm = [await maker.create_session(max(1, args.warmup // 2)) for _ in range(rushes - 1)]

    async def warm_up(session_id: str, ports: list[int]) -> None:
        if args.warmup:
            gen = LoadProcess([answer_request(session_id, m) for m in people[:args.warmup]], ports,
                              min(args.clients, args.warmup), timeout=args.timeout)
            await gen.ready()
            await gen.run()

    ports = [stack.web_port]
    await warm_up(warm[0], ports)
    print("letting the stack finish the set-up's e-mails…", flush=True)
    await settle(stack, sampler, max_seconds=args.settle_timeout)
    results["rss_mib_rest"] = sampler.current_mib()
    results["rushes"] = []

    def say(r: dict[str, Any], label: str) -> None:
        c = r["check"]
        print(f"{label}: {fmt(r['per_second'], '/s')}, {r['answered']}/{r['members']} answered, "
              f"{c['confirmed']} confirmed, {c['waitlisted']} waitlisted, overbooked {c['overbooked']}, "
              f"order violations {c['order_violations']}", flush=True)

    print(f"rush 1: {args.members} members, {args.seats} seats, {args.clients} connections…", flush=True)
    r1 = await product_rush(stack, sampler, people, sessions[0], args.seats, args.clients, ports, args.timeout,
                            profilers, args.profile_procs, tag="rush1")
    r1["label"] = "rush 1 (1 of each)"
    say(r1, "rush 1")
    results["rushes"].append(r1)

    if db.kind == "postgresql" and not args.skip_floor:
        print("the floor, same servers, same generator, same concurrency…", flush=True)
        assert db.base_url is not None
        results["floor"] = await rsvp_floor(stack.nats_url, db.base_url, members=args.members, seats=args.seats,
                                            clients=args.clients, warmup=args.warmup, log_dir=stack.data_dir / "logs",
                                            postgres_port=db.port, profilers=profilers, timeout=args.timeout)
        say(results["floor"], "floor")
        await settle(stack, sampler, max_seconds=30)
    elif db.kind != "postgresql":
        results["floor_skipped"] = "the floor runs on PostgreSQL only (set FORUM_BENCH_DATABASE_URL)"

    print("rush 2 (same stack: memory after more requests served)…", flush=True)
    r2 = await product_rush(stack, sampler, people, sessions[1], args.seats, args.clients, ports, args.timeout)
    r2["label"] = "rush 2 (1 of each)"
    say(r2, "rush 2")
    results["rushes"].append(r2)

    if rushes == 3:
        added = [stack.add_instance("forum") for _ in range(args.forum_instances - 1)]
        added += [stack.add_instance("web") for _ in range(args.web_instances - 1)]
        for name in added:
            await asyncio.to_thread(stack.wait_instance, name)
            sampler.track(name, stack.procs[name].pid)
        ports = stack.web_ports
        print(f"started {', '.join(added)}; warm-up and rush 3 over web ports {ports}…", flush=True)
        await warm_up(warm[1], ports)
        await settle(stack, sampler, max_seconds=args.settle_timeout)
        r3 = await product_rush(stack, sampler, people, sessions[2], args.seats, args.clients, ports, args.timeout)
        r3["label"] = f"rush 3 ({args.forum_instances} forum, {args.web_instances} web)"
        say(r3, "rush 3")
        results["rushes"].append(r3)


# ---------------------------------------------------------------- output
def columns(rows: list[tuple[str, list[str]]], heads: list[str]) -> list[str]:
    """A label column and one right-aligned column per run."""
    width = max(len(r[0]) for r in rows)
    cols = [max(len(h), *(len(r[1][k]) for r in rows if r[1])) for k, h in enumerate(heads)]
    out = [" " * width + "  " + "  ".join(h.rjust(w) for h, w in zip(heads, cols, strict=True))]
    for label, values in rows:
        out.append(label if not values else
                   label.ljust(width) + "  " + "  ".join(v.rjust(w) for v, w in zip(values, cols, strict=True)))
    return out


def report(res: dict[str, Any]) -> str:
    env = res["environment"]
    floor = res.get("floor")
    runs = [*res["rushes"][:1], *([floor] if floor else []), *res["rushes"][1:]]
    heads = [r.get("label", "floor").split(" (")[0] + ("" if r is floor else f" ({r.get('label', '').split('(')[1]}")
             for r in runs]
    fs = floor.get("per_second") if floor else None

    def each(f: Any) -> list[str]:
        return [f(r) for r in runs]

    lat = lambda k: each(lambda r: fmt(r["latency"].get(k), "", 0))  # noqa: E731
    rows: list[tuple[str, list[str]]] = [
        ("RSVPs/s (answered ÷ time to the last answer)", each(lambda r: fmt(r["per_second"]))),
        ("product / floor, same run", each(lambda r: "—" if r is floor or not (fs and r["per_second"])
                                          else f"{r['per_second'] / fs:.1%}")),
        ("answered (303) / sent", each(lambda r: f"{r['answered']}/{r['members']}")),
        ("latency p50 (ms)", lat("p50_ms")), ("latency p95 (ms)", lat("p95_ms")),
        ("latency p99 (ms)", lat("p99_ms")), ("latency max (ms)", lat("max_ms")),
        ("confirmed / waitlisted", each(lambda r: f"{r['check']['confirmed']}/{r['check']['waitlisted']}")),
        ("OVERBOOKING (must be 0)", each(lambda r: str(r["check"]["overbooked"]))),
        ("arrival order violations (must be 0)", each(lambda r: str(r["check"]["order_violations"]))),
        ("  requests sent after some answer (checked)", each(lambda r: str(r["check"]["order_constrained_requests"]))),
        ("positions told ≠ ticket rank (must be 0)", each(lambda r: str(r["check"]["told_position_wrong"]))),
        ("answers without a row / duplicate tickets", each(
            lambda r: f"{r['check']['answered_without_row']}/{r['check']['duplicate_tickets']}")),
        ("CPU ms per RSVP, all processes, rush", each(lambda r: f"{r['cpu_ms_per_item_total']:.2f}")),
        ("  … with the tail until idle (outbox, e-mails)",
         each(lambda r: f"{r['cpu_ms_per_item_total_with_tail']:.2f}" if "cpu_ms_per_item_total_with_tail" in r
              else "—")),
        ("  tail: idle again after (s)", each(lambda r: f"{r['tail_seconds']:.1f}" if "tail_seconds" in r else "—")),
        ("CPU ms per RSVP by process: rush [with tail]", []),
    ]
    names: list[str] = []
    for r in runs:
        names += [n for n in sorted(r["cpu_seconds"], key=lambda n: -r["cpu_seconds"][n]) if n not in names]
    for name in names:
        rows.append((f"  {name}", each(lambda r: "" if name not in r["cpu_ms_per_item"] else
                                       f"{r['cpu_ms_per_item'][name]:.2f}" + (
                                           f" [{r['cpu_ms_per_item_with_tail'][name]:.2f}]"
                                           if name in r.get("cpu_ms_per_item_with_tail", {}) else ""))))
    rushes, rest = res["rushes"], res.get("rss_mib_rest", {})
    r1, r2 = rushes[0], rushes[min(1, len(rushes) - 1)]
    mem: list[tuple[str, list[str]]] = []
    extra = set(rushes[2]["rss_mib_end"]) if len(rushes) > 2 else set()
    for name in sorted(set(rest) | set(r1["rss_mib_end"]) | extra | set((floor or {}).get("rss_mib_end", {}))):
        if name in (POSTGRES, "bench-client"):
            continue
        s1, s2 = r1["rss_mib_settled"].get(name), r2["rss_mib_settled"].get(name)
        mem.append((f"  {name}", [fmt(rest.get(name)), fmt(r1["rss_mib_end"].get(name)),
                                  fmt(r2["rss_mib_end"].get(name)),
                                  f"{s2 - s1:+.1f}" if s1 is not None and s2 is not None else "—",
                                  fmt(rushes[2]["rss_mib_end"].get(name)) if len(rushes) > 2 else "—",
                                  fmt((floor or {}).get("rss_mib_end", {}).get(name)) if floor else "—"]))
    line = "-" * 100
    out = [line, "Forum ouvert — RSVP rush benchmark", line,
           f"{env['members']} members, {env['seats']} seats, {env['clients']} connections, database {env['database']}, "
           f"{env['cpus']} CPUs, load average at start {env['load_avg_at_start']}", ""]
    out += columns(rows, heads)
    out += ["", "RSS (MiB, children included)"]
    out += columns(mem, ["at rest", "end rush 1", "end rush 2", "growth 1→2", "end rush 3", "floor end"])
    if len(rushes) > 2:
        a, b = rushes[1], rushes[2]
        out += ["", f"Scale-out: {fmt(a['per_second'], '/s')} with one of each, {fmt(b['per_second'], '/s')} with "
                    f"{env['forum_instances']} forum and {env['web_instances']} web "
                    f"({(b['per_second'] or 0) / (a['per_second'] or 1):.2f}×); correct in both: "
                    f"{a['check']['ok'] and b['check']['ok']}"]
    out.append(line)
    return "\n".join(out)


def environment(args: argparse.Namespace, db: DatabaseChoice) -> dict[str, Any]:
    import platform

    from shared.settings import Settings

    s = Settings()
    return {"members": args.members, "seats": args.seats, "clients": args.clients, "warmup": args.warmup,
            "database": db.kind, "database_description": db.description, "cpus": os.cpu_count(),
            "load_avg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()), "python": platform.python_version(),
            "forum_instances": args.forum_instances, "web_instances": args.web_instances,
            "settings": {"rpc_workers": s.rpc_workers, "db_pool_size": s.db_pool_size, "rpc_timeout": s.rpc_timeout}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bash bench/run.sh rsvp", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", type=int, default=600, help="members answering in each rush (default 600)")
    p.add_argument("--seats", type=int, default=150, help="seats of each rush's session (default 150)")
    p.add_argument("--clients", type=int, default=200, help="concurrent HTTP connections (default 200)")
    p.add_argument("--warmup", type=int, default=50, help="members answering a warm-up session first (default 50)")
    p.add_argument("--db", choices=("auto", "sqlite", "postgresql"), default="auto")
    p.add_argument("--forum-instances", type=int, default=1, help="forum processes in the scale-out rush")
    p.add_argument("--web-instances", type=int, default=1, help="web fronts in the scale-out rush")
    p.add_argument("--skip-floor", action="store_true", help="do not measure the floor")
    p.add_argument("--setup-concurrency", type=int, default=25, help="members made at once (default 25)")
    p.add_argument("--timeout", type=float, default=120, help="seconds before one request counts as failed")
    p.add_argument("--settle-timeout", type=float, default=300,
                   help="at most this long waiting for the stack to be idle between phases (default 300)")
    p.add_argument("--profile", nargs="?", const="py-spy", default=None, metavar="PY_SPY",
                   help="py-spy profiles of rush 1 and of the floor, summarised per process")
    p.add_argument("--profile-procs", default="web,forum,registry,notifications")
    p.add_argument("--keep-data", action="store_true")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    if min(args.members, args.seats, args.clients, args.forum_instances, args.web_instances) < 1:
        p.error("--members, --seats, --clients and the instances must be positive")
    args.warmup = min(args.warmup, args.members)
    args.profile_procs = [x.strip() for x in args.profile_procs.split(",") if x.strip()]

    from forum_ouvert.launcher import Stack

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    data = Path(tempfile.mkdtemp(prefix="forum-bench-rsvp-"))
    db = choose_database(args.db, data, f"rsvp_{uuid.uuid4().hex[:6]}")
    if db.kind == "sqlite" and args.forum_instances > 1:
        shutil.rmtree(data, ignore_errors=True)
        p.error("several forum processes need PostgreSQL (on SQLite the seat lock is per process): "
                "set FORUM_BENCH_DATABASE_URL")
    profilers = Profilers(find_py_spy(args.profile), args.results_dir, "raw", stamp) if args.profile else None
    stack = Stack(data, database_urls=db.urls, log_dir=data / "logs", env={"FORUM_RATE_LIMIT_PER_MINUTE": "1000000"})
    print(f"database: {db.description}\nstarting the stack in {data}…", flush=True)
    results: dict[str, Any] = {"started_at": stamp, "argv": sys.argv[1:] if argv is None else argv,
                               "environment": environment(args, db)}
    sampler: ResourceSampler | None = None

    def on_sigterm(*_: object) -> None:
        raise KeyboardInterrupt("SIGTERM")  # so that the finally below stops the stack

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        stack.start()
        sampler = ResourceSampler({n: p.pid for n, p in stack.procs.items()}, interval=0.2, postgres_port=db.port)
        sampler.start()
        asyncio.run(run(args, stack, db, sampler, profilers, results))
    finally:
        if sampler:
            sampler.stop()
        stack.stop()
        with contextlib.suppress(Exception):
            db.cleanup()
        if args.keep_data:
            print(f"data kept in {data}")
        else:
            shutil.rmtree(data, ignore_errors=True)
    print(report(results))
    for r in [*results["rushes"], results.get("floor") or {}]:
        for e in r.get("errors", [])[:5]:
            print("  error: " + e[:240])
        for e in r.get("check", {}).get("order_examples", []):
            print("  order: " + e)
    if results.get("floor_skipped"):
        print(results["floor_skipped"])
    if profilers:
        for name, text in profilers.summaries().items():
            print(f"\n== profile: {name}\n{text}")
        results["profiles"] = profilers.outputs
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"rsvp-{stamp}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {out}")
    good = all(r["check"]["ok"] and r["answered"] == r["members"] for r in results["rushes"])
    return 0 if good else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: the stack was stopped", file=sys.stderr)
        sys.exit(130)
