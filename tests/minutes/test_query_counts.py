"""The list of comptes rendus and the paragraph of a decision run a fixed number of SQL statements,
whatever the number of minutes: the same with 5 published minutes as with 50 (one query for the page,
one for the total, one for the versions of the page's minutes), and one for a decision's paragraph.

Rows are written straight into the minutes service's database; the lists are asked for over NATS as the
web front asks, and the statements counted on the service's engine (tests/query_count.py)."""
from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from services.minutes.models import DecisionFact, MinutesRow, MinutesStatus, SessionFact, VersionRow
from shared.clock import utcnow
from shared.contracts.forum import SessionKind, SessionStatus
from shared.contracts.minutes import Adoption, AdoptionKind, ListMinutes, MinutesOfDecision
from tests.minutes.harness import MinutesHarness
from tests.query_count import StatementLog, show

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def log(h: MinutesHarness) -> AsyncIterator[StatementLog]:
    statements = StatementLog(h.svc.db.engine)
    yield statements
    statements.close()


async def _published(h: MinutesHarness, n: int, kind: SessionKind) -> list[DecisionFact]:
    """`n` sessions of `kind`, each with minutes published in two versions and one decision linked from them."""
    rows: list[Any] = []
    decisions = []
    adoption = Adoption(kind=AdoptionKind.NONE).model_dump_json()
    for i in range(n):
        sid, mid, did = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
        starts = utcnow() - timedelta(days=10 + i)
        d = DecisionFact(decision_id=did, number=f"2026-{uuid.uuid4().hex[:6]}", session_id=sid, agenda_position=1,
                         agenda_text="Accueil", title="Décision", outcome="adopted", method="consensus",
                         recorded_at=starts, event_id=str(uuid.uuid4()))
        paragraphs = json.dumps([{"anchor": "p-1", "kind": "paragraph", "markdown": f"Décision [n° {d.number}]"
                                                                                   f"(/decisions/{did})."}])
        rows += [SessionFact(session_id=sid, revision=0, status=SessionStatus.SCHEDULED, title=f"Séance {i}", kind=kind,
                             starts_at=starts, ends_at=starts + timedelta(hours=2)),
                 MinutesRow(id=mid, session_id=sid, status=MinutesStatus.PUBLISHED, markdown="Texte.",
                            latest_version=2, adoption_kind=AdoptionKind.NONE, created_by="x", updated_by="x"), d]
        rows += [VersionRow(minutes_id=mid, version=v, markdown="Texte.", paragraphs=paragraphs, canonical=b"{}",
                            sha256="0" * 64, html="<p>Texte.</p>", pdf=b"%PDF", published_at=starts + timedelta(days=v),
                            published_by="x", adoption=adoption, event_id=str(uuid.uuid4())) for v in (1, 2)]
        decisions.append(d)
    async with h.svc.db.transaction() as tx:
        for tier in (SessionFact, MinutesRow, (VersionRow, DecisionFact)):
            tx.add_all([r for r in rows if isinstance(r, tier)])
            await tx.flush()  # minutes before their versions
    return decisions


async def test_minutes_list_runs_the_same_statements_for_5_or_50_minutes(h: MinutesHarness,
                                                                         log: StatementLog) -> None:
    kind = SessionKind.WORKING_GROUP
    await _published(h, 5, kind)
    page = ListMinutes(kind=kind, limit=20)
    small, before = await log.statements(h.rpc, page)
    assert small.total >= 5 and all(m.latest_version == 2 for m in small.minutes)
    await _published(h, 45, kind)
    big, after = await log.statements(h.rpc, page)
    assert big.total == small.total + 45 and len(big.minutes) == 20
    assert len(before) == len(after) <= 3, show(after)  # the page, the total, the versions of the page


async def test_a_decisions_paragraph_is_one_statement(h: MinutesHarness, log: StatementLog) -> None:
    [d] = await _published(h, 1, SessionKind.PLENARY)
    found, statements = await log.statements(h.rpc, MinutesOfDecision(decision_id=d.decision_id))
    assert found.anchor == "p-1" and found.version == 2
    assert len(statements) == 1, show(statements)
    missing, statements = await log.statements(h.rpc, MinutesOfDecision(decision_id=str(uuid.uuid4())))
    assert missing.minutes_id is None and len(statements) == 1
