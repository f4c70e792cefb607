"""The bare pipelines the product is compared with, written as thin as they can be: each piece is a
process of its own, as the product's are (see bench/floor.py, which starts and drives them).

    python -m bench.floor_services web --kind rsvp|registration --nats URL --prefix P --port N
    python -m bench.floor_services rsvp --nats URL --pg URL --schema S --prefix P
    python -m bench.floor_services registry --nats URL --pg URL --schema S --prefix P   (+ the outbox relay)
    python -m bench.floor_services mailer --nats URL --pg URL --schema S --prefix P --smtp-port N

- web: FastAPI on uvicorn (one process, the product's uvicorn settings): reads the form and the cookie,
  checks the CSRF token against the cookie, makes one NATS request, answers 303.
- rsvp: a NATS responder; ONE psycopg transaction per request: `SELECT … FOR UPDATE` of the session row
  (which keeps its counters), INSERT the RSVP, UPDATE the counters, INSERT an outbox row, COMMIT; replies.
- registry: a NATS responder; ONE transaction per request (member + outbox row); then a relay in the same
  process publishes the outbox rows to JetStream (Nats-Msg-Id = the event id) and marks them sent.
- mailer: a durable JetStream pull consumer; per event ONE transaction (inbox row + mail row), then the
  e-mail by SMTP on a pool of kept-open connections, then the ack.

Concurrency mirrors the product's defaults (shared.settings): `rpc_workers` handlers per responder,
`db_pool_size` database connections per process, `mail_connections` SMTP connections.
Every process answers `<prefix>.ping.<role>` once ready; the mailer answers `<prefix>.count` with the
number of e-mails the SMTP server accepted.
"""
from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import nats
from fastapi import FastAPI, Request, Response  # module level: the routes' annotations are resolved here

NO_TELEMETRY: Any = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
"""FastAPI's OpenTelemetry hooks off, as in the web front (`services.web.app.NO_TELEMETRY`)."""

OUTBOX_SCHEMA = """
CREATE TABLE floor_outbox (id bigserial PRIMARY KEY, event_id text NOT NULL, subject text NOT NULL,
                           payload text NOT NULL, sent_at timestamptz);
CREATE INDEX floor_outbox_unsent ON floor_outbox (id) WHERE sent_at IS NULL;
"""
RSVP_SCHEMA = """
CREATE TABLE floor_session (id text PRIMARY KEY, capacity int NOT NULL, confirmed int NOT NULL DEFAULT 0,
                            waitlist_seq int NOT NULL DEFAULT 0);
CREATE TABLE floor_rsvp (session_id text NOT NULL REFERENCES floor_session(id), member_id text NOT NULL,
                         state text NOT NULL, waitlist_seq int, responded_at timestamptz NOT NULL DEFAULT now(),
                         PRIMARY KEY (session_id, member_id));
""" + OUTBOX_SCHEMA
REGISTRATION_SCHEMA = """
CREATE TABLE floor_member (id text PRIMARY KEY, full_name text NOT NULL, email text NOT NULL UNIQUE,
                           organisation text NOT NULL, college text NOT NULL, token text NOT NULL,
                           created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE floor_inbox (event_id text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());
CREATE TABLE floor_mail (event_id text PRIMARY KEY, recipient text NOT NULL, sent_at timestamptz);
""" + OUTBOX_SCHEMA


# ---------------------------------------------------------------- helpers
class Pool:
    """Up to `size` psycopg connections, opened on demand as SQLAlchemy's pool does (no pool library:
    nothing more than a queue). `async with pool.connection() as conn:`"""

    def __init__(self, url: str, schema: str, size: int) -> None:
        self.url, self.schema, self.size = url, schema, size
        self.free: asyncio.Queue[Any] = asyncio.Queue()
        self.opened = 0

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        import psycopg

        if self.free.empty() and self.opened < self.size:
            self.opened += 1
            try:
                conn = await psycopg.AsyncConnection.connect(self.url, options=f"-csearch_path={self.schema}")
            except BaseException:
                self.opened -= 1
                raise
        else:
            conn = await self.free.get()
        try:
            yield conn
        finally:
            self.free.put_nowait(conn)


class Responder:
    """Handles `subject` requests concurrently, at most `workers` at a time (FastStream's max_workers)."""

    def __init__(self, nc: Any, workers: int, handle: Any) -> None:
        self.nc = nc
        self.gate = asyncio.Semaphore(workers)
        self.handle = handle
        self.tasks: set[asyncio.Task[None]] = set()

    async def _one(self, msg: Any) -> None:
        try:
            reply = await self.handle(json.loads(msg.data))
        except Exception as exc:  # noqa: BLE001 - a typed error reply, never a hang
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            self.gate.release()
        await msg.respond(json.dumps(reply).encode())

    async def on_message(self, msg: Any) -> None:
        await self.gate.acquire()
        task = asyncio.create_task(self._one(msg))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


async def answer_pings(nc: Any, prefix: str, role: str, extra: Any = None) -> None:
    async def ping(msg: Any) -> None:
        await msg.respond(json.dumps({"ok": True, **(extra() if extra else {})}).encode())

    await nc.subscribe(f"{prefix}.ping.{role}", cb=ping)


def settings() -> Any:
    from shared.settings import Settings

    return Settings()


# ---------------------------------------------------------------- rsvp: one transaction under the row lock
async def rsvp_transaction(pool: Pool, req: dict[str, Any]) -> dict[str, Any]:
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute("SELECT capacity, confirmed, waitlist_seq FROM floor_session WHERE id = %s "
                                 "FOR UPDATE", (req["session_id"],))
        row = await cur.fetchone()
        if row is None:
            return {"ok": False, "error": "séance inconnue"}
        capacity, confirmed, seq = row
        if confirmed < capacity:
            state, ticket, position, confirmed = "confirmed", None, None, confirmed + 1
        else:
            seq += 1
            state, ticket, position = "waitlisted", seq, seq  # no withdrawals here: ticket = position
        await conn.execute("INSERT INTO floor_rsvp (session_id, member_id, state, waitlist_seq) "
                           "VALUES (%s, %s, %s, %s)", (req["session_id"], req["member_id"], state, ticket))
        await conn.execute("UPDATE floor_session SET confirmed = %s, waitlist_seq = %s WHERE id = %s",
                           (confirmed, seq, req["session_id"]))
        event_id = str(uuid.uuid4())
        await conn.execute("INSERT INTO floor_outbox (event_id, subject, payload) VALUES (%s, %s, %s)",
                           (event_id, f"forum.rsvp.{state}", json.dumps(
                               {"event_id": event_id, "session_id": req["session_id"],
                                "member_id": req["member_id"], "position": position})))
    return {"ok": True, "state": state, "position": position}


async def serve_rsvp(args: argparse.Namespace) -> None:
    s = settings()
    pool = Pool(args.pg, args.schema, s.db_pool_size)
    nc = await nats.connect(args.nats, name="floor-rsvp")
    responder = Responder(nc, s.rpc_workers, lambda req: rsvp_transaction(pool, req))
    await nc.subscribe(f"{args.prefix}.rsvp", queue="floor-rsvp", cb=responder.on_message)
    await answer_pings(nc, args.prefix, "rsvp")
    await asyncio.Event().wait()


# ---------------------------------------------------------------- registration: member + outbox, relay
class Relay:
    """Publishes outbox rows to JetStream and marks them sent; woken by each commit, else every second."""

    def __init__(self, conn: Any, js: Any) -> None:
        self.conn, self.js = conn, js
        self.wake = asyncio.Event()
        self.published = 0

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), 1.0)
            except TimeoutError:
                pass
            self.wake.clear()
            while True:
                cur = await self.conn.execute("SELECT id, event_id, subject, payload FROM floor_outbox "
                                              "WHERE sent_at IS NULL ORDER BY id LIMIT 500")
                rows = await cur.fetchall()
                if not rows:
                    break
                await asyncio.gather(*[self.js.publish(subject, payload.encode(), headers={"Nats-Msg-Id": event_id})
                                       for _, event_id, subject, payload in rows])
                await self.conn.execute("UPDATE floor_outbox SET sent_at = now() WHERE id = ANY(%s)",
                                        ([r[0] for r in rows],))
                self.published += len(rows)


async def register_transaction(pool: Pool, relay: Relay, prefix: str, req: dict[str, Any]) -> dict[str, Any]:
    member_id, event_id, token = str(uuid.uuid4()), str(uuid.uuid4()), uuid.uuid4().hex
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("INSERT INTO floor_member (id, full_name, email, organisation, college, token) "
                           "VALUES (%s, %s, %s, %s, %s, %s)",
                           (member_id, req["full_name"], req["email"], req["organisation"], req["college"], token))
        await conn.execute("INSERT INTO floor_outbox (event_id, subject, payload) VALUES (%s, %s, %s)",
                           (event_id, f"{prefix}.registered", json.dumps(
                               {"event_id": event_id, "member_id": member_id, "email": req["email"],
                                "full_name": req["full_name"], "token": token})))
    relay.wake.set()
    return {"ok": True, "member_id": member_id}


async def serve_registry(args: argparse.Namespace) -> None:
    import psycopg

    s = settings()
    pool = Pool(args.pg, args.schema, s.db_pool_size)
    nc = await nats.connect(args.nats, name="floor-registry")
    relay = Relay(await psycopg.AsyncConnection.connect(args.pg, autocommit=True, options=f"-csearch_path={args.schema}"),
                  nc.jetstream())
    relay_task = asyncio.create_task(relay.run())
    responder = Responder(nc, s.rpc_workers, lambda req: register_transaction(pool, relay, args.prefix, req))
    await nc.subscribe(f"{args.prefix}.register", queue="floor-registry", cb=responder.on_message)
    await answer_pings(nc, args.prefix, "registry", lambda: {"published": relay.published})
    await relay_task


# ---------------------------------------------------------------- mailer: one transaction, then SMTP
def message_bytes(ev: dict[str, Any]) -> bytes:
    from email.utils import formatdate

    return (f"From: Forum ouvert <ne-pas-repondre@forum-ouvert.example>\r\nTo: {ev['email']}\r\n"
            f"Subject: =?utf-8?q?Confirmez_votre_adresse?=\r\nDate: {formatdate(usegmt=True)}\r\n"
            f"Message-ID: <{ev['event_id']}@floor.forum-ouvert.example>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            f"Bonjour {ev['full_name']},\r\n\r\nConfirmez votre adresse : "
            f"http://127.0.0.1/inscription/verifier?token={ev['token']}\r\n").encode()


async def serve_mailer(args: argparse.Namespace) -> None:
    import aiosmtplib

    s = settings()
    pool = Pool(args.pg, args.schema, s.db_pool_size)
    smtp: asyncio.Queue[Any] = asyncio.Queue()
    for _ in range(s.mail_connections):
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=args.smtp_port, start_tls=False, use_tls=False)
        await client.connect()
        smtp.put_nowait(client)
    nc = await nats.connect(args.nats, name="floor-mailer")
    js = nc.jetstream()
    sub = await js.pull_subscribe(f"{args.prefix}.registered", durable="floor-mailer", stream=args.stream)
    sent = 0
    gate = asyncio.Semaphore(s.mail_connections)
    tasks: set[asyncio.Task[None]] = set()

    async def one(msg: Any) -> None:
        nonlocal sent
        try:
            ev = json.loads(msg.data)
            async with pool.connection() as conn, conn.transaction():
                cur = await conn.execute("INSERT INTO floor_inbox (event_id) VALUES (%s) ON CONFLICT DO NOTHING",
                                         (ev["event_id"],))
                fresh = cur.rowcount == 1
                if fresh:
                    await conn.execute("INSERT INTO floor_mail (event_id, recipient) VALUES (%s, %s)",
                                       (ev["event_id"], ev["email"]))
            if fresh:
                client = await smtp.get()
                try:
                    await client.sendmail("ne-pas-repondre@forum-ouvert.example", [ev["email"]], message_bytes(ev))
                finally:
                    smtp.put_nowait(client)
                sent += 1
            await msg.ack()
        finally:
            gate.release()

    async def count(msg: Any) -> None:
        await msg.respond(json.dumps({"sent": sent}).encode())

    await nc.subscribe(f"{args.prefix}.count", cb=count)
    await answer_pings(nc, args.prefix, "mailer")
    while True:
        try:
            msgs = await sub.fetch(batch=64, timeout=1.0)
        except nats.errors.TimeoutError:
            continue
        for msg in msgs:
            await gate.acquire()
            task = asyncio.create_task(one(msg))
            tasks.add(task)
            task.add_done_callback(tasks.discard)


# ---------------------------------------------------------------- web: HTTP form -> NATS request -> 303
def web_app(kind: str, nats_url: str, prefix: str) -> Any:
    from contextlib import asynccontextmanager

    from fastapi.responses import PlainTextResponse, RedirectResponse

    conn: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # noqa: ANN202
        conn["nc"] = await nats.connect(nats_url, name=f"floor-web-{kind}")
        yield
        await conn["nc"].drain()

    app = FastAPI(lifespan=lifespan, telemetry=NO_TELEMETRY)

    def csrf_ok(request: Request, form: Any) -> bool:
        token = request.cookies.get("floor_csrf", "")
        return bool(token) and hmac.compare_digest(str(form.get("csrf_token", "")).encode(), token.encode())

    async def ask(subject: str, body: dict[str, Any]) -> dict[str, Any]:
        msg = await conn["nc"].request(subject, json.dumps(body).encode(), timeout=30)
        return json.loads(msg.data)

    if kind == "rsvp":
        @app.post("/seances/{session_id}/reponse")
        async def answer(request: Request, session_id: str) -> Response:
            form = await request.form()
            member = request.cookies.get("floor_member", "")
            if not member or not csrf_ok(request, form):
                return PlainTextResponse("Jeton de formulaire invalide.", status_code=403)
            reply = await ask(f"{prefix}.rsvp", {"session_id": session_id, "member_id": member,
                                                 "answer": str(form.get("answer", ""))})
            if not reply.get("ok"):
                return PlainTextResponse(reply.get("error", "refusé"), status_code=409)
            return RedirectResponse(f"/seances/{session_id}?etat={reply['state']}&position={reply['position'] or ''}",
                                    status_code=303)
    else:
        @app.post("/inscription")
        async def register(request: Request) -> Response:
            form = await request.form()
            if not csrf_ok(request, form):
                return PlainTextResponse("Jeton de formulaire invalide.", status_code=403)
            reply = await ask(f"{prefix}.register", {k: str(form.get(k, "")) for k in
                                                    ("full_name", "email", "organisation", "college")})
            if not reply.get("ok"):
                return PlainTextResponse(reply.get("error", "refusé"), status_code=409)
            return RedirectResponse("/inscription/merci", status_code=303)
    return app


def serve_web(args: argparse.Namespace) -> None:
    import uvicorn

    uvicorn.run(web_app(args.kind, args.nats, args.prefix), host="127.0.0.1", port=args.port,
                log_level="warning", proxy_headers=False, access_log=False)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.floor_services")
    p.add_argument("role", choices=("web", "rsvp", "registry", "mailer"))
    p.add_argument("--nats", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--pg")
    p.add_argument("--schema")
    p.add_argument("--kind", choices=("rsvp", "registration"))
    p.add_argument("--port", type=int)
    p.add_argument("--smtp-port", type=int)
    p.add_argument("--stream")
    args = p.parse_args(argv)
    from shared.gc_tuning import settle_after_start

    settle_after_start()  # the product's processes' collector settings, once their code is loaded
    if args.role == "web":
        serve_web(args)
        return
    run = {"rsvp": serve_rsvp, "registry": serve_registry, "mailer": serve_mailer}[args.role]
    import uvloop

    try:
        uvloop.run(run(args))  # the services' event loop (uvicorn picks it, and httptools, for the web role)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
