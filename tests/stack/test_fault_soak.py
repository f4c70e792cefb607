"""The forum's own kill -9 test: every kind of process killed at random moments under traffic.

The whole forum runs supervised as `forum-ouvert up` runs it (on PostgreSQL with
FORUM_TEST_DATABASE_URL, else SQLite). While members register, answer a session of a few seats and
withdraw, and the secretariat records decisions (each command with an idempotency key, re-sent with
the same key while no reply comes, as the web front's forms do), and pages are read through the web
front, a killer sends SIGKILL to nats-server, the mail catcher, the web front and each service, each
at least once, at random moments. Then, once the forum has settled:

- no accepted command is lost: every command that got an OK reply (or whose repeat says it was
  already done) is in its service's database, and every registration got its e-mail;
- nothing is done twice: no decision recorded twice, no two e-mails for one registration, no two
  leaves of the public record for one fact;
- a session never holds more confirmed seats than it has, in any reply, sample or the database;
- and the public record is one contiguous log.

A summary line gives the figures (kills, requests, errors, lost, duplicated). The chaos lasts
FORUM_SOAK_SECONDS (default 10 s, for a long soak set e.g. 300) and at least until every kind of
process was killed once.
"""
from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.nats import NatsBroker
from sqlalchemy import create_engine, text

from forum_ouvert.launcher import MAILCATCHER, NATS, WEB, Stack
from shared.clock import utcnow
from shared.contracts.common import ErrorCode
from shared.contracts.decisions import RecordDecision
from shared.contracts.forum import AnswerRsvp, GetSession, WithdrawRsvp
from shared.contracts.registry import ApproveMember, Register, VerifyEmail
from shared.db import sync_url
from shared.idempotency import WAIT_FOR_FIRST
from shared.rpc import RpcClient, RpcError
from shared.settings import SERVICES
from tests.forum.harness import session_request
from tests.support import caught, caught_mail

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
KINDS = (NATS, MAILCATCHER, WEB, *SERVICES)
CHAOS_S = float(os.environ.get("FORUM_SOAK_SECONDS", "10"))
MEMBERS, CAPACITY = 12, 4
VERIFY_SUBJECT = "Confirmez votre adresse"
TRANSIENT = {ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL}
# Longer than a repeat waits for the reply of its first request (WAIT_FOR_FIRST): a command whose reply the
# kill lost is then answered « déjà été enregistrée » (and checked) instead of timing out at every repeat.
COMMAND_TIMEOUT = WAIT_FOR_FIRST + 1
H = timedelta(hours=1)


@dataclass
class Tally:
    requests: int = 0
    errors: int = 0                   # no answer, or an internal error (a process was down)
    unanswered: int = 0               # commands still without an answer after every repeat
    refused: int = 0                  # a typed domain refusal (e.g. withdrawing twice): answered
    kills: collections.Counter[str] = field(default_factory=collections.Counter)
    registered: dict[str, str] = field(default_factory=dict)   # e-mail -> member id (OK replies)
    decisions: dict[str, str] = field(default_factory=dict)    # title -> decision id (OK replies)
    reply_lost: list[str] = field(default_factory=list)        # titles done, whose reply was lost
    rsvp: dict[str, str | None] = field(default_factory=dict)  # member -> state of its last OK reply
    most_confirmed: int = 0                                    # seen in any reply or sample


class Unknown(Exception):
    """The command's outcome is unknown (no reply after every repeat)."""


async def once(rpc: RpcClient, tally: Tally, request: Any, attempts: int = 8) -> Any:
    """`request` sent with one idempotency key, repeated with the same key while no reply comes."""
    key = uuid.uuid4().hex
    for attempt in range(attempts):
        tally.requests += 1
        try:
            return await rpc(request, idempotency_key=key, timeout=COMMAND_TIMEOUT)
        except RpcError as exc:
            if exc.code not in TRANSIENT:
                raise
            tally.errors += 1
        await asyncio.sleep(0.5 + attempt * 0.5)
    tally.unanswered += 1
    raise Unknown(type(request).__name__)


def query(url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as c:
            return list(c.execute(text(sql), params).all())
    finally:
        engine.dispose()


# ============================================================================ before the chaos
async def prepare(stack: Stack, rpc: RpcClient, tally: Tally) -> tuple[str, str, str, list[str]]:
    """A secretariat, approved members, a session of CAPACITY seats open to RSVPs, a session that has
    begun (decisions are recorded on it)."""
    out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "forum_ouvert.cli", "create-secretariat",
                                                   "secretariat@soak.example"],
                                  capture_output=True, text=True, check=True, cwd=ROOT,
                                  env={**os.environ, "FORUM_DATABASE_URL": stack.database_urls["registry"],
                                       "FORUM_DATA_DIR": str(stack.data_dir)})
    secretariat = out.stdout.split("(id ", 1)[1].split(")", 1)[0]
    members = []
    for i in range(MEMBERS):
        email = f"membre-{i}@soak.example"
        r = await once(rpc, tally, Register(full_name=f"Membre {i}", email=email, organisation="Collectif",
                                            college="citizen", charter_accepted=True))
        tally.registered[email] = r.member_id
        members.append(r.member_id)
    for i, member in enumerate(members):
        mail = await asyncio.to_thread(caught_mail, stack.mail_dir, f"membre-{i}@soak.example", VERIFY_SUBJECT, 60)
        body = mail[0].get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        token = re.search(r"/inscription/verifier\?token=([\w.-]+)", body).group(1)  # type: ignore[union-attr]
        await once(rpc, tally, VerifyEmail(token=token))
        await once(rpc, tally, ApproveMember(actor_id=secretariat, member_id=member))

    async def as_soon_as_known(make: Any) -> Any:  # the forum learns roles and members from events
        deadline = time.monotonic() + 60
        while True:
            try:
                return await once(rpc, tally, make())
            except RpcError as exc:
                if exc.code not in (ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)

    small = await as_soon_as_known(lambda: session_request(secretariat, title="Atelier de quatre places",
                                                           capacity=CAPACITY))
    now = utcnow()
    begun = await as_soon_as_known(lambda: session_request(
        secretariat, title="Plénière des décisions d'endurance", rsvp_opens_at=now - 4 * H,
        rsvp_closes_at=now - 2 * H, starts_at=now - H, ends_at=now + 3 * H))
    for member in members:  # each member answers once: it is known to the forum
        reply = await as_soon_as_known(lambda member=member: AnswerRsvp(actor_id=member, session_id=small.session_id,
                                                                         answer="decline"))
        tally.rsvp[member] = reply.state
    return secretariat, small.session_id, begun.session_id, members


# ============================================================================ the chaos
async def registrations(rpc: RpcClient, tally: Tally, stop: asyncio.Event, worker: int) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        email = f"inscription-{worker}-{i}@soak.example"
        try:
            r = await once(rpc, tally, Register(full_name=f"Inscrite {worker}-{i}", email=email, organisation="",
                                                college="citizen", charter_accepted=True))
            tally.registered[email] = r.member_id
        except (RpcError, Unknown):
            pass
        await asyncio.sleep(0.2)


async def rsvps(rpc: RpcClient, tally: Tally, stop: asyncio.Event, session_id: str, members: list[str],
                rng: random.Random) -> None:
    while not stop.is_set():
        member = rng.choice([m for m in members if tally.rsvp.get(m) is not None] or members)
        answer = rng.choice(["attend", "attend", "decline"])
        request = (AnswerRsvp(actor_id=member, session_id=session_id, answer=answer) if rng.random() < 0.6
                   else WithdrawRsvp(actor_id=member, session_id=session_id))
        try:
            reply = await once(rpc, tally, request)
        except Unknown:
            tally.rsvp[member] = None  # its outcome is unknown: no longer checked
        except RpcError as exc:
            tally.refused += 1
            if "déjà été enregistrée" in exc.error.message:
                tally.rsvp[member] = None
        else:
            tally.rsvp[member] = reply.state
            if reply.state == "confirmed":
                tally.most_confirmed = max(tally.most_confirmed, CAPACITY - reply.seats_left)
        await asyncio.sleep(0.1)


async def decisions(rpc: RpcClient, tally: Tally, stop: asyncio.Event, secretariat: str, session_id: str) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        title = f"Décision d'endurance n° {i}"
        request = RecordDecision(actor_id=secretariat, session_id=session_id, agenda_position=1 + i % 3, title=title,
                                 text=f"Le forum adopte la proposition n° {i}.", outcome="adopted", method="consensus")
        try:
            tally.decisions[title] = (await once(rpc, tally, request)).decision.decision_id
        except Unknown:
            pass
        except RpcError as exc:
            tally.refused += 1
            if "déjà été enregistrée" in exc.error.message:
                tally.reply_lost.append(title)
        await asyncio.sleep(0.3)


async def seats(rpc: RpcClient, tally: Tally, stop: asyncio.Event, session_id: str, member: str) -> None:
    while not stop.is_set():
        tally.requests += 1
        try:
            view = await rpc(GetSession(session_id=session_id, actor_id=member), timeout=4)
            tally.most_confirmed = max(tally.most_confirmed, view.confirmed_count)
        except RpcError:
            tally.errors += 1
        await asyncio.sleep(0.3)


async def reader(stack: Stack, tally: Tally, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=stack.web_url, timeout=5) as web:
        i = 0
        while not stop.is_set():
            i += 1
            tally.requests += 1
            try:
                r = await web.get(("/", "/seances", "/decisions", "/registre", "/sante")[i % 5])
                if r.status_code >= 500 and not (r.url.path == "/sante" and r.status_code == 503):
                    tally.errors += 1
            except httpx.HTTPError:
                tally.errors += 1
            await asyncio.sleep(0.2)


async def killer(stack: Stack, tally: Tally, stop: asyncio.Event, rng: random.Random) -> None:
    """SIGKILL at random moments: every kind once (in random order), then random ones."""
    order = rng.sample(KINDS, len(KINDS))
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(1.0, 3.0))
        kind = order.pop() if order else rng.choice(KINDS)
        proc = stack.procs[kind]
        if proc.poll() is not None:
            continue  # already down, the supervisor is on it
        os.killpg(proc.pid, signal.SIGKILL)
        tally.kills[kind] += 1
        deadline = time.monotonic() + 60
        while stack.procs[kind].pid == proc.pid or stack.procs[kind].poll() is not None:
            assert time.monotonic() < deadline, f"{kind} not restarted"
            await asyncio.sleep(0.1)


# ============================================================================ after the chaos
async def settle(stack: Stack, tally: Tally, small: str, begun: str) -> None:
    """Until the forum is whole again and every accepted command has had all its effects."""
    expected_titles = set(tally.decisions) | set(tally.reply_lost)
    deadline = time.monotonic() + 120
    while True:
        healthy = all(await asyncio.gather(*(asyncio.to_thread(stack.service_health, s) for s in SERVICES))) \
            and all(p.poll() is None for p in stack.procs.values())
        pending = sum(query(stack.database_urls[s], "SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0]
                      for s in SERVICES) if healthy else -1
        leaves = [json.loads(r[0]) for r in query(stack.database_urls["minutes"],
                                                  "SELECT record FROM ledger_entry WHERE kind = 'decision.recorded'")]
        titled = {leaf["data"]["decision"]["title"] for leaf in leaves}
        mailed = {str(m["To"]).lower() for m in caught(stack.mail_dir) if VERIFY_SUBJECT in str(m["Subject"])}
        if healthy and pending == 0 and expected_titles <= titled and all(e in mailed for e in tally.registered):
            return
        assert time.monotonic() < deadline, (
            f"not settled: healthy={healthy}, outbox pending={pending}, decisions without a leaf: "
            f"{sorted(expected_titles - titled)[:5]}, registrations without e-mail: "
            f"{[e for e in tally.registered if e not in mailed][:5]}")
        await asyncio.sleep(0.5)


async def test_kill_9_anything_under_traffic_loses_nothing_and_does_nothing_twice(supervised) -> None:  # noqa: ANN001
    stack, lines = supervised
    rng = random.Random(int(os.environ.get("FORUM_SOAK_SEED", time.time())))
    tally = Tally()
    started = time.monotonic()
    async with NatsBroker(stack.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2) as broker:
        rpc = RpcClient(broker, timeout=4)
        secretariat, small, begun, members = await prepare(stack, rpc, tally)
        setup_s = time.monotonic() - started
        stop = asyncio.Event()
        tasks = [asyncio.create_task(t) for t in (
            registrations(rpc, tally, stop, 1), registrations(rpc, tally, stop, 2),
            rsvps(rpc, tally, stop, small, members[: MEMBERS // 2], random.Random(rng.random())),
            rsvps(rpc, tally, stop, small, members[MEMBERS // 2:], random.Random(rng.random())),
            decisions(rpc, tally, stop, secretariat, begun), seats(rpc, tally, stop, small, members[0]),
            reader(stack, tally, stop))]
        kill = asyncio.create_task(killer(stack, tally, stop, rng))
        await asyncio.sleep(CHAOS_S)
        while set(tally.kills) != set(KINDS):  # every kind killed at least once
            assert not kill.done() or kill.result()
            await asyncio.sleep(0.5)
        stop.set()
        await kill
        await asyncio.gather(*tasks)
        chaos_s = time.monotonic() - started - setup_s
        await settle(stack, tally, small, begun)

    # ---------------------------------------------------------------- nothing lost
    members_db = dict(query(stack.database_urls["registry"], "SELECT email, id FROM member"))
    lost_registrations = [e for e, m in tally.registered.items() if members_db.get(e) != m]
    decided = collections.Counter(r[0] for r in query(
        stack.database_urls["forum"], "SELECT title FROM forum_decision WHERE session_id = :s", s=begun))
    lost_decisions = [t for t in (*tally.decisions, *tally.reply_lost) if decided[t] == 0]
    states = dict(query(stack.database_urls["forum"], "SELECT member_id, state FROM forum_rsvp WHERE session_id = :s",
                        s=small))
    allowed = {"confirmed": {"confirmed"}, "waitlisted": {"waitlisted", "confirmed"},  # promoted meanwhile
               "declined": {"declined"}, "withdrawn": {"withdrawn"}}
    lost_rsvps = [(m, s, states.get(m)) for m, s in tally.rsvp.items()
                  if s is not None and states.get(m) not in allowed[s]]
    mails = caught(stack.mail_dir)
    verify_ids: dict[str, set[str]] = collections.defaultdict(set)
    for m in mails:
        if VERIFY_SUBJECT in str(m["Subject"]):
            verify_ids[str(m["To"]).lower()].add(str(m["Message-ID"]))
    lost_mails = [e for e in tally.registered if not verify_ids.get(e)]

    # ---------------------------------------------------------------- nothing twice
    twice_decided = [t for t, n in decided.items() if n > 1]
    twice_mailed = [e for e, ids in verify_ids.items() if len(ids) > 1]
    copies = sum(n - 1 for n in collections.Counter(str(m["Message-ID"]) for m in mails).values() if n > 1)
    entries = query(stack.database_urls["minutes"],
                    "SELECT leaf_index, kind, record FROM ledger_entry ORDER BY leaf_index")
    twice_leaves = [k for k, n in collections.Counter((kind, rec) for _, kind, rec in entries).items() if n > 1]
    per_decision = collections.Counter(json.loads(rec)["data"]["decision"]["decision_id"]
                                       for _, kind, rec in entries if kind == "decision.recorded")
    twice_leaves += [d for d, n in per_decision.items() if n > 1]
    missing_leaves = [d for d in tally.decisions.values() if per_decision[d] != 1]

    confirmed_db = sum(1 for s in states.values() if s == "confirmed")
    lost = len(lost_registrations) + len(lost_decisions) + len(lost_rsvps) + len(lost_mails) + len(missing_leaves)
    duplicated = len(twice_decided) + len(twice_mailed) + len(twice_leaves)
    dialect = "postgresql" if stack.database_urls["registry"].startswith("postgresql") else "sqlite"
    print(f"\nfault soak [{dialect}]: {sum(tally.kills.values())} kills "
          f"({', '.join(f'{k} {n}' for k, n in sorted(tally.kills.items()))}) in {chaos_s:.0f} s; "
          f"{tally.requests} requests, {tally.errors} errors (no answer while a process was down; "
          f"{tally.unanswered} commands still unanswered after their repeats), "
          f"{tally.refused} refused; accepted: {len(tally.registered)} registrations, "
          f"{len(tally.decisions) + len(tally.reply_lost)} decisions ({len(tally.reply_lost)} whose reply was lost), "
          f"{sum(1 for s in tally.rsvp.values() if s)} RSVP states; lost {lost}, duplicated {duplicated}; "
          f"{copies} e-mail re-sent with its Message-ID; seats at most {max(tally.most_confirmed, confirmed_db)}/"
          f"{CAPACITY}; {len(entries)} leaves; {len(lines)} restarts")

    assert (lost_registrations, lost_decisions, lost_rsvps, lost_mails, missing_leaves) == ([], [], [], [], [])
    assert (twice_decided, twice_mailed, twice_leaves) == ([], [], [])
    assert [i for i, _, _ in entries] == list(range(len(entries))), "the public record has a gap"
    assert tally.most_confirmed <= CAPACITY and confirmed_db <= CAPACITY
    assert tally.decisions and len(tally.registered) > MEMBERS and tally.most_confirmed > 0
    assert set(tally.kills) == set(KINDS) and len(lines) >= sum(tally.kills.values())
