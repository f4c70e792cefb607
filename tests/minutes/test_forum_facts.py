"""The forum's public facts reach the public record, against a real nats-server and a real database
(PostgreSQL when FORUM_TEST_DATABASE_URL is set, SQLite otherwise): a decision and a closed vote
are appended once each — even redelivered, republished or sent again after a restart — and
`ledger-locate` finds them."""
from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path

import pytest
from sqlmodel import select

from forumlib.majority_judgment import Grade, winner
from forumlib.tlog import record_leaf_bytes
from services.minutes.models import EntryRow
from shared.contracts.common import ErrorCode
from shared.contracts.minutes import EntryLocations, ListEntries, LocateEntries
from tests.minutes.harness import approved_event, decision_event, running_minutes, vote_closed_event
from tests.support import database_urls, drop_schemas, nats_server

pytestmark = pytest.mark.integration


@pytest.fixture
async def env(tmp_path: Path):
    urls = database_urls(tmp_path)
    try:
        with nats_server() as url:
            yield url, urls["minutes"]
    finally:
        drop_schemas(urls)


async def locate(h, ids: list[str]) -> EntryLocations:  # noqa: ANN001
    return await h.rpc(LocateEntries(event_ids=ids))


async def test_decision_and_closed_vote_are_appended_once_and_located(env, tmp_path: Path) -> None:  # noqa: ANN001
    nats_url, db_url = env
    decision = decision_event()
    vote = vote_closed_event(ballots=[[Grade.BIEN, Grade.PASSABLE, Grade.EXCELLENT],
                                      [Grade.TRES_BIEN, Grade.BIEN, Grade.A_REJETER]])
    async with running_minutes(tmp_path, nats_url, db_url) as h:
        await h.publish(decision)
        await h.publish(decision)                   # republished: JetStream's dedupe window drops it
        await h.publish(decision, msg_id="again")   # redelivered under another msg id: the inbox drops it
        await h.publish(vote)
        await h.publish(vote, msg_id="again-vote")
        marker = approved_event()
        await h.publish(marker)
        await h.wait_size(3)
        await asyncio.sleep(0.5)  # time for a (wrong) second leaf to show up
        assert await h.size() == 3

        found = await locate(h, [str(vote.event_id), "not-an-event", str(decision.event_id), str(vote.event_id)])
        assert found.size == 3
        by_id = {loc.event_id: loc for loc in found.locations}
        assert set(by_id) == {str(decision.event_id), str(vote.event_id)}
        assert by_id[str(decision.event_id)].type == "decision.recorded"
        assert by_id[str(vote.event_id)].type == "vote.closed"
        assert [loc.index for loc in found.locations] == sorted(loc.index for loc in found.locations)  # log order
        assert (await locate(h, [str(uuid.uuid4())])).locations == []

        page = await h.rpc(ListEntries(start=0, end=10))
        entries = {e.index: e for e in page.entries}
        d_entry = entries[by_id[str(decision.event_id)].index]
        v_entry = entries[by_id[str(vote.event_id)].index]
        assert d_entry.record["event_id"] == str(decision.event_id)
        assert d_entry.record["data"]["decision"]["decision_id"] == "d-1"
        for e in (d_entry, v_entry):
            assert base64.b64decode(e.leaf) == record_leaf_bytes(e.record)
        # The closed vote's leaf alone is enough to recompute its winner.
        result = json.loads(base64.b64decode(v_entry.leaf))["data"]["result"]
        profiles = {o["option_id"]: {Grade(c["grade"]): c["count"] for c in o["profile"]} for o in result["options"]}
        assert result["winner_option_id"] == winner(profiles) == vote.data.result.winner_option_id
        await h.wait_checkpoint(3)

    # After a restart, the same events arriving again (e.g. a producer's outbox re-publishing) make no leaf.
    async with running_minutes(tmp_path, nats_url, db_url) as h:
        await h.publish(decision, msg_id="after-restart")
        await h.publish(vote, msg_id="after-restart-vote")
        marker2 = approved_event()
        await h.publish(marker2)
        await h.wait_size(4)
        await asyncio.sleep(0.5)
        async with h.svc.db.read() as tx:
            ids = (await tx.exec(select(EntryRow.event_id).order_by(EntryRow.leaf_index))).all()
        assert sorted(ids[:3]) == sorted([str(decision.event_id), str(vote.event_id), str(marker.event_id)])
        assert ids[3:] == [str(marker2.event_id)]
        again = await locate(h, [str(decision.event_id), str(vote.event_id)])
        assert again.size == 4 and again.locations == found.locations


async def test_locate_refuses_bad_requests(env, tmp_path: Path) -> None:  # noqa: ANN001
    nats_url, db_url = env
    async with running_minutes(tmp_path, nats_url, db_url) as h:
        assert await locate(h, ["x"]) == EntryLocations(locations=[], size=0)
        for body in ({"event_ids": []}, {"event_ids": ["a"] * 101}, {"event_ids": ["x" * 65]}, {}):
            reply = await (await h.broker.request(body, LocateEntries.subject(), timeout=10)).decode()
            assert reply["ok"] is False and reply["error"]["code"] == ErrorCode.INVALID, (body, reply)
            assert reply["error"]["field"].startswith("event_ids"), reply
