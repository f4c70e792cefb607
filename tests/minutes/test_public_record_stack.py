"""The public record end to end, on the whole running forum (every service its own process, real NATS,
the real databases): facts the forum publishes (a session scheduled, a decision recorded and then
superseded, a follow-up) each become exactly one leaf in the minutes service's log, and an auditor
holding only the verifier key runs the real `forum-ouvert verify` command against the web front:
exit 0 on the honest log; then a leaf rewritten in the minutes database is caught (exit 1).
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from forum_ouvert.launcher import Stack
from shared.contracts.decisions import GetDecision, Method, Outcome, RecordDecision
from shared.contracts.forum import CreateSession
from shared.contracts.minutes import LocateEntries
from shared.rpc import RpcClient

pytestmark = pytest.mark.integration


async def located(rpc: RpcClient, event_ids: list[str], timeout: float = 60) -> dict[str, int]:
    """Leaf index of each event's record, once the minutes service has appended them all."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = await rpc(LocateEntries(event_ids=event_ids))
        where = {loc.event_id: loc.index for loc in found.locations}
        if len(where) == len(event_ids):
            return where
        assert loop.time() < deadline, f"records not appended: {set(event_ids) - set(where)}"
        await asyncio.sleep(0.2)


async def all_entries(http: httpx.AsyncClient) -> list[dict]:
    out: list[dict] = []
    while page := (await http.get("/ledger/entries", params={"start": len(out), "end": len(out) + 1000})
                   ).json()["entries"]:
        out += page
    return out


def run_verify(forum: Stack, key: str, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "forum_ouvert.cli", "verify", forum.web_url, "--key", key,
                           "--state", str(state)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NO_COLOR": "1"})


async def test_forum_facts_become_leaves_and_verify_detects_a_rewrite(forum: Stack, rpc: RpcClient,
                                                                      secretariat: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    session = await rpc(CreateSession(
        actor_id=secretariat, title=f"Plénière du registre {uuid.uuid4().hex[:6]}", kind="plenary",
        starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1), place="CESE, hémicycle",
        capacity=50, rsvp_opens_at=now - timedelta(days=2), rsvp_closes_at=now - timedelta(hours=2),
        agenda=["Ouverture", "Règles du forum"]))
    first = await rpc(RecordDecision(
        actor_id=secretariat, session_id=session.session_id, agenda_position=2, title="Adoption des règles",
        text="Le forum adopte ses règles.", outcome=Outcome.ADOPTED, method=Method.CONSENSUS))
    second = await rpc(RecordDecision(
        actor_id=secretariat, session_id=session.session_id, agenda_position=2, title="Adoption des règles (corrigée)",
        text="Le forum adopte ses règles, **corrigées**.", outcome=Outcome.ADOPTED, method=Method.CONSENSUS,
        supersedes=first.decision.decision_id))
    old = await rpc(GetDecision(decision_id=first.decision.decision_id))
    assert old.superseded_by == second.decision.decision_id and old.superseded_event_id

    where = await located(rpc, [first.event_id, second.event_id, old.superseded_event_id])
    async with httpx.AsyncClient(base_url=forum.web_url, timeout=30) as http:
        key = (await http.get("/ledger/key")).text.strip()
        for event_id, kind, decision_id in ((first.event_id, "decision.recorded", first.decision.decision_id),
                                            (second.event_id, "decision.recorded", second.decision.decision_id),
                                            (old.superseded_event_id, "decision.superseded", first.decision.decision_id)):
            i = where[event_id]
            [entry] = (await http.get("/ledger/entries", params={"start": i, "end": i + 1})).json()["entries"]
            record = entry["record"]
            assert record["type"] == kind and record["event_id"] == event_id
            assert decision_id in base64.b64decode(entry["leaf"]).decode()
        # The session's own fact is in the log too, once. Its consumer is not the decisions' one, so it
        # may be appended before or after them.
        for _ in range(100):
            scheduled = [e for e in await all_entries(http) if e["record"]["type"] == "session.scheduled"
                         and e["record"]["data"]["session"]["session_id"] == session.session_id]
            if scheduled:
                break
            await asyncio.sleep(0.2)
        assert len(scheduled) == 1

    # Wait for a checkpoint that covers the decisions, then the auditor's run.
    async with httpx.AsyncClient(base_url=forum.web_url, timeout=30) as http:
        for _ in range(100):
            if int((await http.get("/ledger/checkpoint")).text.splitlines()[1]) > max(where.values()):
                break
            await asyncio.sleep(0.2)
    state = tmp_path / "verify-state.json"
    ok = await asyncio.to_thread(run_verify, forum, key, state)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(state.read_text())["size"] > max(where.values())

    # The operator rewrites the first decision's leaf in the minutes database: caught.
    url = forum.database_urls["minutes"].replace("sqlite+aiosqlite://", "sqlite://")
    engine = create_engine(url)
    i = where[first.event_id]
    with engine.begin() as conn:
        leaf = conn.execute(text("SELECT leaf FROM ledger_entry WHERE leaf_index = :i"), {"i": i}).scalar_one()
        forged = bytes(leaf).replace("Adoption des règles".encode(), "Rejet des règles!!!".encode())
        conn.execute(text("UPDATE ledger_entry SET leaf = :l, record = :r WHERE leaf_index = :i"),
                     {"l": forged, "r": forged.decode(), "i": i})
    try:
        bad = await asyncio.to_thread(run_verify, forum, key, state)
        assert bad.returncode == 1, bad.stdout + bad.stderr
    finally:
        with engine.begin() as conn:  # put it back: the other tests share this forum
            conn.execute(text("UPDATE ledger_entry SET leaf = :l, record = :r WHERE leaf_index = :i"),
                         {"l": bytes(leaf), "r": bytes(leaf).decode(), "i": i})
        engine.dispose()
