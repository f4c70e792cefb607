"""`shared.preload`: what a batch's preload read answers its handlers' lookups from memory, rows that
exist and rows that do not, and stays true while they add and delete rows."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlmodel import SQLModel, col

from services.notifications.models import NoticeSeat, Recipient
from shared import preload
from shared.db import Database
from shared.outbox import UnitOfWork


async def test_preloaded_keys_are_answered_without_a_query(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'preload.db'}")
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda c: SQLModel.metadata.create_all(
            c, tables=[Recipient.__table__, NoticeSeat.__table__]))  # type: ignore[attr-defined]
    async with db.transaction() as tx:
        tx.add(Recipient(member_id="a", email="a@example.fr", full_name="Camille"))
        tx.add(NoticeSeat(session_id="s", member_id="a"))
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with db.transaction() as tx:
            uow = UnitOfWork(tx, producer="test", correlation_id="c")
            await preload.preload(uow, Recipient, ["a", "b"], col(Recipient.member_id).in_(["a", "b"]))
            await preload.preload(uow, NoticeSeat, [("s", "a"), ("s", "b")], col(NoticeSeat.session_id) == "s")
            assert len(statements) == 2  # one query per model
            found = await preload.get(uow, Recipient, "a")
            assert found is not None and found.email == "a@example.fr"
            assert await preload.get(uow, Recipient, "b") is None  # known absent
            assert await preload.get(uow, NoticeSeat, ("s", "b")) is None
            seat = NoticeSeat(session_id="s", member_id="b")
            preload.add(uow, seat)  # a second event for the same member must not insert it twice
            assert await preload.get(uow, NoticeSeat, ("s", "b")) is seat
            held = await preload.get(uow, NoticeSeat, ("s", "a"))
            assert held is not None
            await preload.delete(uow, held)
            assert await preload.get(uow, NoticeSeat, ("s", "a")) is None
            assert len(statements) == 2, statements  # all answered from memory
            assert await preload.get(uow, Recipient, "c") is None  # a key not covered: the database is asked
            assert any("FROM recipient" in s for s in statements[2:])
            asked: list[str] = []

            async def own_lookup() -> Recipient | None:  # e.g. the handler's locking query
                asked.append("c")
                return None

            assert await preload.get(uow, Recipient, "c", fallback=own_lookup) is None and asked == ["c"]
            assert await preload.get(uow, Recipient, "a", fallback=own_lookup) is found and asked == ["c"]
        async with db.read() as tx:
            assert {(s.session_id, s.member_id) for s in (await tx.exec(SQLModel.metadata.tables["notice_seat"]
                                                                        .select())).all()} == {("s", "b")}
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
        await db.dispose()
