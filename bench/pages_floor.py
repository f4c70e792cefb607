"""The floor under a list page, for `bench/pages.py`: the same pipeline as the product with nothing on it.

    python -m bench.pages_floor responder --nats nats://… --database-url postgresql+psycopg://…
    python -m bench.pages_floor web --nats nats://… --port 8123

`web` is a FastAPI app on uvicorn (one process, the web front's settings) whose one route `GET /floor`
sends one NATS request and writes the rows it gets back as a small HTML list. `responder` (another
process, as a service is) answers that request with one indexed SELECT — the first page of the decision
register, 20 rows — through an SQLAlchemy async engine made as the services make theirs
(`shared.db.make_engine`), and replies with the rows as JSON; at most 16 requests at once, like a service's
`rpc_workers`. What the product adds on top of this (several queries per page, pydantic contracts, the
service framework, the session cookie, Jinja templates) is what the ratio to the floor measures.
"""
from __future__ import annotations

import argparse
import asyncio
import html
import json

SUBJECT = "benchfloor.page"
SQL = ("SELECT id, number, title, outcome, recorded_at FROM forum_decision WHERE superseded_by IS NULL "
       "ORDER BY recorded_at DESC, number DESC LIMIT 20")


async def responder(nats_url: str, database_url: str, workers: int = 16) -> None:
    import nats
    from sqlalchemy import text

    from shared.db import make_engine

    engine = make_engine(database_url)
    query = text(SQL)
    slots = asyncio.Semaphore(workers)
    nc = await nats.connect(nats_url, name="bench-floor-responder")

    async def answer(msg: object) -> None:
        async with slots:
            async with engine.connect() as conn:
                rows = (await conn.execute(query)).all()
            body = json.dumps([[r.id, r.number, r.title, r.outcome, r.recorded_at.isoformat()] for r in rows])
            await msg.respond(body.encode())  # type: ignore[attr-defined]

    tasks: set[asyncio.Task[None]] = set()

    async def on_message(msg: object) -> None:  # nats-py awaits callbacks one by one: answer in tasks
        task = asyncio.create_task(answer(msg))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    await nc.subscribe(SUBJECT, queue="floor", cb=on_message)
    await asyncio.Event().wait()


def web_app(nats_url: str):  # noqa: ANN201 - a FastAPI app
    from contextlib import asynccontextmanager

    import nats
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    from bench.floor_services import NO_TELEMETRY

    state: dict[str, object] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # noqa: ANN202
        state["nc"] = await nats.connect(nats_url, name="bench-floor-web")
        yield
        await state["nc"].close()  # type: ignore[attr-defined]

    app = FastAPI(lifespan=lifespan, telemetry=NO_TELEMETRY)

    @app.get("/floor")
    async def floor() -> HTMLResponse:
        msg = await state["nc"].request(SUBJECT, b"{}", timeout=5)  # type: ignore[attr-defined]
        items = "".join(f"<li><a href=\"/decisions/{html.escape(i)}\">{html.escape(n)} — {html.escape(t)}</a> "
                        f"({html.escape(o)}, {html.escape(at)})</li>" for i, n, t, o, at in json.loads(msg.data))
        return HTMLResponse(f"<!doctype html><html lang=\"fr\"><head><title>Décisions</title></head><body><main>"
                            f"<h1>Registre des décisions</h1><ul>{items}</ul></main></body></html>")

    return app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.pages_floor")
    p.add_argument("role", choices=("responder", "web"))
    p.add_argument("--nats", required=True)
    p.add_argument("--database-url")
    p.add_argument("--port", type=int, default=8123)
    args = p.parse_args(argv)
    from shared.gc_tuning import settle_after_start

    settle_after_start()  # the product's processes' collector settings, once their code is loaded
    if args.role == "responder":
        import uvloop

        uvloop.run(responder(args.nats, args.database_url))  # the services' event loop
        return
    import uvicorn

    uvicorn.run(web_app(args.nats), host="127.0.0.1", port=args.port, log_level="warning", proxy_headers=False,
                access_log=False)


if __name__ == "__main__":
    main()
