"""The minutes service in-process for tests: a real nats-server, a real database, the real consumers,
queries and checkpoint signer, plus the public ledger routes over HTTP, and plausible public facts
to feed it — down to a whole session that took place (`held_session`), for the comptes rendus."""
from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
from faststream import TestApp
from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from forumlib.majority_judgment import GRADES, Grade, majority_grade, merit_profile, rank, winner
from forumlib.tlog import Signer
from services.minutes import keys, store
from services.minutes.models import AttendanceFact, DecisionFact, MemberFact, SessionFact, VoteFact
from shared.clock import utcnow
from services.minutes.service import SERVICE
from shared.contracts.decisions import (
    DecisionInfo, DecisionRecorded, Eligibility, GradeCount, HandCount, MajorityLine, Method, OptionResult,
    Outcome, QuorumLine, Rule, RuleCheck, VoteClosed, VoteInfo, VoteOption, VoteResult,
)
from shared.contracts.envelope import Envelope, make_event
from shared.contracts.forum import AttendanceRecorded, SessionInfo, SessionKind, SessionScheduled, SessionStatus, Theme
from shared.contracts.minutes import GetCheckpoint, LedgerCheckpoint
from shared.contracts.registry import College, MemberApproved, MemberRegistered, Role
from shared.migrations import upgrade
from shared.rpc import RpcClient
from shared.service import Service
from shared.settings import Settings


def approved_event(public_id: str | None = None, college: College | None = College.CITIZEN,
                   occurred_at: datetime | None = None) -> Envelope[Any]:
    env = make_event(MemberApproved(member_id=str(uuid.uuid4()), public_id=public_id or uuid.uuid4().hex[:16],
                                    college=college), producer="registry")
    if occurred_at is not None:
        env.occurred_at = occurred_at
    return env


T0 = datetime(2026, 3, 5, 14, 0, tzinfo=UTC)


def session_info(**kw: Any) -> SessionInfo:
    """A plausible public session (fields overridable)."""
    base: dict[str, Any] = dict(
        session_id="s-1", revision=0, status=SessionStatus.SCHEDULED, title="Plénière de printemps",
        kind=SessionKind.PLENARY, theme=Theme.OPEN_DATA, description="Point d'étape du plan d'action.",
        starts_at=T0, ends_at=T0 + timedelta(hours=2), place="CESE, Paris", online_url=None, capacity=80,
        rsvp_opens_at=T0 - timedelta(days=10), rsvp_closes_at=T0 - timedelta(days=1),
        agenda=["Ouverture", "Engagement 5"], updated_at=T0 - timedelta(days=20))
    return SessionInfo(**{**base, **kw})


def decision_event(decision_id: str = "d-1", **kw: Any) -> Envelope[Any]:
    """A `forum.decision.recorded` event: a show of hands under a double majority, quorum met."""
    rule = Rule(kind=SessionKind.PLENARY, quorum={College.PUBLIC_ACTOR: 2, College.CIVIL_SOCIETY: 3},
                double_majority=True)
    hands = {College.PUBLIC_ACTOR: HandCount(in_favour=3, against=1),
             College.CIVIL_SOCIETY: HandCount(in_favour=5, against=2, abstain=1),
             College.CITIZEN: HandCount(in_favour=1, against=1)}
    check = RuleCheck(
        rule=rule, quorum_met=True, majority_met=True, met=True,
        quorum=[QuorumLine(college=College.PUBLIC_ACTOR, required=2, present=4, met=True),
                QuorumLine(college=College.CIVIL_SOCIETY, required=3, present=8, met=True)],
        majority=[MajorityLine(side=None, in_favour=9, against=4, abstain=1, met=True),
                  MajorityLine(side="public", in_favour=3, against=1, abstain=0, met=True),
                  MajorityLine(side="civil", in_favour=6, against=3, abstain=1, met=True)],
        summary="Quorum atteint ; 9 voix pour, 4 contre, 1 abstention ; double majorité atteinte.")
    base: dict[str, Any] = dict(
        decision_id=decision_id, number="2026-001", session_id="s-1", session_title="Plénière de printemps",
        session_kind=SessionKind.PLENARY, agenda_position=2, agenda_text="Engagement 5",
        title="Publication des avis du forum", text="Le forum **adopte** la publication.",
        outcome=Outcome.ADOPTED, method=Method.SHOW_OF_HANDS, hands=hands, rule_check=check,
        recorded_at=T0 + timedelta(hours=1))
    return make_event(DecisionRecorded(decision=DecisionInfo(**{**base, **kw})), producer="forum")


def vote_closed_event(vote_id: str = "v-1", ballots: list[list[Grade]] | None = None,
                      decision_id: str = "d-2", session_id: str = "s-1",
                      eligibility: Eligibility = Eligibility.APPROVED_MEMBERS) -> Envelope[Any]:
    """A `forum.vote.closed` event whose result is tallied by majority judgment from `ballots`
    (one list of grades per ballot, one grade per option)."""
    ballots = ballots if ballots is not None else [
        [Grade.TRES_BIEN, Grade.PASSABLE, Grade.A_REJETER],
        [Grade.BIEN, Grade.BIEN, Grade.INSUFFISANT],
        [Grade.EXCELLENT, Grade.ASSEZ_BIEN, Grade.BIEN]]
    labels = ["Option A", "Option B", "Option C"]
    profiles = {i + 1: merit_profile(b[i] for b in ballots) for i in range(len(labels))}
    ranked = rank(profiles)
    vote = VoteInfo(vote_id=vote_id, session_id=session_id, agenda_position=2, agenda_text="Engagement 5",
                    question="Quel calendrier pour l'engagement 5 ?",
                    options=[VoteOption(option_id=i + 1, label=lb) for i, lb in enumerate(labels)],
                    grades=list(GRADES), eligibility=eligibility,
                    opens_at=T0, closes_at=T0 + timedelta(days=7))
    top = winner(profiles)
    result = VoteResult(
        ballots=len(ballots), eligible=12, participation={College.CITIZEN: len(ballots)},
        options=[OptionResult(option_id=k, label=labels[k - 1], rank=r, majority_grade=majority_grade(profiles[k]),
                              profile=[GradeCount(grade=g, count=n) for g, n in profiles[k].items()])
                 for k, r in ranked],
        winner_option_id=top, tie=top is None and bool(ballots))
    return make_event(VoteClosed(vote=vote, closed_at=T0 + timedelta(days=7), result=result,
                                 decision_id=decision_id), producer="forum")


@dataclass
class MinutesHarness:
    svc: Service
    js: JetStreamContext
    rpc: RpcClient
    broker: NatsBroker
    settings: Settings

    @property
    def signer(self) -> Signer:
        return keys.signer(self.settings)

    async def publish(self, env: Envelope[Any], msg_id: str | None = None) -> None:
        await self.js.publish(env.type, env.model_dump_json().encode(), timeout=10,
                              headers={"Nats-Msg-Id": msg_id or str(env.event_id)})

    async def publish_approved(self, n: int = 1, **kw: Any) -> list[Envelope[Any]]:
        envs = [approved_event(**kw) for _ in range(n)]
        await asyncio.gather(*[self.js.publish(e.type, e.model_dump_json().encode(), timeout=30,
                                               headers={"Nats-Msg-Id": str(e.event_id)}) for e in envs])
        return envs

    async def size(self) -> int:
        async with self.svc.db.read() as tx:
            return (await store.read_head(tx)).size

    async def wait_size(self, n: int, timeout: float = 30.0) -> None:
        await _until(lambda: self._size_at_least(n), timeout, f"log size {n}")

    async def _size_at_least(self, n: int) -> bool:
        return await self.size() >= n

    async def checkpoint(self) -> LedgerCheckpoint:
        return await self.rpc(GetCheckpoint())

    async def wait_checkpoint(self, n: int, timeout: float = 30.0) -> LedgerCheckpoint:
        async def covered() -> bool:
            async with self.svc.db.read() as tx:
                cp = await store.latest_checkpoint(tx)
            return cp is not None and cp.tree_size >= n

        await _until(covered, timeout, f"a checkpoint covering {n} leaves")
        return await self.checkpoint()


async def until(cond: Any, timeout: float, what: str) -> None:
    """Poll the async predicate `cond` until it holds (TimeoutError naming `what` after `timeout` s)."""
    await _until(cond, timeout, what)


async def _until(cond: Any, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await cond():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running_minutes(data_dir: Path, nats_url: str, database_url: str, *,
                          checkpoint_interval: float = 0.1, migrate: bool = True, **settings: Any
                          ) -> AsyncIterator[MinutesHarness]:
    """The minutes service, started in this event loop against `nats_url` and `database_url`."""
    if migrate:
        await asyncio.to_thread(upgrade, "minutes", database_url)
    s = Settings(nats_url=nats_url, database_url=database_url, data_dir=data_dir,
                 **{"consumer_backoff": [0.2], "outbox_poll_interval": 0.2, "log_level": "WARNING",
                    "ledger_checkpoint_interval": checkpoint_interval, "ledger_checkpoint_poll": 1.0,
                    "rpc_workers": 4, **settings})  # rpc_workers also sizes the DB pool: spare a shared server
    keys.load_signer.cache_clear()  # read the key file again, as a new process would
    svc = SERVICE.build(s)
    async with TestApp(svc.app):
        nc = await nats.connect(nats_url)
        try:
            async with NatsBroker(nats_url) as broker:
                yield MinutesHarness(svc, nc.jetstream(timeout=30), RpcClient(broker, timeout=30), broker, s)
        finally:
            await nc.close()


# ---------------------------------------------------------------- comptes rendus: what the forum recorded
_numbers = itertools.count(101)


def registered_event(member_id: str, *, role: Role = Role.MEMBER, college: College | None = College.CIVIL_SOCIETY,
                     organisation: str = "") -> Envelope[Any]:
    return make_event(MemberRegistered(member_id=member_id, public_id=uuid.uuid4().hex[:16], full_name="Camille Test",
                                       email=f"{member_id}@example.org", organisation=organisation, college=college,
                                       role=role), producer="registry")


def attendance_event(session_id: str, member_id: str, college: College | None, present: bool = True) -> Envelope[Any]:
    return make_event(AttendanceRecorded(session_id=session_id, member_id=member_id, public_id=None, college=college,
                                         present=present, walk_in=False), producer="forum")


@dataclass
class HeldSession:
    """A session that took place, as the forum's and the registry's events told the minutes service."""

    session_id: str
    title: str
    secretariat: str
    attendees: list[str]  # checked in
    absent: str           # a member who was not there
    decision: Envelope[Any]
    vote: Envelope[Any]
    session: Envelope[Any]


ATTENDEES = [  # college, organisation
    (College.CIVIL_SOCIETY, "Association Alpha"),
    (College.CIVIL_SOCIETY, "Collectif Bêta"),
    (College.PUBLIC_ACTOR, "Ville de Lyon"),
    (College.CITIZEN, ""),
]


async def held_session(h: MinutesHarness, *, starts_at: datetime | None = None, hours: int = 2,
                       title: str = "Plénière de printemps", kind: SessionKind = SessionKind.PLENARY,
                       theme: Theme | None = Theme.OPEN_DATA, with_facts: bool = True) -> HeldSession:
    """Publish a whole session's facts (scheduled, members, check-ins, a decision, a vote closed among the
    attendees) and wait until the minutes service has them, with their leaves in the public record.
    By default the session ended a day ago."""
    sid = f"s-{uuid.uuid4().hex[:12]}"
    start = starts_at or utcnow() - timedelta(days=1, hours=hours)
    scheduled = make_event(SessionScheduled(session=session_info(
        session_id=sid, title=title, kind=kind, theme=theme, starts_at=start, ends_at=start + timedelta(hours=hours),
        rsvp_opens_at=start - timedelta(days=10), rsvp_closes_at=start - timedelta(days=1))), producer="forum")
    secretariat, absent = f"sec-{uuid.uuid4().hex[:8]}", f"m-{uuid.uuid4().hex[:8]}"
    attendees = [f"m-{uuid.uuid4().hex[:8]}" for _ in ATTENDEES]
    envs = [scheduled, registered_event(secretariat, role=Role.SECRETARIAT, college=None),
            registered_event(absent, organisation="Absents Associés")]
    for mid, (college, org) in zip(attendees, ATTENDEES):
        envs += [registered_event(mid, college=college, organisation=org), attendance_event(sid, mid, college)]
    decision = decision_event(f"d-{uuid.uuid4().hex[:8]}", number=f"2026-{next(_numbers):03d}", session_id=sid,
                              session_title=title, recorded_at=start + timedelta(hours=1))
    vote = vote_closed_event(f"v-{uuid.uuid4().hex[:8]}", decision_id=f"d-{uuid.uuid4().hex[:8]}", session_id=sid,
                             eligibility=Eligibility.ATTENDEES)
    if with_facts:
        envs += [decision, vote]
    for env in envs:
        await h.publish(env)

    async def known() -> bool:
        async with h.svc.db.read() as tx:
            members = [await tx.get(MemberFact, m) for m in [secretariat, absent, *attendees]]
            ok = (await tx.get(SessionFact, sid) is not None and all(members)
                  and all([await tx.get(AttendanceFact, (sid, m)) for m in attendees]))
            if with_facts:
                ok = (ok and await tx.get(DecisionFact, decision.data.decision.decision_id) is not None
                      and await tx.get(VoteFact, vote.data.vote.vote_id) is not None
                      and len(await store.locate(tx, [str(decision.event_id), str(vote.event_id)])) == 2)
            return ok

    await _until(known, 30, f"the facts of session {sid}")
    return HeldSession(sid, title, secretariat, attendees, absent, decision, vote, scheduled)
