"""Database engine and transactions (async SQLAlchemy over SQLModel tables).

Each service owns its own database (SQLite file locally, its own PostgreSQL database or schema in
deployment). `Database.transaction()` is the unit of work: state changes and the outbox rows they
emit commit together or not at all.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """INSERT for the session's database (SQLite or PostgreSQL), with `on_conflict_do_nothing/update`."""
    return (pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert)(table)


def sync_url(url: str) -> str:
    """The same database for synchronous tools (Alembic)."""
    return url.replace("sqlite+aiosqlite", "sqlite")


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
    # WAL lets readers run beside the single writer; busy_timeout queues writers instead of failing.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # Bounded: four services x (pool + overflow) must stay well under PostgreSQL's max_connections (100 by
    # default); handlers beyond the pool wait for a connection instead of failing with "too many clients".
    return create_async_engine(url, pool_size=pool_size, max_overflow=2, pool_timeout=60, pool_pre_ping=True)


class Database:
    """A service's database: sessions, one-transaction units of work, commit hooks."""

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size)
        self.sqlite = is_sqlite(url)
        self._sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)
        self._after_commit: list[Callable[[], None]] = []
        import asyncio

        # SQLite allows one writer at a time; a process-wide lock avoids "database is locked" storms
        # and makes `BEGIN` behave like PostgreSQL's row locks for our read-modify-write commands.
        self._write_lock = asyncio.Lock() if self.sqlite else None

    def on_commit(self, hook: Callable[[], None]) -> None:
        """Called after every successful commit (the outbox relay uses it to wake up)."""
        self._after_commit.append(hook)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A read-only session (no commit)."""
        async with self._sessions() as s:
            yield s

    @asynccontextmanager
    async def transaction(self, notify: bool = True) -> AsyncIterator[AsyncSession]:
        """Unit of work: commit on success, roll back on any exception.

        `notify=False` skips the commit hooks (the outbox relay's own bookkeeping)."""
        if self._write_lock is not None:
            async with self._write_lock:
                async with self._tx() as s:
                    yield s
        else:
            async with self._tx() as s:
                yield s
        if notify:
            for hook in self._after_commit:
                hook()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as s:
            async with s.begin():
                yield s

    async def ping(self) -> bool:
        from sqlalchemy import text

        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()
