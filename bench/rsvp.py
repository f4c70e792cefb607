"""The RSVP rush, the forum's hardest moment (a popular session opens its RSVPs): N approved members,
each signed in on the web front with their own cookie, press « Je participe » at once on a session of
S seats, through C concurrent HTTP clients.

Prints RSVPs/s, latency p50/p95/p99, the overbooking count (must be 0) and the waitlist order check, beside
the raw PostgreSQL (or SQLite) transaction rate and the raw NATS request/reply rate measured in the same run.

    .venv/bin/python -m bench.rsvp --members 600 --seats 150 --clients 200
    FORUM_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python -m bench.rsvp

Members are made for real (register, verification link, secretariat approval, sign-in link), which is
the slow part of the set-up (about 20-40 members/s here); only the rush itself is measured.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from faststream.nats import NatsBroker

from bench.raw import db_transactions, request_reply
from bench.registrations import choose_database
from bench.stats import fmt, latency_summary, rate, table
from forum_ouvert.launcher import Stack
from shared.rpc import RpcClient
from tests.web.test_web_sessions import Crowd, ForumDb, WebMember, create_session
from tests.support import drop_schemas


async def rush(args: argparse.Namespace, stack: Stack, db_kind: str, base_url: str | None) -> dict:
    import subprocess
    import sys

    email = "secretariat@bench.forum-ouvert.example"
    out = subprocess.run([sys.executable, "-m", "forum_ouvert.cli", "create-secretariat", email], check=True,
                         capture_output=True, text=True,
                         env={**__import__("os").environ, "FORUM_DATABASE_URL": stack.database_urls["registry"],
                              "FORUM_DATA_DIR": str(stack.data_dir)})
    secretariat_id = out.stdout.split("(id ", 1)[1].split(")", 1)[0]
    async with NatsBroker(stack.nats_url) as broker:
        rpc = RpcClient(broker, timeout=60)
        crowd = await Crowd(stack, rpc, secretariat_id, max_connections=args.clients).start()
        try:
            t = time.perf_counter()
            admin = WebMember(secretariat_id, email, "Secrétariat", None, crowd.client())  # type: ignore[arg-type]
            await crowd.sign_in(secretariat_id, email, admin.http)
            people = await crowd.members(args.members, concurrency=25)
            setup_s = time.perf_counter() - t
            session_id = await create_session(admin, capacity=str(args.seats))
            print(f"{len(people)} approved members signed in ({setup_s:.0f} s); rush on {args.seats} seats…",
                  flush=True)
            latencies: list[float] = []
            statuses: dict[int, int] = {}

            async def one(m: WebMember) -> None:
                t0 = time.perf_counter()
                r = await m.answer(session_id, "attend")
                latencies.append(time.perf_counter() - t0)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

            t0 = time.perf_counter()
            await asyncio.gather(*[one(m) for m in people])
            rush_s = time.perf_counter() - t0
            rows = ForumDb(stack).rsvps(session_id)
            confirmed = [r for r in rows if r.state == "confirmed"]
            waitlisted = sorted((r for r in rows if r.state == "waitlisted"), key=lambda r: r.waitlist_seq)
        finally:
            await crowd.close()
        raw_rr = await request_reply(stack.nats_url, requests=5000, concurrency=50)
    raw_db = await db_transactions(db_kind, postgres_url=base_url,
                                   sqlite_path=Path(tempfile.mkdtemp()) / "raw.db", transactions=3000, concurrency=50)
    ok = sum(n for s, n in statuses.items() if 200 <= s < 400)
    return {
        "members": len(people), "seats": args.seats, "clients": args.clients, "database": db_kind,
        "setup_seconds": setup_s, "rush_seconds": rush_s, "answered_2xx_3xx": ok, "statuses": statuses,
        "rsvps_per_second": rate(ok, rush_s), "latency": latency_summary(latencies),
        "confirmed": len(confirmed), "waitlisted": len(waitlisted),
        "overbooked": max(0, len(confirmed) - args.seats),
        "raw_nats_request_reply_per_second": raw_rr.per_second, "raw_db_tx_per_second": raw_db.per_second,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", type=int, default=600)
    p.add_argument("--seats", type=int, default=150)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--db", choices=["auto", "sqlite", "postgresql"], default="auto")
    args = p.parse_args(argv)
    data = Path(tempfile.mkdtemp(prefix="forum-bench-rsvp-"))
    choice = choose_database(args.db, data, f"rsvp_{int(time.time()) % 100000}")
    stack = Stack(data, database_urls=choice.urls, log_dir=data / "logs",
                  env={"FORUM_RATE_LIMIT_PER_MINUTE": "1000000", "FORUM_OUTBOX_POLL_INTERVAL": "0.5"})
    print(f"database: {choice.description}\nstarting the stack in {data}…", flush=True)
    try:
        stack.start()
        res = asyncio.run(rush(args, stack, choice.kind, choice.base_url))
    finally:
        stack.stop()
        if choice.urls and choice.kind == "postgresql":
            drop_schemas(choice.urls)
    lat = res["latency"]
    print(table([
        ("members / seats / concurrent clients", f"{res['members']} / {res['seats']} / {res['clients']}"),
        ("database", res["database"]),
        ("RSVPs answered (2xx/3xx) / statuses", f"{res['answered_2xx_3xx']} / {res['statuses']}"),
        ("rush wall time", fmt(res["rush_seconds"], " s", 2)),
        ("RSVPs/s through the web front", fmt(res["rsvps_per_second"], " /s")),
        ("latency p50 / p95 / p99 (ms)", " / ".join(fmt(lat.get(f"{k}_ms") or 0, "", 0) for k in ("p50", "p95", "p99"))),
        ("confirmed / waitlisted", f"{res['confirmed']} / {res['waitlisted']}"),
        ("OVERBOOKING (must be 0)", str(res["overbooked"])),
        ("raw NATS request/reply /s (same run)", fmt(res["raw_nats_request_reply_per_second"], " /s")),
        ("raw DB transactions /s (same run, 50 conns)", fmt(res["raw_db_tx_per_second"], " /s")),
        ("ratio RSVPs / raw DB tx", fmt((res["rsvps_per_second"] or 0) / (res["raw_db_tx_per_second"] or 1), "", 3)),
    ], title="RSVP rush through the web front"))
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rsvp-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json").write_text(json.dumps(res, indent=2))
    return 0 if res["overbooked"] == 0 and res["answered_2xx_3xx"] == res["members"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
