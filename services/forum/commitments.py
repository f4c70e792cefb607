"""What the secretariat sets up for the decision register: the commitments of the national action
plan that decisions are linked to, and the adoption rule of each session kind (quorum per college,
double majority; the checks themselves are in `adoption`)."""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.forum.adoption import default_rule
from services.forum.models import ForumCommitment, ForumDecision, ForumRule
from services.forum.queries import require_secretariat
from shared.clock import utcnow
from shared.contracts.decisions import (
    CommitmentList, CommitmentView, GetRules, ListCommitments, Rule, RuleList, RuleUpdated, RuleView,
    SaveCommitment, SetRule,
)
from shared.contracts.forum import SessionKind
from shared.db import dialect_insert
from shared.service import HandlerContext


# ================================================================ commitments
def _natural_key(code: str) -> list[Any]:
    """« 2 » before « 10 »; « 3.2 » after « 3.1 » (digit runs compare as numbers)."""
    return [int(t) if i % 2 else t.casefold() for i, t in enumerate(re.split(r"(\d+)", code))]


async def _decision_counts(tx: AsyncSession, codes: Sequence[str] | None = None) -> dict[str, int]:
    """Decisions in force (not superseded) linked to each commitment."""
    stmt = (select(ForumDecision.commitment_code, func.count())
            .where(col(ForumDecision.commitment_code).is_not(None), col(ForumDecision.superseded_by).is_(None))
            .group_by(ForumDecision.commitment_code))
    if codes is not None:
        stmt = stmt.where(col(ForumDecision.commitment_code).in_(codes))
    return {c: n for c, n in (await tx.exec(stmt)).all()}  # type: ignore[call-overload]


async def list_commitments(req: ListCommitments, ctx: HandlerContext) -> CommitmentList:
    """The commitments of the national action plan, in code order, with their decisions counted."""
    async with ctx.db.read() as tx:
        rows = list((await tx.exec(select(ForumCommitment))).all())
        counts = await _decision_counts(tx)
    rows.sort(key=lambda c: _natural_key(c.code))
    return CommitmentList(commitments=[CommitmentView(code=c.code, title=c.title, plan=c.plan,
                                                      decisions=counts.get(c.code, 0)) for c in rows])


async def save_commitment(req: SaveCommitment, ctx: HandlerContext) -> CommitmentView:
    """Secretariat: create or edit (by code) a commitment. Decisions keep the title they were
    recorded with."""
    now = utcnow()
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        tx = uow.tx
        await require_secretariat(tx, req.actor_id)
        values = {"title": req.title, "plan": req.plan, "updated_at": now}
        stmt = dialect_insert(tx, ForumCommitment).values(code=req.code, **values)
        await tx.exec(stmt.on_conflict_do_update(index_elements=["code"], set_=values))  # type: ignore[call-overload]
        counts = await _decision_counts(tx, [req.code])
    return CommitmentView(code=req.code, title=req.title, plan=req.plan, decisions=counts.get(req.code, 0))


# ================================================================ adoption rules
def _rule_of(row: ForumRule) -> Rule:
    return Rule(kind=row.kind, quorum=json.loads(row.quorum), double_majority=row.double_majority)


async def rule_for(tx: AsyncSession, kind: SessionKind) -> Rule:
    """The rule of a session kind now (the default rule until the secretariat sets one)."""
    row = await tx.get(ForumRule, kind)
    return _rule_of(row) if row is not None else default_rule(kind)


async def get_rules(req: GetRules, ctx: HandlerContext) -> RuleList:
    """The rule of each session kind (the default rule, with `updated_at` None, until one is set)."""
    async with ctx.db.read() as tx:
        rows = {r.kind: r for r in (await tx.exec(select(ForumRule))).all()}
    return RuleList(rules=[RuleView(rule=_rule_of(rows[k]), updated_at=rows[k].updated_at)
                           if k in rows else RuleView(rule=default_rule(k), updated_at=None) for k in SessionKind])


async def set_rule(req: SetRule, ctx: HandlerContext) -> RuleView:
    """Secretariat: the quorum per college and the double majority of a session kind."""
    now = utcnow()
    rule = req.rule
    quorum = json.dumps({c.value: n for c, n in sorted(rule.quorum.items())})
    async with ctx.unit_of_work(actor=req.actor_id) as uow:
        await require_secretariat(uow.tx, req.actor_id)
        values = {"quorum": quorum, "double_majority": rule.double_majority, "updated_at": now,
                  "updated_by": req.actor_id}
        stmt = dialect_insert(uow.tx, ForumRule).values(kind=rule.kind.value, **values)
        stmt = stmt.on_conflict_do_update(index_elements=["kind"], set_=values)
        await uow.tx.exec(stmt)  # type: ignore[call-overload]
        uow.emit(RuleUpdated(rule=rule, updated_at=now))
    return RuleView(rule=rule, updated_at=now)
