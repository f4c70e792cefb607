"""The seat rush, through the web front: 200 approved members, each signed in with their own
browser session, press « Je participe » at once (100 concurrent HTTP clients) on a session of 50 seats —
web front -> real broker -> forum service -> the running stack's database (PostgreSQL with
FORUM_TEST_DATABASE_URL, else SQLite).

Exactly 50 confirmed, 150 waitlisted in arrival order (positions 1..150, no gap, in the order the
requests reached the seat lock), every request answered with a redirect to the session's page. Then 20
confirmed members press « Retirer ma réponse » at once: exactly the first 20 waitlisted are promoted, and
each member's page says where they stand. (A bigger crowd checks the same, only longer: the sizes are
what makes the requests meet at the seat lock, and the throughput of a rush is bench/'s business.)
"""
from __future__ import annotations

import asyncio
import csv
import html
import io
import random
import re
import time
from email import message_from_bytes, policy

import httpx
import pytest

from forum_ouvert.launcher import Stack
from services.web.security import COOKIE_NAME
from shared.contracts.notifications import GetDeliveryCounts
from shared.rpc import RpcClient
from tests.forum.test_rsvp_rush import check_allocation
from tests.web.test_web_sessions import (
    SECRETARIAT_EMAIL, Crowd, ForumDb, WebMember, create_session, my_state, text,
)
from tests.web.test_web_visitor import read_cookie

pytestmark = pytest.mark.integration
MEMBERS, CAPACITY, WITHDRAWING, CLIENTS = 200, 50, 20, 100
FLASH = re.compile(r'<div class="fr-alert fr-alert--\w+ fr-alert--sm fr-mb-4w" role="status">\s*<p>(.*?)</p>', re.S)


def told(page: httpx.Response) -> str:
    """The one-time message shown after the answer."""
    m = FLASH.search(page.text)
    assert m, "no message after the answer"
    return html.unescape(m.group(1))


async def drained(rpc: RpcClient, timeout: float = 180) -> None:
    """Until the notifications service has no e-mail waiting to be sent."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        counts = (await rpc(GetDeliveryCounts())).by_status
        if not counts.get("queued") and not counts.get("deferred") and not counts.get("sending"):
            return
        assert loop.time() < deadline, f"e-mails still queued: {counts}"
        await asyncio.sleep(0.5)


def mails_since(forum: Stack, since: float, subject: str) -> list[str]:
    """Recipients of the caught e-mails written since `since` (perf_counter) whose subject contains `subject`."""
    cutoff = time.time() - (time.perf_counter() - since) - 1
    out = []
    for p in forum.mail_dir.glob("*.eml"):
        if p.stat().st_mtime >= cutoff:
            msg = message_from_bytes(p.read_bytes(), policy=policy.default)
            if subject in str(msg["Subject"]):
                out.append(str(msg["To"]))
    return out


def answered(reply: object) -> bool:
    return isinstance(reply, httpx.Response) and 200 <= reply.status_code < 400


async def test_rsvp_rush_through_the_web_front(forum: Stack, rpc: RpcClient, secretariat: str) -> None:
    crowd = await Crowd(forum, rpc, secretariat, max_connections=CLIENTS).start()
    db = ForumDb(forum)
    try:
        t0 = time.perf_counter()
        people = await crowd.members(MEMBERS, concurrency=25)  # keeps the registry under the web's RPC timeout
        setup_s = time.perf_counter() - t0
        admin = WebMember(secretariat, SECRETARIAT_EMAIL, "Secrétariat", None, crowd.client())
        await crowd.sign_in(secretariat, SECRETARIAT_EMAIL, admin.http)
        sid = await create_session(admin, capacity=str(CAPACITY), title="Plénière : la ruée")
        by_id = {m.member_id: m for m in people}

        # Everybody has the session's page open (with its form), then presses « Je participe » at once.
        opened = await asyncio.gather(*[m.get(f"/seances/{sid}") for m in people])
        assert all(p.status_code == 200 and "Je participe" in p.text for p in opened), \
            sorted({(p.status_code, "Je participe" in p.text) for p in opened})
        t1 = time.perf_counter()
        replies = await asyncio.gather(*[m.answer(sid, "attend") for m in people], return_exceptions=True)
        rush_s = time.perf_counter() - t1
        failures = [r for r in replies if not answered(r)]
        assert not failures, f"{len(failures)} requests not answered, e.g. {failures[0]!r}"
        assert all(r.status_code == 303 and r.headers["location"] == f"/seances/{sid}"  # type: ignore[union-attr]
                   for r in replies)

        # The database: exactly CAPACITY seats, the rest queued in arrival order.
        queue = check_allocation(await asyncio.to_thread(db.rsvps, sid), CAPACITY, MEMBERS - CAPACITY)
        confirmed = {r.member_id for r in await asyncio.to_thread(db.rsvps, sid) if r.state == "confirmed"}
        # What each member was told: the one-time message their next page shows, carried in their own
        # cookie (read with the forum's key). It agrees with the database's order.
        position: dict[str, int] = {}
        flashes: dict[str, str] = {}
        for m in people:
            flash = read_cookie(m.http.cookies[COOKIE_NAME], key=forum.secret_key()).get("flash")
            assert flash is not None, m.member_id
            flashes[m.member_id] = flash[1]
            if m.member_id in confirmed:
                assert flash[1].startswith("Votre place est confirmée."), flash
            else:
                position[m.member_id] = int(re.search(r"en position (\d+)\.", flash[1]).group(1))  # type: ignore[union-attr]
        assert [position[r.member_id] for r in queue] == list(range(1, MEMBERS - CAPACITY + 1))
        # And the pages say so (a sample: the head and the tail of the queue, some confirmed members).
        sample = [*[r.member_id for r in queue[:5]], queue[-1].member_id, *sorted(confirmed)[:5]]
        pages = await asyncio.gather(*[by_id[m].get(f"/seances/{sid}") for m in sample])
        for member_id, page in zip(sample, pages, strict=True):
            assert told(page) == flashes[member_id]
            expected = ("Place confirmée" if member_id in confirmed
                        else f"Sur liste d'attente (position {position[member_id]})")
            assert my_state(page) == expected
        public = text(await crowd.client().get(f"/seances/{sid}"))
        assert f"Complet ({CAPACITY} places) — {MEMBERS - CAPACITY} personnes sur liste d'attente" in public

        # WITHDRAWING confirmed members withdraw at once: exactly the first WITHDRAWING waitlisted are promoted.
        leaving = random.Random(3).sample(sorted(confirmed), WITHDRAWING)
        first = [r.member_id for r in queue[:WITHDRAWING]]
        t2 = time.perf_counter()
        out = await asyncio.gather(*[by_id[m].withdraw(sid) for m in leaving], return_exceptions=True)
        withdraw_s = time.perf_counter() - t2
        assert all(answered(r) and r.status_code == 303 for r in out), out  # type: ignore[union-attr]
        after = await asyncio.to_thread(db.rsvps, sid)
        rest = check_allocation(after, CAPACITY, MEMBERS - CAPACITY - WITHDRAWING)
        assert {r.member_id for r in after if r.state == "confirmed"} == (confirmed - set(leaving)) | set(first)
        assert [r.member_id for r in rest] == [r.member_id for r in queue[WITHDRAWING:]]  # the queue kept its order
        assert {r.member_id for r in after if r.state == "withdrawn"} == set(leaving)

        promoted = await asyncio.gather(*[by_id[m].get(f"/seances/{sid}") for m in first])
        assert all(my_state(p) == "Place confirmée" for p in promoted)
        assert my_state(await by_id[rest[0].member_id].get(f"/seances/{sid}")) == "Sur liste d'attente (position 1)"
        assert my_state(await by_id[leaving[0]].get(f"/seances/{sid}")) == "Pas de réponse"

        # The secretariat's export agrees: CAPACITY seats, then the waitlist in order.
        export = await admin.get(f"/secretariat/seances/{sid}/participants.csv")
        rows = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig")), delimiter=";"))[1:]
        assert [r[0] for r in rows].count("Place confirmée") == CAPACITY
        waiting = [r for r in rows if r[0] == "Sur liste d'attente"]
        assert [int(r[1]) for r in waiting] == list(range(1, MEMBERS - CAPACITY - WITHDRAWING + 1))
        assert [r[2] for r in waiting] == [by_id[r.member_id].name for r in rest]

        # The e-mails: once the notifications service has sent everything it queued, each promoted member
        # has been told « Une place s'est libérée » (this also leaves a quiet forum to the tests that follow).
        t3 = time.perf_counter()
        deadline = t3 + 180
        while len(promoted_mail := mails_since(forum, t2, "Une place s'est libérée")) < WITHDRAWING:
            assert time.perf_counter() < deadline, f"{len(promoted_mail)} promotion e-mails caught"
            await asyncio.sleep(1)
        await drained(rpc)
        drain_s = time.perf_counter() - t3
        assert sorted(promoted_mail) == sorted(by_id[m].email for m in first)

        dialect = db.engine.dialect.name
        print(f"\n{MEMBERS} members made and signed in through the web in {setup_s:.1f}s; "
              f"{MEMBERS} concurrent RSVPs through the web front ({CLIENTS} clients) answered in {rush_s:.2f}s "
              f"({MEMBERS / rush_s:.0f}/s); {WITHDRAWING} concurrent withdrawals in {withdraw_s:.2f}s; "
              f"e-mails all sent {drain_s:.1f}s later [{dialect}]")
    finally:
        await crowd.close()
