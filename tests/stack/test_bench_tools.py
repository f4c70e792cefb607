"""The benchmarks' own verdicts: `bench.rush_check` (is an RSVP rush correct?) and `bench.load` (the load
generator sends each request exactly once, reopens a connection the server closed, and
never re-sends a request whose connection failed after it was written), against a real HTTP server."""
from __future__ import annotations

import asyncio

from bench.load import form_post, run_load
from bench.rush_check import check_rush

MEMBERS = ["a", "b", "c", "d", "e"]
ANSWERED = [True] * 5
SENT = [0.0, 1.0, 2.0, 3.0, 4.0]  # one after the other: each was sent after the previous answer
ANSWER = [0.5, 1.5, 2.5, 3.5, 4.5]


def check(rows: list[tuple[str, str, int | None]], told: list[int | None] | None = None, seats: int = 3) -> dict:
    return check_rush(members=MEMBERS, answered=ANSWERED, sent_at=SENT, answered_at=ANSWER, rows=rows, seats=seats,
                      told_positions=told)


def test_a_correct_rush_passes() -> None:
    rows = [("a", "confirmed", None), ("b", "confirmed", None), ("c", "confirmed", None),
            ("d", "waitlisted", 1), ("e", "waitlisted", 2)]
    c = check(rows, told=[None, None, None, 1, 2])
    assert c["ok"] and c["overbooked"] == 0 and c["order_violations"] == 0 and c["order_constrained_requests"] == 4


def test_overbooking_order_duplicates_and_told_positions_are_caught() -> None:
    over = check([(m, "confirmed", None) for m in MEMBERS])
    assert not over["ok"] and over["overbooked"] == 2
    # d answered first but waits behind e; and e's seat went to a later request than c's wait
    late = check([("a", "confirmed", None), ("b", "confirmed", None), ("c", "waitlisted", 2),
                  ("d", "confirmed", None), ("e", "waitlisted", 1)])
    assert not late["ok"] and late["order_violations"] == 2
    dup = check([("a", "confirmed", None), ("b", "confirmed", None), ("c", "confirmed", None),
                 ("d", "waitlisted", 1), ("e", "waitlisted", 1)])
    assert not dup["ok"] and dup["duplicate_tickets"] == 1
    told = check([("a", "confirmed", None), ("b", "confirmed", None), ("c", "confirmed", None),
                  ("d", "waitlisted", 1), ("e", "waitlisted", 2)], told=[None, None, None, 2, 1])
    assert not told["ok"] and told["told_position_wrong"] == 2
    missing = check([("a", "confirmed", None)], seats=3)
    assert not missing["ok"] and missing["answered_without_row"] == 4
    # requests in flight together may reach the lock in any order: not a violation
    together = check_rush(members=["a", "b"], answered=[True, True], sent_at=[0.0, 0.1], answered_at=[1.0, 1.1],
                          rows=[("a", "waitlisted", 2), ("b", "waitlisted", 1)], seats=0)
    assert together["ok"]


async def test_the_load_generator_sends_each_request_once_and_reopens_closed_connections() -> None:
    """A server that closes the connection after every second answer, and answers request #7 by closing
    the connection without a response: every other request is answered once, #7 is not re-sent."""
    seen: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                body = await reader.readexactly(length)
                path = head.split(b" ")[1].decode()
                seen.append(path)
                if path == "/r/7":
                    break
                answered += 1
                close = answered == 2
                writer.write(b"HTTP/1.1 303 See Other\r\nLocation: /done" + path.encode() + b"\r\nContent-Length: 2\r\n"
                             + (b"Connection: close\r\n" if close else b"") + b"\r\n" + body[:2])
                await writer.drain()
                if close:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        res = await run_load([form_post(f"/r/{i}", {"x": str(i)}) for i in range(20)], [port], 3, timeout=20)
    assert sorted(seen, key=lambda p: int(p.rsplit("/", 1)[1])) == [f"/r/{i}" for i in range(20)]  # each once
    assert res.status[7] == 0 and res.errors and "/r/7" in res.errors[0]
    assert all(res.status[i] == 303 and res.headers[i]["location"] == f"/done/r/{i}" for i in range(20) if i != 7)
    assert res.reconnects >= 5
